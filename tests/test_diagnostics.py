"""Tests for jebm.evaluation.diagnostics (MCMC ESS, R̂, autocorrelation, drift/noise)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm.evaluation import diagnostics


def ar1(seed, phi, num_chains=4, num_draws=5000):
    """Stationary AR(1) chains ``x_t = φ x_{t-1} + √(1-φ²) ε_t``, ``x_0 ~ N(0, 1)``."""
    rng = np.random.default_rng(seed)
    x = np.empty((num_chains, num_draws))
    x[:, 0] = rng.standard_normal(num_chains)
    noise = rng.standard_normal((num_chains, num_draws)) * math.sqrt(1 - phi**2)
    for t in range(1, num_draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def autocorrelation_bruteforce(chain):
    """Biased autocorrelation of one 1-D chain by a plain double loop."""
    n = len(chain)
    mean = sum(chain) / n
    acov = [sum((chain[i] - mean) * (chain[i + t] - mean) for i in range(n - t)) / n for t in range(n)]
    return np.array([a / acov[0] for a in acov])


def ess_classic_bruteforce(x):
    """Vehtari et al. (2021) multi-chain ESS of (M, N) draws, written with loops."""
    m, n = len(x), len(x[0])
    means = [sum(c) / n for c in x]
    acov = [
        [sum((c[i] - mu) * (c[i + t] - mu) for i in range(n - t)) / n for t in range(n)]
        for c, mu in zip(x, means)
    ]
    s2 = [a[0] * n / (n - 1) for a in acov]
    w = sum(s2) / m
    grand = sum(means) / m
    b = n / (m - 1) * sum((mu - grand) ** 2 for mu in means)
    var_plus = (n - 1) / n * w + b / n
    rho = [1 - (w - sum(s2[j] * acov[j][t] / acov[j][0] for j in range(m)) / m) / var_plus for t in range(n)]
    total, previous = 0.0, float("inf")
    for k in range(n // 2):
        pair = rho[2 * k] + rho[2 * k + 1]
        if pair <= 0:
            break
        previous = min(previous, pair)
        total += previous
    return m * n / (-1 + 2 * total)


def split_rhat_bruteforce(x):
    """BDA3 split-R̂ of (M, N) draws (N even), written with loops."""
    half = len(x[0]) // 2
    chains = [list(c[:half]) for c in x] + [list(c[half:]) for c in x]
    m, n = len(chains), half
    means = [sum(c) / n for c in chains]
    w = sum(sum((v - mu) ** 2 for v in c) / (n - 1) for c, mu in zip(chains, means)) / m
    grand = sum(means) / m
    b = n / (m - 1) * sum((mu - grand) ** 2 for mu in means)
    return math.sqrt(((n - 1) / n * w + b / n) / w)


# ---------------------------------------------------------------------------
# Autocorrelation
# ---------------------------------------------------------------------------


def test_autocorrelation_matches_bruteforce():
    x = np.random.default_rng(0).standard_normal((3, 37))
    acf = diagnostics.autocorrelation(x)
    assert acf.shape == (3, 37)
    for chain, row in zip(x, acf):
        np.testing.assert_allclose(row, autocorrelation_bruteforce(list(chain)), rtol=0, atol=1e-10)
    np.testing.assert_allclose(acf[:, 0], 1.0, atol=1e-12)


def test_autocorrelation_max_lag_and_trailing_axes():
    x = np.random.default_rng(1).standard_normal((2, 20, 3)).astype(np.float32)
    acf = diagnostics.autocorrelation(jnp.asarray(x), max_lag=5)
    assert acf.shape == (2, 6, 3) and acf.dtype == np.float64
    for j in range(3):
        np.testing.assert_allclose(acf[..., j], diagnostics.autocorrelation(x[..., j])[:, :6], atol=1e-12)
    np.testing.assert_allclose(acf[:, 0], 1.0, atol=1e-12)


# ---------------------------------------------------------------------------
# ESS
# ---------------------------------------------------------------------------


def test_ess_classic_matches_bruteforce_equations():
    x = ar1(3, 0.6, num_chains=3, num_draws=60)
    x[1] += 0.3  # some between-chain variance, so B enters
    assert diagnostics.ess(x, method="classic") == pytest.approx(ess_classic_bruteforce(x.tolist()), rel=1e-10)


# AR(1) with M=4, N=5000: over 20 seeds the classic ESS / theory ratio had sd
# 0.021 (φ=0), 0.029 (φ=0.5) and 0.073 (φ=0.9); the tolerances are >= 2 sd.
@pytest.mark.parametrize("phi, tolerance", [(0.0, 0.10), (0.5, 0.10), (0.9, 0.15)])
def test_ess_ar1_matches_theory(phi, tolerance):
    x = ar1(0, phi)
    theory = x.size * (1 - phi) / (1 + phi)
    classic = diagnostics.ess(x, method="classic")
    bulk = diagnostics.ess(x, method="bulk")
    assert isinstance(classic, float) and isinstance(bulk, float)
    assert classic == pytest.approx(theory, rel=tolerance)
    # Gaussian AR(1): rank-normalising and splitting change little (max 1.7% over 20 seeds).
    assert bulk == pytest.approx(classic, rel=0.05)


def test_ess_trailing_axes_equal_columns():
    rng = np.random.default_rng(2)
    x = np.stack([ar1(4, 0.3, num_draws=400), ar1(5, 0.8, num_draws=400), rng.standard_normal((4, 400))], axis=-1)
    for method in ("bulk", "classic"):
        values = diagnostics.ess(x, method=method)
        assert values.shape == (3,)
        np.testing.assert_allclose(values, [diagnostics.ess(x[..., j], method=method) for j in range(3)], rtol=1e-12)
    assert diagnostics.rhat(x[..., None, :]).shape == (1, 3)


# ---------------------------------------------------------------------------
# R̂
# ---------------------------------------------------------------------------


def test_split_rhat_matches_bruteforce():
    x = np.random.default_rng(6).standard_normal((3, 40)) + np.array([[0.0], [0.2], [0.5]])
    assert diagnostics.rhat(x, method="split") == pytest.approx(split_rhat_bruteforce(x.tolist()), rel=1e-12)


def test_rhat_well_mixed_chains():
    x = np.random.default_rng(7).standard_normal((4, 1000))
    assert diagnostics.rhat(x) < 1.01
    assert diagnostics.rhat(x, method="split") < 1.01


def test_rhat_shifted_means():
    # Chain i has mean 0.5 i and unit noise: R̂ ≈ 1.17 for both methods.
    x = np.random.default_rng(8).standard_normal((4, 1000)) + 0.5 * np.arange(4)[:, None]
    assert diagnostics.rhat(x) > 1.1
    assert diagnostics.rhat(x, method="split") > 1.1


def test_rhat_variance_only_caught_by_folded():
    # Same mean, one chain with 3x the scale: chain means agree, so split-R̂ ≈ 1
    # (it compares means only), but the folded draws |x - median| differ in
    # mean between chains, so the rank R̂ (≈ 1.14 over 10 seeds) flags it.
    x = np.random.default_rng(9).standard_normal((4, 1000)) * np.array([1.0, 1.0, 1.0, 3.0])[:, None]
    assert diagnostics.rhat(x) > 1.05
    assert diagnostics.rhat(x, method="split") < 1.01


def test_rhat_catches_trend_within_one_chain():
    x = np.random.default_rng(10).standard_normal((1, 1000)) + np.linspace(0, 2, 1000)
    assert diagnostics.rhat(x, method="split") > 1.1


# ---------------------------------------------------------------------------
# summarize and degenerate inputs
# ---------------------------------------------------------------------------


def test_summarize():
    x = ar1(11, 0.5, num_draws=500)
    summary = diagnostics.summarize(jnp.asarray(x))
    assert set(summary) == {"ess_bulk", "ess_classic", "rhat", "rhat_split"}
    assert all(type(v) is float for v in summary.values())
    assert summary["ess_classic"] == pytest.approx(diagnostics.ess(x, method="classic"), rel=1e-5)
    assert summary["rhat"] < 1.05


def test_constant_and_nonfinite_quantities_give_nan():
    x = np.random.default_rng(12).standard_normal((2, 50, 3))
    x[..., 1] = 4.0
    x[0, 3, 2] = np.nan
    for values in (diagnostics.ess(x), diagnostics.ess(x, method="classic"), diagnostics.rhat(x),
                   diagnostics.rhat(x, method="split")):
        assert np.isfinite(values[0]) and np.isnan(values[1]) and np.isnan(values[2])
    assert all(math.isnan(v) for v in diagnostics.summarize(np.ones((2, 10))).values())


@pytest.mark.parametrize("bad", [np.zeros(10), np.float64(1.0), np.zeros((2, 3)), np.zeros((0, 10))])
def test_bad_shapes_raise(bad):
    for fn in (diagnostics.ess, diagnostics.rhat):
        with pytest.raises(ValueError, match="draws"):
            fn(bad)


def test_bad_arguments_raise():
    x = np.random.default_rng(13).standard_normal((2, 10))
    with pytest.raises(ValueError, match="method"):
        diagnostics.ess(x, method="tail")
    with pytest.raises(ValueError, match="method"):
        diagnostics.rhat(x, method="bulk")
    with pytest.raises(ValueError, match="max_lag"):
        diagnostics.autocorrelation(x, max_lag=10)
    with pytest.raises(ValueError, match=r"draws must have shape \(num_chains, num_draws, \.\.\.\)"):
        diagnostics.autocorrelation(np.zeros(5))
    with pytest.raises(ValueError, match=r"\(num_chains, num_draws\)"):
        diagnostics.summarize(x[..., None])
    with pytest.raises(ValueError, match="step_size"):
        diagnostics.drift_noise_ratio(1.0, step_size=0.0, temperature=1.0, dim=2)


# ---------------------------------------------------------------------------
# drift_noise_ratio
# ---------------------------------------------------------------------------


def test_drift_noise_ratio_closed_form():
    # SGLD: η‖g‖ / √(2ηTd) = 0.01 * 50 / √(2 * 0.01 * 0.5 * 100) = 0.5 / 1 = 0.5.
    assert diagnostics.drift_noise_ratio(50.0, step_size=0.01, temperature=0.5, dim=100) == pytest.approx(0.5)
    # SGHMC: η‖g‖ / √(2ηCTd) with C = 4: 0.5 / √4 = 0.25.
    assert diagnostics.drift_noise_ratio(
        50.0, step_size=0.01, temperature=0.5, dim=100, friction=4.0
    ) == pytest.approx(0.25)
    ratios = diagnostics.drift_noise_ratio(np.array([0.0, 50.0, 200.0]), step_size=0.01, temperature=0.5, dim=100)
    np.testing.assert_allclose(ratios, [0.0, 0.5, 2.0])


def test_drift_noise_ratio_under_jit():
    @jax.jit
    def ratio(grad, step_size):
        norm = jnp.linalg.norm(grad, axis=-1)
        return diagnostics.drift_noise_ratio(norm, step_size=step_size, temperature=0.5, dim=grad.shape[-1])

    grad = jnp.full((2, 100), 5.0)  # ‖g‖ = 50
    out = ratio(grad, 0.01)
    assert isinstance(out, jax.Array) and out.shape == (2,)
    np.testing.assert_allclose(np.asarray(out), 0.5, rtol=1e-5)


def test_sampler_drift_noise_ratio_takes_friction_only_for_sghmc():
    from ml_collections import config_dict

    sampler = config_dict.ConfigDict({"name": "sghmc", "step_size": 0.01, "temperature": 0.5, "friction": 4.0})
    assert diagnostics.sampler_drift_noise_ratio(sampler, (10, 10))(50.0) == pytest.approx(0.25)
    sampler.name = "sgld"
    assert diagnostics.sampler_drift_noise_ratio(sampler, (10, 10))(50.0) == pytest.approx(0.5)


@pytest.mark.parametrize("ratios, regime", [((0.001, 0.002, 0.003, 5.0), "random_walk"),
                                            ((0.5, 2.0, 0.001, 20.0), "balanced"),
                                            ((20.0, 30.0, 11.0, 1.0), "gradient_descent")])
def test_drift_noise_summary_names_the_regime_of_most_logged_steps(ratios, regime, caplog):
    records = [{"drift_noise_ratio": r} for r in ratios] + [{"loss": 1.0}, {"drift_noise_ratio": float("nan")}]
    with caplog.at_level("WARNING"):
        summary = diagnostics.drift_noise_summary(records, num_steps=40)
    assert summary["regime"] == regime and summary["num_steps"] == 40
    assert summary["min"] == min(ratios) and summary["max"] == max(ratios)  # the NaN is left out
    assert summary["fraction_below"] == np.mean(np.asarray(ratios) < diagnostics.RANDOM_WALK_BELOW)
    assert bool(caplog.records) == (regime != "balanced")  # a failure regime warns
    assert diagnostics.drift_noise_summary([{"loss": 1.0}], num_steps=40) == {}
