"""The parts jebm's Langevin kernels share: the Langevin proposal, its density, and the Metropolis–Hastings step.

SGLD (:mod:`jebm.samplers.sgld`) takes the proposal as its step, MALA
(:mod:`jebm.samplers.mala`) accepts or rejects it, and AIS's transitions
(:func:`jebm.evaluation.likelihood.ais`) use both on the annealed densities.

Langevin proposal, energy ``E``, temperature ``T``, step size ``η``:

.. math::

    x^* = x - \\eta \\nabla_x E(x) + \\sqrt{2 \\eta T}\\, w, \\qquad w \\sim \\mathcal{N}(0, I),

so ``q(x^* | x) = N(x^*; x - η∇E(x), 2ηT·I)`` and

.. math::  \\log q(a | b) = -\\frac{\\lVert a - b + \\eta \\nabla E(b) \\rVert^2}{4 \\eta T} + c.

At the point it drew, ``a = x^*``, the residual is ``√(2ηT)·w``, so
``log q(x^* | x) = -½‖w‖² + c`` (:func:`noise_log_density`, with the same ``c``).

Metropolis–Hastings: a proposal with log acceptance ratio ``log r`` is accepted
with probability ``α = min(1, r)``, by ``log u < log r`` with
``u ~ U(0, 1)`` per chain; a NaN ratio (an overflowing proposal) and a proposal
outside the target's support are rejected (``log r = -∞``).

The functions are pure and draw no randomness but ``mh_accept``'s one uniform
per chain: each kernel draws its own noise ``w`` with its own key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jebm.samplers import base

Array = jax.Array


def langevin_proposal(position: base.PyTree, energy_grad: base.PyTree, noise: base.PyTree, step_size, temperature):
    """``x − η∇E(x) + √(2ηT)·w`` leaf by leaf.

    Args:
      position: ``x``, a pytree with a leading chain axis.
      energy_grad: ``∇ₓE(x)``, shaped like ``position``.
      noise: ``w ~ N(0, I)``, shaped like ``position``.
      step_size: η.
      temperature: T.
    """
    noise_scale = (2.0 * step_size * temperature) ** 0.5
    return jax.tree_util.tree_map(
        lambda x, g, w: x - step_size * g + noise_scale * w, position, energy_grad, noise
    )


def langevin_log_density(to: base.PyTree, frm: base.PyTree, grad_frm: base.PyTree, step_size, temperature) -> Array:
    """``log q(to | frm)`` of the Langevin proposal, up to its constant, per chain.

    ``grad_frm`` is ``∇ₓE`` at ``frm``.
    """
    residual = jax.tree_util.tree_map(lambda a, b, g: a - b + step_size * g, to, frm, grad_frm)
    return -base.per_chain_sq_norm(residual) / (4.0 * step_size * temperature)


def noise_log_density(noise: base.PyTree) -> Array:
    """``-½‖w‖²`` per chain: ``log q(x* | x)`` (same constant) of the proposal ``x*`` that ``w`` drew."""
    return -0.5 * base.per_chain_sq_norm(noise)


def mh_accept(rng_key: Array, log_ratio: Array, proposed, current, valid: Array | None = None):
    """One Metropolis–Hastings decision per chain.

    Args:
      rng_key: key for the ``u ~ U(0, 1)`` draws.
      log_ratio: ``(n_chains,)`` log acceptance ratios.
      proposed: pytree of the proposed chains (every leaf with a leading chain axis).
      current: the current chains, the same pytree.
      valid: ``None``, or ``(n_chains,)`` booleans: False rejects the chain's
        proposal (it lies outside the target's support).

    Returns:
      ``(chosen, acceptance, accepted)``: per chain ``proposed`` where accepted,
      else ``current``; the acceptance probability ``α``; and the boolean decision.
    """
    rejected = jnp.isnan(log_ratio) if valid is None else jnp.isnan(log_ratio) | ~valid
    log_ratio = jnp.where(rejected, -jnp.inf, log_ratio)
    acceptance = jnp.exp(jnp.minimum(log_ratio, 0.0))
    accepted = jnp.log(jax.random.uniform(rng_key, log_ratio.shape, log_ratio.dtype)) < log_ratio
    return base.tree_where(accepted, proposed, current), acceptance, accepted
