"""Stochastic gradient Langevin dynamics (first-order Langevin), Algorithm 2.

Update (the paper's Algorithm 2, with temperature ``T``; ``T = 1`` is the
paper's):

.. math::

    x_{l} = x_{l-1} - \\eta \\nabla_x E(x_{l-1}) + \\sqrt{2 \\eta T}\\, w_l,
    \\qquad w_l \\sim \\mathcal{N}(0, I).

This is the Euler–Maruyama discretisation of the Langevin diffusion whose
stationary density is ``exp(-E/T)``. The discretisation has no Metropolis
correction, so its stationary law is biased at finite η: on a quadratic
energy with curvature λ the stationary variance is ``T / (λ (1 - ηλ/2))``
instead of ``T / λ``, and the chain diverges for ``ηλ ≥ 2``. Use
:mod:`jebm.samplers.mala` where exactness matters.

``bounds=(low, high)`` projects every new position into the box,
``x_l = clip(x_{l-1} - η∇E + √(2ηT) w, low, high)``, before its energy is
evaluated (IGEBM clips its image samples to the data range the same way). The
projection keeps samples in the data's range but changes the stationary law:
mass that would leave the box collects on its faces instead of following
``exp(-E/T)`` restricted to the box (MALA's rejection of such moves is exact).

``grad_clip=c`` caps each chain's drift gradient at norm ``c``,
``x_l = x_{l-1} - η g̃ + √(2ηT) w`` with ``g̃ = ∇E · min(1, c/‖∇E‖)`` (IGEBM's
``proj_norm``; :func:`jebm.samplers.base.clip_grad_norm`). It keeps steps
bounded on steep energies but breaks the sampler's exactness wherever the cap
binds: the chain then follows a different drift from ``-∇E``, and its stationary
law is no longer ``exp(-E/T)`` even as η → 0. ``Info.grad_norm`` reports the
unclipped ``‖∇E‖``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from jebm.samplers import base
from jebm.samplers.proposal import langevin_proposal

Array = jax.Array


class State(NamedTuple):
    """Langevin chains (SGLD and MALA): positions with their energies and ``∇ₓE`` there."""

    position: base.PyTree
    energy: Array
    energy_grad: base.PyTree


class Info(NamedTuple):
    """Per-chain diagnostics at the returned position."""

    energy: Array
    grad_norm: Array


def init(position: base.PyTree, energy_fn: base.EnergyFn) -> State:
    """Builds the state at ``position`` (one energy-and-gradient evaluation)."""
    energy, grad = base.energy_and_grad(energy_fn, position)
    return State(position, energy, grad)


def build_kernel(bounds=None, grad_clip=None):
    """Returns the SGLD kernel ``kernel(rng_key, state, energy_fn, step_size, temperature=1.0)``.

    Args:
      bounds: ``None`` or ``(low, high)``: project each new position into the box
        (see the module docstring; not exact).
      grad_clip: ``None`` or ``c > 0``: cap each chain's drift gradient at norm
        ``c`` (see the module docstring; not exact where it binds).
    """
    bounds = base.check_bounds(bounds)
    grad_clip = base.check_grad_clip(grad_clip)

    def kernel(rng_key, state: State, energy_fn: base.EnergyFn, step_size, temperature=1.0):
        noise = base.normal_like(rng_key, state.position)
        drift_grad = base.clip_grad_norm(state.energy_grad, grad_clip)
        position = langevin_proposal(state.position, drift_grad, noise, step_size, temperature)
        new_state = init(base.clip_to_bounds(position, bounds), energy_fn)
        return new_state, Info(new_state.energy, base.per_chain_norm(new_state.energy_grad))

    return kernel


def as_top_level_api(
    energy_fn: base.EnergyFn, step_size, *, temperature=1.0, bounds=None, grad_clip=None
) -> base.SamplingAlgorithm:
    """SGLD bound to an energy: ``jebm.samplers.sgld``.

    Args:
      energy_fn: ``position -> energies`` of shape ``(n_chains,)``.
      step_size: η > 0.
      temperature: T > 0; the target is ``exp(-E/T)``.
      bounds: ``None`` or ``(low, high)``: keep the chains in that box by
        projection (not exact; see the module docstring).
      grad_clip: ``None`` or ``c > 0``: cap each chain's drift gradient at
        norm ``c`` (not exact where it binds; see the module docstring).

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)``
      ignores the key (SGLD has no auxiliary variables);
      ``step(rng_key, state, **params)`` takes per-step ``step_size`` and
      ``temperature``.
    """
    return langevin_algorithm(lambda: build_kernel(bounds, grad_clip), energy_fn, step_size, temperature, bounds, "sgld")


def langevin_algorithm(make_kernel, energy_fn, step_size, temperature, bounds, name: str) -> base.SamplingAlgorithm:
    """The kernel ``make_kernel()`` (SGLD's or MALA's) bound to ``energy_fn``, η and T.

    ``init`` clips the starting positions into ``bounds`` and ignores its key;
    ``step`` is :func:`jebm.samplers.base.kernel_step` over ``step_size`` and ``temperature``.
    """
    base.check_positive("step_size", step_size)
    base.check_positive("temperature", temperature)
    kernel = make_kernel()
    bounds = base.check_bounds(bounds)

    def init_fn(position, rng_key=None):
        del rng_key
        return init(base.clip_to_bounds(position, bounds), energy_fn)

    step_fn = base.kernel_step(kernel, energy_fn, f"jebm.samplers.{name}", step_size=step_size, temperature=temperature)
    return base.SamplingAlgorithm(init_fn, step_fn)
