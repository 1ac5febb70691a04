"""A search for a better MNIST `:cpu` recipe, judged by short runs, long runs and likelihood.

Every variant is the `:cpu` preset of ``configs/mnist_sgld.py`` plus config overrides,
trained by the CLI in its own workdir (so each row can be rerun by its command), then
read back from its ``summary.json``:

* short-run quality: FID, KID, class entropy of ``eval.num_samples`` fresh chains after
  ``eval.sampler_steps`` steps, and the share of pixel values outside the data range
  (before any clipping);
* long-run stability: the same scores of ``eval.long_run_samples`` fresh chains after
  each length of ``eval.long_run_curve`` up to ``eval.long_run_steps``, the ESS and R̂
  of their energies and the drift/noise ratio of the sampler;
* the AIS test log-likelihood when the run computed it (``eval.ais_temps > 0``).

Outputs: ``<out-dir>/<name>.md`` and ``.json`` (one row per variant), and each run's
``long_run.png`` copied beside them.

Run (one core per run keeps timings comparable):
  taskset -c 0 python -m experiments.mnist_sweep --variants=bounds,ema --workroot=/tmp/mnist_sweep
  python -m experiments.mnist_sweep --list
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, runner  # noqa: E402

# The rows before the sampler rows were run when `:cpu` was today's `:cpu_shortrun` (renamed at 209d80a,
# unchanged): they build on it. The sampler and stabiliser rows build on `:cpu_lr5e4`, the `:cpu` recipe
# (bounds + PCD bank) before its learning rate became 2e-4 (the `lr_2e-4` row, which is today's `:cpu`).
# Rows not run yet build on today's `:cpu`.
SHORTRUN = "configs/mnist_sgld.py:cpu_shortrun"
CPU_LR5E4 = "configs/mnist_sgld.py:cpu_lr5e4"
# The rows up to bank_500_3k ran on what is now :cpu_bank10k (named :cpu then; renamed unchanged when bank_500_3k
# became :cpu).
CONFIG = "configs/mnist_sgld.py:cpu_bank10k"
SGHMC_CONFIG = "configs/mnist_sghmc.py:cpu_lr5e4"
BOUNDS = "sampler.bounds=(-1.0,1.0)"
EMA = "training.ema_decay=0.999"
PCD = ["chain_init.persistent=True", "chain_init.bank_size=10000", "chain_init.reinit_fraction=0.05"]
LONG_COSINE = ["training.max_steps=3000", "optimizer.schedule=cosine", "optimizer.final_lr_fraction=0.0"]
SMALL_BANK = [*LONG_COSINE, "chain_init.bank_size=1000", "chain_init.reinit_fraction=0.02"]
BANK_500 = [*LONG_COSINE, "chain_init.bank_size=500", "chain_init.reinit_fraction=0.01"]
# name: (what it tests, overrides on top of the row's config: SHORTRUN unless a third entry names another)
VARIANTS = {
    "cpu": ("the :cpu preset as it was (quadratic head, SGLD η = 2e-4, L = 40)", []),
    "bounds": ("+ chains projected into the data range [−1, 1]", [BOUNDS]),
    "ema": ("+ bounds + EMA of the parameters (0.999) for evaluation", [BOUNDS, EMA]),
    "l2": ("+ bounds + energy penalty loss.l2_energy = 0.1", [BOUNDS, "loss.l2_energy=0.1"]),
    "pcd_reinit": ("+ bounds + a persistent bank of 10,000 with 5% noise re-initialisation", [BOUNDS, *PCD]),
    "pcd_long": ("pcd_reinit trained twice as long (3,000 steps), scored after 1,000 sampler steps",
                 [BOUNDS, *PCD, "training.max_steps=3000", "eval.sampler_steps=1000"]),
    "pcd_reinit_l2": ("pcd_reinit + energy penalty 0.1", [BOUNDS, *PCD, "loss.l2_energy=0.1"]),
    "cold": ("+ bounds, temperature T = 0.5 (less noise per step)", [BOUNDS, "sampler.temperature=0.5"]),
    # JEM's sampler (Grathwohl et al. 2020, data in [-1, 1]): x ← x − 1·∇E + 0.01·w, i.e. η = 1 and
    # T = σ²/(2η) = 5e-5 in jebm's (η, T); the model then needs no huge energies to beat the noise.
    "jem": ("+ bounds, JEM's sampler: η = 1, T = 5e-5 (noise sd 0.01)",
            [BOUNDS, "sampler.step_size=1.0", "sampler.temperature=5e-5"]),
    "jem_l2": ("jem + energy penalty 0.1", [BOUNDS, "sampler.step_size=1.0", "sampler.temperature=5e-5",
                                            "loss.l2_energy=0.1"]),
    # Samplers on today's :cpu recipe (SGLD η = 2e-4, L = 40, bounds [−1, 1], PCD bank with 5% re-initialisation,
    # scored after 1,000 steps). SGHMC: configs/mnist_sghmc.py:cpu keeps the SGLD recipe's Langevin step
    # η/C = 2e-4 with a momentum memory m/(ηC) of 10 steps (η = 4.47e-3, C = 22.4, m = 1).
    **{f"sghmc_{i}": (f":cpu_lr5e4 with SGHMC, {i.replace('_', ' ')} integrator (η = 4.47e-3, C = 22.4, m = 1)",
                      [f"sampler.integrator={i}"], SGHMC_CONFIG)
       for i in ("symplectic_euler", "explicit_euler", "baoab")},
    "mala": (":cpu_lr5e4 with MALA (η = 2e-4, proposals outside [−1, 1] rejected: exact for the box)",
             ["sampler.name=mala"], CPU_LR5E4),
    # Bounded MALA rejects every proposal that leaves the box, and digits sit on its faces (background at −1):
    # without bounds MALA is exact for the unrestricted model, at η = 2e-4 and at a tenth of it.
    "mala_unbounded": (":cpu_lr5e4 with MALA, no bounds (η = 2e-4; exact for the model on all of R^d)",
                       ["sampler.name=mala", "sampler.bounds=None"], CPU_LR5E4),
    "mala_unbounded_eta2e-5": (":cpu_lr5e4 with MALA, no bounds, η = 2e-5",
                               ["sampler.name=mala", "sampler.bounds=None", "sampler.step_size=2e-5"], CPU_LR5E4),
    "beta_head": (":cpu with the learnable-β head E = f + (β/2)f²", ["energy.head=beta"], CONFIG),
    # pcd_long sharpened the short run (FID 115 at 3,000 steps) but lost the long run's balance: the same budget
    # with the learning rate decayed to zero, and (separately) Gaussian noise of sd 0.03 on the data (JEM's value
    # for [−1, 1] images), which smooths the energy around the digits.
    "long_cosine": (":cpu trained 3,000 steps with a cosine decay of the learning rate to 0", LONG_COSINE, CONFIG),
    "data_noise": (":cpu with data noise: x⁺ + 0.03·N(0, I)", ["dataset.noise_std=0.03"], CONFIG),
    # long_cosine's long run leaves the digits after ~1,000 steps, about the age its negatives reach: with a bank of
    # 10,000 and batch 64 a chain is drawn every 156 training steps, so in 3,000 steps it gets ~19 visits of L = 40
    # steps (~770 Langevin steps) before its 5% re-initialisation ends it. A bank of 1,000 visits each chain every
    # 16 steps: with 2% re-initialisation a chain lives ~50 visits (~2,000 steps) and the oldest reach ~7,700, so
    # the energy also learns from chains as old as the long run.
    "small_bank": ("long_cosine with a bank of 1,000 chains and 2% re-initialisation (older negatives)",
                   SMALL_BANK, CONFIG),
    # small_bank held its long run to 3,000 steps (FID 74, entropy 2.23) but not to 10,000: fewer chains and less
    # re-initialisation age the negatives further (a chain is drawn every 8 steps, lives ~100 visits, ~4,000 steps).
    "bank_500": ("long_cosine with a bank of 500 chains and 1% re-initialisation (older negatives still)",
                 BANK_500, CONFIG),
    # bank_500's fresh chains are at their best after ~3,000 steps (FID 47.5 / entropy 2.23 on 250 chains, against
    # 125.3 / 2.12 after 1,000) and still digits of every class after 10,000: the same model scored at 3,000 steps.
    "bank_500_3k": ("bank_500 scored after 3,000 fresh-chain steps",
                    [*BANK_500, "eval.sampler_steps=3000"], CONFIG),
    # bank_500_3k still drifts towards 1s and 7s between 3,000 and 10,000 steps: with batch 64 a chain of a bank of
    # 250 is drawn every 4 training steps and, at 0.5% re-initialisation, lives ~200 visits (~8,000 Langevin steps),
    # close to the long run's 10,000.
    "bank_250_3k": ("bank_500_3k with a bank of 250 chains and 0.5% re-initialisation (negatives ~8,000 steps old)",
                    [*LONG_COSINE, "chain_init.bank_size=250", "chain_init.reinit_fraction=0.005",
                     "eval.sampler_steps=3000"], CONFIG),
    # cosine_6k sharpened the short run against long_cosine (FID 46.9 against 53.5 after 1,000 steps): the same
    # doubling of training on the 500-bank recipe.
    "bank_500_6k": ("bank_500_3k trained 6,000 steps (cosine decay to 0)",
                    ["training.max_steps=6000", *LONG_COSINE[1:], *BANK_500[len(LONG_COSINE):],
                     "eval.sampler_steps=3000"], CONFIG),
    # Fresh chains are best near the negatives' age (L / reinit_fraction): ~4,000 steps for bank_500_6k, which
    # then drifts by 10,000 (FID 27.2 -> 142.4 on seed 0), ~8,000 for bank_250_3k, which holds from 10,000 to 20,000
    # (46.0 -> 52.1). Negatives ~5,000 steps old (0.8%), scored after 5,000 steps, put the long run at twice the
    # age, where bank_250_3k lost little. Two CPU devices (sharding.num_cpu_devices) pay for the longer evaluation.
    "age_5k_2dev": ("bank_500_6k with 0.8% re-initialisation (negatives ~5,000 steps old), scored after 5,000 "
                    "steps, on two CPU devices",
                    ["training.max_steps=6000", *LONG_COSINE[1:], "chain_init.bank_size=500",
                     "chain_init.reinit_fraction=0.008", "eval.sampler_steps=5000", "training.sample_every=1000",
                     "sharding.num_cpu_devices=2", "sharding.enabled=True"], CONFIG),
    # The other way to age the negatives: twice the sampler steps per visit (L = 80), the bank of small_bank.
    "small_bank_L80": ("small_bank with L = 80 sampler steps per training step (older negatives, twice the cost)",
                       [*SMALL_BANK, "sampler.num_steps=80"], CONFIG),
    # long_cosine halved FID against 1,500 steps at a constant rate: the same schedule over twice the steps.
    "cosine_6k": (":cpu trained 6,000 steps with a cosine decay of the learning rate to 0",
                  ["training.max_steps=6000", "optimizer.schedule=cosine", "optimizer.final_lr_fraction=0.0"], CONFIG),
    # The :cpu_lr5e4 recipe diverged on seed 1 (|E| > 1e8 at step 128, energies running away in the first steps):
    # stabilisers against it (warm-up, the energy penalty at two weights, a lower learning rate), on seeds 0 and 1.
    "warmup": (":cpu_lr5e4 with a linear learning-rate warm-up over the first 200 steps", ["optimizer.warmup_steps=200"],
               CPU_LR5E4),
    "energy_l2": (":cpu_lr5e4 with the energy penalty 0.1·(mean E(x⁺)² + mean E(x⁻)²)", ["loss.l2_energy=0.1"], CPU_LR5E4),
    # At 0.1 the penalty's optimum E(x⁻) − E(x⁺) is 1/(2·0.1) = 5 nats: far too flat to pull noise towards digits
    # at T = 1. At 1e-5 it is 5e4, the scale of the energies of the runs that did not diverge, so it only bounds
    # the runaway (|E| 1e3 → 1e7 within 10 steps on seed 1).
    "energy_l2_1e-5": (":cpu_lr5e4 with the energy penalty 1e-5·(mean E(x⁺)² + mean E(x⁻)²)", ["loss.l2_energy=1e-5"], CPU_LR5E4),
    "lr_2e-4": (":cpu_lr5e4 with Adam's learning rate 2e-4 instead of 5e-4: :cpu_bank10k", ["optimizer.learning_rate=2e-4"], CPU_LR5E4),
}


def config_of(name: str) -> str:
    return VARIANTS[name][2] if len(VARIANTS[name]) > 2 else SHORTRUN


def command_for(name: str, workdir: Path, extra, seed: int = 0) -> list[str]:
    seeded = [f"seed={seed}"] if seed else []  # seed 0 is the configs' own: its commands stay as they ran
    return runner.cli_command(config_of(name), workdir, [*seeded, *VARIANTS[name][1], *extra])


def run_variant(name: str, args, seed: int = 0) -> dict:
    workdir = Path(args.workroot) / (name if seed == 0 else f"{name}_s{seed}")
    run = runner.train(command_for(name, workdir, args.override, seed), workdir, reuse=args.reuse, label=name)
    summary = run.summary
    row = {"variant": name, "seed": seed, "label": VARIANTS[name][0], "command": run.shown, "returncode": run.returncode,
           "wall_time_s": run.wall_time_s,
           "diverged": run.returncode != 0 or (summary or {}).get("status") == "diverged", "summary": summary}
    rates = acceptance_rates(runner.metrics(workdir))
    if rates:
        row["acceptance_rate"] = rates
    stem = f"{args.name}_{workdir.name}"
    figure = workdir / "long_run.png"
    if figure.exists():
        shutil.copyfile(figure, Path(args.out_dir) / f"{stem}_long_run.png")
        row["figure"] = f"{stem}_long_run.png"
    if (workdir / "samples.png").exists():
        shutil.copyfile(workdir / "samples.png", Path(args.out_dir) / f"{stem}_samples.png")
        row["grid"] = f"{stem}_samples.png"
    return row


def acceptance_rates(records: list[dict]) -> dict | None:
    """MALA's logged acceptance rate over training (``records`` of metrics.jsonl): its first and last values and steps."""
    points = [(r["step"], r["acceptance_rate"]) for r in records if "acceptance_rate" in r]
    if not points:
        return None
    return {"first_step": points[0][0], "first": points[0][1], "last_step": points[-1][0], "last": points[-1][1],
            "max": max(v for _, v in points)}


