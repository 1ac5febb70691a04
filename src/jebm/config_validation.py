"""Checks every config field before anything is built or compiled.

Each field's own check is declared with it in ``jebm.config_schema``; the rules
that relate several fields are the functions in :data:`RULES`. Each error names
the field, the value given and what is allowed, and all problems are reported at
once: first the fields' own checks (in the schema's order), then the rules.
"""

from __future__ import annotations

from typing import Callable, Mapping

from ml_collections import config_dict

from jebm import config_schema
from jebm.config_schema import is_int, is_number
from jebm.data import mnist, pipeline
from jebm.energies.factory import BUILT_IN_FIELDS, BUILT_IN_NETWORKS, NETWORKS
from jebm.energies.heads import BETA_HEADS


class ConfigError(ValueError):
    """One or more config fields are invalid."""


_MISSING = object()


class _Fields:
    """Reads dotted fields of a config; a missing one reads as None (its own check reported it)."""

    def __init__(self, config):
        self.config = config
        self.failed: set[str] = set()  # fields whose own check failed

    def lookup(self, field: str):
        node = self.config
        for part in field.split("."):
            if not isinstance(node, (config_dict.ConfigDict, Mapping)) or part not in node:
                return _MISSING
            node = node[part]
        return node

    def __call__(self, field: str):
        value = self.lookup(field)
        return None if value is _MISSING else value

    def good(self, field: str) -> bool:
        """The field is there and passed its own check."""
        return field not in self.failed and self.lookup(field) is not _MISSING


# Rules: each takes the config's fields and returns its errors (empty when the rule holds).
Rule = Callable[[_Fields], list]


def _source_fits_dataset(get: _Fields) -> list:
    name, source = get("dataset.name"), get("dataset.source")
    image = pipeline.IMAGE_DATASETS.get(name) if pipeline.is_image_data(name) else None
    if image is not None and source in mnist.VALID_SOURCES and source not in image.sources:
        return [f"dataset.source={source!r} does not apply to dataset.name={name!r} ({image.where}); "
                f"valid: {sorted(image.sources)}"]
    return []


def _beta_fields_fit_head(get: _Fields) -> list:
    errors = []
    learnable, init, head = get("energy.beta_learnable"), get("energy.beta_init"), get("energy.head")
    if learnable is False and init is None:
        errors.append("energy.beta_learnable=False needs energy.beta_init (the fixed β), e.g. 1.0")
    if (learnable is False or init is not None) and head not in BETA_HEADS:
        errors.append(f"energy.beta_learnable / energy.beta_init apply to energy.head in {sorted(BETA_HEADS)}, "
                      f"not {head!r}")
    return errors


# Notes for the errors on the energy.* fields that belong to some of jebm's own networks
# (jebm.energies.factory.BUILT_IN_FIELDS says which; energy.hidden is checked where the MLP is built).
NETWORK_FIELD_NOTES = {"conv_impl": "", "channels": " (0 = the network's default)", "spectral_norm": " (0 = off)",
                       "param_init": ""}


def _network_fields_fit_network(get: _Fields) -> list:
    """A set field of ``BUILT_IN_FIELDS`` on another of jebm's networks is an error. A registered
    energy ignores it (``jebm.energies.make_energy`` drops it with a warning), so a shipped config runs
    with the user's energy swapped in (configs/gmm_sghmc.py sets its MLP's param_init)."""
    errors, name = [], get("energy.name")
    for key, note in NETWORK_FIELD_NOTES.items():
        field, networks = f"energy.{key}", BUILT_IN_FIELDS[key]
        value = get(field)
        if not get.good(field) or not value or name in networks:
            continue
        if name in BUILT_IN_NETWORKS or name not in NETWORKS:
            where = f"={networks[0]!r}" if len(networks) == 1 else f" in {sorted(networks)}"
            errors.append(f"{field}={value!r} applies to energy.name{where}, not {name!r}{note}")
    return errors


def _grad_clip_not_for_mala(get: _Fields) -> list:
    if get("sampler.grad_clip") is not None and get("sampler.name") == "mala":
        return [f"sampler.grad_clip={get('sampler.grad_clip')!r} is for sampler.name in ['sghmc', 'sgld'], "
                "not 'mala' (MALA is exact; set sampler.grad_clip=None)"]
    return []


def _chain_box_is_a_box(get: _Fields) -> list:
    low, high = get("chain_init.low"), get("chain_init.high")
    if is_number(low) and is_number(high) and not low < high:
        return [f"chain_init.low={low!r} must be < chain_init.high={high!r}"]
    return []


def _image_data_for(field: str, is_set: Callable, message: Callable) -> Rule:
    """A rule: ``field`` set (``is_set(value)``) needs image data; ``message(value, name)`` says so."""

    def rule(get: _Fields) -> list:
        value, name = get(field), get("dataset.name")
        if is_set(value) and not pipeline.is_image_data(name):
            return [message(value, name)]
        return []

    rule.__name__ = f"_{field.replace('.', '_')}_needs_image_data"
    return rule


_convergence_watch_needs_images = _image_data_for(
    "training.convergence_every", lambda v: is_int(v) and v > 0,
    lambda v, name: f"training.convergence_every={v!r} needs image data (dataset.name in "
                    f"{sorted(pipeline.IMAGE_DATASETS)}), not dataset.name={name!r} (0 = off)")
_box_kde_needs_images = _image_data_for(
    "eval.ais_base", lambda v: v == "box_kde",
    lambda v, name: f"eval.ais_base='box_kde' needs training images (dataset.name in "
                    f"{sorted(pipeline.IMAGE_DATASETS)}), not dataset.name={name!r}; use eval.ais_base='uniform'")


def _bank_holds_the_chains(get: _Fields) -> list:
    persistent, bank = get("chain_init.persistent"), get("chain_init.bank_size")
    n = get("sampler.num_chains") or get("training.batch_size")
    if persistent is True and is_int(bank) and is_int(n) and bank < n:
        return [f"chain_init.bank_size={bank} must be >= the number of chains per step ({n})"]
    return []


RULES: tuple[Rule, ...] = (
    _source_fits_dataset,
    _beta_fields_fit_head,
    _network_fields_fit_network,
    _grad_clip_not_for_mala,
    _chain_box_is_a_box,
    _convergence_watch_needs_images,
    _box_kde_needs_images,
    _bank_holds_the_chains,
)


def validate(config: config_dict.ConfigDict) -> None:
    """Raises ``ConfigError`` listing every invalid field of ``config``."""
    get, errors = _Fields(config), []
    for field in config_schema.FIELDS:
        if field.check is None:
            continue
        value = get.lookup(field.name)
        if value is _MISSING:
            errors.append(f"{field.name} is missing from the config")
            continue
        problem = field.check.test(value)
        if problem:
            get.failed.add(field.name)
            errors.append(f"{field.name}={value!r} {problem}")
    for rule in RULES:
        errors += rule(get)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
