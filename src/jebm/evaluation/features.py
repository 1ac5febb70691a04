"""Scores computed from a classifier's outputs on two image sets, with no model in them.

Plain NumPy/SciPy on arrays of features or class probabilities, whatever network
produced them (jebm uses :mod:`jebm.evaluation.classifier`):

* :func:`frechet_distance` (FID-style, Heusel et al. 2017, "GANs Trained by a
  Two Time-Scale Update Rule Converge to a Local Nash Equilibrium") between
  Gaussians fitted to two feature sets;
* :func:`kernel_distance` (KID, Bińkowski et al. 2018, "Demystifying MMD
  GANs"): the unbiased MMD² with the cubic polynomial kernel, averaged over
  random subsets;
* :func:`class_histogram_entropy`: the entropy of the histogram of predicted
  classes, a mode-coverage number;
* :func:`mean_confidence`: the mean largest class probability.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import scipy.linalg

__all__ = [
    "class_histogram_entropy",
    "frechet_distance",
    "kernel_distance",
    "mean_confidence",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Distances between feature sets
# --------------------------------------------------------------------------


def _as_features(x: Any, name: str) -> np.ndarray:
    """A finite float64 (n, d) array with n >= 2."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 2, got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return x


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets checked by :func:`_as_features`, with the same dimension d."""
    a, b = _as_features(a, "feat_a"), _as_features(b, "feat_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Feature dimensions differ: {a.shape[1]} vs {b.shape[1]}.")
    return a, b


def frechet_distance(feat_a: Any, feat_b: Any, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``FD = ‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^{1/2})`` with the sample means
    ``μ = (1/n) Σᵢ xᵢ`` and the unbiased covariances
    ``Σ = (1/(n − 1)) Σᵢ (xᵢ − μ)(xᵢ − μ)ᵀ`` of each set, in float64 (the
    Fréchet, or 2-Wasserstein, distance squared between N(μa, Σa) and
    N(μb, Σb)). The matrix square root is
    :func:`scipy.linalg.sqrtm`, handled as in the reference FID code
    (Heusel et al. 2017; pytorch-fid):

    * if the square root is not finite (a singular product, e.g. fewer
      samples than feature dimensions), it is recomputed with ``eps · I``
      added to both covariances;
    * rounding can give ``Σa Σb`` tiny negative eigenvalues and hence a
      complex square root; the imaginary part is dropped (a warning is logged
      if it is not small: max |imag| on the diagonal > 1e-3 · (1 + |trace|)).

    Results below 0 (rounding, for identical sets) are clipped to 0.

    Args:
      feat_a: (n_a, d) features, n_a >= 2.
      feat_b: (n_b, d) features, n_b >= 2.
      eps: Diagonal offset used only when the plain square root fails.

    Returns:
      The distance (>= 0), in squared feature units.
    """
    a, b = _check_pair(feat_a, feat_b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    diff = mu_a - mu_b

    covmean = _sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        logger.warning(
            "frechet_distance: sqrtm(cov_a @ cov_b) is not finite (singular "
            "covariances? n_a=%d, n_b=%d, d=%d); adding %g*I to both.",
            len(a), len(b), a.shape[1], eps,
        )
        offset = eps * np.eye(a.shape[1])
        covmean = _sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > 1e-3 * (1.0 + abs(float(np.trace(covmean).real))):
            logger.warning(
                "frechet_distance: sqrtm has a large imaginary part (%g); the "
                "result may be inaccurate.", imag,
            )
        covmean = covmean.real
    distance = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))
    return max(distance, 0.0)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm, with its warnings about singular input silenced.

    Singular covariance products are expected (fewer samples than feature
    dimensions, or collapsed samples with zero covariance) and the caller
    handles non-finite and complex results, so numpy's divide/invalid
    warnings and scipy's LinAlgWarning carry no extra information. (For
    n < d, the trace of the square root still agrees with an eigenvalue-based
    reference to about 1e-8 relative.)
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³, the KID kernel (Bińkowski et al. 2018)."""
    k = x @ y.T
    k /= x.shape[1]
    k += 1.0
    # Two multiplies instead of np.power: several times faster on big grams.
    return k * k * k


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the polynomial kernel, for x₁..x_m and y₁..y_n.

    ``Σ_{i≠j} k(xᵢ, xⱼ) / (m(m − 1)) + Σ_{i≠j} k(yᵢ, yⱼ) / (n(n − 1))
    − 2 Σ_{i,j} k(xᵢ, yⱼ) / (m n)`` (Gretton et al. 2012, "A Kernel
    Two-Sample Test", eq. 3).
    """
    m, n = len(x), len(y)
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    # Within-set terms exclude the diagonal (i == j), which is what removes
    # the bias of the plain V-statistic.
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kernel_distance(
    feat_a: Any,
    feat_b: Any,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception Distance (KID) between two feature sets.

    The unbiased MMD² estimate with the polynomial kernel
    ``k(x, y) = (xᵀy / d + 1)³`` (Bińkowski et al. 2018, "Demystifying MMD
    GANs", section 4; d is the feature dimension), for subsets x₁..x_m of
    ``feat_a`` and y₁..y_m of ``feat_b``::

        MMD²ᵤ = Σ_{i≠j} k(xᵢ, xⱼ) / (m(m − 1)) + Σ_{i≠j} k(yᵢ, yⱼ) / (m(m − 1))
                − 2 Σ_{i,j} k(xᵢ, yⱼ) / m²

    computed on ``num_subsets`` pairs of random subsets of
    ``subset_size`` points from each set (drawn without replacement within a
    subset) and averaged. The defaults (100 subsets of 1000) are those of the
    reference implementations (e.g. torch-fidelity).

    ``subset_size`` is reduced to ``min(n_a, n_b)`` when larger. If that
    makes each subset the whole of both sets, every subset would give the
    same value, so it is computed once and the std is 0.

    Args:
      feat_a: (n_a, d) features, n_a >= 2.
      feat_b: (n_b, d) features, n_b >= 2.
      num_subsets: Number of subset pairs.
      subset_size: Points per subset from each set.
      seed: Seed of the subset draws.

    Returns:
      ``(mean, std)`` of the per-subset estimates (the std is their spread,
      population std, not a standard error). The mean can be slightly
      negative when the distributions are equal, since the estimator is
      unbiased.
    """
    a, b = _check_pair(feat_a, feat_b)
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}.")
    m = min(int(subset_size), len(a), len(b))
    if m < 2:
        raise ValueError(f"subset_size must be >= 2, got {subset_size}.")
    if m == len(a) == len(b):
        return _mmd2_unbiased(a, b), 0.0
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


# --------------------------------------------------------------------------
# Class-prediction statistics
# --------------------------------------------------------------------------


def _as_probs(probs: Any) -> np.ndarray:
    """A float64 (n, num_classes) array with n >= 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ValueError(f"probs must have shape (n, num_classes) with n >= 1, got {probs.shape}.")
    return probs


def class_histogram_entropy(probs: Any) -> tuple[float, np.ndarray]:
    """Entropy of the histogram of predicted (argmax) classes.

    ``H = −Σ_k p_k log p_k`` (nats, with ``0 log 0 = 0``), where
    ``p_k = c_k / n`` and ``c_k = #{i : argmax_j probs[i, j] = k}``.
    A mode-coverage score: ``log(num_classes)`` (2.303 nats for 10 classes)
    when every class is predicted equally often, 0 when all samples get the
    same class. The plug-in estimate is biased downwards by about
    ``(num_classes - 1) / (2 n)`` nats.

    Args:
      probs: (n, num_classes) class probabilities (or logits: only the argmax
        is used).

    Returns:
      ``(entropy_nats, counts)`` with int64 counts of shape (num_classes,).
    """
    probs = _as_probs(probs)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).astype(np.int64)
    # 0 log 0 = 0: empty classes are dropped.
    p = counts[counts > 0] / counts.sum()
    # "+ 0.0" turns the -0.0 of a single class into 0.0.
    return float(-(p * np.log(p)).sum()) + 0.0, counts


def mean_confidence(probs: Any) -> float:
    """Mean over samples of the largest class probability: ``(1/n) Σᵢ max_k probs[i, k]``.

    Args:
      probs: (n, num_classes) softmax probabilities.

    Returns:
      The mean max probability, in [1/num_classes, 1].
    """
    return float(_as_probs(probs).max(axis=1).mean())
