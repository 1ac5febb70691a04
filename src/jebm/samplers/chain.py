"""``run_chain``: the one ``lax.scan`` over sampler steps."""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

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
    schedule: Mapping[str, Any] | None = None,
):
    """Runs ``num_steps`` steps of ``algorithm`` from ``state``.

    The key is split into one fresh key per step. With ``trace=False`` the
    memory used is independent of ``num_steps`` (up to the schedules' own
    values): the scan carries only the state and a running sum of the step
    infos.

    A ``schedule`` gives parameters a value per step, e.g. an annealed step
    size ``{"step_size": η₀ · 0.99 ** jnp.arange(L)}``: step ``l`` (counted
    from 0) runs ``algorithm.step(key_l, state, step_size=η_l)``, which for
    jebm's constructors is exactly the kernel called with ``η_l`` (see
    :func:`jebm.samplers.schedulable`). The values are scanned over as
    arrays, so under ``jit`` new values of the same shape reuse the compiled
    program. A schedule of ``L`` copies of a value reproduces, bit for bit,
    the run without a schedule whose constructor got that value as an array
    (e.g. a ``jit`` argument); against a Python-float constructor argument,
    which XLA folds as a constant, results agree to float rounding only.

    Args:
      rng_key: PRNG key for the whole run.
      algorithm: a ``SamplingAlgorithm`` (e.g. ``jebm.samplers.sgld(...)``).
      state: the initial state, from ``algorithm.init``.
      num_steps: number of steps L ≥ 1 (a Python int).
      trace: return the per-step info instead of its summary.
      unroll: ``lax.scan`` unroll factor (a speed knob; results are identical).
      schedule: ``None``, or a mapping from the parameters the algorithm's
        step takes (``algorithm.step.parameters``; for jebm's constructors
        ``"step_size"``, ``"temperature"``, SGHMC's ``"friction"``,
        ``"mass"``) to their per-step values: an array with a
        leading axis of length ``num_steps`` (step ``l`` uses ``values[l]``),
        or a function of the step index, evaluated for all steps at once as
        ``jax.vmap(fn)(jnp.arange(num_steps))`` (e.g. an optax schedule).

    Returns:
      ``(state, info)``: with ``trace=True`` ``info`` is the step ``Info`` with
      a leading axis of length ``num_steps``; otherwise a ``ChainSummary``.

    Raises:
      ValueError: for a bad ``num_steps``, a schedule whose length is not
        ``num_steps``, or a schedule for an algorithm whose step takes no
        parameters.
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    keys = jax.random.split(rng_key, num_steps)
    params = _schedule_values(schedule, num_steps, algorithm)

    def step(s, key, p):
        return algorithm.step(key, s, **p)

    if trace:
        return jax.lax.scan(lambda s, xs: step(s, *xs), state, (keys, params), unroll=unroll)

    def as_float(info):
        return jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), info)

    def at(tree, index):
        return jax.tree_util.tree_map(lambda v: v[index], tree)

    # The first step seeds the running sum, so the carry's structure is the Info's.
    state, first = step(state, keys[0], at(params, 0))
    first = as_float(first)

    def body(carry, xs):
        s, total, _ = carry
        s, info = step(s, *xs)
        info = as_float(info)
        return (s, jax.tree_util.tree_map(jnp.add, total, info), info), None

    rest = (keys[1:], at(params, slice(1, None)))
    (state, total, last), _ = jax.lax.scan(body, (state, first, first), rest, unroll=unroll)
    mean = jax.tree_util.tree_map(lambda t: t / num_steps, total)
    return state, ChainSummary(mean=mean, final=last)


def _schedule_values(schedule, num_steps: int, algorithm) -> dict[str, jax.Array]:
    """Each scheduled parameter's values as an array with a leading axis of ``num_steps``."""
    if not schedule:
        return {}
    if not base.step_parameters(algorithm.step):
        raise ValueError(
            f"schedule={sorted(schedule)} needs an algorithm whose step takes parameters, "
            "step(rng_key, state, **params): one from jebm.samplers' constructors or jebm.samplers.schedulable"
        )
    values = {}
    for name, value in schedule.items():
        if callable(value):
            value = jax.vmap(value)(jnp.arange(num_steps))
        value = jnp.asarray(value)
        if value.ndim == 0 or value.shape[0] != num_steps:
            raise ValueError(
                f"schedule[{name!r}] must have num_steps={num_steps} values (leading axis), got shape {value.shape}"
            )
        values[name] = value
    return values
