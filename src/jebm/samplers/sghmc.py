"""Stochastic gradient Hamiltonian Monte Carlo (second-order Langevin), Algorithm 3.

Dynamics: position ``x``, momentum ``r``, mass ``M = m·I``, friction ``C``,
temperature ``T``. The joint stationary density is

.. math::  p(x, r) \\propto \\exp\\big(-(E(x) + r^\\top M^{-1} r / 2) / T\\big),

whose ``x``-marginal is ``exp(-E/T)``. All three integrators discretise the
same SDE,

.. math::

    dx = M^{-1} r\\, dt, \\qquad
    dr = -\\nabla_x E(x)\\, dt - C M^{-1} r\\, dt + \\sqrt{2 C T}\\, dW,

each with one evaluation of ``E`` and ``∇ₓE`` per step (the gradient at the new
position is kept in the state). With ``w ~ N(0, I)`` drawn fresh each step:

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

``integrator="baoab"`` — the B-A-O-A-B splitting of B. Leimkuhler & C. Matthews,
"Rational construction of stochastic numerical methods for molecular
sampling" (2013). With ``a = exp(-ηC/m)``:

.. math::

    r' = r_{l-1} - \\tfrac{\\eta}{2} \\nabla_x E(x_{l-1})            \\quad (B)

    x' = x_{l-1} + \\tfrac{\\eta}{2} M^{-1} r'                        \\quad (A)

    r'' = a\\, r' + \\sqrt{T m (1 - a^2)}\\, w_l                        \\quad (O)

    x_l = x' + \\tfrac{\\eta}{2} M^{-1} r''                           \\quad (A)

    r_l = r'' - \\tfrac{\\eta}{2} \\nabla_x E(x_l)                    \\quad (B)

The final B's gradient ``∇ₓE(x_l)`` is the state's ``energy_grad``, which the
next step's first B reuses; the O step solves the momentum's
Ornstein–Uhlenbeck part exactly, so it is stable for any friction.

On a quadratic well ``E = k x²/2``: explicit Euler diverges once ``ηk > C``;
symplectic Euler is stable while ``η²k < 4m − 2ηC`` and ``ηC < 2m``; BAOAB is
stable while ``η²k < 4m`` and its ``x``-marginal is then exact. The
derivations, the map to Leimkuhler & Matthews' notation, and the measured
limits and variance biases (``tests/test_samplers.py``, ``tests/test_baoab.py``)
are in ``docs/samplers.md``.

``bounds=(low, high)`` (any integrator) clips every new position into the box
with :func:`jebm.samplers.base.clip_to_bounds` before its energy and gradient
are evaluated (for BAOAB: after the second A step), and in every coordinate
that was clipped the returned momentum is set to zero (for BAOAB after the
final B). This is a projection, not a reflection or a rejection: it breaks the
exactness above (mass that would leave the box piles up on its faces).
Initial positions are not clipped; ``bounds=None`` runs exactly the unbounded
code.

``grad_clip=c`` replaces ``∇E`` by ``∇E · min(1, c/‖∇E‖)`` (per chain) in every
momentum kick (:func:`jebm.samplers.base.clip_grad_norm`, IGEBM's
``proj_norm``). Where the cap binds the dynamics follow a different force from
``-∇E``, so the exactness above is lost there; ``Info.grad_norm`` reports the
unclipped norm.

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

INTEGRATORS = ("baoab", "explicit_euler", "symplectic_euler")


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


def _zero_where_clipped(momentum, position, clipped):
    """``momentum`` with every coordinate set to 0 where ``clipped`` differs from ``position``."""
    return jax.tree_util.tree_map(
        lambda r, x, xc: jnp.where(xc == x, r, jnp.zeros_like(r)), momentum, position, clipped
    )


def _baoab_kernel(bounds, grad_clip=None):
    def kernel(rng_key, state: State, energy_fn, step_size, friction, mass=1.0, temperature=1.0):
        noise = base.normal_like(rng_key, state.momentum)
        half = 0.5 * step_size
        decay = jnp.exp(-step_size * friction / mass)
        ou_scale = jnp.sqrt(-temperature * mass * jnp.expm1(-2.0 * step_size * friction / mass))

        def kick(momentum, grad):
            grad = base.clip_grad_norm(grad, grad_clip)
            return jax.tree_util.tree_map(lambda r, g: r - half * g, momentum, grad)

        momentum = kick(state.momentum, state.energy_grad)  # B
        position = base.tree_axpy(half / mass, momentum, state.position)  # A
        momentum = jax.tree_util.tree_map(lambda r, w: decay * r + ou_scale * w, momentum, noise)  # O
        position = base.tree_axpy(half / mass, momentum, position)  # A
        clipped = base.clip_to_bounds(position, bounds)  # the box, if any
        energy, grad = base.energy_and_grad(energy_fn, clipped)
        momentum = kick(momentum, grad)  # B
        if bounds is not None:
            momentum = _zero_where_clipped(momentum, position, clipped)
        new_state = State(clipped, momentum, energy, grad)
        kinetic = 0.5 * base.per_chain_sq_norm(momentum) / mass
        return new_state, Info(energy, base.per_chain_norm(grad), kinetic)

    return kernel


def build_kernel(integrator: str = "symplectic_euler", bounds=None, grad_clip=None):
    """Returns ``kernel(rng_key, state, energy_fn, step_size, friction, mass=1.0, temperature=1.0)``.

    Args:
      integrator: ``"symplectic_euler"`` (default, stable), ``"explicit_euler"``
        (Algorithm 3 literally) or ``"baoab"`` (Leimkuhler–Matthews splitting,
        exact configurational law on quadratics); see the module docstring.
      bounds: ``None`` or ``(low, high)``: clip each new position into the box
        and zero the momentum where it was clipped (a projection, not exact;
        see the module docstring).
      grad_clip: ``None`` or ``c > 0``: cap each chain's gradient at norm ``c``
        in the momentum kicks (not exact where it binds).
    """
    base.check_choice("integrator", integrator, INTEGRATORS)
    bounds = base.check_bounds(bounds)
    grad_clip = base.check_grad_clip(grad_clip)
    if integrator == "baoab":
        return _baoab_kernel(bounds, grad_clip)

    def kernel(rng_key, state: State, energy_fn, step_size, friction, mass=1.0, temperature=1.0):
        noise = base.normal_like(rng_key, state.momentum)
        noise_scale = (2.0 * step_size * friction * temperature) ** 0.5
        momentum = jax.tree_util.tree_map(
            lambda r, g, w: r - step_size * g - (step_size * friction / mass) * r + noise_scale * w,
            state.momentum,
            base.clip_grad_norm(state.energy_grad, grad_clip),
            noise,
        )
        # The only difference between the integrators: which momentum moves x.
        driving = momentum if integrator == "symplectic_euler" else state.momentum
        position = base.tree_axpy(step_size / mass, driving, state.position)
        if bounds is not None:
            clipped = base.clip_to_bounds(position, bounds)
            position, momentum = clipped, _zero_where_clipped(momentum, position, clipped)
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
    bounds=None,
    grad_clip=None,
) -> base.SamplingAlgorithm:
    """SGHMC bound to an energy: ``jebm.samplers.sghmc``.

    Args:
      energy_fn: ``position -> energies`` of shape ``(n_chains,)``.
      step_size: η > 0.
      friction: C > 0.
      mass: m > 0, with ``M = m·I``.
      integrator: ``"symplectic_euler"``, ``"explicit_euler"`` or ``"baoab"``.
      temperature: T > 0.
      bounds: ``None`` or ``(low, high)``: keep the chains in that box by
        projection, zeroing the momentum where a coordinate is clipped (not
        exact; see the module docstring).
      grad_clip: ``None`` or ``c > 0``: cap each chain's gradient at norm ``c``
        in the momentum kicks (not exact where it binds).

    Returns:
      ``SamplingAlgorithm(init, step)``; ``init(position, rng_key=None)``
      draws the momentum from the key, or starts it at zero without one;
      ``step(rng_key, state, **params)`` takes per-step ``step_size``,
      ``friction``, ``mass`` and ``temperature``.
    """
    base.check_positive("step_size", step_size)
    base.check_positive("friction", friction)
    base.check_positive("mass", mass)
    base.check_positive("temperature", temperature)
    kernel = build_kernel(integrator, bounds, grad_clip)

    def init_fn(position, rng_key=None):
        return init(position, energy_fn, rng_key, mass, temperature)

    step_fn = base.kernel_step(
        kernel, energy_fn, "jebm.samplers.sghmc",
        step_size=step_size, friction=friction, mass=mass, temperature=temperature,
    )
    return base.SamplingAlgorithm(init_fn, step_fn)
