"""Evaluation with fresh chains, and the files a run leaves in its workdir.

Model samples for evaluation always come from *fresh* noise-initialised
chains, never from the persistent bank: persistent chains can match the data
while the energy they were trained against does not define that
distribution. For the 2D toy the protocol (pinned in ``config.eval``) is:
``num_samples`` chains run with the training sampler for ``sampler_steps``
(default L) steps and, separately, for ``long_run_steps``; KS against
``ks_repeats`` independent true draws (each value reported), B* between pairs
of true draws, the discretised KL on the ``grid_size``² grid, and the mode
fractions.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from jebm import fileio
from jebm.evaluation import diagnostics, likelihood, metrics, plots
from jebm.data import mnist, pipeline
from jebm.samplers import factory as sampler_factory
from jebm.samplers.chain import run_chain


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


def _eval_key(config) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)


def evaluate_toy(config, parts, params) -> tuple[dict, dict]:
    """The paper's toy metrics; returns ``(summary, arrays)``."""
    ec, dist = config.eval, parts.data.toy
    key = _eval_key(config)
    k_short, k_long, k_true, k_bench = jax.random.split(key, 4)
    n = ec.num_samples
    steps = eval_sampler_steps(config)
    samples = fresh_samples(config, parts, params, k_short, n, steps)
    samples_long = fresh_samples(config, parts, params, k_long, n, ec.long_run_steps)
    true_keys = jax.random.split(k_true, ec.ks_repeats)
    true_draws = [np.asarray(dist.sample(k, n)) for k in true_keys]

    def ks_all(s):
        if not np.all(np.isfinite(s)):
            return [float("nan")] * len(true_draws)
        return [metrics.ks2d(s, t) for t in true_draws]

    ks_short, ks_long = ks_all(samples), ks_all(samples_long)
    bench = metrics.benchmark_ks(dist.sample, k_bench, n=n, repeats=ec.ks_repeats)
    xs, ys = metrics.grid(ec.grid_lim, ec.grid_size)
    energy_fn = jax.jit(lambda pts: parts.model.apply(params, pts))
    energy = metrics.evaluate_on_grid(lambda pts: np.asarray(energy_fn(jnp.asarray(pts, jnp.float32))), xs, ys)
    log_p = metrics.evaluate_on_grid(dist.log_density, xs, ys)
    kl = metrics.discretised_kl(energy, log_p) if np.all(np.isfinite(energy)) else float("nan")
    summary = {
        "n_samples": n,
        "sampler_steps": steps,
        "long_run_steps": ec.long_run_steps,
        "ks": float(np.mean(ks_short)),
        "ks_values": ks_short,
        "ks_long": float(np.mean(ks_long)),
        "ks_long_values": ks_long,
        "b_star": bench.mean,
        "b_star_std": bench.std,
        "b_star_values": list(map(float, bench.values)),
        "kl": kl,
        "grid": {"size": ec.grid_size, "lim": ec.grid_lim},
        "mode_fractions": metrics.mode_fractions(samples, dist.modes).tolist() if np.all(np.isfinite(samples)) else None,
        "mode_fractions_long": metrics.mode_fractions(samples_long, dist.modes).tolist() if np.all(np.isfinite(samples_long)) else None,
    }
    arrays = {"samples": samples, "samples_long": samples_long, "xs": xs, "ys": ys, "energy": energy, "log_p": log_p}
    if np.all(np.isfinite(energy)):
        summary.update(toy_likelihood(config, parts, params, true_draws[0], jax.random.fold_in(key, 0x11)))
    # Chain diagnostics from a separate set of fresh chains (the samples above keep their keys).
    _, _, trace = long_chains(config, parts, params, [ec.long_run_steps], TOY_DIAGNOSTIC_CHAINS,
                              jax.random.fold_in(key, 0xD1A6), energy_every=max(1, ec.long_run_steps // 100))
    summary["long_run_diagnostics"] = chain_diagnostics(config, trace, 2)
    return summary, arrays


TOY_DIAGNOSTIC_CHAINS = 200


def _ais_runs(config, energy_fn, example_shape, box: float, rng_key, centres=None,
              centre_log_weights=None) -> tuple[likelihood.AISResult, list[dict]]:
    """AIS at ``eval.ais_temps`` and at each smaller K of ``eval.ais_curve`` (the convergence rows).

    The base is ``eval.ais_base``: the uniform density on the box, or (``"box_kde"``)
    a kernel density of ``centres`` in ``atanh`` space (:func:`jebm.evaluation.likelihood.ais`).
    """
    ec = config.eval
    options = ais_options(config, box, centres, centre_log_weights)
    rows, result = [], None
    for k in sorted({n for n in ec.ais_curve if n < ec.ais_temps} | {ec.ais_temps}):
        result = likelihood.ais(jax.random.fold_in(rng_key, k), energy_fn, example_shape, num_chains=ec.ais_chains,
                                num_temps=k, options=options)
        rows.append({"num_temps": k, "log_z": result.log_z, "log_z_std": result.log_z_std, "ess": result.ess})
    return result, rows


def ais_options(config, box: float, centres=None, centre_log_weights=None) -> likelihood.AISOptions:
    """:func:`jebm.evaluation.likelihood.ais`'s options from ``config.eval`` and ``config.sampler``.

    ``eval.ais_base="uniform"``: the uniform density on ``[−box, box]^d``; ``"box_kde"``:
    the kernel density of ``centres`` (weighted by ``centre_log_weights``, see :func:`kde_centres`).
    MALA at the sampler's temperature, its ``chunk_size``; the chains' number is ``eval.ais_chains``.
    """
    ec, s = config.eval, config.sampler
    common = dict(kernel="mala", temperature=s.temperature, chunk_size=s.get("chunk_size", 0))
    if ec.ais_base == "box_kde":
        return likelihood.AISOptions(base="box_kde", base_scale=ec.ais_kde_scale, centres=centres, box=box,
                                     centre_margin=ec.ais_kde_margin, centre_log_weights=centre_log_weights, **common)
    return likelihood.AISOptions(base="uniform", base_scale=box, **common)


def training_images(config, images) -> tuple[np.ndarray, np.ndarray]:
    """The stored (uint8) training images and labels the run trained on: the first ``dataset.max_train_images`` (0 = all)."""
    n = config.dataset.get("max_train_images") or None
    return images.train_images[:n], images.train_labels[:n]


def kde_centres(config, energy_fn, images: np.ndarray, center: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``box_kde`` base's centres and their log weights, from stored (uint8) images.

    Centres: the images preprocessed to ``dataset.scale`` and shifted by ``-center`` (AIS's box
    is centred at 0). Log weights: ``−eval.ais_kde_tilt · E(y_i)/T`` (``energy_fn`` takes the
    shifted centres), None for equal weights (tilt 0).
    """
    ec = config.eval
    centres = mnist.preprocess(images, config.dataset.scale) - center
    if ec.ais_kde_tilt <= 0:
        return centres, None
    energies = np.asarray(jax.jit(energy_fn)(jnp.asarray(centres)), np.float64)
    return centres, -ec.ais_kde_tilt * energies / config.sampler.temperature


def toy_likelihood(config, parts, params, held_out: np.ndarray, rng_key, lim: float | None = None) -> dict:
    """The toy model's held-out NLL on the box [−lim, lim]²: exact (quadrature) and by AIS, with reverse AIS.

    ``nll_exact = mean E(x)/T + log Z`` with ``log Z`` by quadrature; ``nll_ais`` the
    same with AIS's ``log Ẑ`` (a stochastic lower bound on log Z, so an optimistic
    NLL); ``log_z_upper`` reverse AIS's stochastic upper bound from exact samples of
    the grid-discretised model. A quadrature that does not converge (a grid too
    coarse for the energy) is reported as ``likelihood.error`` instead of ``nll_exact``.
    ``likelihood.edge_mass`` is the model's probability in the outermost ring of
    cells: large means the box, not the energy, confines the model. ``lim``
    (default ``eval.likelihood_lim``) is the box's half-width.
    """
    ec, T = config.eval, config.sampler.temperature
    lim = ec.likelihood_lim if lim is None else float(lim)
    energy_fn = jax.jit(lambda x: parts.model.apply(params, x))
    held_out = held_out[np.all(np.abs(held_out) <= lim, axis=1)]
    mean_energy = float(np.mean(np.asarray(energy_fn(jnp.asarray(held_out, jnp.float32)), np.float64)))
    out = {"likelihood": {"box": [-lim, lim], "n_held_out": int(len(held_out))}}
    lk = out["likelihood"]
    try:
        log_z = likelihood.log_partition_grid(energy_fn, lim=lim, size=ec.likelihood_grid,
                                              temperature=T, on_box=True)
        lk["log_z_exact"] = log_z
        out["nll_exact"] = mean_energy / T + log_z
        _, _, log_p = likelihood.grid_log_density(energy_fn, lim=lim, size=ec.likelihood_grid, temperature=T)
        log_p = np.asarray(log_p)
        ring = np.ones_like(log_p, dtype=bool)
        ring[1:-1, 1:-1] = False
        lk["edge_mass"] = float(np.exp(log_p[ring]).sum() / np.exp(log_p).sum())
    except ValueError as err:
        log_z = None
        lk["error"] = str(err)
        logging.warning("toy likelihood: %s", err)
    if ec.ais_temps:
        k_fwd, k_grid, k_rev = jax.random.split(rng_key, 3)
        result, rows = _ais_runs(config, energy_fn, (2,), lim, k_fwd)
        exact = likelihood.grid_samples(k_grid, energy_fn, lim=lim, size=2 * ec.likelihood_grid,
                                        num_samples=ec.ais_chains, temperature=T)
        reverse = likelihood.reverse_ais(k_rev, energy_fn, exact, num_temps=ec.ais_temps, options=likelihood.AISOptions(
            base="uniform", base_scale=lim, kernel="mala", temperature=T, step_sizes=result.step_sizes))
        out["nll_ais"] = mean_energy / T + result.log_z
        lk.update(log_z_ais=result.log_z, log_z_ais_std=result.log_z_std, ais_ess=result.ess,
                  ais_temps=ec.ais_temps, ais_chains=ec.ais_chains, log_z_upper=reverse.log_z,
                  log_z_upper_std=reverse.log_z_std, ais_convergence=rows)
    return out


def write_ais_convergence(workdir: Path, rows, *, exact=None, upper=None, title="") -> None:
    if rows:
        plots.plot_ais_convergence(workdir / "ais_convergence.png", rows, exact=exact, upper=upper, title=title)


def write_toy_outputs(workdir: Path, summary: dict, arrays: dict, records) -> None:
    fileio.save_npy(workdir / "samples.npy", arrays["samples"].astype(np.float32))
    fileio.save_npy(workdir / "samples_long.npy", arrays["samples_long"].astype(np.float32))
    fileio.save_npz(workdir / "energy_grid.npz", xs=arrays["xs"], ys=arrays["ys"], energy=arrays["energy"])
    title = f"KS {summary['ks']:.3f} (B* {summary['b_star']:.3f}), KL {summary['kl']:.3f}"
    plots.plot_toy_fit(workdir / "toy_fit.png", arrays["xs"], arrays["ys"], arrays["log_p"], arrays["energy"],
                       arrays["samples"], title=title)
    plots.plot_toy_fit(workdir / "toy_fit_long.png", arrays["xs"], arrays["ys"], arrays["log_p"], arrays["energy"],
                       arrays["samples_long"], title=f"long run ({summary['long_run_steps']} steps): KS {summary['ks_long']:.3f}")
    if records:
        plots.plot_training_curves(workdir / "training_curves.png", records)
    lk = summary.get("likelihood", {})
    write_ais_convergence(workdir, lk.get("ais_convergence"), exact=lk.get("log_z_exact"), upper=lk.get("log_z_upper"),
                          title="toy: AIS log Ẑ against the number of temperatures")


def data_range(scale: str) -> tuple[float, float]:
    """The box image data of ``dataset.scale`` lives in."""
    return (-1.0, 1.0) if scale == "minus_one_one" else (0.0, 1.0)


def range_report(images: np.ndarray, scale: str) -> dict:
    """Where the samples' pixel values lie, before any clipping.

    ``fraction_outside_range``: the share of pixel values outside the data's
    range (a model whose samples leave it draws values no image has; scores
    computed after clipping would flatter it).
    """
    low, high = data_range(scale)
    x = np.asarray(images, np.float64)
    finite = x[np.isfinite(x)]
    return {
        **_outside(finite, low, high),
        "pixel_min": float(finite.min()) if finite.size else float("nan"),
        "pixel_max": float(finite.max()) if finite.size else float("nan"),
    }


def evaluate_images(config, parts, params, workdir: Path) -> dict:
    """Image data (MNIST, Fashion-MNIST): fresh-chain samples, grids, the quality score and the long run.

    Scores are computed on the samples exactly as written to ``samples.npy``
    (``range_report`` says how many pixel values lie outside the data range;
    the classifier clips them).
    """
    ec = config.eval
    steps = eval_sampler_steps(config)
    samples = fresh_samples(config, parts, params, _eval_key(config), ec.num_samples, steps)
    images = samples[..., 0].astype(np.float32)
    fileio.save_npy(workdir / "samples.npy", images)
    unit = np.clip(pipeline.to_unit_range(images, config.dataset.scale), 0.0, 1.0)
    plots.save_image_grid(workdir / "samples.png", unit[:100], nrow=10, scale=2)
    summary = {"n_samples": ec.num_samples, "sampler_steps": steps,
               "samples_finite": bool(np.all(np.isfinite(images))), **range_report(images, config.dataset.scale)}
    if ec.quality and summary["samples_finite"]:
        summary["quality"] = quality_scores(config, parts, images)
    if ec.ais_temps:
        summary["ais"] = image_likelihood(config, parts, params, jax.random.fold_in(_eval_key(config), 0xA15))
        write_ais_convergence(workdir, summary["ais"]["convergence"], title=f"{parts.data.name}: AIS log Ẑ against the number of temperatures")
    samples_long = None
    if ec.long_run_samples:
        summary["long_run"], samples_long = evaluate_long_run(config, parts, params, workdir)
    if ec.quality and summary["samples_finite"]:
        sets = {"samples": images}
        if samples_long is not None and np.all(np.isfinite(samples_long)):
            sets["samples_long"] = samples_long
        summary["energy_by_class"] = energy_by_class(config, parts, params, sets)
    return summary


def energy_by_class(config, parts, params, samples: dict[str, np.ndarray]) -> dict:
    """Median energy per digit class: held-out digits by label, samples by the classifier's class.

    At temperature T the model's odds of one region against another are
    ``exp(−ΔE/T)`` times their ratio of volume, so a class whose held-out digits
    sit thousands of nats below the others' is where long chains end up unless
    training has balanced it. ``held_out`` holds the ``eval.quality_reference``
    test digits; each entry of ``samples`` (name → images in the data's scale)
    is classified by the quality classifier. A class with no image is None.
    """
    from jebm.evaluation import quality

    data = parts.data.images
    energy = jax.jit(lambda x: parts.model.apply(params, x))

    def energies(images: np.ndarray) -> np.ndarray:
        x = jnp.asarray(images, jnp.float32).reshape(-1, *parts.data.example_shape)
        return np.concatenate([np.asarray(energy(x[i:i + 250]), np.float64) for i in range(0, len(x), 250)])

    def medians(e: np.ndarray, labels: np.ndarray) -> list:
        return [float(np.median(e[labels == k])) if np.any(labels == k) else None for k in range(quality.NUM_CLASSES)]

    held_out = data.test_images[: config.eval.quality_reference]
    e_held_out = energies(mnist.preprocess(held_out, config.dataset.scale))
    out = {"held_out": medians(e_held_out, data.test_labels[: len(held_out)]),
           "held_out_all": float(np.median(e_held_out))}
    clf_params, _, _ = quality.load_or_train_classifier(data)
    for name, images in samples.items():
        unit, _ = quality.to_unit_interval(images, config.dataset.scale, name)
        predicted = np.argmax(quality.classifier_outputs(clf_params, unit)[1], axis=1)
        e = energies(images)
        out[name], out[f"{name}_all"] = medians(e, predicted), float(np.median(e))
    out["note"] = "median energy E(x) (nats at T = 1) per class 0..9; samples grouped by the classifier's prediction"
    return out


def image_likelihood(config, parts, params, rng_key) -> dict:
    """AIS test-set log-likelihood of an image model, as a density on the data range.

    The model is ``p(y) = exp(−E(y)/T)/Z`` on the box of the data's scale
    (``[−1, 1]^d`` or ``[0, 1]^d``), ``Z`` by AIS with MALA. ``eval.ais_base``
    picks the base: ``"box_kde"`` (MNIST's default) starts the chains next to
    ``eval.ais_kde_centres`` training images (a Gaussian kernel density of
    bandwidth ``eval.ais_kde_scale`` in ``atanh`` space, face pixels
    ``eval.ais_kde_margin`` inside the box, image i weighted by
    ``π_i ∝ exp(−eval.ais_kde_tilt · E(y_i)/T)`` so that more chains start where the
    model puts its mass); ``"uniform"`` starts them in uniform
    noise on the box, whose energy is 10⁵-10⁶ nats above the data's, and
    its bound is loose by about as much. ``log_likelihood_nats`` is the mean over
    ``eval.quality_reference`` held-out images of ``−E(y)/T − log Ẑ`` (continuous
    density, nats per image). ``bits_per_dim`` converts it to the 256 pixel
    levels by the density at the stored pixel value times the volume of one
    level's cell (width 1/255 of the range per pixel, no dequantisation noise):
    ``−(log p(y) + d·log(w/255)) / (d·ln 2)`` with ``w`` the range's width.
    AIS's ``log Ẑ`` is a stochastic lower bound on ``log Z``, so these
    likelihoods are stochastic *upper* bounds: compare them with ``log_z_std``
    and the ESS in view.
    """
    ec, T = config.eval, config.sampler.temperature
    low, high = data_range(config.dataset.scale)
    if (low, high) != (-1.0, 1.0) and (low, high) != (0.0, 1.0):
        raise ValueError(f"dataset.scale={config.dataset.scale!r} has no likelihood box")
    center = 0.5 * (low + high)
    width = high - low
    energy_fn = lambda y: parts.model.apply(params, y + center)  # noqa: E731  (AIS's box is centred at 0)
    centres, log_weights = None, None
    if ec.ais_base == "box_kde":
        train, _ = training_images(config, parts.data.images)
        pick = np.random.default_rng(config.seed).choice(len(train), min(ec.ais_kde_centres, len(train)), replace=False)
        centres, log_weights = kde_centres(config, energy_fn, train[np.sort(pick)], center)
    result, rows = _ais_runs(config, energy_fn, parts.data.example_shape, 0.5 * width, rng_key, centres, log_weights)
    test = mnist.preprocess(parts.data.images.test_images[: ec.quality_reference], config.dataset.scale)
    energies = np.asarray(jax.jit(lambda x: parts.model.apply(params, x))(jnp.asarray(test)), np.float64)
    d = math.prod(parts.data.example_shape)
    log_lik = float(np.mean(-energies / T)) - result.log_z
    return {
        "log_likelihood_nats": log_lik,
        "bits_per_dim": -(log_lik + d * math.log(width / 255.0)) / (d * math.log(2.0)),
        "log_z": result.log_z, "log_z_std": result.log_z_std, "ess": result.ess,
        "num_temps": ec.ais_temps, "num_chains": ec.ais_chains, "n_test": int(len(test)),
        "mean_acceptance": float(np.mean(result.acceptance)), "convergence": rows,
        "base": ec.ais_base, "log_weight_std": float(np.std(result.log_weights)),
        **({"kde_centres": int(len(centres)), "kde_scale": ec.ais_kde_scale, "kde_margin": ec.ais_kde_margin,
            "kde_tilt": ec.ais_kde_tilt,
            "kde_effective_centres": float(len(centres)) if log_weights is None else likelihood.effective_sample_size(log_weights)}
           if centres is not None else {}),
    }


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


def evaluate_long_run(config, parts, params, workdir: Path) -> tuple[dict, np.ndarray]:
    """Fresh chains for ``eval.long_run_steps``: ``samples_long.npy``, ``long_run.png`` and the scores per length.

    Returns ``(scores, final)``: the scores and the final images as written to ``samples_long.npy``.
    """
    ec = config.eval
    lengths = long_run_lengths(config)
    key = jax.random.fold_in(_eval_key(config), 0x10C6)
    snapshots, seconds, trace = long_chains(config, parts, params, lengths, ec.long_run_samples, key,
                                            energy_every=max(1, ec.long_run_steps // 100))
    final = snapshots[lengths[-1]][..., 0].astype(np.float32)
    fileio.save_npy(workdir / "samples_long.npy", final)
    curve = []
    for length in lengths:
        images = snapshots[length][..., 0]
        row = {"steps": length, "seconds": seconds[length], "finite": bool(np.all(np.isfinite(images))),
               **range_report(images, config.dataset.scale)}
        if ec.quality and row["finite"]:
            q = quality_scores(config, parts, images)
            row.update(fid=q["fid"], kid_mean=q["kid_mean"], class_entropy=q["class_entropy"],
                       mean_confidence=q["mean_confidence"], class_histogram=q["class_histogram"])
        curve.append(row)
    grids = [(f"{n:,} steps", np.clip(pipeline.to_unit_range(snapshots[n][:64, ..., 0], config.dataset.scale), 0.0, 1.0))
             for n in lengths]
    plots.plot_long_run(workdir / "long_run.png", curve, grids)
    out = {"n_samples": ec.long_run_samples, "steps": ec.long_run_steps, "curve": curve}
    out.update(chain_diagnostics(config, trace, math.prod(parts.data.example_shape)))
    return out, final


def quality_scores(config, parts, images: np.ndarray) -> dict:
    """The classifier-based sample-quality score of :mod:`jebm.evaluation.quality`."""
    from jebm.evaluation import quality

    data = parts.data.images
    clf_params, accuracy, info = quality.load_or_train_classifier(data)
    reference = data.test_images[: config.eval.quality_reference]
    scores = quality.sample_quality(images, reference, clf_params, scale=config.dataset.scale)
    scores["classifier_test_accuracy"] = float(accuracy)
    return scores


def write_training_grid(config, parts, params, workdir: Path, step: int) -> Path:
    """A sample grid during training: 64 fresh chains; returns the PNG's path.

    The chains run as long as the final evaluation's (``eval.sampler_steps``, None =
    L), so the grid shows what the final score will measure: a recipe evaluated after
    1,000 steps but trained with L = 40 would otherwise show 40-step noise.
    """
    samples = fresh_samples(config, parts, params, jax.random.fold_in(_eval_key(config), step), 64,
                            eval_sampler_steps(config))
    unit = np.clip(pipeline.to_unit_range(samples[..., 0], config.dataset.scale), 0.0, 1.0)
    out = workdir / "grids"
    out.mkdir(exist_ok=True)
    return Path(plots.save_image_grid(out / f"samples_step{step:07d}.png", unit, nrow=8, scale=2))


SNAPSHOT_CHAINS = 500  # fresh chains of a 2D model's mid-training snapshot


def write_training_snapshot(config, parts, params, workdir: Path, step: int) -> tuple[Path | None, dict]:
    """What a run shows of its model every ``training.sample_every`` steps: ``(png, scalars)``.

    MNIST: a grid of 64 fresh-chain samples (:func:`write_training_grid`). 2D
    data (the toy, a user's points): ``SNAPSHOT_CHAINS`` fresh chains after
    ``eval.sampler_steps`` steps over the learned density on the evaluation
    grid (``grids/fit_step<step>.png``) and their KS against as many true (toy)
    or held-out (user data) points. Other shapes: nothing.
    """
    data = parts.data
    if data.images is not None:
        return write_training_grid(config, parts, params, workdir, step), {}
    if data.example_shape != (2,):
        return None, {}
    ec = config.eval
    key = jax.random.fold_in(jax.random.fold_in(_eval_key(config), 0x5A4), step)
    k_samples, k_true = jax.random.split(key)
    samples = fresh_samples(config, parts, params, k_samples, SNAPSHOT_CHAINS, eval_sampler_steps(config))
    if data.toy is not None:
        reference, lim = np.asarray(data.toy.sample(k_true, SNAPSHOT_CHAINS)), ec.grid_lim
    else:
        reference = data.held_out
        lim = 1.2 * max(abs(data.value_range[0]), abs(data.value_range[1]))
    xs, ys = metrics.grid(lim, ec.grid_size)
    energy_fn = jax.jit(lambda pts: parts.model.apply(params, pts))
    energy = metrics.evaluate_on_grid(lambda pts: np.asarray(energy_fn(jnp.asarray(pts, jnp.float32))), xs, ys)
    finite = bool(np.all(np.isfinite(samples)) and np.all(np.isfinite(energy)))
    scalars = {"ks": metrics.ks2d(samples, reference)} if finite else {}
    if not finite:
        return None, scalars
    out = workdir / "grids"
    out.mkdir(exist_ok=True)
    title = f"step {step}: KS {scalars['ks']:.3f} ({len(samples)} fresh chains)"
    png = plots.plot_energy_fit(out / f"fit_step{step:07d}.png", xs, ys, energy, samples, reference, title=title)
    return Path(png), scalars


def evaluate_user_data(config, parts, params, workdir: Path) -> dict:
    """A user's own data (``train_and_evaluate(..., data=array)`` or a registered dataset).

    Fresh chains as for every model (``samples.npy`` after ``eval.sampler_steps``,
    ``samples_long.npy`` after ``eval.long_run_steps``); the mean energy of the
    held-out examples, of the samples and of fresh noise (a trained energy puts
    held-out data below noise); the share of sample values outside the data's
    own ``[min, max]``. 2D points also get the toy's measures against the
    held-out points: KS of the samples (``ks_floor`` = KS of the held-out points
    against as many training points, the best a sampler can score), the energy
    on a grid over the box ``[−lim, lim]²`` that holds the data with a 20%
    margin (``energy_grid.npz``, ``energy_fit.png``), and the held-out NLL by
    quadrature and AIS on that box. Image-shaped examples ``(h, w, c)`` get
    sample grids (``samples.png``, ``samples_long.png``).
    """
    ec, data = config.eval, parts.data
    key = _eval_key(config)  # the samples' own key, as for MNIST: jebm.sample(restored, key, n) redraws them
    k_long, k_noise, k_lik = jax.random.split(jax.random.fold_in(key, 0xDA7A), 3)
    steps = eval_sampler_steps(config)
    samples = fresh_samples(config, parts, params, key, ec.num_samples, steps)
    samples_long = fresh_samples(config, parts, params, k_long, ec.num_samples, ec.long_run_steps)
    fileio.save_npy(workdir / "samples.npy", samples.astype(np.float32))
    fileio.save_npy(workdir / "samples_long.npy", samples_long.astype(np.float32))
    low, high = data.value_range
    energy_fn = jax.jit(lambda x: parts.model.apply(params, x))
    mean_energy = lambda x: float(np.mean(np.asarray(energy_fn(jnp.asarray(x, jnp.float32)), np.float64)))  # noqa: E731
    summary = {
        "n_samples": ec.num_samples, "sampler_steps": steps, "long_run_steps": ec.long_run_steps,
        "n_held_out": int(len(data.held_out)), "samples_finite": bool(np.all(np.isfinite(samples))),
        "energy_held_out": mean_energy(data.held_out), "energy_noise": mean_energy(parts.noise_fn(k_noise, ec.num_samples)),
        **_outside(samples, low, high),
    }
    if summary["samples_finite"]:
        summary["energy_samples"] = mean_energy(samples)
    if data.example_shape == (2,):
        summary.update(_points_scores(config, parts, params, workdir, samples, samples_long, energy_fn, k_lik))
    elif len(data.example_shape) == 3 and data.example_shape[-1] in (1, 3):
        for name, x in (("samples", samples), ("samples_long", samples_long)):
            unit = np.clip((np.nan_to_num(x[:100]) - low) / max(high - low, 1e-12), 0.0, 1.0)
            plots.save_image_grid(workdir / f"{name}.png", unit[..., 0] if unit.shape[-1] == 1 else unit.mean(-1),
                                  nrow=10, scale=2)
    return summary


def _outside(samples: np.ndarray, low: float, high: float) -> dict:
    """The share of the finite values of ``samples`` outside ``[low, high]``, and that range."""
    x = np.asarray(samples, np.float64)
    finite = x[np.isfinite(x)]
    return {"fraction_outside_range": float(np.mean((finite < low) | (finite > high))) if finite.size else float("nan"),
            "data_range": [low, high]}


def _points_scores(config, parts, params, workdir: Path, samples, samples_long, energy_fn, rng_key) -> dict:
    ec, data = config.eval, parts.data
    held = data.held_out
    k_floor, k_lik = jax.random.split(rng_key)
    ks = lambda s: metrics.ks2d(s, held) if np.all(np.isfinite(s)) else float("nan")  # noqa: E731
    out = {"ks": ks(samples), "ks_long": ks(samples_long)}
    if data.train_examples is not None:
        pick = np.asarray(jax.random.choice(k_floor, len(data.train_examples), (min(len(held), len(data.train_examples)),),
                                            replace=False))
        out["ks_floor"] = metrics.ks2d(data.train_examples[pick], held)
    lim = 1.2 * max(abs(data.value_range[0]), abs(data.value_range[1]))
    xs, ys = metrics.grid(lim, ec.grid_size)
    energy = metrics.evaluate_on_grid(lambda pts: np.asarray(energy_fn(jnp.asarray(pts, jnp.float32))), xs, ys)
    fileio.save_npz(workdir / "energy_grid.npz", xs=xs, ys=ys, energy=energy)
    out["grid"] = {"size": ec.grid_size, "lim": lim}
    if np.all(np.isfinite(energy)):
        plots.plot_energy_fit(workdir / "energy_fit.png", xs, ys, energy, samples, held,
                              title=f"KS {out['ks']:.3f} against {len(held)} held-out points")
        out.update(toy_likelihood(config, parts, params, held, k_lik, lim=lim))
        lk = out.get("likelihood", {})
        write_ais_convergence(workdir, lk.get("ais_convergence"), exact=lk.get("log_z_exact"),
                              upper=lk.get("log_z_upper"), title="AIS log Ẑ against the number of temperatures")
    return out


def evaluate_and_write(config, parts, params, workdir: Path, records) -> dict:
    """Runs the evaluation that fits the dataset and writes its files."""
    if parts.data.toy is not None:
        summary, arrays = evaluate_toy(config, parts, params)
        write_toy_outputs(workdir, summary, arrays, records)
    else:
        if parts.data.held_out is not None:
            summary = evaluate_user_data(config, parts, params, workdir)
        else:
            summary = evaluate_images(config, parts, params, workdir)
        if records:
            plots.plot_training_curves(workdir / "training_curves.png", records)
    logging.info("Evaluation: %s", {k: v for k, v in summary.items() if not isinstance(v, list)})
    return summary
