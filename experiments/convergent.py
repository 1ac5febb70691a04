"""Is the model a density? Long chains from noise and from data, AIS convergence, class masses, energy gap.

For each ``--run NAME=WORKDIR`` (its newest checkpoint, the parameters its evaluation uses):

* ``curve``: ``--chains`` chains of the run's own training sampler from noise, and as many from
  held-out images (with the training data's noise), scored at every length of ``--lengths``
  (FID and class entropy from jebm's classifier; ``jebm.evaluation.convergence.chain_curve``);
* ``ais``: AIS from the run's own base (``eval.ais_base``) at ``--temps`` K and 3K temperatures:
  held-out bits/dim at 3K, the ESS as a fraction of the chains, and log Ẑ(3K) − log Ẑ(K);
* ``ais_cost`` (``--ais-curve``): AIS at each K of the list on its own, with its wall time: how log Ẑ,
  the ESS and the cost grow with K;
* ``class_log_mass``: log Ẑ_c from each class's training images alone (``--by-class`` temperatures,
  ``experiments/mnist_likelihood.py``'s ``by_class``);
* ``negatives``: FID and class entropy of ``--chains`` chains of the persistent bank (the training's
  negatives, as the checkpoint holds them; absent without a bank), and with ``--bank-lengths`` the same
  chains run on under the final model and scored at each length (``continued``): are the negatives states
  the model's chains stay in?
* ``energy_gap``: mean energy of U(−1, 1) noise minus that of held-out images, in nats (E/T).
* ``step_acceptance``: is the training step exact enough for the final model? The Metropolis–Hastings
  acceptance of the run's SGLD proposal (its η and T, and η/4, η/16), as MALA chains from held-out images,
  from the bank and from noise (``--chains`` each, ``--acceptance-steps`` steps, the mean over the last half;
  ``jebm.evaluation.convergence.step_acceptance``).

``--temperature-scale S`` runs every chain and AIS at S·T instead of the run's T: the tempered model
exp(−E/(S·T)), whose chains cross barriers S times lower (nats are then E/(S·T)). It asks whether long chains
that come to rest at T mix, and stay images, when warmer; the row's recipe gets `` at S·T``.

Writes ``<out-dir>/convergent.{md,json,png}``; ``--merge`` keeps the rows of runs not named again.

Run: python -m experiments.convergent --run convergent_cpu=/path/to/workdir --dataset mnist --recipe mnist_convergent:cpu
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, mnist_likelihood, runner  # noqa: E402


def curve(restored, lengths: list[int], chains: int) -> list[dict]:
    """FID and class entropy against chain length, from noise and from held-out images."""
    from jebm.evaluation import convergence

    key = jax.random.key(restored.config.seed + 0xC0417)
    rows = []
    for i, start in enumerate(convergence.STARTS):
        t0 = time.time()
        for row in convergence.chain_curve(restored.config, restored.parts, restored.params, lengths, chains,
                                           jax.random.fold_in(key, i), start):
            rows.append({k: row.get(k) for k in ("steps", "start", "fid", "class_entropy", "n", "distance",
                                                   "decorrelation", "energy_drift_nats", "class_histogram")})
        print(f"curve from {start}: {[(r['steps'], round(r['fid'] or 0, 1)) for r in rows if r['start'] == start]} "
              f"({time.time() - t0:.0f} s)", flush=True)
    return rows


def ais(restored, temps: int, chains: int) -> dict:
    """AIS at K and 3K temperatures from the run's own base: bits/dim at 3K, ESS fraction, log Ẑ change."""
    base = restored.config.eval.ais_base
    out = mnist_likelihood.score(restored, base, [temps, 3 * temps], chains, tilt=restored.config.eval.ais_kde_tilt)
    log_z = {c["num_temps"]: c["log_z"] for c in out["convergence"]}
    return {"base": base, "bits_per_dim": out["bits_per_dim"], "ess_fraction": out["ess"] / chains,
            "log_z_change": log_z[3 * temps] - log_z[temps], "log_z": log_z, "chains": chains,
            "wall_s": out["wall_s"], "log_weight_std": out.get("log_weight_std")}