def _f(value, spec=".3g") -> str:
    return "–" if value is None else format(value, spec)


def ais_cell(ais: dict) -> str:
    """The AIS log-likelihood, or why it is not a number to read: an ESS of about 1 means log Ẑ has not converged."""
    if not ais:
        return "–"
    if ais.get("ess", 0) < 2:
        return f"not converged (ESS {ais['ess']:.0f}; log Ẑ {ais['log_z']:.3g})"
    return f"{ais['log_likelihood_nats']:.1f} ± {ais['log_z_std']:.1f}"


def table_row(row: dict) -> str:
    s = row["summary"] or {}
    q = s.get("quality") or {}
    lr = s.get("long_run") or {}
    last = (lr.get("curve") or [{}])[-1]
    diag = lr.get("energy_diagnostics") or {}
    ais = s.get("ais") or {}
    wall = row["wall_time_s"]
    return (f"| {row['variant']} | {row.get('seed', 0)} | {_f(s.get('sampler_steps'), 'd')} | {_f(q.get('fid'), '.1f')} | {_f(q.get('kid_mean'))} | {_f(q.get('class_entropy'), '.3f')} "
            f"| {_f(s.get('fraction_outside_range'), '.3f')} | {_f(last.get('fid'), '.1f')} | {_f(last.get('class_entropy'), '.3f')} "
            f"| {_f(last.get('fraction_outside_range'), '.3f')} | {_f(diag.get('ess_bulk'), '.0f')} | {_f(diag.get('rhat'), '.2f')} "
            f"| {_f(lr.get('drift_noise_ratio'), '.2f')} | {ais_cell(ais)} "
            f"| {'–' if wall is None else f'{wall / 60:.1f}'} | {diverged_cell(row)} |")


