"""``run_chain``: the one ``lax.scan`` over sampler steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jebm.samplers import base


class ChainSummary(NamedTuple):
    """What ``run_chain(..., trace=False)`` keeps of a run, per chain.

    Attributes:
      mean: the step ``Info`` averaged over all steps (e.g. ``mean.grad_norm``
        is the mean ‖∇ₓE‖; for MALA ``mean.acceptance_rate`` is the mean
        acceptance probability).
      final: the ``Info`` of the last step (``final.energy`` is the final
        energy).
    """

    mean: Any
    final: Any


def run_chain(
    rng_key: jax.Array,
    algorithm: base.SamplingAlgorithm,
    state,
    num_steps: int,
    *,
    trace: bool = False,
    unroll: int = 1,
):
    """Runs ``num_steps`` steps of ``algorithm`` from ``state``.

    The key is split into one fresh key per step. With ``trace=False`` the
    memory used is independent of ``num_steps``: the scan carries only the
    state and a running sum of the step infos.

    Args:
      rng_key: PRNG key for the whole run.
      algorithm: a ``SamplingAlgorithm`` (e.g. ``jebm.samplers.sgld(...)``).
      state: the initial state, from ``algorithm.init``.
      num_steps: number of steps L ≥ 1 (a Python int).
      trace: return the per-step info instead of its summary.
      unroll: ``lax.scan`` unroll factor (a speed knob; results are identical).

    Returns:
      ``(state, info)``: with ``trace=True`` ``info`` is the step ``Info`` with
      a leading axis of length ``num_steps``; otherwise a ``ChainSummary``.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    keys = jax.random.split(rng_key, num_steps)

    if trace:
        return jax.lax.scan(lambda s, k: algorithm.step(k, s), state, keys, unroll=unroll)

    def as_float(info):
        return jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), info)

    # The first step seeds the running sum, so the carry's structure is the Info's.
    state, first = algorithm.step(keys[0], state)
    first = as_float(first)

    def body(carry, key):
        s, total, _ = carry
        s, info = algorithm.step(key, s)
        info = as_float(info)
        return (s, jax.tree_util.tree_map(jnp.add, total, info), info), None

    (state, total, last), _ = jax.lax.scan(body, (state, first, first), keys[1:], unroll=unroll)
    mean = jax.tree_util.tree_map(lambda t: t / num_steps, total)
    return state, ChainSummary(mean=mean, final=last)
