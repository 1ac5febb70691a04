"""AIS test log-likelihood of trained MNIST energies: the uniform base against the box_kde base.

Restores each run given by ``--run NAME=WORKDIR`` (its newest checkpoint, the parameters its
evaluation uses) and estimates ``log Z`` of the model read as a density on [−1, 1]^784 by AIS
(``jebm.evaluation.protocol.image_likelihood``) from each base in ``--bases``:

* ``uniform``: chains start in uniform noise on the box, MALA proposals outside it are rejected;
* ``box_kde``: chains run on ``u = atanh(x)`` from a Gaussian kernel density of
  ``eval.ais_kde_centres`` training images (``eval.ais_kde_scale``, ``eval.ais_kde_margin``).

at every number of temperatures in ``--temps`` (fresh chains each, ``--chains`` of them), and
tabulates log Ẑ, the weights' ESS and spread, and the held-out log-likelihood it implies. AIS's
log Ẑ is a stochastic lower bound on log Z whatever the base, so the larger of two estimates is
the better one and the held-out log-likelihood (−E − log Ẑ) is a stochastic upper bound.
``--scan`` first runs a small pilot over the kernel's bandwidth and margin on the first run.

Writes ``<out-dir>/mnist_likelihood.{md,json,png}``.

Run: python experiments/mnist_likelihood.py --run :cpu=/path/to/workdir [--run ...] [--temps 10,100,1000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCAN_SCALES = (0.3, 0.5, 1.0)
SCAN_MARGINS = (1e-3, 3e-3, 1e-2)
SCAN_TEMPS = 100


def score(restored, base: str, temps: list[int], chains: int, scale=None, margin=None, tilt=0.0) -> dict:
    """``image_likelihood`` of a restored run with AIS at ``max(temps)`` and the smaller K as its curve."""
    from jebm.evaluation import protocol

    config = restored.config.copy_and_resolve_references()
    config.eval.ais_base = base
    config.eval.ais_temps = max(temps)
    config.eval.ais_curve = tuple(k for k in temps if k < max(temps)) or (max(temps),)
    config.eval.ais_chains = chains
    if scale is not None:
        config.eval.ais_kde_scale = scale
    if margin is not None:
        config.eval.ais_kde_margin = margin
    config.eval.ais_kde_tilt = tilt
    t0 = time.time()
    out = protocol.image_likelihood(config, restored.parts, restored.params, jax.random.key(config.seed + 0xA15))
    out["wall_s"] = time.time() - t0
    return out


def _f(v, spec):
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def write_outputs(out_dir: Path, payload: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, temps = payload["rows"], payload["temps"]
    _common.write_json(out_dir / "mnist_likelihood.json", payload)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        if r["base"] != "box_kde":
            continue
        ks = [c["num_temps"] for c in r["ais"]["convergence"]]
        ax.plot(ks, [c["log_z"] for c in r["ais"]["convergence"]], "o-", label=r["name"])
    ax.set_xscale("log")
    ax.set_xlabel("AIS temperatures K")
    ax.set_ylabel("log Ẑ (nats), box_kde base")
    ax.set_title("MNIST energies: AIS log Ẑ against K (a stochastic lower bound)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "mnist_likelihood.png", dpi=110)
    plt.close(fig)

    lines = [
        "# MNIST: AIS test log-likelihood, uniform base against box_kde base", "",
        f"Each run's newest checkpoint, the model read as p(y) = exp(−E(y))/Z on [−1, 1]^784. AIS: {payload['chains']} "
        f"chains, MALA, sigmoid schedule, log Ẑ at K = {' / '.join(map(str, temps))} temperatures (fresh chains for each K). "
        "`uniform`: chains start in uniform noise on the box, MALA restricted to it. `box_kde`: chains run on u = atanh(x) "
        f"from a Gaussian kernel density of {payload['kde']['centres']} training digits (bandwidth {payload['kde']['scale']} in u, "
        f"pixels on the box's faces {payload['kde']['margin']} inside it; `jebm.evaluation.likelihood.ais`). "
        "log Ẑ is a stochastic lower bound on log Z from either base, so the larger is the better estimate, and "
        "log p = mean over 1,000 held-out digits of −E(y) − log Ẑ is a stochastic *upper* bound on the test "
        "log-likelihood (bits/dim: a *lower* bound, the density at the stored pixel values times one level's cell, "
        "2/255 per pixel). No upper bound on log Z exists for these models (reverse AIS needs exact samples). "
        "sd(log w): the spread of the chains' log weights; ESS = (Σw)²/Σw².", "",
        "| run | FID | base | log Ẑ at K = " + " / ".join(map(str, temps)) + " | ESS | sd(log w) | log p (nats) | bits/dim ≥ | wall (s) |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        a = r["ais"]
        curve = " / ".join(_f(c["log_z"], ",.1f") for c in a["convergence"])
        base = r["base"]
        if base == "box_kde":
            base += f", tilt {a.get('kde_tilt', 0.0):g} (~{a.get('kde_effective_centres', a['kde_centres']):,.1f} centres)"
        lines.append(f"| {r['name']} | {_f(r.get('fid'), '.1f')} | {base} | {curve} | {_f(a['ess'], '.1f')} "
                     f"| {_f(a['log_weight_std'], ',.0f')} | {_f(a['log_likelihood_nats'], ',.1f')} "
                     f"| {_f(a['bits_per_dim'], '.2f')} | {_f(a['wall_s'], '.0f')} |")
    if payload.get("scan"):
        s = payload["scan"]
        lines += ["", f"## Pilot: bandwidth and margin ({s['run']}, box_kde, K = {SCAN_TEMPS}, {payload['chains']} chains)", "",
                  "| bandwidth \\ margin | " + " | ".join(map(str, SCAN_MARGINS)) + " |",
                  "|---|" + "---:|" * len(SCAN_MARGINS)]
        for scale in SCAN_SCALES:
            cells = [next(c["log_z"] for c in s["cells"] if c["scale"] == scale and c["margin"] == m) for m in SCAN_MARGINS]
            lines.append(f"| {scale} | " + " | ".join(_f(v, ',.1f') for v in cells) + " |")
    lines += ["", "![log Z against K](mnist_likelihood.png)", "", *_common.findings(out_dir / "mnist_likelihood.md"), "",
              "Command: `" + payload["command"] + "`", "", "Runs:", *[f"- {n}: `{w}`" for n, w in payload["runs"]], "",
              payload["environment"], ""]
    (out_dir / "mnist_likelihood.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", default=[], help="NAME=WORKDIR of a trained MNIST run (repeatable)")
    p.add_argument("--bases", default="uniform,box_kde")
    p.add_argument("--tilts", default="0",
                   help="box_kde rows: the tilts eval.ais_kde_tilt to run (centre i weighted by exp(-tilt E(y_i)))")
    p.add_argument("--temps", default="10,100,1000")
    p.add_argument("--chains", type=int, default=256)
    p.add_argument("--scan", action="store_true", help="pilot over bandwidth and margin on the first run")
    p.add_argument("--merge", action="store_true", help="keep the rows of runs already in the json that are not rerun")
    p.add_argument("--add-json", action="append", default=[],
                   help="also tabulate the rows of another run of this script (its mnist_likelihood.json)")
    p.add_argument("--out-dir", default=str(_common.RESULTS))
    args = p.parse_args(argv)

    from jebm import api

    temps = sorted({int(k) for k in args.temps.split(",")})
    tilts = [float(t) for t in args.tilts.split(",")]
    bases = args.bases.split(",")
    for b in bases:
        if b not in ("uniform", "box_kde"):
            p.error(f"--bases: {b!r} is not one of ['box_kde', 'uniform']")
    runs = []
    for spec in args.run:
        name, sep, workdir = spec.rpartition("=")
        if not sep or not name:
            p.error(f"--run={spec!r} must be NAME=WORKDIR")
        runs.append((name, workdir))
    out_dir = Path(args.out_dir)
    old = json.loads((out_dir / "mnist_likelihood.json").read_text()) if args.merge and (out_dir / "mnist_likelihood.json").exists() else {}
    rows = [r for r in old.get("rows", []) if r["name"] not in {n for n, _ in runs}]
    rows = sorted(rows, key=lambda r: r["name"])
    kept_runs = [(n, w) for n, w in old.get("runs", []) if n not in {m for m, _ in runs}]
    scan = old.get("scan") if not args.scan else None
    for extra in args.add_json:
        other = json.loads(Path(extra).read_text())
        if other["temps"] != temps or other["chains"] != args.chains:
            p.error(f"--add-json={extra}: its temps {other['temps']} / chains {other['chains']} differ from this run's")
        rows += other["rows"]
        kept_runs += other["runs"]
        scan = scan or other.get("scan")
    if not runs and not rows:
        p.error("nothing to tabulate: give --run NAME=WORKDIR or --add-json")
    restored = None
    for i, (name, workdir) in enumerate(runs):
        restored = api.restore(workdir)
        summary = Path(workdir) / "summary.json"
        fid = (json.loads(summary.read_text()).get("quality") or {}).get("fid") if summary.exists() else None
        if args.scan and i == 0:
            cells = []
            for scale in SCAN_SCALES:
                for margin in SCAN_MARGINS:
                    a = score(restored, "box_kde", [SCAN_TEMPS], args.chains, scale, margin)
                    cells.append({"scale": scale, "margin": margin, "log_z": a["log_z"], "ess": a["ess"]})
                    print(f"scan {name} scale={scale} margin={margin}: log Z-hat {a['log_z']:.1f}", flush=True)
            scan = {"run": name, "cells": cells}
        for base, tilt in [(b, t) for b in bases for t in (tilts if b == "box_kde" else [0.0])]:
            a = score(restored, base, temps, args.chains, tilt=tilt)
            print(f"{name} {base} tilt {tilt}: log Z-hat {[round(c['log_z'], 1) for c in a['convergence']]} ESS {a['ess']:.1f} "
                  f"log p {a['log_likelihood_nats']:.1f} ({a['wall_s']:.0f} s)", flush=True)
            rows.append({"name": name, "workdir": workdir, "step": restored.step, "fid": fid, "base": base, "ais": a})
    config = restored.config if restored is not None else _common.load_config("configs/mnist_sgld.py")
    payload = {"temps": temps, "chains": args.chains, "rows": rows, "scan": scan, "runs": kept_runs + runs,
               "kde": {"centres": config.eval.ais_kde_centres, "scale": config.eval.ais_kde_scale,
                       "margin": config.eval.ais_kde_margin},
               "command": "python experiments/mnist_likelihood.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "environment": _common.environment()}
    write_outputs(out_dir, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
