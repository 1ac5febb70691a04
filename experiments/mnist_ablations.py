"""The report's Section-4.2 MNIST claims as an ablation suite at the `:cpu` scale.

M. Bunino, *On the difficulty of training MCMC-based maximum likelihood learning of
energy-based models*, Section 4.2, claims on MNIST:

1. ``beta``: with E = f + (β/2)f² and β learnable from ≈ 0, training drives β to about 1;
2. ``gamma``: with E = f + γ√n‖x‖², training drives γ to 0 (the term is useless), a model
   with both β and γ behaves the same, and hand-tuning β helps;
3. ``batch_size``: larger batches make samples less varied (more 1s and 7s); 64 is good;
4. ``architecture``: LeNet with tanh propagates gradients badly, LeakyReLU and Swish work,
   and the custom CNN is slightly better than LeNet;
5. ``eta``: η is the most critical hyperparameter for quality and stability.

Every run is ``configs/mnist_sgld.py:cpu_lr5e4`` (the quadratic head, SGLD η = 2e-4, L = 40 in
training and 1,000 steps at evaluation, chains in [−1, 1], a persistent bank with 5%
re-initialisation, Adam lr 5e-4, 1,500 steps: the ``:cpu`` recipe when these runs were
made; today's ``:cpu`` is the same at lr 2e-4) with one thing changed, trained by the CLI in its own
workdir and read back from its ``summary.json`` and ``metrics.jsonl``. Groups:

* ``head``: linear, quadratic (jebm's offset 1 and Eq. 20's offset 0), β, γ, β+γ learnable,
  β fixed at 0.5 / 1 / 2;
* ``batch_size``: 16, 64, 256 at the same number of examples seen (1,500 × 64 = 96,000,
  so 6,000 / 1,500 / 375 steps): the compute per run stays that of the recipe;
* ``architecture``: LeNet and the custom CNN, each with tanh, LeakyReLU and Swish;
* ``eta``: η from 5e-5 to 1e-3 around the recipe's 2e-4; a run that stops with a
  divergence error is recorded with the step it diverged at.

Outputs ``<out-dir>/<name>.md`` (verdict per claim first, then one row per run),
``.json`` (``rows``: ``group``, ``variant``, ``seed``, ``fid``, ``kid``, ``class_entropy``,
``share_1_7``, ``fraction_outside_range``, ``ais_log_likelihood``, ``ais_ess``,
``long_fid``, ``long_class_entropy``, ``wall_time_s``, ``diverged``, ``diverged_step``,
``beta`` / ``gamma`` where the head has them, and their trajectory) and ``.png``.

Run (one run per core; ``--reuse`` reads the workdirs that already have a summary, ``--merge``
keeps the rows of the results file that the selection does not rerun):
  taskset -c 0 python -m experiments.mnist_ablations --groups=head --seeds=0,1 --workroot=/tmp/abl
  python -m experiments.mnist_ablations --list
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, runner  # noqa: E402

# The :cpu recipe as these runs used it: :cpu at Adam lr 5e-4, before :cpu moved to 2e-4.
CONFIG = "configs/mnist_sgld.py:cpu_lr5e4"
RECIPE_BATCH, RECIPE_STEPS = 64, 1500

# group -> {variant: (what it changes, overrides)}
GROUPS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "head": {
        "linear": ("E = f", ["energy.head=linear"]),
        "quadratic": ("E = ½(f + 1)² (the recipe)", []),
        "quadratic_eq20": ("E = ½f² (Eq. 20, offset 0)", ["energy.head=quadratic", "energy.head_offset=0.0"]),
        "beta": ("E = f + (β/2)f², β learnable from ≈ 0", ["energy.head=beta"]),
        "gamma": ("E = f + γ√n‖x‖², γ learnable from ≈ 0", ["energy.head=gamma"]),
        "beta_gamma": ("both terms, both learnable", ["energy.head=beta_gamma"]),
        **{f"beta_fixed_{b}": (f"E = f + (β/2)f², β fixed at {b}",
                               ["energy.head=beta", "energy.beta_learnable=False", f"energy.beta_init={b}"])
           for b in ("0.5", "1.0", "2.0")},
    },
    "batch_size": {
        f"batch_{b}": (f"batch {b}, {RECIPE_STEPS * RECIPE_BATCH // b} steps (same examples seen)",
                       [f"training.batch_size={b}", f"training.max_steps={RECIPE_STEPS * RECIPE_BATCH // b}"])
        for b in (16, 64, 256)
    },
    "architecture": {
        f"{net}_{act}": (f"{net} with {act}", [f"energy.name={net}", f"energy.activation={act}"])
        for net in ("lenet", "custom_cnn") for act in ("tanh", "leaky_relu", "swish")
    },
    "eta": {
        f"eta_{eta}": (f"SGLD η = {eta}", [f"sampler.step_size={eta}"]) for eta in ("5e-05", "0.0001", "0.0002", "0.0005", "0.001")
    },
}

# Variants whose overrides leave the recipe unchanged (custom_cnn's default activation is Swish): one run, the
# recipe's own, stands in every group for them, and their rows say so (``same_run_as``).
SAME_AS_RECIPE = {("batch_size", "batch_64"), ("eta", "eta_0.0002"), ("architecture", "custom_cnn_swish")}
RECIPE = ("head", "quadratic")

DIVERGED = re.compile(r"diverged at step (\d+)")


def workdir_for(workroot: Path, group: str, variant: str, seed: int) -> Path:
    return workroot / f"{group}_{variant}_s{seed}"


def command_for(group: str, variant: str, seed: int, workdir: Path, extra) -> list[str]:
    return runner.cli_command(CONFIG, workdir, [f"seed={seed}", *GROUPS[group][variant][1], *extra])


def head_trajectory(workdir: Path) -> list[dict]:
    """``[{"step", "beta"?, "gamma"?}]`` from the run's metrics.jsonl (records that log a head scalar)."""
    out = []
    for record in runner.metrics(workdir):
        values = {k: record[k] for k in ("beta", "gamma") if k in record}
        if values and "step" in record:
            out.append({"step": record["step"], **values})
    return out


