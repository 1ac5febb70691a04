"""The evaluator of a user's own data: ``train_and_evaluate(..., data=array)`` or a registered dataset.

Fresh chains as for every model (``samples.npy`` after ``eval.sampler_steps``,
``samples_long.npy`` after ``eval.long_run_steps``), scored against the
held-out examples the data pipeline set aside; 2D points also get the toy's
measures (KS, the energy on a grid, the held-out NLL), image-shaped examples
sample grids.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jebm import fileio
from jebm.evaluation import chains, metrics, plots
from jebm.evaluation.evaluators import likelihood_scores


def evaluate_user_data(config, parts, params) -> tuple[dict, dict]:
    """A user's own data: returns ``(summary, arrays)``, the scores and what the files are made of.

    The mean energy of the held-out examples, of the samples and of fresh noise
    (a trained energy puts held-out data below noise); the share of sample
    values outside the data's own ``[min, max]``. 2D points also get the toy's
    measures against the held-out points: KS of the samples (``ks_floor`` = KS
    of the held-out points against as many training points, the best a sampler
    can score), the energy on a grid over the box ``[−lim, lim]²`` that holds
    the data with a 20% margin, and the held-out NLL by quadrature and AIS on
    that box. Image-shaped examples ``(h, w, c)`` get sample grids.
    """
    ec, data = config.eval, parts.data
    key = chains.eval_key(config)  # the samples' own key, as for MNIST: jebm.sample(restored, key, n) redraws them
    k_long, k_noise, k_lik = jax.random.split(jax.random.fold_in(key, 0xDA7A), 3)
    steps = chains.eval_sampler_steps(config)
    samples = chains.fresh_samples(config, parts, params, key, ec.num_samples, steps)
    samples_long = chains.fresh_samples(config, parts, params, k_long, ec.num_samples, ec.long_run_steps)
    arrays = {"samples": samples, "samples_long": samples_long}
    low, high = data.value_range
    energy_fn = jax.jit(lambda x: parts.model.apply(params, x))
    mean_energy = lambda x: float(np.mean(np.asarray(energy_fn(jnp.asarray(x, jnp.float32)), np.float64)))  # noqa: E731
    summary = {
        "n_samples": ec.num_samples, "sampler_steps": steps, "long_run_steps": ec.long_run_steps,
        "n_held_out": int(len(data.held_out)), "samples_finite": bool(np.all(np.isfinite(samples))),
        "energy_held_out": mean_energy(data.held_out), "energy_noise": mean_energy(parts.noise_fn(k_noise, ec.num_samples)),
        **metrics.fraction_outside(samples, low, high),
    }
    if summary["samples_finite"]:
        summary["energy_samples"] = mean_energy(samples)
    if data.example_shape == (2,):
        scores, points = _points_scores(config, parts, params, samples, samples_long, energy_fn, k_lik)
        summary.update(scores)
        arrays.update(points)
    elif len(data.example_shape) == 3 and data.example_shape[-1] in (1, 3):
        arrays["grids"] = {}
        for name, x in (("samples", samples), ("samples_long", samples_long)):
            unit = np.clip((np.nan_to_num(x[:100]) - low) / max(high - low, 1e-12), 0.0, 1.0)
            arrays["grids"][name] = unit[..., 0] if unit.shape[-1] == 1 else unit.mean(-1)
    return summary, arrays


def _points_scores(config, parts, params, samples, samples_long, energy_fn, rng_key) -> tuple[dict, dict]:
    """2D points: KS against the held-out points, the energy on the grid, the held-out NLL; ``(scores, arrays)``."""
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
    out["grid"] = {"size": ec.grid_size, "lim": lim}
    if np.all(np.isfinite(energy)):
        out.update(likelihood_scores.toy_likelihood(config, parts, params, held, k_lik, lim=lim))
    return out, {"xs": xs, "ys": ys, "energy": energy, "held_out": held}


def write_user_data_outputs(workdir: Path, summary: dict, arrays: dict) -> None:
    """The files of :func:`evaluate_user_data`.

    ``samples.npy`` and ``samples_long.npy``; 2D points: ``energy_grid.npz``
    and, for a finite energy, ``energy_fit.png`` (the learned density with the
    samples and the held-out points) and ``ais_convergence.png``; image-shaped
    examples: ``samples.png`` and ``samples_long.png``.
    """
    fileio.save_npy(workdir / "samples.npy", arrays["samples"].astype(np.float32))
    fileio.save_npy(workdir / "samples_long.npy", arrays["samples_long"].astype(np.float32))
    if "energy" in arrays:
        xs, ys, energy, held = arrays["xs"], arrays["ys"], arrays["energy"], arrays["held_out"]
        fileio.save_npz(workdir / "energy_grid.npz", xs=xs, ys=ys, energy=energy)
        if np.all(np.isfinite(energy)):
            plots.plot_energy_fit(workdir / "energy_fit.png", xs, ys, energy, arrays["samples"], held,
                                  title=f"KS {summary['ks']:.3f} against {len(held)} held-out points")
            lk = summary.get("likelihood", {})
            likelihood_scores.write_ais_convergence(
                workdir, lk.get("ais_convergence"), exact=lk.get("log_z_exact"), upper=lk.get("log_z_upper"),
                title="AIS log Ẑ against the number of temperatures")
    for name, grid in arrays.get("grids", {}).items():
        plots.save_image_grid(workdir / f"{name}.png", grid, nrow=10, scale=2)
