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
import json
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from jebm import fileio
from jebm.evaluation import metrics, plots
from jebm.data import pipeline
from jebm.samplers import factory as sampler_factory
from jebm.samplers.chain import run_chain


def fresh_samples(config, parts, params, rng_key, num_samples: int, num_steps: int) -> np.ndarray:
    """``num_samples`` model samples from fresh noise chains after ``num_steps`` steps."""
    sample = _sampler_program(parts, config.sampler.to_json(), num_samples, num_steps)
    return np.asarray(sample(params, rng_key))


@functools.lru_cache(maxsize=16)
def _sampler_program(parts, sampler_json: str, n: int, num_steps: int):
    """One compiled sampling program per (parts, sampler settings, n, L): the key is an argument,
    so the sample grids written during training do not recompile."""
    scfg = config_dict.ConfigDict(json.loads(sampler_json))

    @jax.jit
    def sample(params, rng_key):
        k_init, k_mom, k_run = jax.random.split(rng_key, 3)
        algorithm = sampler_factory.make_sampler(scfg, lambda x: parts.model.apply(params, x))
        state = algorithm.init(parts.noise_fn(k_init, n), k_mom if scfg.momentum_init == "random" else None)
        state, _ = run_chain(k_run, algorithm, state, num_steps, unroll=scfg.unroll)
        return state.position

    return sample


def _eval_key(config) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(config.seed), 0xE7A1)


def evaluate_toy(config, parts, params) -> tuple[dict, dict]:
    """The paper's toy metrics; returns ``(summary, arrays)``."""
    ec, dist = config.eval, parts.data.toy
    key = _eval_key(config)
    k_short, k_long, k_true, k_bench = jax.random.split(key, 4)
    n = ec.num_samples
    steps = ec.sampler_steps or config.sampler.num_steps
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
    return summary, arrays


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


def evaluate_images(config, parts, params, workdir: Path) -> dict:
    """MNIST: fresh-chain samples, grids and (optionally) the sample-quality score."""
    ec = config.eval
    steps = ec.sampler_steps or config.sampler.num_steps
    samples = fresh_samples(config, parts, params, _eval_key(config), ec.num_samples, steps)
    images = samples[..., 0]
    fileio.save_npy(workdir / "samples.npy", images.astype(np.float32))
    unit = np.clip(pipeline.to_unit_range(images, config.dataset.scale), 0.0, 1.0)
    plots.save_image_grid(workdir / "samples.png", unit[:100], nrow=10, scale=2)
    summary = {"n_samples": ec.num_samples, "sampler_steps": steps,
               "samples_finite": bool(np.all(np.isfinite(images)))}
    if ec.quality and summary["samples_finite"]:
        summary["quality"] = quality_scores(config, parts, images)
    return summary


def quality_scores(config, parts, images: np.ndarray) -> dict:
    """The classifier-based sample-quality score of :mod:`jebm.evaluation.quality`."""
    from jebm.evaluation import quality

    data = parts.data.images
    clf_params, accuracy, info = quality.load_or_train_classifier(data)
    reference = data.test_images[: config.eval.quality_reference]
    scores = quality.sample_quality(images, reference, clf_params, scale=config.dataset.scale)
    scores["classifier_test_accuracy"] = float(accuracy)
    return scores


def write_training_grid(config, parts, params, workdir: Path, step: int) -> None:
    """A sample grid during training (fresh chains, 64 samples)."""
    samples = fresh_samples(config, parts, params, jax.random.fold_in(_eval_key(config), step), 64,
                            config.sampler.num_steps)
    unit = np.clip(pipeline.to_unit_range(samples[..., 0], config.dataset.scale), 0.0, 1.0)
    out = workdir / "grids"
    out.mkdir(exist_ok=True)
    plots.save_image_grid(out / f"samples_step{step:07d}.png", unit, nrow=8, scale=2)


def evaluate_and_write(config, parts, params, workdir: Path, records) -> dict:
    """Runs the evaluation that fits the dataset and writes its files."""
    if parts.data.toy is not None:
        summary, arrays = evaluate_toy(config, parts, params)
        write_toy_outputs(workdir, summary, arrays, records)
    else:
        summary = evaluate_images(config, parts, params, workdir)
        if records:
            plots.plot_training_curves(workdir / "training_curves.png", records)
    logging.info("Evaluation: %s", {k: v for k, v in summary.items() if not isinstance(v, list)})
    return summary
