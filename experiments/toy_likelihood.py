"""Likelihood of trained toy energies: exact quadrature against AIS and reverse AIS, with chain diagnostics.

Trains each Table-1 row's config as shipped (one seed) with the CLI, or reuses its
workdir, and tabulates what the run's ``summary.json`` measured:

* ``log Z`` on the box [−2, 2]² by quadrature (``jebm.evaluation.likelihood.log_partition_grid``,
  200 and 400 cells per side), by AIS (``eval.ais_chains`` chains, ``eval.ais_temps``
  temperatures, MALA restricted to the box; a stochastic lower bound) and by reverse AIS
  from exact grid samples (a stochastic upper bound);
* the held-out NLL (1,000 fresh draws of the true mixture) exact and by AIS;
* ESS and R̂ of 200 fresh chains' energies over the second half of a 10,000-step run, and the
  training run's drift/noise ratio.

Writes ``<out-dir>/likelihood.{md,json}`` and copies the main job's ``ais_convergence.png``.

Run: python -m experiments.toy_likelihood [--rows sghmc_nopcd,...] [--workroot DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if not __package__:  # run as a file, python experiments/NAME.py: the repository root makes `experiments` a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from experiments import _common, runner  # noqa: E402

ROWS = {
    "sgld_pcd": "configs/gmm_sgld.py:pcd",
    "sgld_nopcd": "configs/gmm_sgld.py:nopcd",
    "sgld_quadratic": "configs/gmm_sgld.py:quadratic",
    "sghmc_pcd": "configs/gmm_sghmc.py:pcd",
    "sghmc_nopcd": "configs/gmm_sghmc.py:nopcd",
    "sghmc_quadratic": "configs/gmm_sghmc.py:quadratic",
}
# Rows beyond Table 1: the same config with the BAOAB integrator.
OVERRIDES = {
    "sghmc_nopcd_baoab": ("configs/gmm_sghmc.py:nopcd", ["sampler.integrator=baoab"]),
    "sghmc_pcd_baoab": ("configs/gmm_sghmc.py:pcd", ["sampler.integrator=baoab"]),
    "sghmc_quadratic_baoab": ("configs/gmm_sghmc.py:quadratic", ["sampler.integrator=baoab"]),
}


def _f(v, spec=".4f"):
    return "–" if v is None else format(v, spec)


def true_nll() -> float:
    import jax
    import numpy as np

    from jebm.data import toy

    dist = toy.gmm8()
    x = np.asarray(dist.sample(jax.random.PRNGKey(0), 1_000_000))
    return float(-np.mean(dist.log_density(x)))


def mnist_row(spec: str) -> dict:
    """An MNIST run's likelihood and diagnostics from its newest evaluation (eval_<step>.json, else summary.json)."""
    name, _, workdir = spec.rpartition("=")
    workdir = Path(workdir)
    source, s = runner.newest_scores(workdir)
    return {"name": name, "workdir": str(workdir), "source": source.name, "ais": s.get("ais"),
            "long_run": {k: v for k, v in (s.get("long_run") or {}).items() if k != "curve"},
            "fid": (s.get("quality") or {}).get("fid"), "drift_noise": s.get("drift_noise")}


