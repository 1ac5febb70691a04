"""The paper's Figure 3: learned energy landscapes of the 2D toy for several η, side by side.

Trains ``configs/gmm_sgld.py`` (noise-initialised chains, Table 2) once per
step size η and plots each final energy on the 200×200 grid with its own
colour scale: the paper's point (Section 3.1) is that a smaller η needs, and
produces, steeper energy walls, so the scales differ by orders of magnitude.
Writes experiments/results/toy_eta_landscapes.png and .md.

Run: python experiments/toy_eta_landscapes.py [--etas 0.001,0.003,0.01,0.03,0.1] [--max-steps N] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import numpy as np  # noqa: E402

from jebm import train  # noqa: E402
from jebm.evaluation import plots  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/gmm_sgld.py:nopcd")
    parser.add_argument("--etas", default="0.001,0.003,0.01,0.03,0.1")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on training steps (0 = the config's 6,000)")
    parser.add_argument("--long-run-steps", type=int, default=2000)
    parser.add_argument("--out", default=str(_common.RESULTS / "toy_eta_landscapes"))
    parser.add_argument("--workdir", default="/tmp/jebm_eta_landscapes")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs found in --workdir")
    args = parser.parse_args()
    panels, rows = [], []
    for eta in [float(e) for e in args.etas.split(",")]:
        workdir = Path(args.workdir) / f"eta_{eta:g}"
        if args.reuse and (workdir / "summary.json").exists():
            summary = json.loads((workdir / "summary.json").read_text())
            grid = np.load(workdir / "energy_grid.npz")
            energy = grid["energy"]
            panels.append((f"η = {eta:g}: E in [{energy.min():.3g}, {energy.max():.3g}]", grid["xs"], grid["ys"], energy))
            rows.append((eta, float(energy.max() - energy.min()), summary["ks"], summary["kl"], summary["steps"],
                         summary.get("wall_time_s", float("nan")), ""))
            print(f"η={eta:g}: reused {workdir}", flush=True)
            continue
        config = _common.load_config(args.config)
        config.sampler.step_size = eta
        config.eval.long_run_steps = args.long_run_steps
        config.training.progress = False
        if args.max_steps:
            config.training.max_steps = args.max_steps
        t0 = time.time()
        try:
            summary = train.train_and_evaluate(config, workdir)
        except train.DivergenceError as e:  # a result too: SGLD is unstable past curvature 2/η
            rows.append((eta, float("nan"), float("nan"), float("nan"), None, time.time() - t0, str(e).split(":")[0]))
            print(f"η={eta:g}: {e}", flush=True)
            continue
        grid = np.load(workdir / "energy_grid.npz")
        energy = grid["energy"]
        panels.append((f"η = {eta:g}: E in [{energy.min():.3g}, {energy.max():.3g}]", grid["xs"], grid["ys"], energy))
        rows.append((eta, float(energy.max() - energy.min()), summary["ks"], summary["kl"],
                     summary["steps"], time.time() - t0, ""))
        print(f"η={eta:g}: energy range {energy.max() - energy.min():.3g}, KS {summary['ks']:.3f}, KL {summary['kl']:.3f}", flush=True)
    png = plots.plot_energy_landscapes(args.out + ".png", panels, title="Learned energy E(x) for several η (note the scales)")
    lines = [
        "# Figure 3: learned energy landscapes vs η",
        "",
        f"Command: `python experiments/toy_eta_landscapes.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Config: `{args.config}` with `sampler.step_size` = η. Environment: {_common.environment()}",
        "",
        f"![landscapes]({Path(png).name})",
        "",
        "| η | energy range on the grid (max − min) | KS (L steps) | KL | steps | wall (s) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {eta:g} | {rng:.3g} | {ks:.3f} | {kl:.3f} | {steps if steps is not None else '–'} | {sec:.0f} | {note} |"
              for eta, rng, ks, kl, steps, sec, note in rows]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}.md and {png}")


if __name__ == "__main__":
    main()
