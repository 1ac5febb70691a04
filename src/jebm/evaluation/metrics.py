"""Evaluation metrics for the 2D toy experiments (paper section 4.1).

* :func:`ks2d`: the two-sample 2D Kolmogorov-Smirnov statistic of Fasano &
  Franceschini in the form of Press & Teukolsky (1988), with
  :func:`ks2d_pvalue` for its approximate significance and
  :func:`benchmark_ks` for the "B*" reference (two independent true samples).
* :func:`grid`, :func:`grid_points`, :func:`evaluate_on_grid` and
  :func:`discretised_kl`: KL(p_true || p_model) on a dense grid.
* :func:`mode_fractions` and :func:`mode_coverage`: how samples spread over
  the modes.
* :func:`fraction_outside`: the share of sample values outside the data's
  range (any data: images, a user's arrays).

Everything is vectorised NumPy; inputs may be NumPy or jax arrays.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import scipy.special

__all__ = [
    "KSBenchmark",
    "benchmark_ks",
    "discretised_kl",
    "evaluate_on_grid",
    "fraction_outside",
    "grid",
    "grid_points",
    "ks2d",
    "ks2d_pvalue",
    "ks2d_test",
    "mode_coverage",
    "mode_fractions",
]

# Upper bound on the number of (origin, point) pairs compared at once, so the
# boolean matrices of ks2d stay around 10 MB whatever the sample sizes.
_KS_CHUNK_PAIRS = 1 << 22


# ---------------------------------------------------------------------------
# 2D Kolmogorov-Smirnov
# ---------------------------------------------------------------------------


def _as_points(sample: Any, name: str) -> np.ndarray:
    """Converts a sample to a finite float64 ``(n, 2)`` array.

    float32 -> float64 is exact, so comparisons between coordinates are the
    same as in the original precision.

    Raises:
      ValueError: If the shape is not ``(n, 2)`` with ``n >= 1`` or a value is
        not finite (NaN comparisons would silently land in one quadrant).
    """
    points = np.asarray(sample, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, 2) with n >= 1, got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} contains non-finite values")
    return points


def _quadrant_fractions(origins: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Fractions of ``points`` in the four quadrants around every origin.

    The quadrants around an origin ``(x0, y0)`` partition the plane:
    Q1 ``x > x0, y > y0``; Q2 ``x <= x0, y > y0``; Q3 ``x <= x0, y <= y0``;
    Q4 ``x > x0, y <= y0``.

    Args:
      origins: ``(m, 2)`` quadrant origins.
      points: ``(n, 2)`` counted points.

    Returns:
      ``(m, 4)`` float64 fractions ``count / n``, columns Q1..Q4.
    """
    n = points.shape[0]
    # Marginal counts need no pairwise matrix: sort once, then binary search.
    # side="right" counts values <= x0, so n minus it counts values > x0.
    right = n - np.searchsorted(np.sort(points[:, 0]), origins[:, 0], side="right")
    above = n - np.searchsorted(np.sort(points[:, 1]), origins[:, 1], side="right")
    # Only the joint count Q1 needs the pairwise comparison.
    q1 = np.empty(origins.shape[0], dtype=np.int64)
    chunk = max(1, _KS_CHUNK_PAIRS // n)
    for start in range(0, origins.shape[0], chunk):
        o = origins[start : start + chunk]
        gx = points[None, :, 0] > o[:, None, 0]
        gy = points[None, :, 1] > o[:, None, 1]
        q1[start : start + chunk] = np.count_nonzero(gx & gy, axis=1)
    q2 = above - q1
    q4 = right - q1
    q3 = n - q1 - q2 - q4
    return np.stack([q1, q2, q3, q4], axis=1) / n


def _max_quadrant_difference(origins: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``max over origins and quadrants of |frac_a - frac_b|``."""
    diff = np.abs(_quadrant_fractions(origins, a) - _quadrant_fractions(origins, b))
    return float(diff.max())


def ks2d(a: Any, b: Any) -> float:
    """Two-sample 2D Kolmogorov-Smirnov statistic (Fasano-Franceschini).

    Follows Press & Teukolsky (1988, Computers in Physics 2(4):74) and
    Numerical Recipes' ``ks2d2s``: with every point of ``a`` as origin, the
    plane is cut into four quadrants and ``|fraction of a - fraction of b|``
    is taken in each; ``D_a`` is the maximum over quadrants and origins.
    ``D_b`` is the same with the points of ``b`` as origins, and the result is
    ``D = (D_a + D_b) / 2``.

    Tie convention (that of Numerical Recipes' ``quadct``): around an origin
    ``(x0, y0)`` a point ``(x, y)`` lies in Q1 if ``x > x0 and y > y0``, Q2 if
    ``x <= x0 and y > y0``, Q3 if ``x <= x0 and y <= y0``, Q4 if
    ``x > x0 and y <= y0``. The four quadrants partition the plane: points on
    a dividing line go to the left/lower side, and the origin point itself
    (and any duplicate of it) is counted, in Q3. The same rule applies to both
    samples, so ``ks2d(a, a) == 0``.

    Fractions are computed as ``count / n`` in float64, so the result is
    bit-identical to a direct double loop with the same convention.

    Args:
      a: ``(n, 2)`` sample.
      b: ``(m, 2)`` sample.

    Returns:
      The statistic ``D`` in ``[0, 1]``.

    Raises:
      ValueError: On a wrong shape, an empty sample or non-finite values.
    """
    a = _as_points(a, "a")
    b = _as_points(b, "b")
    d_a = _max_quadrant_difference(a, a, b)
    d_b = _max_quadrant_difference(b, a, b)
    return (d_a + d_b) / 2


def _pearson_r(sample: np.ndarray) -> float:
    """Pearson correlation of the two coordinates (0 if one is constant)."""
    centred = sample - sample.mean(axis=0)
    sxx, syy = (centred**2).sum(axis=0)
    if sxx == 0 or syy == 0:
        return 0.0
    return float((centred[:, 0] * centred[:, 1]).sum() / math.sqrt(sxx * syy))


def ks2d_pvalue(d: float, n1: int, n2: int, corr: float | tuple[float, float]) -> float:
    """Approximate significance of :func:`ks2d` (Press & Teukolsky 1988).

    ``p = Q_KS(sqrt(N) D / (1 + sqrt(1 - r**2) (0.25 - 0.75 / sqrt(N))))``
    with ``N = n1 n2 / (n1 + n2)``, ``r**2`` the mean of the squared Pearson
    correlations of the two samples and ``Q_KS`` the Kolmogorov survival
    function. The authors report it is good for ``p`` below about 0.2 and
    ``N`` above about 20; larger values are only indicative.

    Args:
      d: The statistic from :func:`ks2d`.
      n1: Size of the first sample.
      n2: Size of the second sample.
      corr: Pearson correlations ``(r1, r2)`` of the two samples, or one value
        used for both.

    Returns:
      The approximate p-value in ``[0, 1]`` (small: samples differ).
    """
    r1, r2 = (corr, corr) if np.isscalar(corr) else corr
    sqrt_n = math.sqrt(n1 * n2 / (n1 + n2))
    rr = math.sqrt(max(0.0, 1.0 - 0.5 * (r1**2 + r2**2)))
    lam = sqrt_n * d / (1.0 + rr * (0.25 - 0.75 / sqrt_n))
    return float(np.clip(scipy.special.kolmogorov(lam), 0.0, 1.0))


def ks2d_test(a: Any, b: Any) -> tuple[float, float]:
    """The statistic :func:`ks2d` and its approximate p-value.

    Args:
      a: ``(n, 2)`` sample.
      b: ``(m, 2)`` sample.

    Returns:
      ``(D, p)``.
    """
    a = _as_points(a, "a")
    b = _as_points(b, "b")
    d = ks2d(a, b)
    return d, ks2d_pvalue(d, a.shape[0], b.shape[0], (_pearson_r(a), _pearson_r(b)))


class KSBenchmark(NamedTuple):
    """Result of :func:`benchmark_ks`.

    Attributes:
      mean: Mean statistic over repeats.
      std: Population standard deviation (``ddof=0``) over repeats.
      values: The statistic of every repeat.
    """

    mean: float
    std: float
    values: list[float]


def benchmark_ks(
    sample_fn: Callable[[jax.Array, int], Any],
    rng_key: jax.Array,
    n: int = 1000,
    repeats: int = 5,
) -> KSBenchmark:
    """The "B*" reference: :func:`ks2d` between two independent true samples.

    It is the value a perfect model would reach on average at this sample
    size, a rough lower bound for the model's score.

    Args:
      sample_fn: ``sample_fn(key, n) -> (n, 2)``, e.g. ``dataset.sample``.
      rng_key: A jax PRNG key.
      n: Size of each of the two samples (paper: 1000).
      repeats: Number of independent pairs (paper: 5 seeds).

    Returns:
      A :class:`KSBenchmark`.
    """
    values = []
    for key in jax.random.split(rng_key, repeats):
        key_a, key_b = jax.random.split(key)
        values.append(ks2d(np.asarray(sample_fn(key_a, n)), np.asarray(sample_fn(key_b, n))))
    return KSBenchmark(mean=float(np.mean(values)), std=float(np.std(values)), values=values)


# ---------------------------------------------------------------------------
# Grid and discretised KL
# ---------------------------------------------------------------------------


def grid(lim: float = 1.6, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates of an ``n x n`` grid on ``[-lim, lim]^2``.

    The square is cut into ``n`` equal cells per axis of width ``2 lim / n``;
    the returned coordinates are the cell centres (not the edges), so the
    first is ``-lim + lim / n`` and the last ``lim - lim / n``.

    Args:
      lim: Half-width of the square.
      n: Cells per axis.

    Returns:
      ``(xs, ys)``, two float64 arrays of shape ``(n,)`` (identical here;
      both are returned so callers keep the x/y roles explicit).
    """
    if n < 1 or not lim > 0:
        raise ValueError(f"grid needs n >= 1 and lim > 0, got n={n}, lim={lim}")
    centres = -lim + (np.arange(n) + 0.5) * (2.0 * lim / n)
    return centres, centres.copy()


def grid_points(xs: Any, ys: Any) -> np.ndarray:
    """All grid points as an ``(ny * nx, 2)`` array in row-major (y, x) order.

    Reshaping any per-point value to ``(ny, nx)`` gives ``value[i, j]`` at
    ``(xs[j], ys[i])``, the layout used by :func:`discretised_kl` and the
    plots.

    Args:
      xs: ``(nx,)`` x coordinates.
      ys: ``(ny,)`` y coordinates.

    Returns:
      ``(ny * nx, 2)`` float64 points.
    """
    gx, gy = np.meshgrid(np.asarray(xs, np.float64), np.asarray(ys, np.float64), indexing="xy")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def evaluate_on_grid(fn: Callable[[Any], Any], xs: Any, ys: Any) -> np.ndarray:
    """Evaluates a per-point function on the grid, as a ``(ny, nx)`` array.

    Args:
      fn: Maps ``(N, 2)`` points to ``(N,)`` values, e.g. an energy or
        ``dataset.log_density``.
      xs: ``(nx,)`` x coordinates.
      ys: ``(ny,)`` y coordinates.

    Returns:
      ``out[i, j] = fn((xs[j], ys[i]))`` as a float64 NumPy array.
    """
    values = np.asarray(fn(grid_points(xs, ys)), dtype=np.float64)
    return values.reshape(len(ys), len(xs))


def discretised_kl(energy: Any, log_p_true: Any) -> float:
    """KL(p_true || p_model) between two densities discretised on a grid.

    ``p_model = softmax(-energy)`` and ``p_true = exp(log_p_true)`` are both
    normalised over the cells of the same grid (``energy[i, j]`` and
    ``log_p_true[i, j]`` taken at ``(xs[j], ys[i])``), so the cell area
    cancels. Computed in log space; cells with ``p_true == 0`` (``-inf``
    log-density) contribute ``0 log 0 = 0``. Cells with ``energy = +inf``
    but ``p_true > 0`` make the result ``inf``.

    Args:
      energy: Model energies on the grid, any shape (normally ``(ny, nx)``).
      log_p_true: True log-densities (unnormalised is fine), same shape.

    Returns:
      The KL divergence in nats, ``>= 0``.

    Raises:
      ValueError: On mismatched shapes, NaNs, ``energy = -inf`` or
        ``log_p_true = +inf`` (not normalisable), or a true density that is
        zero everywhere.
    """
    energy = np.asarray(energy, dtype=np.float64)
    log_p_true = np.asarray(log_p_true, dtype=np.float64)
    if energy.shape != log_p_true.shape:
        raise ValueError(f"energy {energy.shape} and log_p_true {log_p_true.shape} shapes differ")
    if np.isnan(energy).any() or np.isnan(log_p_true).any():
        raise ValueError("discretised_kl got NaN energies or log-densities")
    if np.isneginf(energy).any() or np.isposinf(log_p_true).any():
        raise ValueError("energy = -inf or log_p_true = +inf cannot be normalised")
    if np.isneginf(log_p_true).all():
        raise ValueError("log_p_true is -inf everywhere: the true density has no mass on the grid")
    log_q = -energy - scipy.special.logsumexp(-energy)
    log_p = log_p_true - scipy.special.logsumexp(log_p_true)
    support = np.isfinite(log_p)
    p = np.exp(log_p[support])
    kl = float(np.sum(p * (log_p[support] - log_q[support])))
    # Rounding can give tiny negatives for identical distributions.
    return max(kl, 0.0)


# ---------------------------------------------------------------------------
# Mode statistics
# ---------------------------------------------------------------------------


def mode_fractions(samples: Any, modes: Any) -> np.ndarray:
    """Fraction of samples whose nearest mode (Euclidean) is each mode.

    Every sample is assigned to exactly one mode (ties go to the lower
    index), so the fractions sum to one.

    Args:
      samples: ``(n, 2)`` samples (``n >= 1``).
      modes: ``(k, 2)`` mode locations, e.g. ``dataset.modes``.

    Returns:
      ``(k,)`` float64 fractions.
    """
    samples = _as_points(samples, "samples")
    modes = _as_points(modes, "modes")
    sq_dist = ((samples[:, None, :] - modes[None, :, :]) ** 2).sum(axis=-1)
    nearest = np.argmin(sq_dist, axis=1)
    return np.bincount(nearest, minlength=modes.shape[0]) / samples.shape[0]


def mode_coverage(samples: Any, modes: Any, min_fraction: float = 0.01) -> int:
    """Number of modes holding more than ``min_fraction`` of the samples.

    Args:
      samples: ``(n, 2)`` samples.
      modes: ``(k, 2)`` mode locations.
      min_fraction: A mode counts as covered above this fraction (the default
        1% is an eighth of the 12.5% each gmm8 mode should get).

    Returns:
      The number of covered modes, between 0 and ``k``.
    """
    return int(np.count_nonzero(mode_fractions(samples, modes) > min_fraction))


def fraction_outside(samples: Any, low: float, high: float) -> dict:
    """The share of the finite values of ``samples`` outside ``[low, high]``, and that range.

    Returns:
      ``{"fraction_outside_range": share (NaN when no value is finite), "data_range": [low, high]}``.
    """
    x = np.asarray(samples, np.float64)
    finite = x[np.isfinite(x)]
    return {"fraction_outside_range": float(np.mean((finite < low) | (finite > high))) if finite.size else float("nan"),
            "data_range": [low, high]}
