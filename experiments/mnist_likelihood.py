"""AIS test log-likelihood of trained MNIST energies: the uniform base against the box_kde base.

Restores each run given by ``--run NAME=WORKDIR`` (its newest checkpoint, the parameters its
evaluation uses) and estimates ``log Z`` of the model read as a density on [−1, 1]^784 by AIS
(``jebm.evaluation.evaluators.images.image_likelihood``) from each base in ``--bases``:

* ``uniform``: chains start in uniform noise on the box, MALA proposals outside it are rejected;
* ``box_kde``: chains run on ``u = atanh(x)`` from a Gaussian kernel density of
  ``eval.ais_kde_centres`` training images (``eval.ais_kde_scale``, ``eval.ais_kde_margin``), each
  ``--tilts`` value weighting image i by ``exp(−tilt·E(y_i)/T)``;

both at every number of temperatures in ``--temps`` (fresh chains each, ``--chains`` of them), and
tabulates log Ẑ, the weights' ESS and spread, and the held-out log-likelihood it implies. AIS's
log Ẑ is a stochastic lower bound on log Z whatever the base, so the larger of two estimates is
the better one and the held-out log-likelihood (−E − log Ẑ) is a stochastic upper bound.
``--scan`` first runs a small pilot over the kernel's bandwidth and margin on the first run.

Writes ``<out-dir>/mnist_likelihood.{md,json,png}``.

Run: python -m experiments.mnist_likelihood --run :cpu=/path/to/workdir [--run ...] [--temps 10,100,1000]
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
import scipy.special

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, runner  # noqa: E402

SCAN_SCALES = (0.3, 0.5, 1.0)
SCAN_MARGINS = (1e-3, 3e-3, 1e-2)
SCAN_TEMPS = 100


def score(restored, base: str, temps: list[int], chains: int, scale=None, margin=None, tilt=0.0) -> dict:
    """``image_likelihood`` of a restored run with AIS at ``max(temps)`` and the smaller K as its curve."""
    from jebm.evaluation.evaluators import images as image_evaluator

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
    out = image_evaluator.image_likelihood(config, restored.parts, restored.params, jax.random.key(config.seed + 0xA15))
    out["wall_s"] = time.time() - t0
    return out


def by_class(restored, temps: int, chains: int) -> list[dict]:
    """log Ẑ_c: AIS from a base built on class c's training digits alone, for each digit class c.

    The base is ``box_kde`` on the first ``eval.ais_kde_centres`` training digits of class c
    (tilted as configured). The chains stay near where they start (R̂ of the long runs'
    energies is 5-7), so ``log Ẑ_c`` measures the model's mass near class c's digits (a
    stochastic lower bound on it), and ``softmax(log Ẑ_c)`` the class proportions the model
    would reach if its chains mixed between the classes.
    """
    from jebm.data import mnist
    from jebm.evaluation import likelihood
    from jebm.evaluation.evaluators import images as image_evaluator
    from jebm.evaluation.evaluators import likelihood_scores

    parts, params = restored.parts, restored.params
    config = restored.config.copy_and_resolve_references()
    config.eval.ais_base, config.eval.ais_chains = "box_kde", chains
    ec = config.eval
    energy_fn = jax.jit(lambda y: parts.model.apply(params, y))
    images = parts.data.images
    train, labels = image_evaluator.training_images(config, images)
    test = mnist.preprocess(images.test_images[: ec.quality_reference], config.dataset.scale)
    test_labels = images.test_labels[: ec.quality_reference]
    test_energy = np.asarray(energy_fn(test), np.float64)
    out = []
    for c in range(10):
        class_images = train[labels == c][: ec.ais_kde_centres]
        if not len(class_images):
            continue  # a class the training images lack
        centres, log_w = image_evaluator.kde_centres(config, energy_fn, class_images)
        t0 = time.time()
        res = likelihood.ais(jax.random.key(config.seed + 0xC1A55 + c), energy_fn, parts.data.example_shape,
                             num_chains=ec.ais_chains, num_temps=temps,
                             options=likelihood_scores.ais_options(config, 1.0, centres, log_w))
        out.append({"class": c, "log_z": res.log_z, "ess": res.ess, "log_weight_std": float(np.std(res.log_weights)),
                    "centres": int(len(centres)), "median_energy_held_out": float(np.median(test_energy[test_labels == c])),
                    "wall_s": time.time() - t0})
        print(f"class {c}: log Z-hat {res.log_z:.1f} sd(log w) {np.std(res.log_weights):.1f}", flush=True)
    return out


def independent_pixels(restored, smoothing: float = 0.1) -> dict:
    """A reference: bits/dim of the held-out digits under independent per-pixel histograms of the training digits.

    ``p(y) = Π_j h_j(y_j)`` with ``h_j`` the 256-level histogram of pixel j over the training
    images plus ``smoothing`` counts per level: an exact discrete likelihood, no dequantisation.
    """
    from jebm.evaluation.evaluators import images as image_evaluator

    config, images = restored.config, restored.parts.data.images
    train, _ = image_evaluator.training_images(config, images)
    train = train.reshape(len(train), -1)
    test = images.test_images[: config.eval.quality_reference].reshape(-1, train.shape[1])
    d = train.shape[1]
    counts = np.stack([np.bincount(train[:, j], minlength=256) for j in range(d)]).astype(np.float64) + smoothing
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))
    nats = log_p[np.arange(d)[None, :], test].sum(axis=1)
    return {"bits_per_dim": float(-nats.mean() / (d * math.log(2.0))), "smoothing": smoothing,
            "n_train": int(len(train)), "n_test": int(len(test))}


def _class_list(value) -> list[dict]:
    """The ``by_class`` entries of a payload: a list (one per run), or one dict from an earlier version."""
    if not value:
        return []
    return [value] if isinstance(value, dict) else list(value)


def _f(v, spec):
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def write_outputs(out_dir: Path, payload: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps = payload["temps"]
    first = {}
    for i, (name, _) in enumerate(payload["runs"]):
        first.setdefault(name, i)
    payload["runs"] = sorted({n: w for n, w in payload["runs"]}.items(), key=lambda nw: first[nw[0]])
    rows = payload["rows"] = sorted(payload["rows"], key=lambda r: (first.get(r["name"], len(first)), r["base"] != "uniform",
                                                                     r["ais"].get("kde_tilt") or 0.0))
    _common.write_json(out_dir / "mnist_likelihood.json", payload)
    fig, ax = plt.subplots(figsize=(8.0, 4.4))
    colours = {n: f"C{i}" for i, n in enumerate(dict.fromkeys(r["name"] for r in rows))}
    for r in rows:
        if r["base"] != "box_kde":
            continue
        tilt = r["ais"].get("kde_tilt") or 0.0
        ks = [c["num_temps"] for c in r["ais"]["convergence"]]
        z = [c["log_z"] for c in r["ais"]["convergence"]]
        ax.plot(ks, [v - z[-1] for v in z], "o-" if tilt else "o--", color=colours[r["name"]],
                label=f"{r['name']}, tilt {tilt:g}")
    ax.set_xscale("log")
    # Relative to each row's own largest K, so runs whose log Ẑ differ by 10⁴ nats share one axis; symlog
    # because a run far from converged moves by thousands of nats where the others move by tens.
    ax.set_yscale("symlog", linthresh=10.0)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("AIS temperatures K")
    ax.set_ylabel("log Ẑ(K) − log Ẑ(largest K) (nats)")
    ax.set_title("MNIST energies, box_kde base: AIS log Ẑ against K (flat = converged in K)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
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
    if payload.get("reference"):
        ref = payload["reference"]
        lines += ["", f"Reference: independent per-pixel histograms of the {ref['n_train']:,} training digits "
                  f"(256 levels, {ref['smoothing']:g} added counts per level) give the {ref['n_test']:,} held-out digits "
                  f"**{ref['bits_per_dim']:.2f} bits/dim**, an exact discrete likelihood."]
    if payload.get("scan"):
        s = payload["scan"]
        lines += ["", f"## Pilot: bandwidth and margin ({s['run']}, box_kde, K = {SCAN_TEMPS}, {payload['chains']} chains)", "",
                  "| bandwidth \\ margin | " + " | ".join(map(str, SCAN_MARGINS)) + " |",
                  "|---|" + "---:|" * len(SCAN_MARGINS)]
        for scale in SCAN_SCALES:
            cells = [next(c["log_z"] for c in s["cells"] if c["scale"] == scale and c["margin"] == m) for m in SCAN_MARGINS]
            lines.append(f"| {scale} | " + " | ".join(_f(v, ',.1f') for v in cells) + " |")
    for b in payload.get("by_class") or []:
        z = np.array([r["log_z"] for r in b["rows"]])
        share = np.exp(z - scipy.special.logsumexp(z))
        lines += ["", f"## Where the mass is: AIS from one digit class at a time ({b['run']}, box_kde tilt {b['tilt']:g}, "
                  f"K = {b['num_temps']}, {b['chains']} chains)", "",
                  "log Ẑ_c: AIS from a base built on class c's training digits alone; the chains stay near where they start, "
                  "so it measures the model's mass near class c (a stochastic lower bound on it). "
                  "Share: softmax of log Ẑ_c, the class proportions the model would reach if its chains mixed.", "",
                  "| class | log Ẑ_c | sd(log w) | log Ẑ_c − max | share | median held-out energy |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r, sh in zip(b["rows"], share):
            lines.append(f"| {r['class']} | {_f(r['log_z'], ',.1f')} | {_f(r['log_weight_std'], '.1f')} "
                         f"| {_f(r['log_z'] - z.max(), ',.1f')} | {sh:.3g} | {_f(r['median_energy_held_out'], ',.0f')} |")
    lines += ["", "![log Z against K](mnist_likelihood.png)", "", *_common.findings(out_dir / "mnist_likelihood.md"), "",
              "## Commands", "", "Each row comes from one of them; the last tabulates:", "",
              *[f"- `{c}`" for c in [*payload.get("commands", []), payload["command"]]], "", "Runs:", *[f"- {n}: `{w}`" for n, w in payload["runs"]], "",
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
    p.add_argument("--by-class", type=int, default=0, metavar="K",
                   help="also AIS with K temperatures from each digit class's training digits alone, on the first run")
    p.add_argument("--merge", action="store_true", help="keep the rows of runs already in the json that are not rerun")
    p.add_argument("--add-json", action="append", default=[],
                   help="also tabulate the rows of another run of this script (its mnist_likelihood.json)")
    p.add_argument("--out-dir", default=str(_common.RESULTS))
    args = p.parse_args(argv)

    from jebm import api

    temps = sorted({int(k) for k in args.temps.split(",")})
    tilts = [float(t) for t in args.tilts.split(",")]
    bases = [b for b in args.bases.split(",") if b]
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
    old = runner.read_results(out_dir / "mnist_likelihood.json") if args.merge else {}
    if old and (old["temps"] != temps or old["chains"] != args.chains):
        p.error(f"--merge: {out_dir / 'mnist_likelihood.json'} has temps {old['temps']} / chains {old['chains']}; "
                f"pass the same --temps and --chains")
    scored = [(b, t) for b in bases for t in (tilts if b == "box_kde" else [0.0])]  # the rows each --run gets

    def _rescored(r):  # an earlier row that this call scores again
        return r["name"] in {n for n, _ in runs} and (r["base"], r["ais"].get("kde_tilt") or 0.0) in scored

    rows = [r for r in old.get("rows", []) if not _rescored(r)]
    kept_runs = [(n, w) for n, w in old.get("runs", []) if n not in {m for m, _ in runs}]
    scan = old.get("scan") if not args.scan else None
    reference = old.get("reference")
    classes = _class_list(old.get("by_class"))
    commands = list(old.get("commands", [])) + ([old["command"]] if old.get("command") else [])
    for extra in args.add_json:
        other = json.loads(Path(extra).read_text())
        if other["temps"] != temps or other["chains"] != args.chains:
            p.error(f"--add-json={extra}: its temps {other['temps']} / chains {other['chains']} differ from this run's")
        rows += other["rows"]
        kept_runs += other["runs"]
        scan = scan or other.get("scan")
        reference = reference or other.get("reference")
        classes += [c for c in _class_list(other.get("by_class")) if c["run"] not in {k["run"] for k in classes}]
        commands += other.get("commands") or [other["command"]]
    if not runs and not rows:
        p.error("nothing to tabulate: give --run NAME=WORKDIR or --add-json")
    restored = None
    for i, (name, workdir) in enumerate(runs):
        restored = api.restore(workdir)
        reference = reference or independent_pixels(restored)
        fid = ((runner.summary(workdir) or {}).get("quality") or {}).get("fid")
        if args.scan and i == 0:
            cells = []
            for scale in SCAN_SCALES:
                for margin in SCAN_MARGINS:
                    a = score(restored, "box_kde", [SCAN_TEMPS], args.chains, scale, margin)
                    cells.append({"scale": scale, "margin": margin, "log_z": a["log_z"], "ess": a["ess"]})
                    print(f"scan {name} scale={scale} margin={margin}: log Z-hat {a['log_z']:.1f}", flush=True)
            scan = {"run": name, "cells": cells}
        if args.by_class and i == 0:
            classes = [c for c in classes if c["run"] != name]
            classes.append({"run": name, "num_temps": args.by_class, "chains": args.chains,
                            "tilt": restored.config.eval.ais_kde_tilt, "rows": by_class(restored, args.by_class, args.chains)})
        for base, tilt in scored:
            a = score(restored, base, temps, args.chains, tilt=tilt)
            print(f"{name} {base} tilt {tilt}: log Z-hat {[round(c['log_z'], 1) for c in a['convergence']]} ESS {a['ess']:.1f} "
                  f"log p {a['log_likelihood_nats']:.1f} ({a['wall_s']:.0f} s)", flush=True)
            rows.append({"name": name, "workdir": workdir, "step": restored.step, "fid": fid, "base": base, "ais": a})
    config = restored.config if restored is not None else _common.load_config("configs/mnist_sgld.py")
    payload = {"temps": temps, "chains": args.chains, "rows": rows, "scan": scan, "by_class": classes,
               "reference": reference,
               "runs": kept_runs + runs,
               "kde": {"centres": config.eval.ais_kde_centres, "scale": config.eval.ais_kde_scale,
                       "margin": config.eval.ais_kde_margin},
               "command": "python experiments/mnist_likelihood.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "commands": commands,
               "environment": _common.environment()}
    write_outputs(out_dir, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
