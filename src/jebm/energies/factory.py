"""Build an energy model by name, and bind it to parameters for the samplers.

``make_energy("custom_cnn", head="quadratic")`` is what a config's
``energy.*`` fields turn into; every invalid choice is rejected with the
field's name and the valid values.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from jebm.energies.heads import HEADS, EnergyModel, quadratic_stall_report
from jebm.energies.networks import (
    ACTIVATIONS,
    MLP,
    CustomCNN,
    LeNet,
    TOY_HIDDEN,
    ToyMLP,
    check_choice,
    flatten_examples,
)

Array = jax.Array
EnergyFn = Callable[[Array], Array]

NETWORKS = {"custom_cnn": CustomCNN, "lenet": LeNet, "mlp": MLP, "toy_mlp": ToyMLP}

# "mlp" without widths gets the toy network's, the only MLP the paper uses.
DEFAULT_MLP_HIDDEN = TOY_HIDDEN

# Flax's own dataclass fields, never backbone options.
_FLAX_FIELDS = ("parent", "name")


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
        ``"lenet"``, ``"mlp"``, ``"toy_mlp"``.
      head: one of ``HEADS``: ``"beta"``, ``"beta_gamma"``, ``"gamma"``,
        ``"linear"``, ``"quadratic"``.
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
      An unbound ``EnergyModel``; ``model.init(key, x)`` gives its params.

    Raises:
      ValueError: for an unknown name, head or activation (listing the valid
        ones), invalid ``hidden``, or a keyword the backbone does not take.
    """
    check_choice("energy.name", name, NETWORKS)
    check_choice("energy.head", head, HEADS)
    options = dict(kwargs)
    if activation is not None:
        check_choice("energy.activation", activation, ACTIVATIONS)
        options["activation"] = activation
    if hidden is not None:
        options["hidden"] = _checked_hidden(name, hidden)
    elif name == "mlp":
        options["hidden"] = DEFAULT_MLP_HIDDEN
    _check_backbone_options(name, options)
    return EnergyModel(
        backbone=NETWORKS[name](**options),
        head=head,
        head_offset=head_offset,
        head_init_std=head_init_std,
        beta_learnable=beta_learnable,
        beta_init=beta_init,
    )


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
