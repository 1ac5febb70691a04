"""Build an energy model by name, and bind it to parameters for the samplers.

``make_energy("custom_cnn", head="quadratic")`` is what a config's
``energy.*`` fields turn into; every invalid choice is rejected with the
field's name and the valid values.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging

from jebm import names
from jebm.energies.heads import HEADS, EnergyModel, quadratic_stall_report
from jebm.energies.networks import (
    ACTIVATIONS,
    MLP,
    CustomCNN,
    LeNet,
    NonlocalCNN,
    TOY_HIDDEN,
    ToyMLP,
    check_choice,
    flatten_examples,
)

Array = jax.Array
EnergyFn = Callable[[Array], Array]

BUILT_IN_NETWORKS = {"custom_cnn": CustomCNN, "lenet": LeNet, "mlp": MLP, "nonlocal_cnn": NonlocalCNN, "toy_mlp": ToyMLP}
# The image networks whose convolutions ``energy.conv_impl`` chooses.
CNN_NETWORKS = ("custom_cnn", "lenet", "nonlocal_cnn")
# Live: jebm's own backbones and those added by ``register`` (configs choose from it).
NETWORKS = dict(BUILT_IN_NETWORKS)
_REGISTRY = names.Registry("energy", NETWORKS, BUILT_IN_NETWORKS)

# ``energy.head="none"``: no head, E = the backbone's output itself.
NO_HEAD = "none"

# "mlp" without widths gets the toy network's, the only MLP the paper uses.
DEFAULT_MLP_HIDDEN = TOY_HIDDEN

# Flax's own dataclass fields, never backbone options.
_FLAX_FIELDS = ("parent", "name")

# ``energy.*`` fields that belong to some of jebm's own networks: the networks they apply to.
# A built-in network outside the list is an error (validation names the field); a registered
# energy ignores them, with a warning, so that a shipped config whose energy is swapped for
# the user's (e.g. configs/gmm_sghmc.py, which sets the toy MLP's param_init) still runs.
BUILT_IN_FIELDS = {
    "hidden": ("mlp",),
    "param_init": ("mlp", "toy_mlp"),
    "conv_impl": CNN_NETWORKS,
    "spectral_norm": ("custom_cnn", "lenet"),
    "channels": ("nonlocal_cnn",),
}


def _is_width(h) -> bool:
    """A layer width: a positive int (``True`` is an int to Python, not a width)."""
    return isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0


def _checked_hidden(name: str, hidden: Sequence[int]) -> tuple[int, ...]:
    """Validate ``energy.hidden`` for network ``name``; return it as a tuple."""
    if name != "mlp":
        raise ValueError(f"energy.hidden is only used by energy.name='mlp'; {name!r} has fixed layer sizes")
    widths = tuple(hidden) if isinstance(hidden, Sequence) and not isinstance(hidden, str) else ()
    if not widths or not all(_is_width(h) for h in widths):
        raise ValueError(f"energy.hidden={hidden!r} must be a non-empty sequence of positive ints")
    return tuple(int(h) for h in widths)


def _check_backbone_options(name: str, options: dict) -> None:
    """Reject options that the backbone ``name`` does not have, listing those it has."""
    valid = sorted(f.name for f in dataclasses.fields(NETWORKS[name]) if f.name not in _FLAX_FIELDS)
    for key in options:
        if key not in valid:
            raise ValueError(f"energy.{key} is not an option of energy.name={name!r}; valid: {valid}")


def make_energy(
    name: str,
    *,
    head: str = "linear",
    head_offset: Optional[float] = None,
    activation: Optional[str] = None,
    hidden: Optional[Sequence[int]] = None,
    head_init_std: float = 0.01,
    beta_learnable: bool = True,
    beta_init: Optional[float] = None,
    **kwargs: Any,
) -> EnergyModel:
    """Build ``EnergyModel(backbone=<name>, head=head)``.

    Args:
      name: backbone, one of ``sorted(NETWORKS)``: ``"custom_cnn"``,
        ``"lenet"``, ``"mlp"``, ``"nonlocal_cnn"``, ``"toy_mlp"`` or a name added by
        :func:`register`.
      head: one of ``HEADS``: ``"beta"``, ``"beta_gamma"``, ``"gamma"``,
        ``"linear"``, ``"quadratic"``, or ``"none"`` (E = f, no head).
      head_offset: constant added to ``f`` before the head; ``None`` takes the
        head's default (1 for ``quadratic``, which avoids the stall at
        initialisation, else 0). See ``jebm.energies.heads``.
      activation: one of ``ACTIVATIONS``; ``None`` keeps the network's default
        (LeakyReLU for the MLPs, Swish for the CNNs).
      hidden: hidden widths, ``"mlp"`` only; defaults to ``(32, 64, 64, 64)``.
      head_init_std: std of the initial ``β``/``γ`` of those heads.
      beta_learnable: ``False`` fixes β at ``beta_init`` (heads ``beta``,
        ``beta_gamma``).
      beta_init: start (or fixed value) of β; ``None`` draws it from
        N(0, head_init_std²).
      **kwargs: further backbone fields, e.g. ``leaky_slope``,
        ``out_init_std``, ``dtype``, ``param_dtype``.

    Returns:
      An unbound ``EnergyModel`` (the bare backbone for ``head="none"``);
      ``model.init(key, x)`` gives its params.

    Raises:
      ValueError: for an unknown name, head or activation (listing the valid
        ones), invalid ``hidden``, or a keyword the backbone does not take.
    """
    check_choice("energy.name", name, NETWORKS)
    check_choice("energy.head", head, (*HEADS, NO_HEAD))
    options = dict(kwargs)
    if name not in BUILT_IN_NETWORKS:
        options = _without_built_in_fields(name, {**options, "hidden": hidden})
        hidden = options.pop("hidden", None)
    if activation is not None:
        check_choice("energy.activation", activation, ACTIVATIONS)
        options["activation"] = activation
    if hidden is not None:
        options["hidden"] = _checked_hidden(name, hidden)
    elif name == "mlp":
        options["hidden"] = DEFAULT_MLP_HIDDEN
    if name in BUILT_IN_NETWORKS:
        _check_backbone_options(name, options)
        backbone = NETWORKS[name](**options)
    else:
        backbone = _registered_backbone(name, options)
    return with_head(backbone, head=head, head_offset=head_offset, head_init_std=head_init_std,
                     beta_learnable=beta_learnable, beta_init=beta_init)


def with_head(
    backbone: nn.Module,
    *,
    head: str = "linear",
    head_offset: Optional[float] = None,
    head_init_std: float = 0.01,
    beta_learnable: bool = True,
    beta_init: Optional[float] = None,
) -> nn.Module:
    """``backbone`` (any Flax module ``(n, ...) -> (n,)``) under one of jebm's heads.

    ``head="none"`` returns ``backbone`` itself (E = f); any other name of
    ``HEADS`` wraps it as ``EnergyModel(backbone, head, ...)`` (see
    ``jebm.energies.heads`` for each head's equation).

    Raises:
      ValueError: for a head that is not in ``HEADS`` or ``"none"``, or a
        ``backbone`` that is not a Flax module.
    """
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"energy must be a flax.linen.Module mapping (batch, *example_shape) -> (batch,), "
                         f"got {type(backbone).__name__}")
    check_choice("energy.head", head, (*HEADS, NO_HEAD))
    if head == NO_HEAD:
        return backbone
    return EnergyModel(backbone=backbone, head=head, head_offset=head_offset, head_init_std=head_init_std,
                       beta_learnable=beta_learnable, beta_init=beta_init)


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Makes a user backbone selectable as ``config.energy.name = name``.

    Args:
      name: a new name; registering it again replaces its factory, but jebm's
        own names (``sorted(BUILT_IN_NETWORKS)``) are fixed.
      factory: ``factory(**options) -> flax.linen.Module`` mapping ``(n, ...)``
        inputs to ``f`` of shape ``(n,)``; a Module class is such a factory.
        From a config it gets the ``energy.*`` options that are set
        (``activation``, ``out_init_std``), and the config's head is put on top
        (``energy.head="none"`` for none). The fields of jebm's own networks
        (``BUILT_IN_FIELDS``: ``hidden``, ``param_init``, ``conv_impl``,
        ``spectral_norm``) are ignored with a warning.

    Raises:
      ValueError: if ``name`` is not a non-empty string or is one of jebm's
        own, or ``factory`` is not callable.
    """
    _REGISTRY.register(name, factory)


def unregister(name: str) -> None:
    """Removes a name added by :func:`register`.

    Raises:
      ValueError: if ``name`` was not registered.
    """
    _REGISTRY.unregister(name)


def _without_built_in_fields(name: str, options: dict) -> dict:
    """``options`` less the fields of jebm's own networks (``BUILT_IN_FIELDS``), each one set warned about."""
    kept = {}
    for key, value in options.items():
        if key not in BUILT_IN_FIELDS:
            kept[key] = value
        elif value not in (None, "", 0):  # "" / 0: the field's unset default
            logging.warning("energy.%s=%r is ignored: it belongs to energy.name in %s, and %r is a registered "
                            "energy", key, value, sorted(BUILT_IN_FIELDS[key]), name)
    return kept


def _registered_backbone(name: str, options: dict) -> nn.Module:
    try:
        backbone = NETWORKS[name](**options)
    except TypeError as err:
        raise ValueError(f"energy.name={name!r} (registered factory {NETWORKS[name]!r}) does not take the "
                         f"options {sorted(options)} set in the config: {err}") from err
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"the factory registered as energy.name={name!r} returned {type(backbone).__name__}, "
                         "not a flax.linen.Module")
    return backbone