def row_from(group: str, variant: str, seed: int, run: runner.Run) -> dict:
    workdir, summary, returncode = run.workdir, run.summary or {}, run.returncode
    log = workdir / "run.log"
    match = DIVERGED.search(log.read_text(errors="replace")) if log.exists() else None
    q = summary.get("quality") or {}
    lr = summary.get("long_run") or {}
    last = (lr.get("curve") or [{}])[-1]
    ais = summary.get("ais") or {}
    hist = q.get("class_histogram")
    head = summary.get("head") or {}
    row = {
        "group": group, "variant": variant, "seed": seed, "label": GROUPS[group][variant][0], "command": run.shown,
        "returncode": returncode,
        "fid": q.get("fid"), "kid": q.get("kid_mean"), "class_entropy": q.get("class_entropy"),
        "class_histogram": hist,
        "share_1_7": (hist[1] + hist[7]) / sum(hist) if hist and sum(hist) else None,
        "fraction_outside_range": summary.get("fraction_outside_range"),
        "ais_log_likelihood": ais.get("log_likelihood_nats"), "ais_ess": ais.get("ess"),
        "long_fid": last.get("fid"), "long_class_entropy": last.get("class_entropy"),
        "wall_time_s": run.wall_time_s,
        "diverged": summary.get("status") == "diverged" or bool(match) or (returncode != 0 and not summary),
        "diverged_step": summary.get("step") if summary.get("status") == "diverged" else int(match.group(1)) if match else None,
        "trajectory": head_trajectory(workdir),
    }
    row.update({k: head[k] for k in ("beta", "gamma") if k in head})
    return row


def run_one(group: str, variant: str, seed: int, args) -> dict:
    """Trains one variant (or reads it back with ``--reuse``); a variant in ``SAME_AS_RECIPE`` is the recipe's run,
    trained once and read back by every group that names it."""
    alias = (group, variant) in SAME_AS_RECIPE
    run_group, run_variant = RECIPE if alias else (group, variant)
    workdir = workdir_for(Path(args.workroot), run_group, run_variant, seed)
    run = runner.train(command_for(run_group, run_variant, seed, workdir, args.override), workdir,
                     reuse=args.reuse or alias, label=f"{group}/{variant}/seed {seed}", log=workdir / "run.log")
    row = row_from(group, variant, seed, run)
    if alias:
        row["same_run_as"] = "/".join(RECIPE)
    return row


