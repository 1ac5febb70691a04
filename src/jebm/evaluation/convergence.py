"""The convergence watch: is the model becoming a density, or only a short-run sampler?

Nijkamp, Hill, Han, Zhu & Wu, *On the Anatomy of MCMC-Based Maximum Likelihood
Learning of Energy-Based Models* (AAAI 2020), tell the two apart by long chains: a
model whose density is right keeps long-run samples realistic, from noise and from
data alike, while a short-run sampler's long chains drift away from the images
(oversaturate, or collapse onto one class). This module runs that check.

``chain_curve`` runs ``n`` chains of the training sampler for ``max(lengths)`` steps
from a start (``"noise"``: the chain initialiser's noise; ``"data"``: held-out
images with the training data's noise, ``dataset.noise_std``) and scores them at
every length: FID and class entropy (jebm's classifier, :mod:`jebm.evaluation.quality`),
the class histogram, the mean energy in nats ``E/T``, its drift from the start
``mean(E(x_l) − E(x_0))/T``, and how far the chains moved, the root-mean-square
pixel distance ``sqrt(mean((x_l − x_0)²))``.

Whether the chains still move, or have come to rest, is read from two more distances
at each length: ``moved``, the RMS pixel change since the previous length
``sqrt(mean((x_l − x_l')²))`` (``l'`` the previous length, or the start), and
``between_chains``, the RMS distance between different chains at the same length
``sqrt(mean((x_l[i] − x_l[i+1 mod n])²))``. Their ratio ``decorrelation`` is 0 for
chains that stand still and 1 for chains whose states at ``l'`` and ``l`` are as far
apart as two independent draws of the same distribution (for a stationary chain
``E|x_l − x_l'|² = 2 tr Cov = E|x[i] − x[j]|²`` once the two are independent): long
chains whose scores hold only because they stopped moving show ``decorrelation`` near 0.

``step_acceptance`` asks whether the training sampler's step is exact enough for the
model: the Metropolis–Hastings acceptance ``α`` of the SGLD proposal at that step
(:mod:`jebm.samplers.mala`), run as MALA chains. Near 1, SGLD's discretisation bias
is small and its chains sample ``exp(−E/T)``; far below 1, what the chains sample is
the step's own biased distribution, and a model trained on them is fitted to that.

``watch`` is what the training loop calls every ``training.convergence_every``
steps: ``training.convergence_chains`` chains from each start, scored at each
length of ``training.convergence_lengths``.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jebm.data import mnist
from jebm.evaluation import chains, plots
from jebm.evaluation.evaluators import images

STARTS = ("noise", "data")


def held_out_start(config, parts, n: int, rng_key) -> np.ndarray:
    """``n`` held-out images in the model's scale, with the training data's noise added.

    Raises:
      ValueError: when the run's data set has fewer than ``n`` held-out images.
    """
    test = parts.data.images.test_images
    if len(test) < n:
        raise ValueError(f"the convergence watch asks for {n} chains from held-out images, but the data set has "
                         f"{len(test)}; lower training.convergence_chains")
    x = np.asarray(mnist.preprocess(test[:n], config.dataset.scale), np.float32)
    noise_std = float(config.dataset.noise_std)
    if noise_std:
        x = x + noise_std * np.asarray(jax.random.normal(rng_key, x.shape), np.float32)
    return x


def chain_curve(config, parts, params, lengths, n: int, rng_key, start) -> list[dict]:
    """Scores of ``n`` chains from ``start`` at each of ``lengths`` steps.

    ``start`` is ``"noise"``, ``"data"`` (``held_out_start``) or an array of ``n`` given
    starting points (e.g. a run's persistent chains), whose rows say ``start = "given"``.

    Returns:
      One row per length: ``start``, ``steps``, ``n``, ``energy_nats``,
      ``energy_drift_nats``, ``distance`` (RMS pixel change since the start), ``moved``,
      ``between_chains`` and ``decorrelation`` (the module's docstring; ``n ≥ 2``), and,
      on image data with ``eval.quality``, ``fid``, ``class_entropy`` and
      ``class_histogram``. Scores of non-finite chains are left out (``finite``).
    """
    if isinstance(start, str) and start not in STARTS:
        raise ValueError(f"start={start!r} is not one of {list(STARTS)} or an array of starting points")
    lengths = sorted(int(n_) for n_ in lengths)
    k_start, k_run = jax.random.split(rng_key)
    if not isinstance(start, str):
        x0 = np.asarray(start, np.float32)
        if len(x0) != n:
            raise ValueError(f"start holds {len(x0)} starting points for n={n} chains")
        start = "given"
    elif start == "data":
        x0 = held_out_start(config, parts, n, k_start)
    else:
        x0 = np.asarray(parts.noise_fn(k_start, n), np.float32)
    snapshots, seconds, _ = chains.long_chains(config, parts, params, lengths, n, k_run, start=x0)
    energy = jax.jit(lambda x: parts.model.apply(params, x))
    temperature = float(config.sampler.temperature)
    e0 = np.asarray(energy(jnp.asarray(x0)), np.float64)
    rows = []
    previous = x0
    for length in lengths:
        x = snapshots[length]
        e = np.asarray(energy(jnp.asarray(x)), np.float64)
        finite = bool(np.all(np.isfinite(x)) and np.all(np.isfinite(e)))
        row = {"start": start, "steps": length, "n": n, "seconds": seconds[length], "finite": finite}
        if finite:
            row.update(energy_nats=float(np.mean(e) / temperature),
                       energy_drift_nats=float(np.mean(e - e0) / temperature),
                       distance=_rms(x, x0))
            row.update(_mixing(x, previous))
            if config.eval.quality and parts.data.images is not None:
                q = images.quality_scores(config, parts, x[..., 0])
                row.update(fid=q["fid"], class_entropy=q["class_entropy"], class_histogram=q["class_histogram"])
        rows.append(row)
        previous = x
    return rows


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square pixel distance ``sqrt(mean((a − b)²))``, in float64."""
    return float(np.sqrt(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64)))))


