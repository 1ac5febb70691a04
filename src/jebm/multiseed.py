"""Train several seeds of one config as one vmapped program.

Seeds differ in parameter init, data draws and chain randomness, exactly as
separate runs with ``config.seed = s`` would (each seed's state and batches
are built by the single-run code with that seed); ``jax.vmap`` over the
stacked states turns the seeds' small matrix products into larger ones, which
on a CPU costs far less than running them one after another. Used by the
experiments that report mean ± std over seeds.
"""

from __future__ import annotations

import copy
import time

import jax
import jax.numpy as jnp
import numpy as np

from jebm import evaluation, reporting, train


def _with_seed(config, seed: int):
    c = copy.deepcopy(config)
    with c.unlocked():
        c.seed = seed
    return c


def train_seeds(config, seeds, *, progress: bool = False):
    """Trains ``config`` once per seed in one vmapped loop.

    Returns:
      ``(configs, parts, params_list, info)``: the per-seed configs, the
      shared parts (model, optimizer, noise; data of the first seed), the
      final parameters of each seed, and ``info`` with per-seed final
      metrics, a ``diverged`` flag per seed and the wall time.
    """
    configs = [_with_seed(config, s) for s in seeds]
    parts_list = [train.build_parts(c) for c in configs]
    parts = parts_list[0]
    states = [train.create_train_state(c, parts) for c in configs]
    state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    step_fn = jax.jit(jax.vmap(train.make_train_step(config, parts)), donate_argnums=(0,))
    batches = jax.jit(lambda step: jnp.stack([p.data.batch(step) for p in parts_list]))
    total = parts.total_steps
    t0 = time.time()
    bar = reporting.progress(total, 0, progress)
    diverged = np.zeros(len(seeds), bool)
    metrics = None
    for step in range(total):
        state, metrics = step_fn(state, batches(jnp.asarray(step, jnp.int32)))
        if step % 100 == 99 or step == total - 1:
            loss = np.asarray(metrics["loss"])
            diverged |= ~np.isfinite(loss) | ~np.asarray(metrics["chains_finite"])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    params = [jax.tree_util.tree_map(lambda x, i=i: x[i], state.eval_params) for i in range(len(seeds))]
    final = {k: np.asarray(v).tolist() for k, v in jax.device_get(metrics).items()}
    return configs, parts, params, {"train_time_s": time.time() - t0, "steps": total, "final_metrics": final,
                                    "diverged": diverged.tolist()}


def head_parameters(params_list) -> dict:
    """Final learnable head scalars per seed: ``{"beta": [β per seed]}`` and/or ``"gamma"``; ``{}`` if none."""
    from jebm.energies import heads

    values = [heads.head_values(p) for p in params_list]
    return {name: [v[name] for v in values] for name in ("beta", "gamma") if values and name in values[0]}


def evaluate_seeds(configs, parts, params_list):
    """The fresh-chain toy evaluation of each seed's model (its own eval key)."""
    results = []
    for c, p in zip(configs, params_list):
        summary, arrays = evaluation.evaluate_toy(c, parts, p)
        results.append((summary, arrays))
    return results
