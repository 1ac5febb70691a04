"""The config every run starts from, and preset handling.

:func:`base_config` is built from the schema (``jebm.config_schema``: each
field's default, check and help). Every config file in ``configs/`` starts from
it and overrides fields, so a field that exists anywhere exists everywhere and
``--config.<field>=...`` overrides work for every config. Presets are
selected with ``--config=configs/<name>.py:<preset>[,<preset>...]``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Mapping

from ml_collections import config_dict

from jebm import config_schema

Preset = Callable[[config_dict.ConfigDict], None]


def base_config() -> config_dict.ConfigDict:
    """Defaults: the paper's 2D toy with SGLD (Table 2's first row); each field's help is in :func:`describe`.

    Built from ``config_schema.FIELDS`` in its order; a field whose default is None
    is ``config_dict.placeholder(<its type>)``, so a command-line value is parsed as that type.
    """
    c = config_dict.ConfigDict()
    for field in config_schema.FIELDS:
        *blocks, leaf = field.name.split(".")
        node = c
        for block in blocks:
            if block not in node:
                node[block] = config_dict.ConfigDict()
            node = node[block]
        node[leaf] = config_dict.placeholder(field.placeholder_type) if field.default is None else field.default
    return c


def describe() -> str:
    """The schema as text, one field a line: its name, default and help."""
    width = max(len(f.name) for f in config_schema.FIELDS)
    return "\n".join(f"{f.name:<{width}}  {f.default!r}  {f.help}" for f in config_schema.FIELDS)


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


# The presets both toy configs (configs/gmm_sgld.py, configs/gmm_sghmc.py) offer.
TOY_PRESETS: dict[str, Preset] = {
    "beta": beta_head, "cosine": cosine, "eq20": eq20, "gamma": gamma_head, "smoke": smoke,
}
