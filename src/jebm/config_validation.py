"""Checks every config field before anything is built or compiled.

Each error names the field, the value given and what is allowed, and all
problems are reported at once.
"""

from __future__ import annotations

import numbers

from ml_collections import config_dict

from jebm import losses, optim
from jebm.data import mnist, pipeline
from jebm.energies.heads import BETA_HEADS, HEADS
from jebm.energies.networks import ACTIVATIONS, DENSE_INITS
from jebm.energies.factory import NETWORKS, NO_HEAD
from jebm.samplers import factory as sampler_factory
from jebm.samplers import registry as sampler_registry
from jebm.samplers.sghmc import INTEGRATORS


class ConfigError(ValueError):
    """One or more config fields are invalid."""


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


class _Checker:
    def __init__(self, config):
        self.config = config
        self.errors: list[str] = []

    def get(self, field: str):
        node = self.config
        for part in field.split("."):
            if part not in node:
                self.errors.append(f"{field} is missing from the config")
                return None
            node = node[part]
        return node

    def choice(self, field, valid):
        v = self.get(field)
        if v not in valid:
            self.errors.append(f"{field}={v!r} is not one of {sorted(valid)}")

    def number(self, field, *, gt=None, ge=None, le=None, allow_none=False):
        v = self.get(field)
        if v is None and allow_none:
            return
        if not _is_number(v):
            self.errors.append(f"{field}={v!r} must be a number")
            return
        bounds = []
        if gt is not None and not v > gt:
            bounds.append(f"> {gt}")
        if ge is not None and not v >= ge:
            bounds.append(f">= {ge}")
        if le is not None and not v <= le:
            bounds.append(f"<= {le}")
        if bounds:
            self.errors.append(f"{field}={v!r} must be " + " and ".join(bounds))

    def integer(self, field, *, ge=None, allow_none=False):
        v = self.get(field)
        if v is None and allow_none:
            return
        if not _is_int(v):
            self.errors.append(f"{field}={v!r} must be an integer")
        elif ge is not None and v < ge:
            self.errors.append(f"{field}={v!r} must be an integer >= {ge}")

    def boolean(self, field):
        v = self.get(field)
        if not isinstance(v, bool):
            self.errors.append(f"{field}={v!r} must be true or false")


