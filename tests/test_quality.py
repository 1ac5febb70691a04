"""Tests for jebm.evaluation.quality: FID/KID/entropy/confidence and the cached classifier.

No real MNIST here: the classifier is trained for a few dozen steps on
synthetic 28x28 "bar" digits (10 classes: 5 horizontal and 5 vertical bar
positions, plus noise), which a CNN separates almost at once.
"""

from __future__ import annotations

import json
import logging
import math

import jax
import numpy as np
import pytest

from jebm.evaluation import quality
from jebm.data.mnist import MnistData

# Few steps on tiny data: 320 images, batch 32, 3 epochs = 30 steps.
HPARAMS = {"seed": 3, "epochs": 3, "batch_size": 32, "learning_rate": 3e-3, "max_steps": None}


def bar_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (n, 28, 28): class k < 5 is a horizontal bar, k >= 5 vertical."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        pos = 3 + 5 * (k % 5) + rng.integers(-1, 2)
        value = rng.integers(180, 256)
        if k < 5:
            images[i, pos : pos + 3, 4:24] = value
        else:
            images[i, 4:24, pos : pos + 3] = value
    return images


def bars_dataset(n_train: int = 320, n_test: int = 200, seed: int = 0) -> MnistData:
    rng = np.random.default_rng(seed)
    train_labels = (np.arange(n_train) % 10).astype(np.uint8)
    test_labels = (np.arange(n_test) % 10).astype(np.uint8)
    rng.shuffle(train_labels)
    return MnistData(
        bar_images(train_labels, rng),
        train_labels,
        bar_images(test_labels, rng),
        test_labels,
        source=f"synthetic bars seed={seed}",
    )


@pytest.fixture(scope="module")
def data() -> MnistData:
    return bars_dataset()


@pytest.fixture(scope="module")
def trained(data):
    return quality.train_classifier(data, **HPARAMS)


def assert_same_params(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


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
    assert quality.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_general_covariances_closed_form():
    rng = np.random.default_rng(1)
    d = 6
    m_a, m_b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    cov_a, cov_b = m_a @ m_a.T + 0.1 * np.eye(d), m_b @ m_b.T + 0.1 * np.eye(d)
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    a = with_exact_moments(rng, 40, mu_a, cov_a)
    b = with_exact_moments(rng, 70, mu_b, cov_b)
    expected = frechet_closed_form(mu_a, cov_a, mu_b, cov_b)
    assert quality.frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert quality.frechet_distance(b, a) == pytest.approx(expected, rel=1e-8)


def test_frechet_one_dimensional():
    rng = np.random.default_rng(2)
    a = with_exact_moments(rng, 30, np.array([1.0]), np.array([[4.0]]))
    b = with_exact_moments(rng, 30, np.array([-1.0]), np.array([[1.0]]))
    assert quality.frechet_distance(a, b) == pytest.approx(4.0 + 1.0, rel=1e-10)


def test_frechet_identical_and_symmetric():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 16))
    b = rng.normal(size=(150, 16)) * 1.5 + 0.3
    assert quality.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert quality.frechet_distance(a, b) == pytest.approx(quality.frechet_distance(b, a), rel=1e-8)
    assert quality.frechet_distance(a, b) > 1.0


def test_frechet_singular_covariances_stay_finite():
    # Fewer samples than dimensions: both covariances are singular.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 1.0
    fd = quality.frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 0
    # Mean term alone is 32; the distance cannot be below it.
    assert fd >= 32 * 0.5


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="Feature dimensions"):
        quality.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="n >= 2"):
        quality.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        quality.frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))


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
    mean, std = quality.kernel_distance(a, b, subset_size=100)
    assert mean == pytest.approx(mmd2_bruteforce(a.tolist(), b.tolist()), rel=1e-10, abs=1e-12)
    assert std == 0.0


def test_kid_subsets_match_bruteforce():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(12, 4)), rng.normal(size=(15, 4)) * 2.0
    mean, std = quality.kernel_distance(a, b, num_subsets=6, subset_size=5, seed=11)
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
    mean, std = quality.kernel_distance(a, b, num_subsets=50, subset_size=200)
    assert std > 0
    assert abs(mean) < 3 * std
    shifted_mean, shifted_std = quality.kernel_distance(a, b + 1.0, num_subsets=50, subset_size=200)
    assert shifted_mean > 10 * shifted_std
    assert shifted_mean > 100 * abs(mean)


def test_kid_is_deterministic_in_seed():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(50, 5)), rng.normal(size=(60, 5))
    first = quality.kernel_distance(a, b, num_subsets=10, subset_size=20, seed=1)
    assert quality.kernel_distance(a, b, num_subsets=10, subset_size=20, seed=1) == first
    assert quality.kernel_distance(a, b, num_subsets=10, subset_size=20, seed=2) != first


# ---------------------------------------------------------------------------
# Class histogram entropy and confidence
# ---------------------------------------------------------------------------


