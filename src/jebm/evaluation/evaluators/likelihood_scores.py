"""The likelihood scores the evaluators report, from a run's config: AIS's options and runs, the 2D box NLL.

:func:`ais_options` reads :class:`jebm.evaluation.likelihood.AISOptions` from
``config.eval`` and ``config.sampler``; :func:`ais_runs` runs AIS at
``eval.ais_temps`` and along ``eval.ais_curve``; :func:`toy_likelihood` is the
held-out NLL of a 2D model (the toy, a user's points) by quadrature and AIS,
with reverse AIS's upper bound. The image data's likelihood is
:func:`jebm.evaluation.evaluators.images.image_likelihood`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jebm.evaluation import likelihood, plots


def ais_runs(config, energy_fn, example_shape, box: float, rng_key, centres=None,
             centre_log_weights=None) -> tuple[likelihood.AISResult, list[dict]]:
    """AIS at ``eval.ais_temps`` and at each smaller K of ``eval.ais_curve`` (the convergence rows).

    The base is ``eval.ais_base``: the uniform density on the box, or (``"box_kde"``)
    a kernel density of ``centres`` in ``atanh`` space (:func:`jebm.evaluation.likelihood.ais`).
    """
    ec = config.eval
    options = ais_options(config, box, centres, centre_log_weights)
    rows, result = [], None
    for k in sorted({n for n in ec.ais_curve if n < ec.ais_temps} | {ec.ais_temps}):
        result = likelihood.ais(jax.random.fold_in(rng_key, k), energy_fn, example_shape, num_chains=ec.ais_chains,
                                num_temps=k, options=options)
        rows.append({"num_temps": k, "log_z": result.log_z, "log_z_std": result.log_z_std, "ess": result.ess})
    return result, rows


def ais_options(config, box: float, centres=None, centre_log_weights=None) -> likelihood.AISOptions:
    """:func:`jebm.evaluation.likelihood.ais`'s options from ``config.eval`` and ``config.sampler``.

    ``eval.ais_base="uniform"``: the uniform density on ``[−box, box]^d``; ``"box_kde"``:
    the kernel density of ``centres`` (weighted by ``centre_log_weights``, see
    :func:`jebm.evaluation.evaluators.images.kde_centres`). MALA at the sampler's
    temperature, with its ``chunk_size``; the number of chains is ``eval.ais_chains``.
    """
    ec, s = config.eval, config.sampler
    common = dict(kernel="mala", temperature=s.temperature, chunk_size=s.get("chunk_size", 0))
    if ec.ais_base == "box_kde":
        return likelihood.AISOptions(base="box_kde", base_scale=ec.ais_kde_scale, centres=centres, box=box,
                                     centre_margin=ec.ais_kde_margin, centre_log_weights=centre_log_weights, **common)
    return likelihood.AISOptions(base="uniform", base_scale=box, **common)


def toy_likelihood(config, parts, params, held_out: np.ndarray, rng_key, lim: float | None = None) -> dict:
    """The toy model's held-out NLL on the box [−lim, lim]²: exact (quadrature) and by AIS, with reverse AIS.

    ``nll_exact = mean E(x)/T + log Z`` with ``log Z`` by quadrature; ``nll_ais`` the
    same with AIS's ``log Ẑ`` (a stochastic lower bound on log Z, so an optimistic
    NLL); ``log_z_upper`` reverse AIS's stochastic upper bound from exact samples of
    the grid-discretised model. A quadrature that does not converge (a grid too
    coarse for the energy) is reported as ``likelihood.error`` instead of ``nll_exact``.
    ``likelihood.edge_mass`` is the model's probability in the outermost ring of
    cells: large means the box, not the energy, confines the model. ``lim``
    (default ``eval.likelihood_lim``) is the box's half-width.
    """
    ec, T = config.eval, config.sampler.temperature
    lim = ec.likelihood_lim if lim is None else float(lim)
    energy_fn = jax.jit(lambda x: parts.model.apply(params, x))
    held_out = held_out[np.all(np.abs(held_out) <= lim, axis=1)]
    mean_energy = float(np.mean(np.asarray(energy_fn(jnp.asarray(held_out, jnp.float32)), np.float64)))
    out = {"likelihood": {"box": [-lim, lim], "n_held_out": int(len(held_out))}}
    lk = out["likelihood"]
    try:
        log_z = likelihood.log_partition_grid(energy_fn, lim=lim, size=ec.likelihood_grid,
                                              temperature=T, on_box=True)
        lk["log_z_exact"] = log_z
        out["nll_exact"] = mean_energy / T + log_z
        _, _, log_p = likelihood.grid_log_density(energy_fn, lim=lim, size=ec.likelihood_grid, temperature=T)
        log_p = np.asarray(log_p)
        ring = np.ones_like(log_p, dtype=bool)
        ring[1:-1, 1:-1] = False
        lk["edge_mass"] = float(np.exp(log_p[ring]).sum() / np.exp(log_p).sum())
    except ValueError as err:
        log_z = None
        lk["error"] = str(err)
        logging.warning("toy likelihood: %s", err)
    if ec.ais_temps:
        k_fwd, k_grid, k_rev = jax.random.split(rng_key, 3)
        result, rows = ais_runs(config, energy_fn, (2,), lim, k_fwd)
        exact = likelihood.grid_samples(k_grid, energy_fn, lim=lim, size=2 * ec.likelihood_grid,
                                        num_samples=ec.ais_chains, temperature=T)
        reverse = likelihood.reverse_ais(k_rev, energy_fn, exact, num_temps=ec.ais_temps, options=likelihood.AISOptions(
            base="uniform", base_scale=lim, kernel="mala", temperature=T, step_sizes=result.step_sizes))
        out["nll_ais"] = mean_energy / T + result.log_z
        lk.update(log_z_ais=result.log_z, log_z_ais_std=result.log_z_std, ais_ess=result.ess,
                  ais_temps=ec.ais_temps, ais_chains=ec.ais_chains, log_z_upper=reverse.log_z,
                  log_z_upper_std=reverse.log_z_std, ais_convergence=rows)
    return out


def write_ais_convergence(workdir: Path, rows, *, exact=None, upper=None, title="") -> None:
    """``ais_convergence.png``: AIS's log Ẑ against the number of temperatures (nothing without rows)."""
    if rows:
        plots.plot_ais_convergence(workdir / "ais_convergence.png", rows, exact=exact, upper=upper, title=title)
