"""The paper's 2D Gaussian mixture with SGLD: Table 1's SGLD rows, Table 2's hyperparameters.

Run: python -m jebm.main --config=configs/gmm_sgld.py[:preset,...] --workdir=/tmp/gmm_sgld

Presets (comma-separated, applied in order):
  nopcd      (default) noise-initialised chains, U(-2, 2)² as in the paper's author's code
  pcd        persistent chains (a bank of 10,000, no re-initialisation)
  quadratic  the quadratic head E = ½f² (Table 1 "activation")
  lecun_init Flax's default initialisation (default: torch.nn.Linear's, the author's)
  eq20       the paper's Eq. 20 exactly: E = ½f², head offset 0 (with `quadratic`)
  beta       E = f + (β/2)f², β learnable (logged); gamma: E = f + γ√n‖x‖², γ learnable
  cosine     cosine decay of the learning rate to 0 (beyond the paper)
  stable     η = 0.005 instead of 0.01 (beyond the paper): SGLD is unstable once the
             learned wells' curvature passes 2/η, which seeds of Table 1's SGLD rows
             cross at η = 0.01 (experiments/results/toy_table1.md); halving η doubles
             that limit (experiments/results/toy_table1_best.md)
  smoke      a seconds-long run for tests

Table 2: SGD, lr ε = 0.01, weight decay 0, η = 0.01, batch 100, 10 epochs, L = 500.
The paper does not give the dataset size or network; like its author's code we
draw 60,000 fresh points per epoch (6,000 steps in all) with the toy MLP 2-32-64-64-64-1,
initialised as torch.nn.Linear does (U(±1/√fan_in) kernels and biases).

What each preset measured is in docs/reproductions.md and experiments/results/.
"""

from jebm import config_lib


def pcd(c):
    c.chain_init.persistent = True


def nopcd(c):
    c.chain_init.persistent = False


def quadratic(c):
    c.energy.head = "quadratic"


def stable(c):
    c.sampler.step_size = 0.005


PRESETS = {
    "nopcd": nopcd,
    "stable": stable,
    "pcd": pcd,
    "quadratic": quadratic,
    **config_lib.TOY_PRESETS,
    "lecun_init": config_lib.lecun_init,
}


def get_config(arg=None):
    c = config_lib.base_config()
    c.sampler.name = "sgld"
    c.sampler.step_size = 0.01
    c.sampler.num_steps = 500
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.01
    c.optimizer.weight_decay = 0.0
    c.training.batch_size = 100
    c.training.num_epochs = 10
    c.training.sample_every = 1000  # fresh-chain samples over the learned density, and their KS: grids/, TensorBoard
    # The paper's author's PyTorch code uses nn.Linear's default init; with Flax's
    # LeCun-normal init (preset `lecun_init`) the SGLD rows diverge (toy_table1.md).
    c.energy.param_init = "torch"
    return config_lib.apply_presets(c, arg, PRESETS)
