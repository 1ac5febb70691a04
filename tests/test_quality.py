"""Tests for the classifier behind the sample-quality score and the score itself.

jebm.evaluation.classifier (training, outputs, input scaling), jebm.evaluation.classifier_cache
(the on-disk cache and its key) and jebm.evaluation.quality (the one-call scores) share one file
because they share the trained classifier, the slowest fixture (about 20 s): one module-scoped
training serves all of them. The feature-space statistics are tested in test_features.py.

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

from jebm.evaluation import classifier, classifier_cache, quality
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
    return classifier.train_classifier(data, **HPARAMS)


def assert_same_params(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------------------
# Classifier training and cache
# ---------------------------------------------------------------------------


def test_train_classifier_reaches_high_accuracy(trained):
    params, accuracy = trained
    assert accuracy >= 0.95
    features, probs = classifier.classifier_outputs(params, np.zeros((3, 28, 28, 1), np.float32))
    assert features.shape == (3, 128) and probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_init_variables_is_seeded_and_has_the_documented_layers():
    # conv 3x3 1->16, conv 3x3 16->32, dense 7*7*32->128, dense 128->10 (weights + biases).
    expected = (9 * 16 + 16) + (9 * 16 * 32 + 32) + (7 * 7 * 32 * 128 + 128) + (128 * 10 + 10)
    first = classifier.init_variables(0)
    assert sorted(first["params"]) == ["conv1", "conv2", "features", "logits"]
    assert sum(np.size(leaf) for leaf in jax.tree.leaves(first)) == expected == 206_922
    assert_same_params(classifier.init_variables(0), first)
    assert not np.array_equal(classifier.init_variables(1)["params"]["conv1"]["kernel"],
                              first["params"]["conv1"]["kernel"])


def test_training_hparams_fills_defaults_and_names_bad_fields():
    assert classifier.training_hparams() == dict(classifier.DEFAULT_HPARAMS)
    hp = classifier.training_hparams(epochs="2", learning_rate=1, max_steps=None)
    assert hp == {**classifier.DEFAULT_HPARAMS, "epochs": 2, "learning_rate": 1.0, "max_steps": None}
    assert isinstance(hp["learning_rate"], float)
    with pytest.raises(TypeError, match=r"Unknown classifier hyperparameters \['epoch'\]; valid: \['batch_size'"):
        classifier.training_hparams(epoch=3)
    with pytest.raises(ValueError, match="must be positive"):
        classifier.training_hparams(batch_size=0)
    with pytest.raises(ValueError, match="max_steps must be positive or None"):
        classifier.training_hparams(max_steps=0)


def test_cache_is_used_deterministic_and_recovers_from_corruption(
    data, trained, tmp_path, monkeypatch, caplog
):
    params0, accuracy0 = trained
    params1, accuracy1, info1 = classifier_cache.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert info1["cached"] is False and info1["cache_problem"] is None
    # A second training run with the same seed is bit-identical.
    assert_same_params(params1, params0)
    assert accuracy1 == accuracy0

    meta = json.loads((tmp_path / f"classifier-{info1['key']}.json").read_text())
    assert meta["test_accuracy"] == accuracy0 and meta["hparams"] == info1["hparams"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

    # Second call: loaded from disk; training would fail loudly.
    original_train = classifier.train_classifier

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache is valid")

    monkeypatch.setattr(classifier, "train_classifier", no_training)
    params2, accuracy2, info2 = classifier_cache.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert info2["cached"] is True and info2["key"] == info1["key"]
    assert_same_params(params2, params0)
    assert accuracy2 == accuracy0

    # Corrupt the weights: warning, retrain, same result, cache rewritten.
    calls = []

    def counting_train(*args, **kwargs):
        calls.append(1)
        return original_train(*args, **kwargs)

    monkeypatch.setattr(classifier, "train_classifier", counting_train)
    weights = tmp_path / f"classifier-{info1['key']}.msgpack"
    weights.write_bytes(b"\x00garbage" + weights.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="jebm.evaluation.classifier_cache"):
        params3, accuracy3, info3 = classifier_cache.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert calls == [1]
    assert info3["cached"] is False and info3["cache_problem"]
    assert any("retraining" in r.getMessage() for r in caplog.records)
    assert_same_params(params3, params0)
    assert accuracy3 == accuracy0

    monkeypatch.setattr(classifier, "train_classifier", no_training)
    assert classifier_cache.load_or_train_classifier(data, tmp_path, **HPARAMS)[2]["cached"] is True


@pytest.mark.parametrize("damage", ["flip_weight_byte", "bad_json", "missing_weights"])
def test_damaged_cache_entry_is_rejected(data, trained, tmp_path, damage, monkeypatch, caplog):
    # Write a valid entry from the fixture's weights without training again.
    monkeypatch.setattr(classifier, "train_classifier", lambda d, **hp: trained)
    info = classifier_cache.load_or_train_classifier(data, tmp_path, **HPARAMS)[2]
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
    with caplog.at_level(logging.WARNING, logger="jebm.evaluation.classifier_cache"):
        _, _, info2 = classifier_cache.load_or_train_classifier(data, tmp_path, **HPARAMS)
    assert info2["cached"] is False and info2["cache_problem"]
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_cache_key_depends_on_data_and_hparams(data):
    key = classifier_cache.cache_key(data, **HPARAMS)
    assert classifier_cache.cache_key(data, **HPARAMS) == key
    assert classifier_cache.cache_key(data, **{**HPARAMS, "seed": 4}) != key
    assert classifier_cache.cache_key(data, **{**HPARAMS, "learning_rate": 1e-3}) != key
    labels = data.train_labels.copy()
    labels[0] = (labels[0] + 1) % 10
    changed = MnistData(data.train_images, labels, data.test_images, data.test_labels, data.source)
    assert classifier_cache.cache_key(changed, **HPARAMS) != key
    renamed = MnistData(
        data.train_images, data.train_labels, data.test_images, data.test_labels, "other"
    )
    assert classifier_cache.cache_key(renamed, **HPARAMS) != key
    with pytest.raises(TypeError, match="Unknown classifier hyperparameters"):
        classifier_cache.cache_key(data, epoch=3)


def test_cache_key_of_a_fixed_data_set_is_pinned():
    """The key names the cache files, so a change to what it hashes (the architecture string, the
    payload's fields, the JSON spelling) would retrain every classifier already cached; it must not
    change unnoticed, e.g. when the classifier code moves between modules."""
    images = (np.arange(4 * 28 * 28) % 251).astype(np.uint8).reshape(4, 28, 28)
    data = MnistData(images[:3], np.array([0, 1, 2], np.uint8), images[3:], np.array([3], np.uint8),
                     source="fixed key test")
    assert classifier_cache.cache_key(data) == "c389d1144f6f0c585641"
    assert classifier_cache.cache_key(data, **HPARAMS) == "1d205385cb00a70296ed"


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JEBM_DATA_DIR", str(tmp_path))
    assert classifier_cache.default_cache_dir() == tmp_path / "classifier"


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
