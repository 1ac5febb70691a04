"""Training losses by name.

The contrastive-divergence loss of Algorithm 1,

.. math::  \\mathcal{L}(\\theta) = \\overline{E_\\theta(x^+)} - \\overline{E_\\theta(x^-)}
           + \\alpha \\big(\\overline{E_\\theta(x^+)^2} + \\overline{E_\\theta(x^-)^2}\\big),

with bars for batch means, ``x⁺`` data and ``x⁻`` model samples treated as
constants (``stop_gradient``): its θ-gradient is the Monte-Carlo estimate of
the negative log-likelihood gradient (Eqs. 13–14). The optional α term (the
energy-magnitude L2 penalty of Du & Mordatch, 2019) is off by default.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

LOSSES = ("cd",)


def cd_loss(energy_pos: jax.Array, energy_neg: jax.Array, l2_energy: float = 0.0) -> jax.Array:
    """Contrastive divergence with the optional energy-magnitude penalty."""
    loss = jnp.mean(energy_pos) - jnp.mean(energy_neg)
    if l2_energy:
        loss = loss + l2_energy * (jnp.mean(energy_pos**2) + jnp.mean(energy_neg**2))
    return loss


def make_loss(name: str, l2_energy: float = 0.0) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``loss(energy_pos, energy_neg) -> scalar`` by name; the error lists the valid names."""
    if name not in LOSSES:
        raise ValueError(f"loss.name={name!r} is not one of {sorted(LOSSES)}")
    return lambda e_pos, e_neg: cd_loss(e_pos, e_neg, l2_energy)