def _mixing(x: np.ndarray, previous: np.ndarray) -> dict:
    """``moved``, ``between_chains`` and their ratio ``decorrelation`` (the module's docstring); {} for one chain."""
    if len(x) < 2:
        return {}
    moved, between = _rms(x, previous), _rms(x, np.roll(x, -1, axis=0))
    return {"moved": moved, "between_chains": between, "decorrelation": moved / between if between > 0 else math.nan}


def step_acceptance(energy_fn, x0, rng_key, *, step_size: float, temperature: float, num_steps: int) -> np.ndarray:
    """Mean MH acceptance probability of the Langevin proposal at each of ``num_steps`` MALA steps from ``x0``.

    The proposal is one SGLD step ``x* = x − η∇E(x) + √(2ηT)·w`` and
    ``α = min(1, exp(−(E(x*) − E(x))/T)·q(x|x*)/q(x*|x))`` (:mod:`jebm.samplers.mala`), for the
    unrestricted target ``exp(−E/T)`` (no box: a box would reject every proposal that leaves it,
    which says nothing of the step's bias inside). ``energy_fn`` maps ``(n, ...)`` to ``(n,)``.

    Returns:
      ``(num_steps,)`` float64: the chains' mean ``α`` at each step.
    """
    from jebm import samplers

    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    algorithm = samplers.mala(energy_fn, step_size, temperature=temperature)

    def body(state, key):
        state, info = algorithm.step(key, state)
        return state, jnp.mean(info.acceptance_rate)

    run = jax.jit(lambda x, key: jax.lax.scan(body, algorithm.init(x), jax.random.split(key, num_steps))[1])
    return np.asarray(run(jnp.asarray(x0), rng_key), np.float64)


def watch(config, parts, params, step: int) -> list[dict]:
    """The training loop's check at ``step``: :func:`chain_curve` from noise and from held-out data.

    The chains' randomness is the evaluation key folded with ``step``, so the
    check neither reads nor changes the training's randomness.
    """
    tc = config.training
    key = jax.random.fold_in(jax.random.fold_in(chains.eval_key(config), 0xC0417), step)
    rows = []
    for i, start in enumerate(STARTS):
        rows += chain_curve(config, parts, params, tc.convergence_lengths, tc.convergence_chains,
                            jax.random.fold_in(key, i), start)
    return rows


def log_check(config, parts, params, step: int, workdir: Path, log) -> list[dict]:
    """:func:`watch` at ``step``, logged: a ``{"step", "convergence"}`` record in ``log`` (``reporting.MetricsLog``),
    its :func:`scalars` in TensorBoard under ``convergence/`` and :func:`write_figure`'s PNG as the image ``convergence``."""
    rows = watch(config, parts, params, step)
    log.write({"step": step, "convergence": rows})
    log.snapshot(write_figure(workdir, log.records), scalars(rows), step, prefix="convergence", image="convergence")
    return rows


def scalars(rows: list[dict]) -> dict:
    """The rows as flat TensorBoard scalars, e.g. ``noise_2000/fid``."""
    out = {}
    for row in rows:
        for key in ("fid", "class_entropy", "energy_nats", "energy_drift_nats", "distance", "decorrelation"):
            value = row.get(key)
            if isinstance(value, float) and math.isfinite(value):
                out[f"{row['start']}_{row['steps']}/{key}"] = value
    return out


def write_figure(workdir: Path, records: list[dict]) -> Path | None:
    """``convergence.png``: every check so far (records with a ``convergence`` key) against the training step."""
    history = [(r["step"], r["convergence"]) for r in records if "convergence" in r]
    if not history:
        return None
    return Path(plots.plot_convergence(workdir / "convergence.png", history))
