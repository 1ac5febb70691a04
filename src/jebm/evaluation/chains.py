"""Fresh chains for evaluation: the samples every score is computed on.

Model samples for evaluation always come from *fresh* noise-initialised
chains, never from the persistent bank: persistent chains can match the data
while the energy they were trained against does not define that
distribution. :func:`fresh_samples` draws them (one compiled program per
sampler settings, size and length); :func:`long_chains` runs one set of chains
to several lengths and records their energies, which :func:`chain_diagnostics`
turns into ESS, R̂ and the drift/noise ratio. Every evaluation draws its keys
from :func:`eval_key`.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from jebm.evaluation import diagnostics
from jebm.samplers import factory as sampler_factory
from jebm.samplers.chain import run_chain


def eval_key(config) -> jax.Array:
    """The key every evaluation of a run draws from: ``fold_in(PRNGKey(config.seed), 0xE7A1)``."""
    return jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)


def eval_sampler_steps(config) -> int:
    """The fresh chains' length in evaluation: ``eval.sampler_steps``, or L when it is None."""
    return config.eval.sampler_steps or config.sampler.num_steps


def fresh_samples(config, parts, params, rng_key, num_samples: int, num_steps: int, *,
                  progress: bool = False) -> np.ndarray:
    """``num_samples`` model samples from fresh noise chains after ``num_steps`` steps.

    ``progress=True`` reports the chains' progress as training does (a bar on a
    terminal, else a log line every ``training.progress_every_s`` seconds): the
    chains run a segment of steps at a time (``SEGMENTS`` segments), each step
    with the key ``run_chain`` would give it, so the samples are the same bit
    for bit as without progress.
    """
    sampler_json = config.sampler.to_json()
    if not progress:
        sample = _sampler_program(parts, sampler_json, num_samples, num_steps)
        return np.asarray(sample(params, rng_key))
    from jebm import reporting  # training's progress report

    start, advance = _segmented_sampler_programs(parts, sampler_json, num_samples, num_steps)
    # At most SEGMENTS segments after the first step; each a whole number of sampler.unroll steps, so that
    # the scan's unrolled groups of steps are those of the one run_chain (XLA simplifies across a group).
    unroll = config.sampler.unroll
    length = unroll * -(-max(num_steps - 1, 1) // (SEGMENTS * unroll))
    bar = reporting.progress(num_steps, 0, True, config.training.get("progress_every_s", 30.0), desc="sample")
    try:
        state, keys = jax.block_until_ready(start(params, rng_key))
        bar.update(1)
        for first in range(1, num_steps, length):
            state = jax.block_until_ready(advance(params, state, keys[first:first + length]))
            bar.update(min(length, num_steps - first))
    finally:
        bar.close()
    return np.asarray(state.position)


# fresh_samples(..., progress=True): the number of segments a draw is run in (one progress update each).
SEGMENTS = 100


@functools.lru_cache(maxsize=16)
def _sampler_program(parts, sampler_json: str, n: int, num_steps: int):
    """One compiled sampling program per (parts, sampler settings, n, L): the key is an argument,
    so the sample grids written during training do not recompile."""
    scfg = config_dict.ConfigDict(json.loads(sampler_json))

    @jax.jit
    def sample(params, rng_key):
        keys = sampler_factory.chain_keys(rng_key)
        state, _ = sampler_factory.fresh_chains(
            scfg, lambda x: parts.model.apply(params, x), parts.noise_fn(keys.start, n), keys, num_steps)
        return state.position

    return sample


@functools.lru_cache(maxsize=4)
def _segmented_sampler_programs(parts, sampler_json: str, n: int, num_steps: int):
    """``_sampler_program`` in pieces: ``start`` draws the chains and the per-step keys exactly as it
    does (``run_chain`` splits its key into one key per step) and runs the first step; ``advance`` runs
    the chains over a slice of the other keys. One call of ``advance`` per segment lets the host report
    progress between segments.

    The first step stays in the program that draws the chains, as in ``run_chain``: XLA simplifies the
    initial momentum's arithmetic together with it (SGHMC), and a program boundary between them changes
    the last bit of the samples (``tests/test_api.py`` holds the two paths equal).
    """
    scfg = config_dict.ConfigDict(json.loads(sampler_json))

    def algorithm_for(params):
        return sampler_factory.make_sampler(scfg, lambda x: parts.model.apply(params, x))

    @jax.jit
    def start(params, rng_key):
        k_init, k_mom, k_run = jax.random.split(rng_key, 3)
        algorithm = algorithm_for(params)
        state = algorithm.init(parts.noise_fn(k_init, n), k_mom if scfg.momentum_init == "random" else None)
        keys = jax.random.split(k_run, num_steps)
        state, _ = algorithm.step(keys[0], state)
        return state, keys

    @jax.jit
    def advance(params, state, keys):
        algorithm = algorithm_for(params)
        state, _ = jax.lax.scan(lambda s, key: (algorithm.step(key, s)[0], None), state, keys, unroll=scfg.unroll)
        return state

    return start, advance


def long_run_lengths(config) -> list[int]:
    """The chain lengths the long run is scored at: ``eval.long_run_curve`` up to ``long_run_steps``."""
    ec = config.eval
    return sorted({n for n in ec.long_run_curve if n < ec.long_run_steps} | {ec.long_run_steps})


def long_chains(config, parts, params, lengths, num_samples: int, rng_key, *, energy_every: int = 0, start=None):
    """One set of fresh chains run to ``max(lengths)``, snapshotted after each length.

    The same chains age from one length to the next (the paper's Figure 5), so the
    whole curve costs its longest length. The sampler program is one compiled
    segment of ``gcd`` steps, reused throughout.

    Args:
      config: the run's config (its ``sampler`` and ``chain_init`` blocks are used).
      parts: ``train.build_parts(config)``.
      params: the energy's parameters.
      lengths: increasing step counts.
      num_samples: number of chains.
      rng_key: the chains' randomness.
      energy_every: > 0 also records every chain's energy each ``energy_every``
        steps (a multiple of the segment length is used), for ESS and R̂.
      start: ``None`` starts the chains from the chain initialiser's noise; an
        array ``(num_samples, *example_shape)`` starts them there.

    Returns:
      ``(snapshots, seconds, trace)``: ``{length: positions}``, ``{length:
      seconds to reach it}``, and ``trace`` with ``energy`` ``(num_samples,
      num_records)``, ``steps`` and the run-mean ``grad_norm`` per record.
    """
    scfg = config.sampler
    chunk = functools.reduce(math.gcd, [lengths[0]] + [b - a for a, b in itertools.pairwise(lengths)])
    if energy_every:
        chunk = math.gcd(chunk, energy_every)
    keys = sampler_factory.chain_keys(rng_key)

    def energy(p):
        return lambda x: parts.model.apply(p, x)

    @jax.jit
    def init(p, x0):
        x0 = parts.noise_fn(keys.start, num_samples) if x0 is None else x0
        return sampler_factory.fresh_chains(scfg, energy(p), x0, keys, 0)[0]

    @jax.jit
    def segment(p, state, index):
        algorithm = sampler_factory.make_sampler(scfg, energy(p))
        state, summary = run_chain(jax.random.fold_in(keys.run, index), algorithm, state, chunk, unroll=scfg.unroll)
        return state, summary.final.energy, summary.mean.grad_norm

    state = init(params, None if start is None else jnp.asarray(start, jnp.float32))
    done, index, t0 = 0, 0, time.time()
    snapshots, seconds = {}, {}
    energies, record_steps, grad_norms = [], [], []
    for length in lengths:
        while done < length:
            state, energy, grad_norm = segment(params, state, index)
            done += chunk
            index += 1
            if energy_every and done % energy_every == 0:
                energies.append(np.asarray(energy))
                record_steps.append(done)
                grad_norms.append(float(np.mean(grad_norm)))
        snapshots[length], seconds[length] = np.asarray(state.position), time.time() - t0
        logging.info("long run: %d steps after %.0f s", length, seconds[length])
    trace = {"energy": np.stack(energies, axis=1) if energies else np.zeros((num_samples, 0)),
             "steps": record_steps, "grad_norm": grad_norms}
    return snapshots, seconds, trace


def chain_diagnostics(config, trace: dict, dim: int) -> dict:
    """ESS and R̂ of the chains' energies over the second half of a long run, and the drift/noise ratio."""
    energy = trace["energy"]
    out = {}
    half = energy[:, energy.shape[1] // 2:]
    if half.shape[1] >= 4 and np.all(np.isfinite(half)):
        out["energy_diagnostics"] = diagnostics.summarize(half)
        out["energy_diagnostics"]["draws_per_chain"] = int(half.shape[1])
        out["energy_diagnostics"]["record_every"] = int(trace["steps"][0]) if trace["steps"] else None
    s = config.sampler
    if trace["grad_norm"]:
        out["drift_noise_ratio"] = float(diagnostics.drift_noise_ratio(
            float(np.mean(trace["grad_norm"])), step_size=s.step_size, temperature=s.temperature, dim=dim,
            friction=s.friction if s.name == "sghmc" else None))
    return out