def ais_cost(restored, temps: list[int], chains: int) -> list[dict]:
    """AIS from the run's own base at each K of ``temps``, each on its own, timed."""
    base, out = restored.config.eval.ais_base, []
    for k in temps:
        r = mnist_likelihood.score(restored, base, [k], chains, tilt=restored.config.eval.ais_kde_tilt)
        out.append({"num_temps": k, "log_z": r["log_z"], "ess_fraction": r["ess"] / chains,
                    "bits_per_dim": r["bits_per_dim"], "log_weight_std": r.get("log_weight_std"),
                    "mean_acceptance": r.get("mean_acceptance"), "wall_s": r["wall_s"]})
        print(f"AIS K={k}: log Z-hat {r['log_z']:.1f}, ESS {r['ess']:.1f}/{chains}, "
              f"bits/dim {r['bits_per_dim']:.2f}, {r['wall_s']:.0f} s", flush=True)
    return out


def negatives(restored, n: int, lengths=()) -> dict | None:
    """FID and class entropy of ``n`` chains of the run's persistent bank at the restored step, the negatives
    its last updates were computed on (None for a run without a bank, or a multi-process checkpoint's shards).
    With ``lengths``, ``continued`` holds one row per length of the same chains run on from the bank with the
    run's own sampler: ``steps``, ``fid``, ``class_entropy``, ``class_histogram``, ``distance`` (RMS pixel
    change since the bank) and ``decorrelation`` (jebm.evaluation.convergence)."""
    from jebm.evaluation import convergence
    from jebm.evaluation.evaluators import images

    bank = _bank(restored)
    if bank is None:
        return None
    pick = _bank_pick(restored, bank, n)
    x0 = bank[pick].astype(np.float32)
    q = images.quality_scores(restored.config, restored.parts, x0[..., 0])
    out = {"n": int(len(pick)), "bank_size": int(len(bank)), "fid": q["fid"], "class_entropy": q["class_entropy"],
           "class_histogram": q["class_histogram"]}
    if lengths:
        rows = convergence.chain_curve(restored.config, restored.parts, restored.params, sorted(set(lengths)),
                                       len(pick), jax.random.key(restored.config.seed + 0xBA4C), x0)
        out["continued"] = [{k: row.get(k) for k in ("steps", "fid", "class_entropy", "class_histogram", "distance",
                                                     "decorrelation")}
                            for row in rows]
    return out


def _bank(restored) -> np.ndarray | None:
    """The persistent chains as the restored step's checkpoint holds them (None without a bank, or for a
    multi-process checkpoint's shards)."""
    from jebm import checkpoint

    path = checkpoint.checkpoint_dir(restored.workdir) / f"ckpt_{restored.step}.msgpack"
    bank = (checkpoint.read_raw(path).get("bank") or {}).get("position")
    return bank if isinstance(bank, np.ndarray) and bank.ndim == 4 else None


def _bank_pick(restored, bank: np.ndarray, n: int) -> np.ndarray:
    """The indices of the ``n`` bank chains every score of the bank uses (the same for a given seed)."""
    return np.sort(np.random.default_rng(restored.config.seed).permutation(len(bank))[:n])


STEP_SCALES = (1.0, 0.25, 0.0625)