def mnist_table(rows) -> list[str]:
    lines = [
        "", "## MNIST: AIS test log-likelihood and chain diagnostics", "",
        "The model read as a density on [−1, 1]^784; AIS from the uniform density on that box, MALA restricted "
        "to it, 256 chains, 1,000 temperatures (log Ẑ also at 10 and 100 for the convergence check). log p: mean "
        "over 1,000 held-out digits of −E(y) − log Ẑ, nats per image; bits/dim: the density at the stored pixel "
        "values times one level's cell (2/255 per pixel). AIS's log Ẑ is a stochastic lower bound, so log p is an "
        "upper bound: a large spread between K = 100 and 1,000, or a small ESS, means it is far from converged. "
        "ESS / R̂: energies of the long run's fresh chains over the second half of 10,000 steps (50 draws per chain).",
        "",
        "| model | FID | log p (nats) | bits/dim | log Ẑ ± se | log Ẑ at K = 10 / 100 / 1000 | AIS ESS | MALA acceptance | ESS | R̂ | drift/noise (long run) | drift/noise regime (training) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        a, lr = r["ais"] or {}, r["long_run"] or {}
        d = lr.get("energy_diagnostics") or {}
        curve = " / ".join(_f(c["log_z"], ".1f") for c in a.get("convergence", []))
        lines.append(
            f"| {r['name']} | {_f(r['fid'], '.1f')} | {_f(a.get('log_likelihood_nats'), '.1f')} | {_f(a.get('bits_per_dim'), '.3f')} "
            f"| {_f(a.get('log_z'), '.1f')} ± {_f(a.get('log_z_std'), '.2f')} | {curve} | {_f(a.get('ess'), '.1f')} "
            f"| {_f(a.get('mean_acceptance'), '.2f')} | {_f(d.get('ess_bulk'), '.0f')} | {_f(d.get('rhat'), '.2f')} "
            f"| {_f(lr.get('drift_noise_ratio'), '.2f')} | {(r['drift_noise'] or {}).get('regime', '–')} |")
    lines += ["", *[f"- {r['name']}: `{r['workdir']}` ({r['source']})" for r in rows]]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--workroot", default="/tmp/jebm_toy_likelihood")
    parser.add_argument("--out-dir", default=str(_common.RESULTS))
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--mnist", action="append", default=[], metavar="NAME=WORKDIR",
                        help="also tabulate an MNIST run's AIS likelihood and chain diagnostics (repeatable)")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in [r for r in args.rows.split(",") if r]:
        workdir = Path(args.workroot) / key
        spec, extra = OVERRIDES.get(key, (ROWS.get(key), []))
        if spec is None:
            parser.error(f"--rows: unknown row {key!r}; valid: {sorted([*ROWS, *OVERRIDES])}")
        run = runner.train(runner.cli_command(spec, workdir, extra), workdir, reuse=args.reuse, label=key)
        s = run.summary or {}
        lk = s.get("likelihood", {})
        rows.append({"key": key, "config": spec, "command": run.shown,
                     "wall_time_s": run.wall_time_s, "ks": s.get("ks"), "kl": s.get("kl"),
                     "nll_exact": s.get("nll_exact"), "nll_ais": s.get("nll_ais"), "likelihood": lk,
                     "drift_noise": s.get("drift_noise"), "diagnostics": s.get("long_run_diagnostics")})
        if key == "sghmc_nopcd" and (workdir / "ais_convergence.png").exists():
            shutil.copyfile(workdir / "ais_convergence.png", out / "toy_likelihood_ais_convergence.png")
    lines = [
        "# Toy likelihood: exact log Z against AIS and reverse AIS",
        "",
        "Each row: the Table-1 config as shipped, seed 0, trained by the CLI (`--workdir` per row). The model is "
        "read as a density on the box [−2, 2]² (where its chains start). log Z: quadrature on 400×400 cells "
        "(checked against 200×200 within 1e-3 nats); AIS: 256 chains, 1,000 temperatures, uniform base on the box, "
        "MALA restricted to it (log of the mean weight: a stochastic lower bound); reverse AIS: from 256 exact "
        "samples of the grid-discretised model (a stochastic upper bound). NLL: mean E(x) + log Z over 1,000 fresh "
        "draws of the true mixture, nats. Edge mass: the model's probability in the box's outermost cells. "
        "ESS/R̂: energies of 200 fresh chains over the second half of a 10,000-step run (100 draws each). "
        "Drift/noise: the median over training of η‖∇ₓE‖/√(2ηT·d) (SGHMC: √(2ηCT·d)).",
        "",
        "| row | KS | KL | log Z exact | AIS log Ẑ ± se | AIS − exact | reverse-AIS upper | NLL exact | NLL AIS | edge mass | ESS | R̂ | drift/noise |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lk, d = r["likelihood"], (r["diagnostics"] or {}).get("energy_diagnostics") or {}
        exact, est = lk.get("log_z_exact"), lk.get("log_z_ais")
        diff = None if exact is None or est is None else est - exact
        lines.append(
            f"| {r['key']} | {_f(r['ks'])} | {_f(r['kl'])} | {_f(exact)} | {_f(est)} ± {_f(lk.get('log_z_ais_std'))} "
            f"| {_f(diff, '+.4f')} | {_f(lk.get('log_z_upper'))} | {_f(r['nll_exact'])} | {_f(r['nll_ais'])} "
            f"| {_f(lk.get('edge_mass'), '.2g')} | {_f(d.get('ess_bulk'), '.0f')} | {_f(d.get('rhat'), '.3f')} "
            f"| {_f((r['drift_noise'] or {}).get('median'), '.3f')} |")
    lines += ["", f"The true mixture's own NLL (its entropy, Monte Carlo over 10⁶ draws): {true_nll():.4f} nats; "
              "a model's NLL exceeds it by KL(p_true ‖ p_model).", "",
              "![AIS convergence, SGHMC no PCD](toy_likelihood_ais_convergence.png)", ""]
    lines += [f"- `{r['command']}` ({_f((r['wall_time_s'] or 0) / 60, '.1f')} min)" for r in rows]
    mnist_rows = [mnist_row(spec) for spec in args.mnist]
    if mnist_rows:
        lines += mnist_table(mnist_rows)
    lines += ["", _common.environment(), ""]
    (out / "likelihood.md").write_text("\n".join(lines))
    _common.write_json(out / "likelihood.json", {"rows": rows, "mnist": mnist_rows, "environment": _common.environment()})
    print(f"wrote {out / 'likelihood.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