def diverged_cell(row: dict) -> str:
    """``no``, or ``yes`` with the training step at which the guard stopped the run."""
    if not row["diverged"]:
        return "no"
    step = (row["summary"] or {}).get("step")
    return "yes" if step is None else f"yes, step {step}"


def write_results(rows, args) -> Path:
    out = Path(args.out_dir)
    lines = [
        "# MNIST `:cpu` recipe search",
        "",
        "Every row is its base config plus the row's overrides and those of the command that ran it (each row's "
        "command is below: rows merged at different times may differ there, e.g. in `eval.long_run_samples`"
        + (f"; the rows of the last merge added `{' '.join(args.override)}`" if args.override else "")
        + "), seed 0 unless the seed column says otherwise. "
        f"The rows up to `jem_l2` build on `{SHORTRUN}` (named `:cpu` when they ran; "
        f"renamed, unchanged, when `:cpu` became the `pcd_reinit` recipe); the sampler and stabiliser rows build on "
        f"`{CPU_LR5E4}` (`{SGHMC_CONFIG}` for SGHMC), the `pcd_reinit` recipe scored after 1,000 steps, which was "
        f"`:cpu` until the `lr_2e-4` row became today's `{CONFIG}`.",
        "Short run: FID / KID / class entropy (max 2.303) of the fresh-chain samples against 1,000 held-out digits "
        "(jebm.evaluation.quality, classifier features); `out` = share of pixel values outside [−1, 1] before clipping. "
        "Long run: the same scores after `eval.long_run_steps` steps of `eval.long_run_samples` fresh chains; "
        "ESS (bulk) and R̂ (rank) of the chains' energies over the second half of the long run; "
        "drift/noise = η‖∇ₓE‖ / √(2ηT·d) over the long run. Real digits against real digits: FID 4.3, entropy 2.299 at n = 1000.",
        "",
        "| variant | seed | eval steps | FID | KID | entropy | out | long FID | long entropy | long out | ESS | R̂ | drift/noise | AIS log p (nats) | wall (min) | diverged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *[table_row(r) for r in rows],
        "",
        *_common.findings(out / f"{args.name}.md"),
    ]
    for r in rows:
        seed = f" (seed {r['seed']})" if r.get("seed") else ""
        lines += [f"## {r['variant']}{seed}: {r['label']}", "", f"`{r['command']}`", ""]
        if r.get("acceptance_rate"):
            a = r["acceptance_rate"]
            lines += [f"MALA acceptance rate (mean over the L steps of a training step): {a['first']:.3f} at step "
                      f"{a['first_step']}, {a['last']:.3f} at step {a['last_step']}, at most {a['max']:.3f}.", ""]
        if r.get("grid"):
            lines += [f"![samples]({r['grid']})", ""]
        if r.get("figure"):
            lines += [f"![long run]({r['figure']})", ""]
    lines += [_common.environment(), ""]
    md = out / f"{args.name}.md"
    md.write_text("\n".join(lines))
    _common.write_json(out / f"{args.name}.json", {"config": {v: config_of(v) for v in VARIANTS}, "overrides": args.override, "rows": rows,
                                                   "environment": _common.environment()})
    return md


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--workroot", default="/tmp/jebm_mnist_sweep")
    parser.add_argument("--out-dir", default=str(_common.RESULTS))
    parser.add_argument("--name", default="mnist_sweep")
    parser.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                        help="added to every variant as --config.FIELD=VALUE")
    parser.add_argument("--reuse", action="store_true", help="read variants that already have a summary.json")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of the existing <out-dir>/<name>.json that this run does not redo")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (config.seed) of every variant")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (label, overrides, *_) in VARIANTS.items():
            print(f"{name:14s} {label}\n{'':14s} {config_of(name)} {' '.join(overrides)}")
        return 0
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; valid: {sorted(VARIANTS)}")
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    selection = [(n, s) for n in names for s in seeds]
    kept = (runner.kept_rows(Path(args.out_dir) / f"{args.name}.json", lambda r: (r["variant"], r.get("seed", 0)), selection)
            if args.merge else [])
    order = list(VARIANTS)

    def in_order(row):
        return order.index(row["variant"]) if row["variant"] in order else len(order), row.get("seed", 0)

    runner.run_rows(selection, lambda name, seed: run_variant(name, args, seed),
                  lambda rows: write_results(sorted(rows, key=in_order), args), kept)
    print(f"wrote {Path(args.out_dir) / f'{args.name}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