# ----------------------------------------------------------------------------- verdicts


def _mean(rows, key, seeds=None, **where):
    vals = [r[key] for r in rows if r.get(key) is not None and all(r[k] == v for k, v in where.items())
            and (seeds is None or r["seed"] in seeds) and not r["diverged"] and math.isfinite(r[key])]
    return float(np.mean(vals)) if vals else None


def _fmt(v, spec=".3g"):
    return "–" if v is None else format(v, spec)


def verdicts(rows) -> list[tuple[str, str, str]]:
    """``(claim, verdict, evidence)`` per claim; the rules are written into the evidence."""
    out = []
    by = lambda g: [r for r in rows if r["group"] == g]  # noqa: E731
    head = by("head")
    beta = _mean(head, "beta", variant="beta")
    if beta is None:
        out.append(("1. learnable β → ≈ 1", "not run", "no `head/beta` run"))
    else:
        ok = 0.75 <= beta <= 1.25
        out.append(("1. learnable β → ≈ 1", "holds" if ok else "does not hold",
                    f"final β {beta:.3g} (mean over seeds; rule: within [0.75, 1.25])"))
    gamma, gamma_bg, beta_bg = (_mean(head, "gamma", variant="gamma"), _mean(head, "gamma", variant="beta_gamma"),
                                _mean(head, "beta", variant="beta_gamma"))
    if gamma is None and gamma_bg is None:
        out.append(("2. learnable γ → 0; β+γ the same", "not run", "no `head/gamma` or `head/beta_gamma` run"))
    else:
        gammas = [g for g in (gamma, gamma_bg) if g is not None]
        ok = all(abs(g) < 0.01 for g in gammas)
        out.append(("2. learnable γ → 0; β+γ the same", "holds" if ok else "does not hold",
                    f"final γ: γ head {_fmt(gamma)}, β+γ head {_fmt(gamma_bg)} (β there {_fmt(beta_bg)}); "
                    "rule: |γ| < 0.01, its initial scale"))
    # Compared on the seeds both ran (seed-to-seed FID differences reach ×2.6 here), with a 10% margin.
    fixed_names = ("beta_fixed_0.5", "beta_fixed_1.0", "beta_fixed_2.0")
    seeds = ({r["seed"] for r in head if r["variant"] in fixed_names and not r["diverged"]}
             & {r["seed"] for r in head if r["variant"] == "beta" and not r["diverged"]})
    fixed = {v: _mean(head, "fid", variant=v, seeds=seeds) for v in fixed_names}
    fixed = {k: v for k, v in fixed.items() if v is not None}
    learn = _mean(head, "fid", variant="beta", seeds=seeds)
    if fixed and learn is not None:
        best = min(fixed, key=fixed.get)
        verdict = ("holds" if fixed[best] < 0.9 * learn else "does not hold" if fixed[best] > 1.1 * learn
                   else "unclear")
        out.append(("2b. hand-tuned β helps", verdict,
                    f"FID on seeds {sorted(seeds)}: best fixed ({best}) {fixed[best]:.1f} vs learnable β {learn:.1f}; "
                    "rule: holds below 0.9×, does not hold above 1.1×"))
    bs = by("batch_size")
    ent = {b: _mean(bs, "class_entropy", variant=f"batch_{b}") for b in (16, 64, 256)}
    share = {b: _mean(bs, "share_1_7", variant=f"batch_{b}") for b in (16, 64, 256)}
    if sum(v is not None for v in ent.values()) < 2:
        out.append(("3. larger batches, less varied samples", "not run", "fewer than two batch sizes run"))
    else:
        seen = [b for b in (16, 64, 256) if ent[b] is not None]
        dec = all(ent[a] > ent[b] for a, b in zip(seen, seen[1:]))
        out.append(("3. larger batches, less varied samples", "holds" if dec else "does not hold",
                    "class entropy " + ", ".join(f"B={b}: {ent[b]:.3f} (1s+7s {_fmt(share[b], '.0%')})" for b in seen)
                    + "; rule: entropy falls at every larger batch"))
    arch = by("architecture")
    fid = {v: _mean(arch, "fid", variant=v) for v in GROUPS["architecture"]}
    if any(fid.get(f"lenet_{a}") is not None for a in ("tanh", "leaky_relu", "swish")):
        t, others = fid.get("lenet_tanh"), [fid.get("lenet_leaky_relu"), fid.get("lenet_swish")]
        others = [o for o in others if o is not None]
        ok = t is not None and others and all(t > o for o in others)
        diverged = sorted({r["variant"] for r in arch if r["diverged"]})
        gone = f"; diverged (left out): {', '.join(diverged)}" if diverged else ""
        out.append(("4a. LeNet: tanh worse than LeakyReLU / Swish", "holds" if ok else ("unclear" if t is None or not others else "does not hold"),
                    "FID " + ", ".join(f"{k} {_fmt(v, '.1f')}" for k, v in fid.items() if k.startswith("lenet")
                                       and v is not None) + gone))
        lenet = [v for k, v in fid.items() if k.startswith("lenet") and v is not None]
        cnn = [v for k, v in fid.items() if k.startswith("custom") and v is not None]
        if lenet and cnn:
            out.append(("4b. custom CNN slightly better than LeNet", "holds" if min(cnn) < min(lenet) else "does not hold",
                        f"best FID: custom CNN {min(cnn):.1f}, LeNet {min(lenet):.1f}" + gone))
    else:
        out.append(("4. architectures and activations", "not run", "no `architecture` run"))

    def spread(group):
        rs = by(group)
        if len({r["variant"] for r in rs}) < 2:
            return None
        if any(r["diverged"] for r in rs):
            return math.inf
        f = [r["fid"] for r in rs if r.get("fid")]
        return math.log(max(f) / min(f)) if f else None

    spreads = {g: spread(g) for g in GROUPS}
    if spreads["eta"] is None:
        out.append(("5. η the most critical hyperparameter", "not run", "fewer than two η run"))
    else:
        others = {g: s for g, s in spreads.items() if g != "eta" and s is not None}
        ok = all(spreads["eta"] >= s for s in others.values())
        out.append(("5. η the most critical hyperparameter", ("holds" if ok else "does not hold") if others else "unclear",
                    "log(max FID / min FID) per group (∞ where a run diverged): "
                    + ", ".join(f"{g} {_fmt(s, '.2f')}" for g, s in spreads.items() if s is not None)))
    return out