def energy_fn(model: EnergyModel, params) -> EnergyFn:
    """Bind ``params``: ``energy_fn(x) -> E(x)`` of shape ``(n_chains,)``.

    This is the sampler contract (``jebm.samplers.base``).
    """
    return lambda x: model.apply(params, x)


def features_fn(model: EnergyModel, params) -> EnergyFn:
    """Bind ``params``: ``features(x) -> u = f(x) + offset``, shape ``(n,)``."""
    return lambda x: model.apply(params, x, method=EnergyModel.features)


def energy_grad_norms(energy: EnergyFn, x: Array) -> Array:
    """Per-example ``‖∇ₓE(x_i)‖``, shape ``(n,)``.

    Differentiates ``sum(E)``, which is exact because example ``i``'s energy
    reads only ``x_i``.
    """
    grads = jax.grad(lambda y: jnp.sum(energy(y)))(x)
    return jnp.sqrt(jnp.sum(jnp.square(flatten_examples(grads)), axis=1))


def quadratic_stall_check(model: EnergyModel, params, x: Array, **report_kwargs) -> dict:
    """``quadratic_stall_report`` for ``model`` on the batch ``x``.

    Meant for the first batch of training when ``model.head == "quadratic"``.

    Args:
      model: the energy model.
      params: its parameters.
      x: a batch of inputs ``(n, ...)``.
      **report_kwargs: passed on, e.g. ``tol``.

    Returns:
      The report dict (``mean_abs_f``, ``mean_grad_norm``, ``stalled``).
    """
    head_inputs = features_fn(model, params)(x)
    grad_norms = energy_grad_norms(energy_fn(model, params), x)
    return quadratic_stall_report(head_inputs, grad_norms, **report_kwargs)