def test_entropy_known_answers():
    uniform = np.eye(10)[np.arange(30) % 10]
    entropy, counts = quality.class_histogram_entropy(uniform)
    assert entropy == pytest.approx(math.log(10), abs=1e-12)
    assert counts.tolist() == [3] * 10

    collapsed = np.tile([0.05, 0.55, 0.4] + [0.0] * 7, (20, 1))
    entropy, counts = quality.class_histogram_entropy(collapsed)
    assert entropy == 0.0
    assert counts.tolist() == [0, 20] + [0] * 8

    two = np.eye(10)[[2, 7, 2, 7]]
    assert quality.class_histogram_entropy(two)[0] == pytest.approx(math.log(2), abs=1e-12)

    # Histogram 1:3 -> -(1/4 log 1/4 + 3/4 log 3/4).
    skewed = np.eye(10)[[0, 4, 4, 4]]
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert quality.class_histogram_entropy(skewed)[0] == pytest.approx(expected, abs=1e-12)


def test_mean_confidence_known_answers():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
    assert quality.mean_confidence(probs) == pytest.approx((0.7 + 0.6 + 1 / 3) / 3, abs=1e-12)
    assert quality.mean_confidence(np.eye(10)) == 1.0
    with pytest.raises(ValueError):
        quality.mean_confidence(np.zeros((0, 10)))


# ---------------------------------------------------------------------------
# Classifier training and cache
# ---------------------------------------------------------------------------


