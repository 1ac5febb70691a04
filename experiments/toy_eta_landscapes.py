"""The paper's Figure 3: learned energy landscapes of the 2D toy for several η, with seeds.

Trains ``configs/gmm_sgld.py`` (noise-initialised chains, Table 2) once per
(step size η, seed) and asks whether the learned landscape gets steeper or
flatter as η grows. The paper (Section 3.1, Figure 3) says a smaller η gives
steeper wells. Each run is scored by three steepness measures computed from
its ``energy_grid.npz`` (the 200×200 grid on [-1.6, 1.6]²), see ``steepness``:

  range    max − min of E over the grid;
  p1–p99   99th minus 1st percentile of E over the grid's cells (ignores the
           grid's most extreme 1% at each end, e.g. its far corners);
  |∇E|     the mean finite-difference gradient norm ‖∇ₓE‖ over the cells where
           the learned density exp(−E/T)/Z on the grid exceeds the uniform
           density 1/(number of cells), i.e. inside the model's own support.

The figure has one panel per η (seed 0's landscape, or the first seed that
finished if seed 0 diverged), each with its own colour scale. Writes
experiments/results/toy_eta_landscapes.{png,md,json}.

Run: python -m experiments.toy_eta_landscapes [--etas 0.001,0.003,0.01,0.03,0.1] [--seeds 0,1,2]
       [--max-steps N] [--reuse] [--report-only]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from jebm import train
from jebm.evaluation import plots

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, runner  # noqa: E402

MEASURES = (("range", "energy range (max − min)"), ("p1_p99", "p99 − p1 of E"), ("grad_support", "mean ‖∇E‖ in support"))


def steepness(xs: np.ndarray, ys: np.ndarray, energy: np.ndarray, temperature: float) -> dict:
    """The steepness measures of one learned energy on its evaluation grid (see the module docstring).

    ``energy[i, j] = E(xs[j], ys[i])``. The gradient is ``np.gradient`` (central
    differences inside, one-sided at the edges) with the grid's own spacing; the
    support mask is ``p > 1/N`` with ``p = softmax(−E/T)`` over the ``N`` cells.
    """
    e = np.asarray(energy, np.float64)
    gy, gx = np.gradient(e, ys, xs)
    grad = np.hypot(gx, gy)
    logits = -e / temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    support = p > 1.0 / p.size
    p1, p99 = np.percentile(e, [1, 99])
    return {
        "range": float(e.max() - e.min()), "e_min": float(e.min()), "e_max": float(e.max()),
        "p1_p99": float(p99 - p1), "p1": float(p1), "p99": float(p99),
        "grad_support": float(grad[support].mean()),
        "support_cells_fraction": float(support.mean()), "support_mass": float(p[support].sum()),
        "grad_grid_mean": float(grad.mean()),
    }


def _command() -> str:
    return f"python experiments/toy_eta_landscapes.py {' '.join(sys.argv[1:])}".rstrip()


def run_one(args, eta: float, seed: int) -> tuple[dict, tuple | None]:
    """Trains (or reuses) one (η, seed); returns its JSON row and its figure panel (None if diverged/absent)."""
    workdir = Path(args.workdir) / f"eta_{eta:g}_s{seed}"
    config = _common.load_config(args.config)
    config.seed = seed
    config.sampler.step_size = eta
    config.eval.long_run_steps = args.long_run_steps
    # No AIS: Figure 3 is about the energy landscape, not the likelihood, and AIS
    # (1,000 temperatures × 256 chains, forward and reverse) costs minutes per run.
    # eval.ais_temps = 0 skips it; the quadrature NLL on the grid is still computed.
    config.eval.ais_temps = 0
    config.training.progress = False
    if args.max_steps:
        config.training.max_steps = args.max_steps
    row = {"eta": eta, "seed": seed, "workdir": str(workdir)}
    reused = (args.reuse or args.report_only) and (workdir / "summary.json").exists()
    if reused:
        print(f"η={eta:g} seed {seed}: reused {workdir}", flush=True)
    elif args.report_only:  # not started, or still running: not counted
        print(f"η={eta:g} seed {seed}: no finished run in {workdir}; not counted", flush=True)
        return {**row, "status": "absent"}, None
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        # Which command, and where, trained it: a --reuse report (perhaps at a later commit) says so.
        (workdir / "invocation.txt").write_text(f"{_command()}\n{_common.environment()}\n")
        try:
            train.train_and_evaluate(config, workdir)
        except train.DivergenceError as e:  # a result too: SGLD is unstable past curvature 2/η
            print(f"η={eta:g} seed {seed}: {e}", flush=True)
    summary = runner.summary(workdir)
    invocation = workdir / "invocation.txt"
    row.update(status=summary["status"], wall_time_s=summary.get("wall_time_s"), reused=reused,
               trained_by=" with ".join(f"`{line}`" if i == 0 else line for i, line in
                                        enumerate(invocation.read_text().strip().splitlines()[:2]))
               if invocation.exists() else None)
    if summary["status"] != "ok":
        row.update(diverged_step=summary.get("step"), reason=summary.get("reason"))
        return row, None
    grid = np.load(workdir / "energy_grid.npz")
    xs, ys, energy = grid["xs"], grid["ys"], grid["energy"]
    row.update(steepness(xs, ys, energy, config.sampler.temperature))
    row.update(ks=summary["ks"], ks_long=summary["ks_long"], kl=summary["kl"], steps=summary["steps"],
               train_time_s=summary.get("train_time_s"), nll_exact=summary.get("nll_exact"))
    print(f"η={eta:g} seed {seed}: range {row['range']:.3g}, p1–p99 {row['p1_p99']:.3g}, "
          f"|∇E| {row['grad_support']:.3g}, KS {row['ks']:.3f}, KL {row['kl']:.3f}", flush=True)
    label = f"η = {eta:g} (seed {seed}): E in [{energy.min():.3g}, {energy.max():.3g}]"
    return row, (label, xs, ys, energy)


def per_eta(runs: list[dict], etas, seeds) -> list[dict]:
    out = []
    for eta in etas:
        mine = [r for r in runs if r["eta"] == eta]
        ok = [r for r in mine if r["status"] == "ok"]
        div = [r for r in mine if r["status"] == "diverged"]
        agg = {"eta": eta, "n_seeds": len(seeds), "n_ok": len(ok), "n_diverged": len(div),
               "n_absent": len(mine) - len(ok) - len(div),
               "diverged_steps": [r.get("diverged_step") for r in div], "diverged_seeds": [r["seed"] for r in div]}
        for key in [k for k, _ in MEASURES] + ["ks", "kl"]:
            agg[key] = _common.mean_std([r[key] for r in ok])
            agg[key + "_values"] = [r[key] for r in ok]
        out.append(agg)
    return out


def _pair(lo: dict, hi: dict, key: str) -> dict:
    """How clearly ``key`` differs between two η: seed separation, mean ± std overlap, chance of the separation."""
    lo_v, hi_v = np.asarray(lo[key + "_values"]), np.asarray(hi[key + "_values"])
    separated = bool(hi_v.min() > lo_v.max() or hi_v.max() < lo_v.min())
    # Under no effect every ordering of the pooled seeds is equally likely: a complete
    # separation in the observed direction then has probability 1 / C(n_lo + n_hi, n_hi).
    chance = 1.0 / math.comb(len(lo_v) + len(hi_v), len(hi_v))
    return {"from": lo["eta"], "to": hi["eta"], "separated": separated, "chance_if_no_effect": chance,
            "mean_pm_std_overlap": bool(abs(hi[key][0] - lo[key][0]) <= hi[key][1] + lo[key][1]),
            "relative_change": float(hi[key][0] / lo[key][0] - 1.0)}


def usable(aggs: list[dict]) -> list[dict]:
    """The η a trend is read over: at least two seeds finished and none left unrun."""
    return [a for a in aggs if a["n_ok"] >= 2 and a["n_absent"] == 0]


def trend(aggs: list[dict], key: str) -> dict:
    """Direction of ``key`` over the usable η (see ``usable``), with each step's and the ends' clarity."""
    use = usable(aggs)
    if len(use) < 2:
        return {"etas": [a["eta"] for a in use], "direction": "undetermined (fewer than two η with two finished seeds)"}
    means = [a[key][0] for a in use]
    diffs = np.diff(means)
    direction = ("grows" if np.all(diffs > 0) else "shrinks" if np.all(diffs < 0)
                 else "is not monotone (" + ("higher" if means[-1] > means[0] else "lower") + " at the largest η)")
    return {"etas": [a["eta"] for a in use], "means": means, "direction": direction,
            "steps": [_pair(a, b, key) for a, b in zip(use, use[1:])], "ends": _pair(use[0], use[-1], key)}


def fmt_ms(ms, digits=3) -> str:
    m, s = ms
    return "–" if not np.isfinite(m) else f"{m:.{digits}g} ± {s:.{digits}g}" if digits > 0 else f"{m:.3f} ± {s:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/gmm_sgld.py:nopcd")
    parser.add_argument("--etas", default="0.001,0.003,0.01,0.03,0.1")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (config.seed) per η")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on training steps (0 = the config's 6,000)")
    parser.add_argument("--long-run-steps", type=int, default=2000)
    parser.add_argument("--out", default=str(_common.RESULTS / "toy_eta_landscapes"))
    parser.add_argument("--workdir", default="/tmp/jebm_eta_landscapes")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs (summary.json) found in --workdir")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the finished runs in --workdir, count the others as absent")
    args = parser.parse_args()
    etas = [float(e) for e in args.etas.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    t_start = time.time()
    runs, panels = [], {}
    # Seeds outermost: a time-boxed sweep has every η at its first seeds before the later ones.
    for seed in seeds:
        for eta in etas:
            row, panel = run_one(args, eta, seed)
            runs.append(row)
            if panel is not None and eta not in panels:
                panels[eta] = panel
    aggs = per_eta(runs, etas, seeds)
    trends = {key: trend(aggs, key) for key, _ in MEASURES}
    command = _command()
    png = plots.plot_energy_landscapes(args.out + ".png", [panels[e] for e in etas if e in panels],
                                       title="Learned energy E(x) for several η (own colour scale each)")
    script_wall = time.time() - t_start
    _common.write_json(Path(args.out + ".json"), {
        "command": command, "config": args.config, "environment": _common.environment(),
        "etas": etas, "seeds": seeds, "long_run_steps": args.long_run_steps, "max_steps": args.max_steps,
        "ais_temps": 0, "runs": runs, "per_eta": aggs, "trends": trends,
        "script_wall_time_s": script_wall})
    write_md(args, command, png, runs, aggs, trends, seeds, panels, etas, script_wall)
    print(f"wrote {args.out}.md, {args.out}.json and {png}")


def write_md(args, command, png, runs, aggs, trends, seeds, panels, etas, script_wall):
    def steps_note(a):
        if not a["n_diverged"]:
            return "–"
        return ", ".join(f"s{s}: {st}" for s, st in zip(a["diverged_seeds"], a["diverged_steps"]))

    trained_by = sorted({r["trained_by"] for r in runs if r.get("trained_by")})
    lines = [
        "# Figure 3: learned energy landscapes vs η (with seeds)",
        "",
        f"Command: `{command}`  ",
        *([f"Runs trained by: {'; '.join(trained_by)}  "]
          if trained_by and not all(t.startswith(f"`{command}`") for t in trained_by) else []),
        f"Config: `{args.config}` with `sampler.step_size` = η, `seed` ∈ {{{', '.join(map(str, seeds))}}}, "
        f"`eval.long_run_steps` = {args.long_run_steps}, `eval.ais_temps` = 0 (no AIS). "
        f"Environment: {_common.environment()}",
        "",
        f"![landscapes]({Path(png).name})",
        "",
        "Panels: seed 0's final energy for each η that has a finished run (the first finished seed where seed 0 "
        "diverged), each on its own colour scale. " +
        ("No η is missing a panel." if len(panels) == len(etas) else
         "η without a panel (no seed finished): " + ", ".join(f"{e:g}" for e in etas if e not in panels) + "."),
        "",
        "## Per η (mean ± std over the finished seeds, std with ddof 0)",
        "",
        "| η | finished / seeds | diverged (seed: step) | energy range | p99 − p1 | mean ‖∇E‖ in support | KS | KL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in aggs:
        absent = f" ({a['n_absent']} not run)" if a["n_absent"] else ""
        lines.append(f"| {a['eta']:g} | {a['n_ok']} / {a['n_seeds']}{absent} | {a['n_diverged']} ({steps_note(a)}) | "
                     f"{fmt_ms(a['range'])} | {fmt_ms(a['p1_p99'])} | {fmt_ms(a['grad_support'])} | "
                     f"{fmt_ms(a['ks'], 0)} | {fmt_ms(a['kl'], 0)} |")
    lines += [
        "",
        "Columns, all from the run's `energy_grid.npz` (E at the 200×200 cell centres of [−1.6, 1.6]²) "
        "unless stated:",
        "",
        "- **energy range**: max − min of E over the grid.",
        "- **p99 − p1**: the 99th minus the 1st percentile of E over the 40,000 cells; "
        "less sensitive than max − min to the grid's far corners and to a single deep cell.",
        "- **mean ‖∇E‖ in support**: ‖∇ₓE‖ by finite differences (`np.gradient` with the grid spacing 0.016: "
        "central inside, one-sided at the edge), averaged over the cells where the learned density "
        "p = exp(−E/T)/Σ exp(−E/T) (T = 1) exceeds the uniform density 1/40,000, i.e. inside the "
        "model's own support. The JSON also has the share of cells and of learned mass in that support.",
        "- **KS**: the 2D KS statistic of 1,000 fresh-chain samples after L = 500 steps against 1,000 true "
        "samples (mean of 5 true draws); **KL**: KL(data ‖ model) discretised on the same grid.",
        "- **diverged**: the training guard stopped the run (non-finite or out-of-bound values) at that step; "
        "such a run has no landscape and no scores.",
        "",
        "## Every run",
        "",
        "| η | seed | status | energy range | p99 − p1 | mean ‖∇E‖ in support | E min | E max | KS | KL | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["eta"], r["seed"])):
        wall = f"{r['wall_time_s']:.0f}" if r.get("wall_time_s") is not None else "–"
        if r["status"] == "ok":
            lines.append(f"| {r['eta']:g} | {r['seed']} | ok | {r['range']:.3g} | {r['p1_p99']:.3g} | "
                         f"{r['grad_support']:.3g} | {r['e_min']:.3g} | {r['e_max']:.3g} | {r['ks']:.3f} | "
                         f"{r['kl']:.3f} | {wall} |")
        else:
            status = f"diverged at step {r.get('diverged_step')}" if r["status"] == "diverged" else "not counted (unfinished)"
            lines.append(f"| {r['eta']:g} | {r['seed']} | {status} | – | – | – | – | – | – | – | {wall} |")
    walls = [r["wall_time_s"] for r in runs if r.get("wall_time_s") is not None]
    n_reused = sum(bool(r.get("reused")) for r in runs)
    lines += ["", "Wall time: training plus evaluation of that run (`summary.json`'s `wall_time_s`); "
              f"{sum(walls):,.0f} s over the {len(walls)} runs. This invocation took {script_wall:,.0f} s"
              + (f" and reused {n_reused} of the {len(runs)} runs from earlier invocations into the same "
                 "`--workdir` (their wall times are their own)." if n_reused else "."), "",
              "## What it shows", ""]
    lines += what_it_shows(aggs, trends, seeds)
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


def what_it_shows(aggs, trends, seeds) -> list[str]:
    """The verdict, written from the numbers (so that a rerun rewrites it)."""
    out = []
    absent = sum(a["n_absent"] for a in aggs)
    if absent:
        out.append(f"- **Incomplete.** {absent} of {len(aggs) * len(seeds)} (η, seed) runs had not finished when the "
                   "sweep was stopped; they are not counted, and an η with an unfinished seed is left out of the trend.")
    unstable = [a for a in aggs if a["n_diverged"]]
    if unstable:
        out.append("- **Divergence.** " + "; ".join(
            f"η = {a['eta']:g}: {a['n_diverged']} of {a['n_ok'] + a['n_diverged']} seeds diverged ("
            + ", ".join(f"seed {s} at step {st}" for s, st in zip(a["diverged_seeds"], a["diverged_steps"])) + ")"
            for a in unstable) +
            ". SGLD is unstable once the learned curvature passes 2/η, and training steepens the wells until it does.")
    use = usable(aggs)
    if len(use) < 2:
        out.append("- **Steepness.** Fewer than two η have two finished seeds; no trend is stated.")
        return out
    partial = [a for a in use if a["n_diverged"]]
    names = ", ".join(f"{a['eta']:g}" for a in use)
    text = f"- **Stable range.** The trend is read over η = {names} (at least two seeds finished)."
    if partial:
        text += (" At " + ", ".join(f"η = {a['eta']:g} ({a['n_ok']} of {a['n_seeds']} seeds)" for a in partial) +
                 " the numbers are the survivors': a seed that diverged had, by the argument above, wells too steep "
                 "for that η, so leaving it out is expected to make that η look flatter, not steeper.")
    out.append(text)
    by_eta = {a["eta"]: a for a in aggs}
    for key, name in MEASURES:
        t = trends[key]
        vals = "; ".join(f"{fmt_ms(by_eta[e][key])} at η = {e:g}" for e in t["etas"])
        steps = "; ".join(f"{p['from']:g} → {p['to']:g}: {p['relative_change']:+.0%}, "
                          + ("seeds separated" if p["separated"] else "seeds overlap") for p in t["steps"])
        ends = t["ends"]
        out.append(f"- **{name}** {t['direction']} with η: {vals}. Step by step: {steps}. "
                   f"Ends ({ends['from']:g} → {ends['to']:g}): {ends['relative_change']:+.0%}, "
                   + (f"every seed on one side of every other (chance {ends['chance_if_no_effect']:.2g} with no effect)"
                      if ends["separated"] else "the seeds overlap") + ".")
    directions = {trends[k]["direction"] for k, _ in MEASURES}
    if len(directions) == 1 and next(iter(directions)) in ("grows", "shrinks"):
        d = next(iter(directions))
        verdict = (f"All three measures agree: over the stable range the learned landscape's steepness **{d}** "
                   f"as η grows" + (" — the opposite of the paper's Figure 3 (smaller η, steeper wells)" if d == "grows"
                                    else ", as the paper's Figure 3 says (smaller η, steeper wells)") + ". ")
    else:
        verdict = "The measures do not agree on one monotone direction over the stable range. "
    ends_clear = all(trends[k]["ends"]["separated"] for k, _ in MEASURES)
    unclear_steps = sorted({(p["from"], p["to"]) for k, _ in MEASURES for p in trends[k]["steps"] if not p["separated"]})
    if ends_clear:
        verdict += (f"Across the whole range ({use[0]['eta']:g} → {use[-1]['eta']:g}) the seed spread does not blur it: "
                    "for each measure every seed at one end is beyond every seed at the other, though with "
                    f"{use[0]['n_ok']} and {use[-1]['n_ok']} seeds that alone has a {trends['range']['ends']['chance_if_no_effect']:.2g} "
                    "chance without any effect. ")
    else:
        verdict += "Even between the ends of the range the seeds overlap for some measure, so the answer is unclear. "
    if unclear_steps:
        verdict += ("Between " + "; ".join(f"η = {a:g} and {b:g}" for a, b in unclear_steps) +
                    " the seeds overlap for at least one measure: there the seed spread makes the answer unclear.")
    out.append("- **Verdict.** " + verdict.rstrip())
    out.append("- The paper (M. Bunino, \"On the difficulty of training MCMC-based maximum likelihood learning of "
               "energy-based models\", Section 3.1, Figure 3) does not state its η values or initialisation, so its "
               "scales are not directly comparable with these.")
    return out


if __name__ == "__main__":
    main()
