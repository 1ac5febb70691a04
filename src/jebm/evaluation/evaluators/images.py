"""The image data's evaluator (MNIST, Fashion-MNIST): samples, sample quality, AIS likelihood, the long run.

:func:`evaluate_images` scores fresh-chain samples (the classifier's quality
score, :func:`range_report`), the held-out likelihood by AIS
(:func:`image_likelihood`), a long run scored at each length of
``eval.long_run_curve`` (:func:`evaluate_long_run`) and the median energy per
digit class (:func:`energy_by_class`); :func:`write_image_outputs` writes
``samples.npy``, ``samples.png``, ``samples_long.npy``, ``long_run.png`` and
``ais_convergence.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jebm import fileio
from jebm.data import mnist, pipeline
from jebm.evaluation import chains, likelihood, metrics, plots
from jebm.evaluation.evaluators import likelihood_scores


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
        **metrics.fraction_outside(finite, low, high),
        "pixel_min": float(finite.min()) if finite.size else float("nan"),
        "pixel_max": float(finite.max()) if finite.size else float("nan"),
    }


def evaluate_images(config, parts, params) -> tuple[dict, dict]:
    """Image data (MNIST, Fashion-MNIST): fresh-chain samples, the quality score, AIS and the long run.

    Scores are computed on the samples exactly as :func:`write_image_outputs`
    writes them to ``samples.npy`` (``range_report`` says how many pixel values
    lie outside the data range; the classifier clips them). Returns
    ``(summary, arrays)``: the scores, and what the files are made of.
    """
    ec = config.eval
    steps = chains.eval_sampler_steps(config)
    samples = chains.fresh_samples(config, parts, params, chains.eval_key(config), ec.num_samples, steps)
    images = samples[..., 0].astype(np.float32)
    unit = np.clip(pipeline.to_unit_range(images, config.dataset.scale), 0.0, 1.0)
    arrays = {"samples": images, "samples_grid": unit[:100], "data_name": parts.data.name}
    summary = {"n_samples": ec.num_samples, "sampler_steps": steps,
               "samples_finite": bool(np.all(np.isfinite(images))), **range_report(images, config.dataset.scale)}
    if ec.quality and summary["samples_finite"]:
        summary["quality"] = quality_scores(config, parts, images)
    if ec.ais_temps:
        summary["ais"] = image_likelihood(config, parts, params, jax.random.fold_in(chains.eval_key(config), 0xA15))
    samples_long = None
    if ec.long_run_samples:
        summary["long_run"], long_run = evaluate_long_run(config, parts, params)
        arrays.update(long_run)
        samples_long = long_run["samples_long"]
    if ec.quality and summary["samples_finite"]:
        sets = {"samples": images}
        if samples_long is not None and np.all(np.isfinite(samples_long)):
            sets["samples_long"] = samples_long
        summary["energy_by_class"] = energy_by_class(config, parts, params, sets)
    return summary, arrays


def write_image_outputs(workdir: Path, summary: dict, arrays: dict) -> None:
    """The files of :func:`evaluate_images`: the samples (``.npy`` and a 10×10 grid), the long run, AIS's curve."""
    fileio.save_npy(workdir / "samples.npy", arrays["samples"])
    plots.save_image_grid(workdir / "samples.png", arrays["samples_grid"], nrow=10, scale=2)
    if "ais" in summary:
        likelihood_scores.write_ais_convergence(
            workdir, summary["ais"]["convergence"],
            title=f"{arrays['data_name']}: AIS log Ẑ against the number of temperatures")
    if "long_run" in summary:
        fileio.save_npy(workdir / "samples_long.npy", arrays["samples_long"])
        plots.plot_long_run(workdir / "long_run.png", summary["long_run"]["curve"], arrays["long_run_grids"])


def evaluate_long_run(config, parts, params) -> tuple[dict, dict]:
    """Fresh chains for ``eval.long_run_steps``, scored at each of :func:`jebm.evaluation.chains.long_run_lengths`.

    Returns ``(scores, arrays)``: the scores per length with the chains'
    diagnostics, and ``samples_long`` (the final images, as
    :func:`write_image_outputs` writes them to ``samples_long.npy``) with
    ``long_run_grids`` (64 images per length, for ``long_run.png``).
    """
    ec = config.eval
    lengths = chains.long_run_lengths(config)
    key = jax.random.fold_in(chains.eval_key(config), 0x10C6)
    snapshots, seconds, trace = chains.long_chains(config, parts, params, lengths, ec.long_run_samples, key,
                                                   energy_every=max(1, ec.long_run_steps // 100))
    final = snapshots[lengths[-1]][..., 0].astype(np.float32)
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
    out = {"n_samples": ec.long_run_samples, "steps": ec.long_run_steps, "curve": curve}
    out.update(chains.chain_diagnostics(config, trace, math.prod(parts.data.example_shape)))
    return out, {"samples_long": final, "long_run_grids": grids}


def quality_scores(config, parts, images: np.ndarray) -> dict:
    """The classifier-based sample-quality score of :mod:`jebm.evaluation.quality`."""
    from jebm.evaluation import classifier_cache, quality

    data = parts.data.images
    clf_params, accuracy, info = classifier_cache.load_or_train_classifier(data)
    reference = data.test_images[: config.eval.quality_reference]
    scores = quality.sample_quality(images, reference, clf_params, scale=config.dataset.scale)
    scores["classifier_test_accuracy"] = float(accuracy)
    return scores


def energy_by_class(config, parts, params, samples: dict[str, np.ndarray]) -> dict:
    """Median energy per digit class: held-out digits by label, samples by the classifier's class.

    At temperature T the model's odds of one region against another are
    ``exp(−ΔE/T)`` times their ratio of volume, so a class whose held-out digits
    sit thousands of nats below the others' is where long chains end up unless
    training has balanced it. ``held_out`` holds the ``eval.quality_reference``
    test digits; each entry of ``samples`` (name → images in the data's scale)
    is classified by the quality classifier. A class with no image is None.
    """
    from jebm.evaluation import classifier, classifier_cache

    data = parts.data.images
    energy = jax.jit(lambda x: parts.model.apply(params, x))

    def energies(images: np.ndarray) -> np.ndarray:
        x = jnp.asarray(images, jnp.float32).reshape(-1, *parts.data.example_shape)
        return np.concatenate([np.asarray(energy(x[i:i + 250]), np.float64) for i in range(0, len(x), 250)])

    def medians(e: np.ndarray, labels: np.ndarray) -> list:
        return [float(np.median(e[labels == k])) if np.any(labels == k) else None for k in range(classifier.NUM_CLASSES)]

    held_out = data.test_images[: config.eval.quality_reference]
    e_held_out = energies(mnist.preprocess(held_out, config.dataset.scale))
    out = {"held_out": medians(e_held_out, data.test_labels[: len(held_out)]),
           "held_out_all": float(np.median(e_held_out))}
    clf_params, _, _ = classifier_cache.load_or_train_classifier(data)
    for name, images in samples.items():
        unit, _ = classifier.to_unit_interval(images, config.dataset.scale, name)
        predicted = np.argmax(classifier.classifier_outputs(clf_params, unit)[1], axis=1)
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
    result, rows = likelihood_scores.ais_runs(config, energy_fn, parts.data.example_shape, 0.5 * width, rng_key,
                                              centres, log_weights)
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


def training_images(config, images) -> tuple[np.ndarray, np.ndarray]:
    """The stored (uint8) training images and labels the run trained on: the first ``dataset.max_train_images`` (0 = all)."""
    n = config.dataset.get("max_train_images") or None
    return images.train_images[:n], images.train_labels[:n]
