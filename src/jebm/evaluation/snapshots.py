"""What a run shows of its model while it trains: sample grids and 2D fits from fresh chains.

Written every ``training.sample_every`` steps into ``workdir/grids``; the
chains run as long as the final evaluation's (:func:`jebm.evaluation.chains.eval_sampler_steps`).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jebm.data import pipeline
from jebm.evaluation import chains, metrics, plots


def write_training_grid(config, parts, params, workdir: Path, step: int) -> Path:
    """A sample grid during training: 64 fresh chains; returns the PNG's path.

    The chains run as long as the final evaluation's (``eval.sampler_steps``, None =
    L), so the grid shows what the final score will measure: a recipe evaluated after
    1,000 steps but trained with L = 40 would otherwise show 40-step noise.
    """
    samples = chains.fresh_samples(config, parts, params, jax.random.fold_in(chains.eval_key(config), step), 64,
                                   chains.eval_sampler_steps(config))
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
    key = jax.random.fold_in(jax.random.fold_in(chains.eval_key(config), 0x5A4), step)
    k_samples, k_true = jax.random.split(key)
    samples = chains.fresh_samples(config, parts, params, k_samples, SNAPSHOT_CHAINS, chains.eval_sampler_steps(config))
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
