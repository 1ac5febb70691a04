"""Tests for jebm.evaluation.features: FID, KID, class-histogram entropy and mean confidence.

Each is checked against a closed form or a plain-loop recomputation on small arrays; no classifier.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from jebm.evaluation import features


# ---------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------


def with_exact_moments(rng, n, mean, cov):
    """n points whose sample mean and (ddof=1) covariance are exactly mean/cov."""
    d = len(mean)
    z = rng.normal(size=(n, d))
    z -= z.mean(axis=0)
    # Whiten to identity sample covariance, then colour with chol(cov).
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T
    return z @ np.linalg.cholesky(cov).T + mean


def psd_sqrt(m):
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_closed_form(mu_a, cov_a, mu_b, cov_b):
    """Tr((Σa Σb)^½) as Σ sqrt(eig(Σa^½ Σb Σa^½)): symmetric, no sqrtm."""
    root_a = psd_sqrt(cov_a)
    eig = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu_a - mu_b
    return diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    a = with_exact_moments(rng, 50, mu_a, np.diag(var_a))
    b = with_exact_moments(rng, 80, mu_b, np.diag(var_b))
    # Diagonal covariances: Σ (μa-μb)² + Σ (σa - σb)².
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert expected == pytest.approx(0.25 + 9.0 + 4.0 + 1.0)
    assert features.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_general_covariances_closed_form():
    rng = np.random.default_rng(1)
    d = 6
    m_a, m_b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    cov_a, cov_b = m_a @ m_a.T + 0.1 * np.eye(d), m_b @ m_b.T + 0.1 * np.eye(d)
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    a = with_exact_moments(rng, 40, mu_a, cov_a)
    b = with_exact_moments(rng, 70, mu_b, cov_b)
    expected = frechet_closed_form(mu_a, cov_a, mu_b, cov_b)
    assert features.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert features.frechet_distance(b, a) == pytest.approx(expected, rel=1e-8)


def test_frechet_one_dimensional():
    rng = np.random.default_rng(2)
    a = with_exact_moments(rng, 30, np.array([1.0]), np.array([[4.0]]))
    b = with_exact_moments(rng, 30, np.array([-1.0]), np.array([[1.0]]))
    assert features.frechet_distance(a, b) == pytest.approx(4.0 + 1.0, rel=1e-10)


def test_frechet_identical_and_symmetric():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 16))
    b = rng.normal(size=(150, 16)) * 1.5 + 0.3
    assert features.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert features.frechet_distance(a, b) == pytest.approx(features.frechet_distance(b, a), rel=1e-8)
    assert features.frechet_distance(a, b) > 1.0


def test_frechet_singular_covariances_stay_finite():
    # Fewer samples than dimensions: both covariances are singular.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 1.0
    fd = features.frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 0
    # Mean term alone is 32; the distance cannot be below it.
    assert fd >= 32 * 0.5


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="Feature dimensions"):
        features.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="n >= 2"):
        features.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        features.frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


# ---------------------------------------------------------------------------
# Kernel (KID) distance
# ---------------------------------------------------------------------------


def mmd2_bruteforce(x, y):
    """Unbiased MMD² with k(u, v) = (u·v/d + 1)³ as plain double loops."""
    d = len(x[0])

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_whole_sets_matches_bruteforce():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(8, 3)), rng.normal(size=(8, 3)) + 0.5
    mean, std = features.kernel_distance(a, b, subset_size=100)
    assert mean == pytest.approx(mmd2_bruteforce(a.tolist(), b.tolist()), rel=1e-10, abs=1e-12)
    assert std == 0.0


def test_kid_subsets_match_bruteforce():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(12, 4)), rng.normal(size=(15, 4)) * 2.0
    mean, std = features.kernel_distance(a, b, num_subsets=6, subset_size=5, seed=11)
    # Same draws as the implementation: per subset, 5 of a then 5 of b.
    draw = np.random.default_rng(11)
    values = []
    for _ in range(6):
        ia = draw.choice(12, 5, replace=False)
        ib = draw.choice(15, 5, replace=False)
        values.append(mmd2_bruteforce(a[ia].tolist(), b[ib].tolist()))
    assert mean == pytest.approx(np.mean(values), rel=1e-10, abs=1e-12)
    assert std == pytest.approx(np.std(values), rel=1e-8, abs=1e-12)


def test_kid_same_distribution_near_zero_and_shift_positive():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    mean, std = features.kernel_distance(a, b, num_subsets=50, subset_size=200)
    assert std > 0
    assert abs(mean) < 3 * std
    shifted_mean, shifted_std = features.kernel_distance(a, b + 1.0, num_subsets=50, subset_size=200)
    assert shifted_mean > 10 * shifted_std
    assert shifted_mean > 100 * abs(mean)


def test_kid_is_deterministic_in_seed():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(50, 5)), rng.normal(size=(60, 5))
    first = features.kernel_distance(a, b, num_subsets=10, subset_size=20, seed=1)
    assert features.kernel_distance(a, b, num_subsets=10, subset_size=20, seed=1) == first
    assert features.kernel_distance(a, b, num_subsets=10, subset_size=20, seed=2) != first


# ---------------------------------------------------------------------------
# Class histogram entropy and confidence
# ---------------------------------------------------------------------------


def test_entropy_known_answers():
    uniform = np.eye(10)[np.arange(30) % 10]
    entropy, counts = features.class_histogram_entropy(uniform)
    assert entropy == pytest.approx(math.log(10), abs=1e-12)
    assert counts.tolist() == [3] * 10

    collapsed = np.tile([0.05, 0.55, 0.4] + [0.0] * 7, (20, 1))
    entropy, counts = features.class_histogram_entropy(collapsed)
    assert entropy == 0.0
    assert counts.tolist() == [0, 20] + [0] * 8

    two = np.eye(10)[[2, 7, 2, 7]]
    assert features.class_histogram_entropy(two)[0] == pytest.approx(math.log(2), abs=1e-12)

    # Histogram 1:3 -> -(1/4 log 1/4 + 3/4 log 3/4).
    skewed = np.eye(10)[[0, 4, 4, 4]]
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert features.class_histogram_entropy(skewed)[0] == pytest.approx(expected, abs=1e-12)


def test_mean_confidence_known_answers():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
    assert features.mean_confidence(probs) == pytest.approx((0.7 + 0.6 + 1 / 3) / 3, abs=1e-12)
    assert features.mean_confidence(np.eye(10)) == 1.0
    with pytest.raises(ValueError):
        features.mean_confidence(np.zeros((0, 10)))

