"""Stochastic gradient Hamiltonian Monte Carlo (second-order Langevin), Algorithm 3.

Dynamics: position ``x``, momentum ``r``, mass ``M = m·I``, friction ``C``,
temperature ``T``. The joint stationary density is

.. math::  p(x, r) \\propto \\exp\\big(-(E(x) + r^\\top M^{-1} r / 2) / T\\big),

whose ``x``-marginal is ``exp(-E/T)``. With ``w ~ N(0, I)`` drawn fresh each
step, the two integrators are:

``integrator="explicit_euler"`` — the paper's Algorithm 3, literally (both
updates read the *old* state):

.. math::

    x_l = x_{l-1} + \\eta M^{-1} r_{l-1}

    r_l = r_{l-1} - \\eta \\nabla_x E(x_{l-1}) - \\eta C M^{-1} r_{l-1}
          + \\sqrt{2 \\eta C T}\\, w_l

``integrator="symplectic_euler"`` (default) — momentum first, then the
position moves with the *new* momentum (semi-implicit Euler; this is what the
paper's author's code does):

.. math::

    r_l = r_{l-1} - \\eta \\nabla_x E(x_{l-1}) - \\eta C M^{-1} r_{l-1}
          + \\sqrt{2 \\eta C T}\\, w_l

    x_l = x_{l-1} + \\eta M^{-1} r_l

Stability on a quadratic well ``E = k x²/2`` (a linear map of ``(x, r)``;
conditions from the eigenvalues of its noise-free part, the Jury criterion):

* explicit Euler diverges once ``η k > C`` (the determinant of the update
  matrix is ``1 - ηC/m + η²k/m``, which exceeds 1 exactly then; ``m`` cancels).
  At the paper's ``η = 0.01, C = 1`` that is ``k > 100``; even inside the
  limit it is strongly biased: at the curvature of the paper's toy modes
  (``k = 1/0.15² ≈ 44``) its stationary variance is about 1.8 times the truth,
  i.e. the spread is inflated by about a third.
* symplectic Euler is stable while ``η² k < 4m - 2ηC`` and ``ηC < 2m``
  (determinant ``1 - ηC/m``, trace ``2 - η²k/m - ηC/m``): at
  ``η = 0.01, C = 1, m = 1`` up to ``k ≈ 39,800``, and its variance bias at
  ``k = 44`` is under 1%.

Both limits and both biases are measured by ``tests/test_samplers.py``.

Momentum: ``init`` draws ``r ~ N(0, T·M)`` (the stationary momentum law; for
``T = 1`` this is Algorithm 3's ``N(0, M)``) from the key it is given. Without
a key it starts at ``r = 0``, as the paper's author's MNIST code does. The
momentum is kept in the state across all steps of a run.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jebm.samplers import base

Array = jax.Array

INTEGRATORS = ("explicit_euler", "symplectic_euler")


class State(NamedTuple):
    """SGHMC chains: positions, momenta, and the energy and ``∇ₓE`` at the positions."""

    position: base.PyTree
    momentum: base.PyTree
    energy: Array
    energy_grad: base.PyTree


class Info(NamedTuple):
    """Per-chain diagnostics at the returned state."""

    energy: Array
    grad_norm: Array
    kinetic_energy: Array


def init(position, energy_fn, rng_key=None, mass=1.0, temperature=1.0) -> State:
    """Builds the state; momentum ``~ N(0, T·m·I)`` from ``rng_key``, or zero without one."""
    energy, grad = base.energy_and_grad(energy_fn, position)
    if rng_key is None:
        momentum = jax.tree_util.tree_map(jnp.zeros_like, position)
    else:
        scale = (mass * temperature) ** 0.5
        momentum = jax.tree_util.tree_map(lambda w: scale * w, base.normal_like(rng_key, position))
    return State(position, momentum, energy, grad)


def build_kernel(integrator: str = "symplectic_euler"):
    """Returns ``kernel(rng_key, state, energy_fn, step_size, friction, mass=1.0, temperature=1.0)``.

    Args:
      integrator: ``"symplectic_euler"`` (default, stable) or
        ``"explicit_euler"`` (Algorithm 3 literally); see the module docstring.
    """
    base.check_choice("integrator", integrator, INTEGRATORS)

    def kernel(rng_key, state: State, energy_fn, step_size, friction, mass=1.0, temperature=1.0):
        noise = base.normal_like(rng_key, state.momentum)
        noise_scale = (2.0 * step_size * friction * temperature) ** 0.5
        momentum = jax.tree_util.tree_map(
            lambda r, g, w: r - step_size * g - (step_size * friction / mass) * r + noise_scale * w,
            state.momentum,
            state.energy_grad,
            noise,
        )
        # The only difference between the integrators: which momentum moves x.
        driving = momentum if integrator == "symplectic_euler" else state.momentum
        position = base.tree_axpy(step_size / mass, driving, state.position)
        energy, grad = base.energy_and_grad(energy_fn, position)
        new_state = State(position, momentum, energy, grad)
        kinetic = 0.5 * base.per_chain_sq_norm(momentum) / mass
        return new_state, Info(energy, base.per_chain_norm(grad), kinetic)

    return kernel


def as_top_level_api(
    energy_fn,
    step_size,
    *,
    friction,
    mass=1.0,
    integrator: str = "symplectic_euler",
    temperature=1.0,
) -> base.SamplingAlgorithm:
    """SGHMC bound to an energy: ``jebm.samplers.sghmc``.

    Args:
      energy_fn: ``position -> energies`` of shape ``(n_chains,)``.
      step_size: η > 0.
      friction: C > 0.
      mass: m > 0, with ``M = m·I``.
      integrator: ``"symplectic_euler"`` or ``"explicit_euler"``.
      temperature: T > 0.

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)``
      draws the momentum from the key, or starts it at zero without one.
    """
    base.check_positive("step_size", step_size)
    base.check_positive("friction", friction)
    base.check_positive("mass", mass)
    base.check_positive("temperature", temperature)
    kernel = build_kernel(integrator)

    def init_fn(position, rng_key=None):
        return init(position, energy_fn, rng_key, mass, temperature)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, energy_fn, step_size, friction, mass, temperature)

    return base.SamplingAlgorithm(init_fn, step_fn)
