"""Reported error bars against the spread they claim, and the toy NLL against a closed form.

Each reported standard error is compared with the spread of the estimate over independent repeats,
within a stated factor: a standard error off by √n (or a spread reported as the error of a mean)
misses by a factor of several, far outside it.
"""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from conftest import load_config
from jebm.evaluation import likelihood, metrics
from jebm.evaluation.evaluators import likelihood_scores

SCALE = 0.5  # E(x) = ½‖x‖²/SCALE²: a Gaussian of variance SCALE²·T at temperature T


def gaussian_energy(x):
    return 0.5 * jnp.sum(x ** 2, axis=-1) / SCALE ** 2


def test_ais_log_z_std_matches_the_spread_over_independent_runs():
    """One AIS run of 50 × 64 chains with a fixed step size (no shared adaptation, so the chains are
    independent) is 50 independent 64-chain runs. Their log Ẑ spread is √50 times the whole run's
    delta-method ``log_z_std`` (the standard error falls as 1/√n), and the bootstrap's standard error of a
    64-chain run agrees with it too: each within a factor 1.5 (the spread of 50 values is known to ±10%;
    K = 10 keeps the ESS near 12% of the chains, where the delta method still holds: measured ratios
    0.84-1.25 over three seeds)."""
    groups, per_group = 50, 64
    result = likelihood.ais(jax.random.key(0), gaussian_energy, (2,), num_chains=groups * per_group, num_temps=10,
                            options=likelihood.AISOptions(base="uniform", base_scale=3.0, step_size=0.05))
    log_w = np.asarray(result.log_weights, np.float64).reshape(groups, per_group)
    estimates = scipy.special.logsumexp(log_w, axis=1) - math.log(per_group)
    spread = float(np.std(estimates, ddof=1))
    predicted = result.log_z_std * math.sqrt(groups)
    assert 1 / 1.5 < predicted / spread < 1.5, (predicted, spread)
    bootstrap = np.mean([likelihood.bootstrap_log_z_std(w, jax.random.key(i), 200) for i, w in enumerate(log_w[:10])])
    assert 1 / 1.5 < bootstrap / spread < 1.5, (bootstrap, spread)
    # The estimate itself: log Z of the Gaussian on the box [-3, 3]² (its mass outside is < 1e-8).
    assert abs(result.log_z - math.log(2 * math.pi * SCALE ** 2)) < 4 * result.log_z_std


def test_ks_benchmark_spread_matches_independent_pairs():
    """``benchmark_ks``'s ``std`` (over 20 pairs) against the spread of ks2d over 20 other pairs computed
    here: within a factor 1.6 (each sample standard deviation of 20 values is known to ±16%)."""
    sample = lambda key, n: jax.random.normal(key, (n, 2))  # noqa: E731
    bench = metrics.benchmark_ks(sample, jax.random.key(0), n=100, repeats=20)
    assert bench.std == pytest.approx(np.std(bench.values)) and bench.mean == pytest.approx(np.mean(bench.values))
    by_hand = [metrics.ks2d(np.asarray(sample(k, 100)), np.asarray(sample(jax.random.fold_in(k, 1), 100)))
               for k in jax.random.split(jax.random.key(1), 20)]
    assert 1 / 1.6 < bench.std / np.std(by_hand) < 1.6, (bench.std, np.std(by_hand))
    assert abs(bench.mean - np.mean(by_hand)) < 3 * np.std(by_hand) / math.sqrt(10)


def test_nll_is_the_mean_energy_over_t_plus_log_z():
    assert likelihood.nll([1.0, 3.0], log_z=0.5, temperature=0.5) == pytest.approx(4.0 + 0.5)
    assert likelihood.nll(np.array([-2.0]), log_z=1.0) == pytest.approx(-1.0)


def test_toy_nll_equals_the_closed_form_on_a_gaussian_energy():
    """``likelihood_scores.toy_likelihood`` on E = ½‖x‖²/s² at T = 0.5 on the box [−2, 2]²: log Z is that of the
    Gaussian N(0, s²T·I) truncated to the box, and the NLL is mean E(held-out)/T + log Z, both written out
    here (quadrature on a 64-cell grid, checked against 128: error < 1e-3)."""
    config = load_config("gmm_sgld", "smoke")
    config.sampler.temperature = t = 0.5
    config.eval.ais_temps = 0  # the quadrature's NLL; AIS's is tied to it by test_train's smoke-run checks
    parts = types.SimpleNamespace(model=types.SimpleNamespace(apply=lambda params, x: gaussian_energy(x)))
    sd, lim = SCALE * math.sqrt(t), config.eval.likelihood_lim
    held_out = np.asarray(jax.random.normal(jax.random.key(0), (500, 2))) * sd
    held_out[0] = [2.5, 0.0]  # outside the box: not scored
    out = likelihood_scores.toy_likelihood(config, parts, None, held_out, jax.random.key(1))
    inside = held_out[1:]
    box_mass_1d = scipy.stats.norm.cdf(lim / sd) - scipy.stats.norm.cdf(-lim / sd)
    log_z = 2 * math.log(math.sqrt(2 * math.pi) * sd * box_mass_1d)
    expected = np.mean(0.5 * np.sum(inside ** 2, axis=1) / SCALE ** 2) / t + log_z
    assert out["likelihood"]["n_held_out"] == len(inside)
    assert out["likelihood"]["log_z_exact"] == pytest.approx(log_z, abs=2e-3)
    assert out["nll_exact"] == pytest.approx(expected, abs=2e-3)
    # The Gaussian's differential entropy, which the NLL of its own samples estimates: log(2πe s²T).
    assert out["nll_exact"] == pytest.approx(math.log(2 * math.pi * math.e * sd ** 2), abs=0.1)