def validate(config: config_dict.ConfigDict) -> None:
    """Raises ``ConfigError`` listing every invalid field of ``config``."""
    c = _Checker(config)
    c.integer("seed", ge=0)
    # dataset
    c.choice("dataset.name", pipeline.dataset_names())
    c.number("dataset.held_out_fraction", gt=0, le=0.5)
    c.choice("dataset.mode", pipeline.TOY_MODES)
    c.integer("dataset.points_per_epoch", ge=1)
    c.integer("dataset.num_points", ge=1)
    c.choice("dataset.source", mnist.VALID_SOURCES)
    c.choice("dataset.scale", mnist.VALID_SCALES)
    c.number("dataset.noise_std", ge=0)
    c.integer("dataset.max_train_images", ge=0)
    # energy
    c.choice("energy.name", NETWORKS)
    c.choice("energy.head", (*HEADS, NO_HEAD))
    c.number("energy.head_offset", allow_none=True)
    c.boolean("energy.beta_learnable")
    c.number("energy.beta_init", allow_none=True)
    if c.get("energy.beta_learnable") is False and c.get("energy.beta_init") is None:
        c.errors.append("energy.beta_learnable=False needs energy.beta_init (the fixed β), e.g. 1.0")
    if (c.get("energy.beta_learnable") is False or c.get("energy.beta_init") is not None) and c.get("energy.head") not in BETA_HEADS:
        c.errors.append(f"energy.beta_learnable / energy.beta_init apply to energy.head in {sorted(BETA_HEADS)}, "
                        f"not {c.get('energy.head')!r}")
    act = c.get("energy.activation")
    if act not in ("", *ACTIVATIONS):
        c.errors.append(f"energy.activation={act!r} is not one of {sorted(('',) + tuple(ACTIVATIONS))} ('' = the network's default)")
    hidden = c.get("energy.hidden")
    if hidden is not None and (not hidden or not all(_is_int(h) and h > 0 for h in hidden)):
        c.errors.append(f"energy.hidden={hidden!r} must be a non-empty tuple of positive integers")
    c.number("energy.out_init_std", gt=0, allow_none=True)
    conv = c.get("energy.conv_impl")
    if conv not in ("", "xla", "im2col"):
        c.errors.append(f"energy.conv_impl={conv!r} is not one of ['', 'im2col', 'xla'] ('' = im2col on the CPU, xla elsewhere)")
    elif conv and c.get("energy.name") not in ("custom_cnn", "lenet"):
        c.errors.append(f"energy.conv_impl={conv!r} applies to energy.name in ['custom_cnn', 'lenet'], "
                        f"not {c.get('energy.name')!r}")
    c.integer("energy.spectral_norm", ge=0)
    if _is_int(c.get("energy.spectral_norm")) and c.get("energy.spectral_norm") > 0 and c.get("energy.name") not in ("custom_cnn", "lenet"):
        c.errors.append(f"energy.spectral_norm={c.get('energy.spectral_norm')!r} applies to energy.name in "
                        f"['custom_cnn', 'lenet'], not {c.get('energy.name')!r} (0 = off)")
    init = c.get("energy.param_init")
    if init not in ("", *DENSE_INITS):
        c.errors.append(f"energy.param_init={init!r} is not one of {sorted(('',) + DENSE_INITS)} ('' = Flax's default)")
    elif init and c.get("energy.name") not in ("mlp", "toy_mlp"):
        c.errors.append(f"energy.param_init={init!r} applies to energy.name in ['mlp', 'toy_mlp'], not {c.get('energy.name')!r}")
    # sampler
    c.choice("sampler.name", sampler_registry.NAMES)
    c.number("sampler.step_size", gt=0)
    c.integer("sampler.num_steps", ge=1)
    c.integer("sampler.num_chains", ge=1, allow_none=True)
    c.number("sampler.temperature", gt=0)
    c.number("sampler.friction", gt=0)
    c.number("sampler.mass", gt=0)
    c.choice("sampler.mass_convention", sampler_factory.MASS_CONVENTIONS)
    c.choice("sampler.integrator", INTEGRATORS)
    c.choice("sampler.momentum_init", ("random", "zero"))
    c.integer("sampler.unroll", ge=1)
    c.integer("sampler.chunk_size", ge=0)
    bounds = c.get("sampler.bounds")
    if bounds is not None and not (len(bounds) == 2 and all(_is_number(b) for b in bounds) and bounds[0] < bounds[1]):
        c.errors.append(f"sampler.bounds={bounds!r} must be None or (low, high) with low < high, e.g. (-1.0, 1.0)")
    c.number("sampler.grad_clip", gt=0, allow_none=True)
    if c.get("sampler.grad_clip") is not None and c.get("sampler.name") == "mala":
        c.errors.append(f"sampler.grad_clip={c.get('sampler.grad_clip')!r} is for sampler.name in ['sghmc', 'sgld'], "
                        "not 'mala' (MALA is exact; set sampler.grad_clip=None)")
    # chains
    c.choice("chain_init.name", sampler_factory.CHAIN_INITS)
    c.number("chain_init.low")
    c.number("chain_init.high")
    if _is_number(c.get("chain_init.low")) and _is_number(c.get("chain_init.high")) and not c.get("chain_init.low") < c.get("chain_init.high"):
        c.errors.append(f"chain_init.low={c.get('chain_init.low')!r} must be < chain_init.high={c.get('chain_init.high')!r}")
    c.number("chain_init.mean")
    c.number("chain_init.std", gt=0)
    c.boolean("chain_init.persistent")
    c.integer("chain_init.bank_size", ge=1)
    c.number("chain_init.reinit_fraction", ge=0, le=1)
    # loss and optimizer
    c.choice("loss.name", losses.LOSSES)
    c.number("loss.l2_energy", ge=0)
    c.choice("optimizer.name", optim.OPTIMIZERS)
    c.number("optimizer.learning_rate", gt=0)
    c.number("optimizer.weight_decay", ge=0)
    c.choice("optimizer.schedule", optim.SCHEDULES)
    c.number("optimizer.final_lr_fraction", ge=0, le=1)
    c.integer("optimizer.warmup_steps", ge=0)
    # training
    c.integer("training.batch_size", ge=1)
    c.integer("training.num_epochs", ge=1)
    c.integer("training.max_steps", ge=0)
    c.integer("training.log_every", ge=1)
    c.integer("training.checkpoint_every", ge=1)
    c.integer("training.keep_checkpoints", ge=1)
    c.integer("training.sample_every", ge=0)
    c.boolean("training.progress")
    c.number("training.progress_every_s", gt=0)
    c.number("training.ema_decay", ge=0)
    if _is_number(c.get("training.ema_decay")) and not c.get("training.ema_decay") < 1:
        c.errors.append(f"training.ema_decay={c.get('training.ema_decay')!r} must be in [0, 1) (0 = off)")
    # evaluation
    c.integer("eval.num_samples", ge=2)
    c.integer("eval.sampler_steps", ge=1, allow_none=True)
    c.integer("eval.long_run_steps", ge=1)
    c.integer("eval.ks_repeats", ge=1)
    c.integer("eval.grid_size", ge=2)
    c.number("eval.grid_lim", gt=0)
    c.boolean("eval.quality")
    c.integer("eval.quality_reference", ge=2)
    c.integer("eval.long_run_samples", ge=0)
    c.integer("eval.ais_temps", ge=0)
    c.integer("eval.ais_chains", ge=2)
    ais_curve = c.get("eval.ais_curve")
    if ais_curve is None or not all(_is_int(n) and n >= 1 for n in ais_curve):
        c.errors.append(f"eval.ais_curve={ais_curve!r} must be a tuple of temperature counts >= 1, e.g. (10, 100)")
    c.choice("eval.ais_base", ("uniform", "box_kde"))
    c.integer("eval.ais_kde_centres", ge=1)
    c.number("eval.ais_kde_scale", gt=0)
    c.number("eval.ais_kde_margin", gt=0)
    c.number("eval.ais_kde_tilt", ge=0)
    if _is_number(c.get("eval.ais_kde_margin")) and not c.get("eval.ais_kde_margin") < 1:
        c.errors.append(f"eval.ais_kde_margin={c.get('eval.ais_kde_margin')!r} must be in (0, 1): a fraction of the box's half-width")
    if c.get("eval.ais_base") == "box_kde" and c.get("dataset.name") not in ("mnist",):
        c.errors.append(f"eval.ais_base='box_kde' needs training images (dataset.name='mnist'), "
                        f"not dataset.name={c.get('dataset.name')!r}; use eval.ais_base='uniform'")
    c.number("eval.likelihood_lim", gt=0)
    c.integer("eval.likelihood_grid", ge=4)
    curve = c.get("eval.long_run_curve")
    if curve is None or not all(_is_int(n) and n >= 1 for n in curve):
        c.errors.append(f"eval.long_run_curve={curve!r} must be a tuple of chain lengths >= 1, e.g. (100, 1000)")
    # guard
    c.number("guard.max_abs_energy", gt=0)
    c.number("guard.max_grad_norm", gt=0)
    c.choice("guard.on_divergence", ("rollback", "stop"))
    c.integer("guard.max_rollbacks", ge=0)
    c.number("guard.lr_factor", gt=0, le=1)
    c.boolean("sharding.enabled")
    c.boolean("sharding.distributed")
    c.integer("sharding.num_cpu_devices", ge=0)
    # cross-field
    persistent, bank, n = c.get("chain_init.persistent"), c.get("chain_init.bank_size"), c.get("sampler.num_chains") or c.get("training.batch_size")
    if persistent is True and _is_int(bank) and _is_int(n) and bank < n:
        c.errors.append(f"chain_init.bank_size={bank} must be >= the number of chains per step ({n})")
    if c.errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(c.errors))
