"""Metropolis-adjusted Langevin algorithm: the SGLD proposal, made exact.

Proposal (one SGLD step, temperature ``T``; :mod:`jebm.samplers.proposal`):

.. math::

    x^* = x - \\eta \\nabla_x E(x) + \\sqrt{2 \\eta T}\\, w, \\qquad w \\sim \\mathcal{N}(0, I),

so ``q(x^* | x) = N(x^*; x - η∇E(x), 2ηT·I)``. It is accepted with probability

.. math::

    \\alpha = \\min\\Big(1, \\exp\\big(-(E(x^*) - E(x))/T\\big)
              \\frac{q(x | x^*)}{q(x^* | x)}\\Big),
    \\qquad \\log q(a | b) = -\\frac{\\lVert a - b + \\eta \\nabla E(b) \\rVert^2}{4 \\eta T} + c,

per chain; otherwise the chain stays where it is. The Metropolis–Hastings
correction makes ``exp(-E/T)`` exactly stationary for every η (only mixing
speed depends on η), unlike SGLD whose discretisation bias grows with η.

``bounds=(low, high)`` restricts the target to the box: a proposal with any
coordinate outside it is rejected (α = 0). That is still an exact
Metropolis–Hastings kernel, for ``exp(-E/T)·1[x ∈ box]`` (the proposal density
is unchanged, the target is zero outside), so MALA with bounds samples the
box-restricted model exactly, where SGLD's projection does not.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from jebm.samplers import base
from jebm.samplers.proposal import langevin_log_density, langevin_proposal, mh_accept
# The chains carry what SGLD's do (position, energy, ∇ₓE at the position): one definition serves both.
from jebm.samplers.sgld import State, init, langevin_algorithm  # noqa: F401  (re-exported: mala.State, mala.init)

Array = jax.Array


class Info(NamedTuple):
    """Per-chain diagnostics of one step.

    Attributes:
      energy: energy at the returned position.
      grad_norm: ``‖∇ₓE‖`` at the returned position.
      acceptance_rate: the Metropolis–Hastings acceptance probability α.
      is_accepted: 1.0 where the proposal was accepted, else 0.0.
    """

    energy: Array
    grad_norm: Array
    acceptance_rate: Array
    is_accepted: Array


def build_kernel(bounds=None):
    """Returns ``kernel(rng_key, state, energy_fn, step_size, temperature=1.0)``.

    Args:
      bounds: ``None`` or ``(low, high)``: reject proposals that leave the box
        (exact for the box-restricted target; see the module docstring).
    """
    bounds = base.check_bounds(bounds)

    def kernel(rng_key, state: State, energy_fn, step_size, temperature=1.0):
        key_proposal, key_accept = jax.random.split(rng_key)
        noise = base.normal_like(key_proposal, state.position)
        proposal = langevin_proposal(state.position, state.energy_grad, noise, step_size, temperature)
        energy_p, grad_p = base.energy_and_grad(energy_fn, proposal)
        log_ratio = (
            -(energy_p - state.energy) / temperature
            + langevin_log_density(state.position, proposal, grad_p, step_size, temperature)
            - langevin_log_density(proposal, state.position, state.energy_grad, step_size, temperature)
        )
        # A proposal outside the box is rejected: the target is zero there.
        new_state, acceptance, accept = mh_accept(
            key_accept, log_ratio, State(proposal, energy_p, grad_p), state, base.in_bounds(proposal, bounds)
        )
        info = Info(
            new_state.energy,
            base.per_chain_norm(new_state.energy_grad),
            acceptance,
            accept.astype(acceptance.dtype),
        )
        return new_state, info

    return kernel


def as_top_level_api(energy_fn, step_size, *, temperature=1.0, bounds=None) -> base.SamplingAlgorithm:
    """MALA bound to an energy: ``jebm.samplers.mala``.

    Args:
      energy_fn: ``position -> energies`` of shape ``(n_chains,)``.
      step_size: η > 0.
      temperature: T > 0.
      bounds: ``None`` or ``(low, high)``: the target restricted to that box
        (exact; initial positions are clipped into it).

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)``
      ignores the key; ``step(rng_key, state, **params)`` takes per-step
      ``step_size`` and ``temperature``.
    """
    return langevin_algorithm(lambda: build_kernel(bounds), energy_fn, step_size, temperature, bounds, "mala")
