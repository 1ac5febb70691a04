"""The paper's Figure 5: the final MNIST model's sampler run for longer and longer.

Loads the newest checkpoint of a trained MNIST workdir, starts fresh chains from
the config's chain-initialisation noise (never the persistent bank) and runs the
training sampler (same η, C, m) on the final energy. The chains are snapshotted
after each requested length (default 1k, 2k, 5k, 10k steps): ONE set of chains is
continued from one length to the next, so the snapshots show the same chains
ageing, as in the paper's figure, and the whole figure costs the longest length,
not the sum of the lengths.

For each length it writes the sample grid (all panels side by side in one PNG,
plots.plot_grids_side_by_side) and jebm.evaluation.quality's scores of all the chains
against held-out test digits, plus the real-data floor (real digits scored
against other real digits at the same n). The scores are biased at small n:
compare them only at equal --num-samples / --quality-reference.

Outputs (``--out PREFIX``, default experiments/results/mnist_long_run):
PREFIX.png (the grids), PREFIX.json (all numbers), PREFIX.md (a table).

Run:
  python -m experiments.mnist_long_run --workdir=/tmp/mnist_cpu
  python -m experiments.mnist_long_run --workdir=/tmp/mnist_cpu --steps=1000,2000,5000,10000 \\
      --num-samples=1000 --out=/tmp/long_run

The config comes from the workdir's config.json unless --config names a config
spec (``configs/mnist_sgld.py:cpu``), which must be the one the workdir was
trained with. Cost: num_samples chains x the longest length CNN gradients; on 2
CPU cores 1,000 chains x 10,000 steps take hours, so try --num-samples=200 first.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

import jebm
from jebm import evaluation
from jebm.evaluation import plots
from jebm.data import pipeline

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common  # noqa: E402

logger = logging.getLogger("mnist_long_run")

DEFAULT_STEPS = (1000, 2000, 5000, 10000)
GRID_IMAGES = 64  # per panel, 8 x 8 as the training grids


def load_model(workdir: Path, config_spec: str | None):
    """``(config, parts, params, step)`` of the workdir's newest checkpoint (``jebm.restore``)."""
    try:
        restored = jebm.restore(workdir, config=_common.load_config(config_spec) if config_spec else None)
    except FileNotFoundError as err:
        raise SystemExit(f"{err}; train the model first") from None
    if not pipeline.is_image_data(restored.config.dataset.name):
        raise SystemExit(f"{workdir} was trained on dataset.name={restored.config.dataset.name!r}, not image data")
    return restored.config, restored.parts, restored.params, restored.step


def long_chains(config, parts, params, lengths, num_samples: int, seed: int):
    """``jebm.evaluation.chains.long_chains`` seeded by ``seed``, as ``(n, 28, 28)`` images per length.

    Returns:
      ``{length: (num_samples, 28, 28) float32 images in the data's scale}`` and
      ``{length: seconds to reach it}``.
    """
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5F1C)
    snapshots, seconds, _ = evaluation.chains.long_chains(config, parts, params, lengths, num_samples, key)
    return {n: x[..., 0].astype(np.float32) for n, x in snapshots.items()}, seconds


def score(config, parts, images, num_reference: int) -> dict | None:
    """jebm.evaluation.quality's scores of ``images``, or None when they are not finite."""
    if not np.all(np.isfinite(images)):
        return None
    config = config.copy_and_resolve_references()
    config.eval.quality_reference = num_reference
    return evaluation.quality_scores(config, parts, images)


def real_floor(parts, n: int, n_reference: int) -> dict | None:
    """Real test digits scored against other real test digits at the same n."""
    from jebm.evaluation import classifier_cache, quality

    data = parts.data.images
    params, _, _ = classifier_cache.load_or_train_classifier(data)
    try:
        return quality.real_data_reference_scores(data.test_images, params, n=n, n_reference=n_reference)
    except ValueError as err:  # too few test digits for two disjoint sets
        logger.warning("no real-data floor: %s", err)
        return None


