"""Tests for jebm.evaluation.metrics."""

import math

import jax
import numpy as np
import pytest
import scipy.special

from jebm.evaluation import metrics
from jebm.data import toy


def ks2d_bruteforce(a, b):
    """Reference 2D KS statistic: a plain double loop, NR ``quadct`` convention."""

    def fractions(x0, y0, sample):
        counts = [0, 0, 0, 0]
        for x, y in sample:
            if y > y0:
                counts[0 if x > x0 else 1] += 1
            else:
                counts[3 if x > x0 else 2] += 1
        return [c / len(sample) for c in counts]

    def max_difference(origins):
        best = 0.0
        for x0, y0 in origins:
            fa, fb = fractions(x0, y0, a), fractions(x0, y0, b)
            for u, v in zip(fa, fb):
                best = max(best, abs(u - v))
        return best

    a = [tuple(map(float, p)) for p in np.asarray(a, dtype=np.float64)]
    b = [tuple(map(float, p)) for p in np.asarray(b, dtype=np.float64)]
    return (max_difference(a) + max_difference(b)) / 2


def _tied_sample(rng, n):
    """Coordinates on a coarse lattice, so ties and duplicates are common."""
    return rng.integers(-3, 4, size=(n, 2)).astype(np.float64) * 0.5


@pytest.mark.parametrize(
    "n1,n2,kind",
    [(30, 30, "normal"), (50, 80, "normal"), (80, 37, "shifted"), (40, 60, "tied"), (33, 33, "tied"), (1, 5, "normal")],
)
def test_ks2d_equals_bruteforce_exactly(n1, n2, kind):
    rng = np.random.default_rng(n1 * 1000 + n2)
    if kind == "tied":
        a, b = _tied_sample(rng, n1), _tied_sample(rng, n2)
        # Also share some points between the samples.
        b[: min(n1, n2) // 3] = a[: min(n1, n2) // 3]
    else:
        a = rng.standard_normal((n1, 2))
        b = rng.standard_normal((n2, 2)) + (0.7 if kind == "shifted" else 0.0)
    assert metrics.ks2d(a, b) == ks2d_bruteforce(a, b)
    assert metrics.ks2d(b, a) == ks2d_bruteforce(b, a)


def test_ks2d_chunking_does_not_change_result(monkeypatch):
    rng = np.random.default_rng(3)
    a, b = _tied_sample(rng, 70), rng.standard_normal((50, 2))
    expected = metrics.ks2d(a, b)
    monkeypatch.setattr(metrics, "_KS_CHUNK_PAIRS", 7)
    assert metrics.ks2d(a, b) == expected


def test_ks2d_identical_samples_is_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((100, 2))
    assert metrics.ks2d(a, a) == 0.0
    tied = _tied_sample(rng, 60)
    assert metrics.ks2d(tied, tied) == 0.0


def test_ks2d_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.ks2d(np.zeros((5, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="shape"):
        metrics.ks2d(np.zeros((0, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.ks2d(np.full((5, 2), np.nan), np.zeros((5, 2)))


def test_benchmark_matches_paper_and_different_samples_score_high():
    dataset = toy.gmm8()
    # Jitting the sampler once is cheaper than compiling its eager ops.
    sample = jax.jit(dataset.sample, static_argnums=1)
    bench = metrics.benchmark_ks(sample, jax.random.key(0), n=1000, repeats=5)
    assert len(bench.values) == 5
    assert bench.mean == pytest.approx(np.mean(bench.values))
    # Paper, Table 1: B* = 0.0519 +- 0.0109 at n = 1000.
    assert 0.03 < bench.mean < 0.08
    assert 0.0 < bench.std < 0.03

    true = np.asarray(sample(jax.random.key(1), 1000))
    rng = np.random.default_rng(1)
    # Mode collapse: everything on the first mode.
    collapsed = dataset.means[0] + dataset.std * rng.standard_normal((1000, 2))
    assert metrics.ks2d(true, collapsed) > 0.3
    # A standard normal has the same mean but no modes: clearly worse than B*.
    d, p = metrics.ks2d_test(true, rng.standard_normal((1000, 2)))
    assert d > 0.15 and p < 1e-6


def test_ks2d_pvalue_behaves():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((300, 2)), rng.standard_normal((300, 2))
    _, p_same = metrics.ks2d_test(a, b)
    _, p_diff = metrics.ks2d_test(a, b + 0.5)
    assert p_same > 0.05
    assert p_diff < 1e-3
    # Monotone in D and bounded.
    ps = [metrics.ks2d_pvalue(d, 100, 100, 0.0) for d in (0.0, 0.1, 0.2, 0.4)]
    assert ps[0] == 1.0 and all(x > y for x, y in zip(ps, ps[1:])) and ps[-1] >= 0.0
    # A scalar correlation means the same value for both samples.
    assert metrics.ks2d_pvalue(0.2, 100, 80, 0.3) == metrics.ks2d_pvalue(0.2, 100, 80, (0.3, 0.3))


def test_grid_cell_centres_and_layout():
    xs, ys = metrics.grid(lim=1.0, n=4)
    np.testing.assert_allclose(xs, [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_array_equal(xs, ys)
    xs = np.array([0.0, 1.0, 2.0])
    ys = np.array([10.0, 20.0])
    values = metrics.evaluate_on_grid(lambda p: p[:, 0] + p[:, 1] * 100, xs, ys)
    assert values.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert values[i, j] == xs[j] + 100 * ys[i]


def _gmm_grid():
    xs, ys = metrics.grid(lim=1.6, n=60)
    return metrics.evaluate_on_grid(toy.gmm8().log_density, xs, ys)


def test_discretised_kl_flat_energy_is_log_cells_minus_entropy():
    log_p = _gmm_grid()
    p = np.exp(log_p - scipy.special.logsumexp(log_p))
    entropy = -np.sum(p * np.log(p))
    expected = math.log(log_p.size) - entropy
    assert metrics.discretised_kl(np.full_like(log_p, 3.7), log_p) == pytest.approx(expected, rel=1e-12)


def test_discretised_kl_exact_model_is_zero_and_shift_invariant():
    log_p = _gmm_grid()
    assert metrics.discretised_kl(-log_p, log_p) == pytest.approx(0.0, abs=1e-12)
    assert metrics.discretised_kl(-log_p + 123.0, log_p - 5.0) == pytest.approx(0.0, abs=1e-12)
    assert metrics.discretised_kl(-0.5 * log_p, log_p) > 0.1


def test_discretised_kl_handles_zero_true_probability():
    log_p = np.array([[math.log(0.5), math.log(0.5)], [-np.inf, -np.inf]])
    energy = -np.log(np.array([[0.25, 0.25], [0.25, 0.25]]))
    # KL = sum_p p log(p / q) = log 2, the zero cells contribute nothing.
    assert metrics.discretised_kl(energy, log_p) == pytest.approx(math.log(2.0), rel=1e-14)
    # Model with no mass where the truth has some: infinite.
    assert metrics.discretised_kl(np.array([[np.inf, 0.0], [0.0, 0.0]]), np.zeros((2, 2))) == math.inf


def test_discretised_kl_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        metrics.discretised_kl(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.discretised_kl(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no mass"):
        metrics.discretised_kl(np.zeros((2, 2)), np.full((2, 2), -np.inf))


def test_mode_fractions_matches_loop():
    rng = np.random.default_rng(2)
    modes = toy.gmm8().modes
    samples = 1.3 * rng.standard_normal((500, 2))
    counts = np.zeros(len(modes))
    for s in samples:
        distances = [np.sum((s - m) ** 2) for m in modes]
        counts[int(np.argmin(distances))] += 1
    fractions = metrics.mode_fractions(samples, modes)
    np.testing.assert_array_equal(fractions, counts / len(samples))
    assert fractions.sum() == pytest.approx(1.0)


def test_mode_fractions_and_coverage_on_true_and_collapsed_samples():
    dataset = toy.gmm8()
    rng = np.random.default_rng(3)
    samples = dataset.means[rng.integers(8, size=4000)] + dataset.std * rng.standard_normal((4000, 2))
    fractions = metrics.mode_fractions(samples, dataset.modes)
    np.testing.assert_allclose(fractions, 1 / 8, atol=5 * math.sqrt(1 / 8 * 7 / 8 / 4000))
    assert metrics.mode_coverage(samples, dataset.modes) == 8
    collapsed = np.repeat(dataset.modes[:2], 50, axis=0)
    assert metrics.mode_coverage(collapsed, dataset.modes) == 2