def test_train_classifier_reaches_high_accuracy(trained):
    params, accuracy = trained
    assert accuracy >= 0.95
    features, probs = quality.classifier_outputs(params, np.zeros((3, 28, 28, 1), np.float32))
    assert features.shape == (3, 128) and probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_cache_is_used_deterministic_and_recovers_from_corruption(
    data, trained, tmp_path, monkeypatch, caplog
):
    params0, accuracy0 = trained
    params1, accuracy1, info1 = quality.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert info1["cached"] is False and info1["cache_problem"] is None
    # A second training run with the same seed is bit-identical.
    assert_same_params(params1, params0)
    assert accuracy1 == accuracy0

    meta = json.loads((tmp_path / f"classifier-{info1['key']}.json").read_text())
    assert meta["test_accuracy"] == accuracy0 and meta["hparams"] == info1["hparams"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

    # Second call: loaded from disk; training would fail loudly.
    original_train = quality.train_classifier

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache is valid")

    monkeypatch.setattr(quality, "train_classifier", no_training)
    params2, accuracy2, info2 = quality.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert info2["cached"] is True and info2["key"] == info1["key"]
    assert_same_params(params2, params0)
    assert accuracy2 == accuracy0

    # Corrupt the weights: warning, retrain, same result, cache rewritten.
    calls = []

    def counting_train(*args, **kwargs):
        calls.append(1)
        return original_train(*args, **kwargs)

    monkeypatch.setattr(quality, "train_classifier", counting_train)
    weights = tmp_path / f"classifier-{info1['key']}.msgpack"
    weights.write_bytes(b"\x00garbage" + weights.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="jebm.evaluation.quality"):
        params3, accuracy3, info3 = quality.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert calls == [1]
    assert info3["cached"] is False and info3["cache_problem"]
    assert any("retraining" in r.getMessage() for r in caplog.records)
    assert_same_params(params3, params0)
    assert accuracy3 == accuracy0

    monkeypatch.setattr(quality, "train_classifier", no_training)
    assert quality.load_or_train_classifier(data, tmp_path, **HPARAMS)[2]["cached"] is True


@pytest.mark.parametrize("damage", ["flip_weight_byte", "bad_json", "missing_weights"])
def test_damaged_cache_entry_is_rejected(data, trained, tmp_path, damage, monkeypatch, caplog):
    # Write a valid entry from the fixture's weights without training again.
    monkeypatch.setattr(quality, "train_classifier", lambda d, **hp: trained)
    info = quality.load_or_train_classifier(data, tmp_path, **HPARAMS)[2]
    weights = tmp_path / f"classifier-{info['key']}.msgpack"
    meta = tmp_path / f"classifier-{info['key']}.json"
    if damage == "flip_weight_byte":
        # Still valid msgpack, caught only by the checksum.
        blob = bytearray(weights.read_bytes())
        blob[-3] ^= 0x01
        weights.write_bytes(bytes(blob))
    elif damage == "bad_json":
        meta.write_text(meta.read_text()[:20])
    else:
        weights.unlink()
    with caplog.at_level(logging.WARNING, logger="jebm.evaluation.quality"):
        _, _, info2 = quality.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert info2["cached"] is False and info2["cache_problem"]
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_cache_key_depends_on_data_and_hparams(data):
    key = quality.cache_key(data, **HPARAMS)
    assert quality.cache_key(data, **HPARAMS) == key
    assert quality.cache_key(data, **{**HPARAMS, "seed": 4}) != key
    assert quality.cache_key(data, **{**HPARAMS, "learning_rate": 1e-3}) != key
    labels = data.train_labels.copy()
    labels[0] = (labels[0] + 1) % 10
    changed = MnistData(data.train_images, labels, data.test_images, data.test_labels, data.source)
    assert quality.cache_key(changed, **HPARAMS) != key
    renamed = MnistData(
        data.train_images, data.train_labels, data.test_images, data.test_labels, "other"
    )
    assert quality.cache_key(renamed, **HPARAMS) != key
    with pytest.raises(TypeError, match="Unknown classifier hyperparameters"):
        quality.cache_key(data, epoch=3)


def test_cache_key_of_a_fixed_data_set_is_pinned():
    """The key names the cache files, so a change to what it hashes (the architecture string, the
    payload's fields, the JSON spelling) would retrain every classifier already cached; it must not
    change unnoticed, e.g. when the classifier code moves between modules."""
    images = (np.arange(4 * 28 * 28) % 251).astype(np.uint8).reshape(4, 28, 28)
    data = MnistData(images[:3], np.array([0, 1, 2], np.uint8), images[3:], np.array([3], np.uint8),
                     source="fixed key test")
    assert quality.cache_key(data) == "c389d1144f6f0c585641"
    assert quality.cache_key(data, **HPARAMS) == "1d205385cb00a70296ed"


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JEBM_DATA_DIR", str(tmp_path))
    assert quality.default_cache_dir() == tmp_path / "classifier"


# ---------------------------------------------------------------------------
# One-call scores
# ---------------------------------------------------------------------------


def test_sample_quality_fields_and_scales(data, trained):
    params, _ = trained
    samples01 = data.test_images[:100].astype(np.float32) / 255.0
    reference = data.test_images[100:]
    scores = quality.sample_quality(
        samples01, reference, params, scale="zero_one", kid_subset_size=50
    )
    for key in ("fid", "kid_mean", "kid_std", "class_entropy", "class_histogram", "mean_confidence",
                "n_samples", "n_reference", "note"):
        assert key in scores
    assert scores["n_samples"] == 100 and scores["n_reference"] == 100
    assert len(scores["class_histogram"]) == 10 and sum(scores["class_histogram"]) == 100
    assert "n" in scores["note"] and scores["kid_subset_size"] == 50
    json.dumps(scores)  # Plain Python types, ready for a log or config.

    # The same images in [-1, 1] with a channel axis give the same scores.
    minus = (samples01 * 2.0 - 1.0)[..., None]
    other = quality.sample_quality(
        minus, reference, params, scale="minus_one_one", kid_subset_size=50
    )
    for key in ("fid", "kid_mean", "class_entropy", "mean_confidence"):
        assert other[key] == pytest.approx(scores[key], rel=1e-6, abs=1e-9)


def test_real_reference_beats_bad_samples(data, trained):
    params, _ = trained
    real = quality.real_data_reference_scores(data.test_images, params, n=100, kid_subset_size=50)
    assert real["n_samples"] == real["n_reference"] == 100
    assert real["class_entropy"] > 0.9 * math.log(10)
    rng = np.random.default_rng(0)
    noise = rng.uniform(size=(100, 28, 28)).astype(np.float32)
    bad = quality.sample_quality(noise, data.test_images[:100], params, scale="zero_one",
                                 kid_subset_size=50)
    assert bad["fid"] > 5 * real["fid"]
    assert bad["kid_mean"] > 5 * abs(real["kid_mean"])
    one_class = np.repeat(data.test_images[:1], 100, axis=0)
    collapsed = quality.sample_quality(one_class, data.test_images[100:], params, scale="zero_one",
                                       kid_subset_size=50)
    assert collapsed["class_entropy"] == 0.0
    assert collapsed["fid"] > 5 * real["fid"]


def test_sample_quality_survives_nonfinite_samples(data, trained):
    params, _ = trained
    samples = data.test_images[:100].astype(np.float32) / 127.5 - 1.0
    samples[:3, 0, 0] = np.nan
    samples[3, 5, 5] = np.inf
    scores = quality.sample_quality(samples, data.test_images[100:], params, scale="minus_one_one",
                                    kid_subset_size=50)
    assert scores["n_nonfinite_samples"] == 4
    assert np.isfinite(scores["fid"]) and np.isfinite(scores["kid_mean"])


def test_input_validation(data, trained):
    params, _ = trained
    with pytest.raises(ValueError, match="Unknown scale"):
        quality.sample_quality(np.zeros((4, 28, 28)), data.test_images[:4], params, scale="0_1")
    with pytest.raises(ValueError, match="28, 28"):
        quality.sample_quality(
            np.zeros((4, 32, 32)), data.test_images[:4], params, scale="zero_one"
        )
    with pytest.raises(ValueError, match="disjoint"):
        quality.real_data_reference_scores(data.test_images[:150], params, n=100)