def _fmt(value, spec=".4g") -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def write_markdown(path: Path, result: dict) -> None:
    rows = [
        "| chain length | FID | KID | class entropy (nats, max 2.303) | mean confidence | finite | seconds to reach |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in result["lengths"]:
        q = r["quality"] or {}
        kid = q.get("kid_mean")
        rows.append(
            f"| {r['steps']:,} | {_fmt(q.get('fid'))} | {_fmt(kid)} | "
            f"{_fmt(q.get('class_entropy'), '.3f')} | {_fmt(q.get('mean_confidence'), '.3f')} | "
            f"{'yes' if r['finite'] else 'NO'} | {r['seconds']:.0f} |"
        )
    floor = result["real_data_floor"]
    if floor:
        rows.append(
            f"| real digits (floor) | {_fmt(floor['fid'])} | {_fmt(floor['kid_mean'])} | "
            f"{_fmt(floor['class_entropy'], '.3f')} | {_fmt(floor['mean_confidence'], '.3f')} | yes | – |"
        )
    text = "\n".join([
        "# MNIST: longer sampling of the final model (the paper's Figure 5)",
        "",
        f"![grids]({Path(result['figure']).name})",
        "",
        (f"Model: `{result['workdir']}`, checkpoint step {result['checkpoint_step']}; sampler "
         f"{result['sampler']}; one set of {result['num_samples']} fresh chains from "
         f"{result['chain_init']}, snapshotted after each length "
         f"(grids show the first {min(GRID_IMAGES, result['num_samples'])})."),
        (f"Scores: jebm.evaluation.quality (classifier features, not Inception) against "
         f"{result['num_reference']} held-out digits; n = {result['num_samples']} samples. "
         "FID is biased upwards and the entropy downwards at small n: compare only at equal n."),
        f"Data: {result['data']}.",
        "",
        *rows,
        "",
        f"Command: `{result['command']}`  ",
        f"Wall time: {result['wall_time_s']:.0f} s. {result['environment']}",
        "",
    ])
    path.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a trained MNIST workdir (with checkpoints/)")
    parser.add_argument("--config", default=None, help="config spec (default: the workdir's config.json)")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)), help="increasing chain lengths")
    parser.add_argument("--num-samples", type=int, default=None, help="chains (default: config.eval.num_samples)")
    parser.add_argument("--quality-reference", type=int, default=None,
                        help="held-out digits to score against (default: config.eval.quality_reference)")
    parser.add_argument("--no-quality", action="store_true", help="grids only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(_common.RESULTS / "mnist_long_run"), help="output path prefix")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    lengths = sorted({int(s) for s in args.steps.split(",") if s})
    if not lengths or lengths[0] < 1:
        parser.error(f"--steps={args.steps!r} must list positive step counts")
    t0 = time.time()
    workdir = Path(args.workdir)
    config, parts, params, ckpt_step = load_model(workdir, args.config)
    n = args.num_samples or config.eval.num_samples
    n_ref = args.quality_reference or config.eval.quality_reference
    snapshots, seconds = long_chains(config, parts, params, lengths, n, args.seed)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = out.with_name(out.name + ".png")
    panels = [(f"{length:,} steps", np.clip(pipeline.to_unit_range(snapshots[length][:GRID_IMAGES],
                                                                     config.dataset.scale), 0.0, 1.0))
              for length in lengths]
    plots.plot_grids_side_by_side(figure, panels, nrow=8, title=f"{workdir.name}: fresh chains of the final model")

    s = config.sampler
    sampler = f"{s.name}, η = {s.step_size:g}" + (f", C = {s.friction:g}, m = {s.mass:g}" if s.name == "sghmc" else "")
    ci = config.chain_init
    result = {
        "workdir": str(workdir),
        "checkpoint_step": ckpt_step,
        "sampler": sampler,
        "chain_init": f"U({ci.low:g}, {ci.high:g})" if ci.name == "uniform" else f"N({ci.mean:g}, {ci.std:g}²)",
        "num_samples": n,
        "num_reference": n_ref,
        "data": parts.data.description,
        "figure": str(figure),
        "lengths": [],
        "real_data_floor": None,
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else "main(" + repr(argv) + ")",
        "environment": _common.environment(),
    }
    for length in lengths:
        images = snapshots[length]
        finite = bool(np.all(np.isfinite(images)))
        quality = None if args.no_quality else score(config, parts, images, n_ref)
        result["lengths"].append({"steps": length, "seconds": seconds[length], "finite": finite, "quality": quality})
    if not args.no_quality:
        result["real_data_floor"] = real_floor(parts, n, n_ref)
    result["wall_time_s"] = time.time() - t0
    _common.write_json(out.with_name(out.name + ".json"), result)
    write_markdown(out.with_name(out.name + ".md"), result)
    logger.info("wrote %s(.png, .json, .md)", out)
    return result


if __name__ == "__main__":
    main()
