"""Quantitative sample quality for MNIST-like digits (issue 4, item 7): the one-call scores.

A small CNN (:mod:`jebm.evaluation.classifier`) is trained once on the data's
training split and cached on disk (:mod:`jebm.evaluation.classifier_cache`).
Its test accuracy says how much to trust it. :func:`sample_quality` then
scores generated samples against held-out real digits with the statistics of
:mod:`jebm.evaluation.features`:

* ``fid``: :func:`jebm.evaluation.features.frechet_distance` (FID-style)
  between the classifier's penultimate features of samples and real digits;
* ``kid_mean`` / ``kid_std``: :func:`jebm.evaluation.features.kernel_distance`
  (KID, Bińkowski et al. 2018, "Demystifying MMD GANs"): the unbiased MMD²
  with the cubic polynomial kernel on the same features, averaged over random
  subsets;
* ``class_entropy``: :func:`jebm.evaluation.features.class_histogram_entropy`,
  the entropy of the histogram of predicted classes, a mode-coverage number
  (``log 10 ≈ 2.303`` nats when every digit class is produced equally often);
* ``mean_confidence``: :func:`jebm.evaluation.features.mean_confidence`, the
  mean max softmax probability (how digit-like the samples look to the
  classifier).

:func:`real_data_reference_scores` gives the same scores for real digits
against other real digits of the same size: the floor a perfect model would
reach at that sample count.

Always state the sample count next to these numbers. FID is biased upwards at
small n (the covariance estimates are noisy, see Chong & Forsyth 2020,
"Effectively Unbiased FID and Inception Score and where to find them"), the
plug-in entropy is biased downwards (by about ``(K - 1) / (2 n)`` nats, the
Miller-Madow correction), and KID, while unbiased, has a large variance at
small n. Only compare numbers computed at the same n, and against the real
data floor at that n.

The features are the pre-activation outputs of the 128-unit dense layer (the
input of the final ReLU). They are not FID/KID values from Inception features
and are not comparable with published numbers for other feature extractors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jebm.evaluation import classifier, features

__all__ = [
    "BIAS_NOTE",
    "real_data_reference_scores",
    "sample_quality",
]

BIAS_NOTE = (
    "Estimates depend on the sample count: FID is biased upwards and the "
    "class-histogram entropy downwards at small n; KID is unbiased but noisy. "
    "Compare only at equal n_samples / n_reference, next to "
    "real_data_reference_scores at the same n. Features come from jebm's "
    "classifier trained on the data set's own training split (MNIST or "
    "Fashion-MNIST), not Inception: not comparable with published FID/KID."
)


def sample_quality(
    samples: Any,
    reference_images: Any,
    classifier_params: Any,
    *,
    scale: str,
    kid_num_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """All sample-quality scores of ``samples`` against real digits.

    Args:
      samples: Generated images in the data's ``scale``, (n, 28, 28) or
        (n, 28, 28, 1), n >= 2; mapped to [0, 1] and clipped (see
        :func:`jebm.evaluation.classifier.to_unit_interval`).
      reference_images: Held-out real digits, e.g. ``data.test_images``
        (uint8, or float in ``scale``), at least 2.
      classifier_params: Variables from
        :func:`jebm.evaluation.classifier_cache.load_or_train_classifier`.
      scale: ``"zero_one"`` or ``"minus_one_one"``.
      kid_num_subsets: Passed to :func:`jebm.evaluation.features.kernel_distance`.
      kid_subset_size: Passed to :func:`jebm.evaluation.features.kernel_distance`.
      seed: Seed of the KID subsets.

    Returns:
      A JSON-serialisable dict: ``fid``, ``kid_mean``, ``kid_std``,
      ``kid_subset_size`` (after clipping to the set sizes),
      ``kid_num_subsets``, ``class_entropy`` (nats), ``class_entropy_max``
      (log 10), ``class_histogram`` (list of 10 counts), ``mean_confidence``,
      ``n_samples``, ``n_reference``, ``n_nonfinite_samples``,
      ``fraction_outside_range`` (the share of finite pixel values outside
      the data range, measured before the clipping), ``feature`` and ``note``
      (the sample-size caveat).
    """
    raw = np.asarray(samples)
    low, high = (0.0, 1.0) if raw.dtype == np.uint8 or scale == "zero_one" else (-1.0, 1.0)
    if raw.dtype == np.uint8:
        outside = 0.0
    else:
        finite = raw[np.isfinite(raw)]
        outside = float(np.mean((finite < low) | (finite > high))) if finite.size else float("nan")
    x, n_nonfinite = classifier.to_unit_interval(samples, scale, "samples")
    r, _ = classifier.to_unit_interval(reference_images, scale, "reference_images")
    if len(x) < 2 or len(r) < 2:
        raise ValueError(
            f"Need at least 2 samples and 2 reference images, got {len(x)} and {len(r)}."
        )
    feat_x, probs_x = classifier.classifier_outputs(classifier_params, x)
    feat_r, _ = classifier.classifier_outputs(classifier_params, r)
    kid_mean, kid_std = features.kernel_distance(
        feat_x, feat_r, num_subsets=kid_num_subsets, subset_size=kid_subset_size, seed=seed
    )
    entropy, histogram = features.class_histogram_entropy(probs_x)
    m = min(int(kid_subset_size), len(x), len(r))
    return {
        "fid": features.frechet_distance(feat_x, feat_r),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": m,
        "kid_num_subsets": 1 if m == len(x) == len(r) else int(kid_num_subsets),
        "class_entropy": entropy,
        "class_entropy_max": math.log(classifier.NUM_CLASSES),
        "class_histogram": [int(c) for c in histogram],
        "mean_confidence": features.mean_confidence(probs_x),
        "n_samples": len(x),
        "n_reference": len(r),
        "n_nonfinite_samples": n_nonfinite,
        "fraction_outside_range": outside,
        "feature": classifier.FEATURE_DESCRIPTION,
        "note": BIAS_NOTE,
    }


def real_data_reference_scores(
    images: Any,
    classifier_params: Any,
    *,
    n: int,
    n_reference: int | None = None,
    seed: int = 0,
    kid_num_subsets: int = 100,
    kid_subset_size: int = 1000,
) -> dict[str, Any]:
    """The scores of real digits against other real digits: the floor at n.

    Two disjoint random subsets are drawn from ``images``: ``n`` digits play
    the samples and ``n_reference`` digits the reference. A perfect model
    evaluated with the same ``n`` / ``n_reference`` would score about this
    (up to sampling noise), so report it beside the model's numbers.

    Args:
      images: Held-out real digits, uint8 (N, 28, 28) (e.g.
        ``data.test_images``), N >= n + n_reference.
      classifier_params: Variables from
        :func:`jebm.evaluation.classifier_cache.load_or_train_classifier`.
      n: Number of "sample" digits (use the model's sample count).
      n_reference: Number of reference digits; defaults to ``n``.
      seed: Seed of the subset draw and the KID subsets.
      kid_num_subsets: Passed to :func:`jebm.evaluation.features.kernel_distance`.
      kid_subset_size: Passed to :func:`jebm.evaluation.features.kernel_distance`.

    Returns:
      The :func:`sample_quality` dict.
    """
    images = np.asarray(images)
    n_reference = n if n_reference is None else n_reference
    if n < 2 or n_reference < 2:
        raise ValueError(f"n and n_reference must be >= 2, got {n} and {n_reference}.")
    if n + n_reference > len(images):
        raise ValueError(
            f"Need n + n_reference = {n + n_reference} held-out digits for two "
            f"disjoint sets, but only {len(images)} were given."
        )
    order = np.random.default_rng(seed).permutation(len(images))
    fake = images[order[:n]]
    reference = images[order[n : n + n_reference]]
    scale = "zero_one"  # float images are taken as [0, 1]; uint8 as raw pixels.
    return sample_quality(
        fake, reference, classifier_params, scale=scale, kid_num_subsets=kid_num_subsets,
        kid_subset_size=kid_subset_size, seed=seed,
    )
