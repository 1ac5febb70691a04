"""The 2D toy's evaluator: the paper's protocol, pinned in ``config.eval``.

``num_samples`` fresh chains run with the training sampler for
``sampler_steps`` (default L) steps and, separately, for ``long_run_steps``;
KS against ``ks_repeats`` independent true draws (each value reported), B*
between pairs of true draws, the discretised KL on the ``grid_size``² grid,
the mode fractions, the held-out NLL
(:func:`jebm.evaluation.evaluators.likelihood_scores.toy_likelihood`) and the
long run's chain diagnostics. :func:`write_toy_outputs` writes
``samples.npy``, ``samples_long.npy``, ``energy_grid.npz``, ``toy_fit.png``,
``toy_fit_long.png`` and ``ais_convergence.png``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jebm import fileio
from jebm.evaluation import chains, metrics, plots
from jebm.evaluation.evaluators import likelihood_scores


def evaluate_toy(config, parts, params) -> tuple[dict, dict]:
    """The paper's toy metrics; returns ``(summary, arrays)``."""
    ec, dist = config.eval, parts.data.toy
    key = chains.eval_key(config)
    k_short, k_long, k_true, k_bench = jax.random.split(key, 4)
    n = ec.num_samples
    steps = chains.eval_sampler_steps(config)
    samples = chains.fresh_samples(config, parts, params, k_short, n, steps)
    samples_long = chains.fresh_samples(config, parts, params, k_long, n, ec.long_run_steps)
    true_keys = jax.random.split(k_true, ec.ks_repeats)
    true_draws = [np.asarray(dist.sample(k, n)) for k in true_keys]

    def ks_all(s):
        if not np.all(np.isfinite(s)):
            return [float("nan")] * len(true_draws)
        return [metrics.ks2d(s, t) for t in true_draws]

    ks_short, ks_long = ks_all(samples), ks_all(samples_long)
    bench = metrics.benchmark_ks(dist.sample, k_bench, n=n, repeats=ec.ks_repeats)
    xs, ys = metrics.grid(ec.grid_lim, ec.grid_size)
    energy_fn = jax.jit(lambda pts: parts.model.apply(params, pts))
    energy = metrics.evaluate_on_grid(lambda pts: np.asarray(energy_fn(jnp.asarray(pts, jnp.float32))), xs, ys)
    log_p = metrics.evaluate_on_grid(dist.log_density, xs, ys)
    kl = metrics.discretised_kl(energy, log_p) if np.all(np.isfinite(energy)) else float("nan")
    summary = {
        "n_samples": n,
        "sampler_steps": steps,
        "long_run_steps": ec.long_run_steps,
        "ks": float(np.mean(ks_short)),
        "ks_values": ks_short,
        "ks_long": float(np.mean(ks_long)),
        "ks_long_values": ks_long,
        "b_star": bench.mean,
        "b_star_std": bench.std,
        "b_star_values": list(map(float, bench.values)),
        "kl": kl,
        "grid": {"size": ec.grid_size, "lim": ec.grid_lim},
        "mode_fractions": metrics.mode_fractions(samples, dist.modes).tolist() if np.all(np.isfinite(samples)) else None,
        "mode_fractions_long": metrics.mode_fractions(samples_long, dist.modes).tolist() if np.all(np.isfinite(samples_long)) else None,
    }
    arrays = {"samples": samples, "samples_long": samples_long, "xs": xs, "ys": ys, "energy": energy, "log_p": log_p}
    if np.all(np.isfinite(energy)):
        summary.update(likelihood_scores.toy_likelihood(config, parts, params, true_draws[0],
                                                        jax.random.fold_in(key, 0x11)))
    # Chain diagnostics from a separate set of fresh chains (the samples above keep their keys).
    _, _, trace = chains.long_chains(config, parts, params, [ec.long_run_steps], TOY_DIAGNOSTIC_CHAINS,
                                     jax.random.fold_in(key, 0xD1A6), energy_every=max(1, ec.long_run_steps // 100))
    summary["long_run_diagnostics"] = chains.chain_diagnostics(config, trace, 2)
    return summary, arrays


TOY_DIAGNOSTIC_CHAINS = 200


def write_toy_outputs(workdir: Path, summary: dict, arrays: dict) -> None:
    """The files of :func:`evaluate_toy`: the samples, the energy on the grid, the fits over the true density, AIS's curve."""
    fileio.save_npy(workdir / "samples.npy", arrays["samples"].astype(np.float32))
    fileio.save_npy(workdir / "samples_long.npy", arrays["samples_long"].astype(np.float32))
    fileio.save_npz(workdir / "energy_grid.npz", xs=arrays["xs"], ys=arrays["ys"], energy=arrays["energy"])
    title = f"KS {summary['ks']:.3f} (B* {summary['b_star']:.3f}), KL {summary['kl']:.3f}"
    plots.plot_toy_fit(workdir / "toy_fit.png", arrays["xs"], arrays["ys"], arrays["log_p"], arrays["energy"],
                       arrays["samples"], title=title)
    plots.plot_toy_fit(workdir / "toy_fit_long.png", arrays["xs"], arrays["ys"], arrays["log_p"], arrays["energy"],
                       arrays["samples_long"], title=f"long run ({summary['long_run_steps']} steps): KS {summary['ks_long']:.3f}")
    lk = summary.get("likelihood", {})
    likelihood_scores.write_ais_convergence(workdir, lk.get("ais_convergence"), exact=lk.get("log_z_exact"),
                                            upper=lk.get("log_z_upper"),
                                            title="toy: AIS log Ẑ against the number of temperatures")