# ----------------------------------------------------------------------------- outputs


def write_figure(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    fig, axes = plt.subplots(1, len(groups) + 1, figsize=(4.5 * (len(groups) + 1), 4), squeeze=False)
    ax = axes[0, 0]
    for r in rows:
        traj = r["trajectory"]
        for k, style in (("beta", "-"), ("gamma", "--")):
            pts = [(t["step"], t[k]) for t in traj if k in t]
            if pts:
                ax.plot(*zip(*pts), style, label=f"{k} ({r['variant']}, s{r['seed']})")
    ax.set(title="learnable head scalars", xlabel="training step")
    if ax.lines:
        ax.legend(fontsize=7)
    for ax, g in zip(axes[0, 1:], groups):
        rs = [r for r in rows if r["group"] == g]
        ran = {r["variant"] for r in rs}
        names = [v for v in GROUPS[g] if v in ran]  # the group's own order (η ascending, batch ascending, ...)
        for i, n in enumerate(names):
            for r in (r for r in rs if r["variant"] == n):
                if r["diverged"] or r["fid"] is None:
                    ax.plot(i, 0, "rx")
                else:
                    ax.plot(i, r["fid"], "o", color="C0")
                    ax.plot(i, r["class_entropy"] * 100, "s", color="C1")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{g}: FID (o), entropy ×100 (s), diverged (x)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _order(row) -> tuple:
    """Groups, then each group's variants, in GROUPS' order, then seeds: merged rows sit with their group."""
    groups = list(GROUPS)
    variants = list(GROUPS.get(row["group"], {}))
    return (groups.index(row["group"]) if row["group"] in groups else len(groups),
            variants.index(row["variant"]) if row["variant"] in variants else len(variants), row["seed"])


def write_results(rows, args) -> Path:
    rows = sorted(rows, key=_order)
    out = Path(args.out_dir)
    name = args.name
    lines = ["# The report's MNIST claims (Section 4.2) as ablations at the `:cpu` scale", "",
             f"Every run is `{CONFIG}` with one change" + (f" and `{' '.join(args.override)}`" if args.override else "")
             + ". Scores as in `mnist_sweep.md` (FID / KID / class entropy of fresh chains after 1,000 steps against "
             "1,000 held-out digits; `out` = share of pixel values outside [−1, 1]; long = after `eval.long_run_steps`).",
             "", "## Verdicts", "", "| claim | verdict | evidence |", "|---|---|---|",
             *[f"| {c} | {v} | {e} |" for c, v, e in verdicts(rows)], "",
             "## Runs", "",
             "| group | variant | seed | FID | KID | entropy | 1s+7s | out | long FID | long entropy | β | γ | AIS log p | wall (min) | diverged |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ais = ("–" if r["ais_log_likelihood"] is None else
               f"not converged (ESS {r['ais_ess']:.0f})" if (r["ais_ess"] or 0) < 2 else f"{r['ais_log_likelihood']:.1f}")
        wall = r["wall_time_s"]
        lines.append(
            f"| {r['group']} | {r['variant']} | {r['seed']} | {_fmt(r['fid'], '.1f')} | {_fmt(r['kid'])} "
            f"| {_fmt(r['class_entropy'], '.3f')} | {_fmt(r['share_1_7'], '.0%')} | {_fmt(r['fraction_outside_range'], '.3f')} "
            f"| {_fmt(r['long_fid'], '.1f')} | {_fmt(r['long_class_entropy'], '.3f')} | {_fmt(r.get('beta'))} | {_fmt(r.get('gamma'))} "
            f"| {ais} | {'–' if wall is None else f'{wall / 60:.1f}'} "
            f"| {('yes, step ' + str(r['diverged_step'])) if r['diverged_step'] is not None else ('yes' if r['diverged'] else 'no')} |")
    lines += ["", f"![ablations]({name}.png)", "", "Commands:", ""]
    lines += [f"- `{r['command']}`" for r in rows if "same_run_as" not in r]
    aliases = [f"{r['group']}/{r['variant']}" for r in rows if "same_run_as" in r]
    if aliases:
        lines += ["", f"{', '.join(aliases)} change nothing in the recipe: their rows are the `{'/'.join(RECIPE)}` run."]
    lines += ["", _common.environment(), ""]
    md = out / f"{name}.md"
    md.write_text("\n".join(lines))
    _common.write_json(out / f"{name}.json", {"config": CONFIG, "overrides": args.override, "rows": rows,
                                             "verdicts": verdicts(rows), "environment": _common.environment()})
    write_figure(rows, out / f"{name}.png")
    return md


def parse_selection(args, parser) -> list[tuple[str, str, int]]:
    groups = [g for g in args.groups.split(",") if g]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"--groups: unknown {unknown}; valid: {sorted(GROUPS)}")
    wanted = [v for v in args.variants.split(",") if v] if args.variants else None
    valid = {v for g in groups for v in GROUPS[g]}
    if wanted and set(wanted) - valid:
        parser.error(f"--variants: unknown {sorted(set(wanted) - valid)} in groups {groups}; valid: {sorted(valid)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    return [(g, v, s) for g in groups for v in GROUPS[g] if not wanted or v in wanted for s in seeds]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--variants", default="", help="only these variants of the chosen groups")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--workroot", default="/tmp/jebm_mnist_ablations")
    parser.add_argument("--out-dir", default=str(_common.RESULTS))
    parser.add_argument("--name", default="mnist_ablations")
    parser.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                        help="added to every run as --config.FIELD=VALUE")
    parser.add_argument("--reuse", action="store_true", help="read runs that already have a summary.json")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of <out-dir>/<name>.json that this selection does not rerun")
    parser.add_argument("--list", action="store_true", help="print the groups and variants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for g, variants in GROUPS.items():
            for v, (label, overrides) in variants.items():
                print(f"{g:13s} {v:18s} {label}: {' '.join(overrides) or '(the recipe)'}")
        return 0
    selection = parse_selection(args, parser)
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    kept = (runner.kept_rows(Path(args.out_dir) / f"{args.name}.json", lambda r: (r["group"], r["variant"], r["seed"]),
                           selection) if args.merge else [])
    runner.run_rows(selection, lambda group, variant, seed: run_one(group, variant, seed, args),
                  lambda rows: write_results(rows, args), kept)
    print(f"wrote {Path(args.out_dir) / f'{args.name}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