def step_acceptance(restored, n: int, num_steps: int) -> dict:
    """MH acceptance of the run's Langevin step at η·s for s in STEP_SCALES, from held-out images, the bank
    (when the run has one) and noise: ``{"steps", "n", "acceptance": {start: {str(s): mean α}}}``."""
    from jebm.evaluation import convergence

    config, parts = restored.config, restored.parts
    key = jax.random.key(restored.config.seed + 0xACC)
    starts = {"data": convergence.held_out_start(config, parts, n, jax.random.fold_in(key, 0))}
    bank = _bank(restored)
    if bank is not None:
        starts["bank"] = bank[_bank_pick(restored, bank, n)]
    starts["noise"] = np.asarray(parts.noise_fn(jax.random.fold_in(key, 1), n), np.float32)
    energy = lambda x: parts.model.apply(restored.params, x)  # noqa: E731
    out = {}
    for start, x0 in starts.items():
        out[start] = {}
        for s in STEP_SCALES:
            alpha = convergence.step_acceptance(energy, np.asarray(x0, np.float32), jax.random.fold_in(key, 2),
                                                step_size=float(config.sampler.step_size) * s,
                                                temperature=float(config.sampler.temperature), num_steps=num_steps)
            out[start][str(s)] = float(np.mean(alpha[num_steps // 2:]))
    return {"steps": num_steps, "n": n, "acceptance": out}


def energy_gap(restored, n: int = 500) -> float:
    """Mean E/T of U(−1, 1) noise minus that of held-out images (nats)."""
    from jebm.data import mnist

    config, parts = restored.config, restored.parts
    energy = jax.jit(lambda x: parts.model.apply(restored.params, x))
    test = jnp.asarray(mnist.preprocess(parts.data.images.test_images[:n], config.dataset.scale))
    noise = jax.random.uniform(jax.random.key(7), test.shape, minval=-1.0, maxval=1.0)
    t = float(config.sampler.temperature)
    return float(np.mean(np.asarray(energy(noise))) / t - np.mean(np.asarray(energy(test))) / t)


def train_time(workdir: Path) -> float | None:
    return (runner.summary(workdir) or {}).get("train_time_s")


def write_outputs(out_dir: Path, payload: dict) -> None:
    from jebm.evaluation import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    _common.write_json(out_dir / "convergent.json", payload)
    rows = payload["rows"]
    lines = ["# Convergent maximum-likelihood learning: long chains, likelihood, class masses", "",
             "Written by `experiments/convergent.py` from real runs; see the commands at the end.", "",
             "| dataset | recipe | seed | train (min) | start | FID by chain length | best FID | last / best | "
             "class entropy (last) | bits/dim (AIS, 3K) | ESS | log Ẑ(3K) − log Ẑ(K) | energy gap (nats) | class log-mass spread | "
             "negatives: FID / entropy |",
             "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        masses = list((r.get("class_log_mass") or {}).values())
        spread = f"{max(masses) - min(masses):,.0f}" if masses else "–"
        a = r.get("ais") or {}
        for start in ("noise", "data"):
            pts = [c for c in r["curve"] if c["start"] == start and c.get("fid") is not None]
            if not pts:
                continue
            fids = [c["fid"] for c in pts]
            best = min(fids)
            seq = ", ".join(f"{c['steps']:,}: {c['fid']:.1f}" for c in pts)
            lines.append(
                f"| {r['dataset']} | {r['recipe']} | {r['seed']} | "
                f"{(r.get('train_time_s') or float('nan')) / 60:.0f} | {start} (n = {pts[0]['n']}) | {seq} | {best:.1f} | "
                f"{fids[-1] / best:.2f} | {pts[-1]['class_entropy']:.3f} | "
                f"{_f(a.get('bits_per_dim'), '.2f')} | {_f(a.get('ess_fraction'), '.3f')} | {_f(a.get('log_z_change'), '.1f')} | "
                f"{_f(r.get('energy_gap'), ',.0f')} | {spread} | {_negatives(r.get('negatives'))} |")
    cost = [(r, c) for r in rows for c in r.get("ais_cost") or []]
    if cost:
        lines += ["", "AIS against the number of temperatures K (each K its own run; one core):", "",
                  "| run | K | log Ẑ | ESS | sd(log w) | bits/dim | acceptance | wall (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['name']} | {c['num_temps']:,} | {c['log_z']:,.1f} | {c['ess_fraction']:.3f} | "
                  f"{_f(c.get('log_weight_std'), '.1f')} | {c['bits_per_dim']:.2f} | {_f(c.get('mean_acceptance'), '.2f')} | "
                  f"{c['wall_s']:.0f} |" for r, c in cost]
    exact = [r for r in rows if r.get("step_acceptance")]
    if exact:
        lines += ["", "Is the training step exact enough? MH acceptance of the run's SGLD proposal at η (and η/4, η/16) "
                  "and its T, as MALA chains on the final model (mean over the last half of the steps):", "",
                  "| run | steps, n | from held-out data | from the bank | from noise |", "|---|---|---|---|---|"]
        for r in exact:
            a = r["step_acceptance"]
            cells = [" / ".join(f"{a['acceptance'][s][str(k)]:.2f}" for k in STEP_SCALES)
                     if s in a["acceptance"] else "–" for s in ("data", "bank", "noise")]
            lines.append(f"| {r['name']} | {a['steps']}, {a['n']} | " + " | ".join(cells) + " |")
    lines += ["", *payload.get("findings", []), "", "## Commands", ""]
    lines += [f"    {c}" for c in payload["commands"]]
    lines += ["", payload["environment"], ""]
    (out_dir / "convergent.md").write_text("\n".join(lines))
    plots.plot_chain_length_curves(out_dir / "convergent.png", rows)


def _negatives(neg) -> str:
    if not neg:
        return "–"
    on = "".join(f"; {c['steps']:,} steps on: {c['fid']:.1f} / {c['class_entropy']:.2f}" for c in neg.get("continued", ()))
    return f"{neg['fid']:.1f} / {neg['class_entropy']:.2f} (n = {neg['n']} of {neg['bank_size']:,}{on})"


def _f(v, spec):
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", default=[], help="NAME=WORKDIR (repeatable)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--recipe", default="", help="the recipe's name in the table (default: NAME)")
    p.add_argument("--lengths", default="100,1000,10000,100000")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--temps", type=int, default=1000, help="K: AIS runs at K and 3K temperatures (0 = no AIS)")
    p.add_argument("--ais-chains", type=int, default=256)
    p.add_argument("--ais-curve", default="", metavar="K1,K2,...",
                   help="also AIS at each of these K on its own, timed: how log Ẑ, the ESS and the cost grow with K")
    p.add_argument("--by-class", type=int, default=0, metavar="K", help="class masses with K temperatures (0 = none)")
    p.add_argument("--bank-lengths", default="", metavar="L1,L2,...",
                   help="also run the scored bank chains on for these lengths and score them (negatives.continued)")
    p.add_argument("--temperature-scale", type=float, default=1.0, metavar="S",
                   help="sample the tempered model exp(-E/(S*T)): every chain and AIS at S times the run's T")
    p.add_argument("--acceptance-steps", type=int, default=100, metavar="N",
                   help="MALA steps for step_acceptance (0 = none)")
    p.add_argument("--merge", action="store_true")
    p.add_argument("--out-dir", default=str(_common.RESULTS))
    args = p.parse_args(argv)
    if not (args.temperature_scale > 0 and math.isfinite(args.temperature_scale)):
        p.error(f"--temperature-scale={args.temperature_scale} must be a finite number > 0")

    from jebm import api, config_lib

    out_dir = Path(args.out_dir)
    earlier = out_dir / "convergent.json"
    names = [spec.rpartition("=")[0] for spec in args.run]
    rows = runner.kept_rows(earlier, lambda r: r["name"], names) if args.merge else []
    commands = list(runner.read_results(earlier).get("commands", [])) if args.merge else []
    lengths = sorted({int(n) for n in args.lengths.split(",")})
    for spec in args.run:
        name, sep, workdir = spec.rpartition("=")
        if not sep or not name:
            p.error(f"--run={spec!r} must be NAME=WORKDIR")
        config = None
        if args.temperature_scale != 1.0:
            config = config_lib.config_from_json(Path(workdir) / "config.json")
            config.sampler.temperature *= args.temperature_scale
        restored = api.restore(workdir, config=config)
        t0 = time.time()
        recipe = (args.recipe or name) + ("" if args.temperature_scale == 1.0 else f" at {args.temperature_scale:g}·T")
        row = {"name": name, "dataset": args.dataset, "recipe": recipe, "seed": restored.config.seed,
               "temperature": restored.config.sampler.temperature,
               "workdir": workdir, "step": restored.step, "train_time_s": train_time(Path(workdir)),
               "curve": curve(restored, lengths, args.chains), "energy_gap": energy_gap(restored),
               "negatives": negatives(restored, args.chains,
                                       [int(v) for v in args.bank_lengths.split(",") if v])}
        if args.acceptance_steps:
            row["step_acceptance"] = step_acceptance(restored, args.chains, args.acceptance_steps)
        if args.temps:
            row["ais"] = ais(restored, args.temps, args.ais_chains)
            print(f"{name}: AIS {row['ais']}", flush=True)
        if args.ais_curve:
            row["ais_cost"] = ais_cost(restored, sorted({int(k) for k in args.ais_curve.split(",")}), args.ais_chains)
        if args.by_class:
            classes = mnist_likelihood.by_class(restored, args.by_class, args.ais_chains)
            row["class_log_mass"] = {str(c["class"]): c["log_z"] for c in classes}
        row["eval_time_s"] = time.time() - t0
        rows.append(row)
    commands.append("python experiments/convergent.py " + " ".join(sys.argv[1:] if argv is None else argv))
    payload = {"rows": rows, "commands": commands, "findings": _common.findings(out_dir / "convergent.md"),
               "environment": _common.environment()}
    write_outputs(out_dir, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
