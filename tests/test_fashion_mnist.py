"""Fashion-MNIST (``dataset.name="fashion_mnist"``): reading, checksums, errors, and a smoke run.

Every test reads small gzipped IDX files written into a temporary directory, except
``test_the_package_files_load``, which reads the Debian package's files where they are
installed and skips elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math

import numpy as np
import pytest
from ml_collections import config_dict

from conftest import load_config
from jebm import config_lib, config_validation, train
from jebm.data import fashion_mnist, is_image_data, mnist, pipeline
from jebm.evaluation import classifier, classifier_cache
from test_mnist_train import write_fake_mnist

N_TRAIN, N_TEST = 48, 40  # write_fake_mnist's counts


def gzip_dir(directory):
    """write_fake_mnist's four files, gzip-compressed as the package ships them."""
    directory.mkdir(parents=True, exist_ok=True)
    write_fake_mnist(directory)
    for name in mnist.MNIST_FILES:
        raw = directory / name
        (directory / f"{name}.gz").write_bytes(gzip.compress(raw.read_bytes(), mtime=0))
        raw.unlink()
    return directory


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return gzip_dir(tmp_path_factory.mktemp("fake_fashion"))


@pytest.fixture
def package_dir(monkeypatch, tmp_path):
    """Makes an empty temporary folder the package's directory, with no $JEBM_FASHION_MNIST_DIR."""
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    monkeypatch.setattr(fashion_mnist, "PACKAGE_DIR", tmp_path / "fashion-mnist")
    return tmp_path / "fashion-mnist"


def sha256s(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.gz")}


def dataset_config(data_dir="", **fields):
    cfg = config_lib.base_config().dataset
    cfg.name, cfg.data_dir = "fashion_mnist", str(data_dir)
    cfg.update(fields)
    return cfg


def test_a_users_gzipped_files_load_with_their_split_and_labels(fake_dir):
    data = fashion_mnist.load_fashion_mnist(fake_dir)
    assert data.train_images.shape == (N_TRAIN, 28, 28) and data.test_images.shape == (N_TEST, 28, 28)
    assert data.train_images.dtype == data.train_labels.dtype == np.uint8
    np.testing.assert_array_equal(data.train_labels, np.arange(N_TRAIN) % 10)
    np.testing.assert_array_equal(data.test_labels, np.arange(N_TEST) % 10)
    raw = mnist.read_idx(fake_dir / f"{mnist.TEST_IMAGES}.gz")
    np.testing.assert_array_equal(data.test_images, raw)
    # The source names every file read, and says they are not the package's release.
    for name in mnist.MNIST_FILES:
        assert f"{name}.gz" in data.source
    assert str(fake_dir) in data.source and "differs from the dataset-fashion-mnist release" in data.source


def test_the_pipeline_feeds_fashion_images_in_the_data_scale(fake_dir):
    cfg = dataset_config(fake_dir, scale="minus_one_one", max_train_images=32)
    data = pipeline.make_train_data(cfg, batch_size=16, seed=0)
    assert data.name == "fashion_mnist" and data.example_shape == (28, 28, 1) and data.steps_per_epoch == 2
    stored = mnist.read_idx(fake_dir / f"{mnist.TRAIN_IMAGES}.gz")[:32]
    expected = {img.tobytes() for img in stored.astype(np.float32) / 127.5 - 1.0}
    epoch = np.concatenate([np.asarray(data.batch(s))[..., 0] for s in range(2)])
    # One epoch is the 32 kept training images, each once, mapped 0 -> -1, 255 -> 1.
    assert sorted(img.tobytes() for img in epoch) == sorted(expected)
    assert data.images.test_images.shape == (N_TEST, 28, 28)
    assert f"{mnist.TRAIN_IMAGES}.gz" in data.description and "32 training images" in data.description


def test_missing_package_files_name_the_install_command_and_the_fields(package_dir):
    with pytest.raises(mnist.MnistDataError) as err:
        pipeline.make_train_data(dataset_config(), batch_size=16, seed=0)
    message = str(err.value)
    for words in ("apt-get install dataset-fashion-mnist", "dataset.data_dir", "$JEBM_FASHION_MNIST_DIR",
                  str(package_dir), f"{mnist.TRAIN_IMAGES}.gz"):
        assert words in message, words


def test_a_users_directory_missing_a_file_says_what_is_missing(tmp_path):
    gzip_dir(tmp_path)
    (tmp_path / f"{mnist.TEST_LABELS}.gz").unlink()
    with pytest.raises(mnist.MnistDataError, match=f"{mnist.TEST_LABELS} \\(or {mnist.TEST_LABELS}.gz\\) not found"):
        fashion_mnist.load_fashion_mnist(tmp_path)


def test_package_files_are_checked_against_the_recorded_sha256(package_dir, monkeypatch):
    gzip_dir(package_dir)
    # The fake files are not the release's: every one is named, with its digest and the expected one.
    with pytest.raises(mnist.MnistDataError, match="checksum mismatch") as err:
        fashion_mnist.load_fashion_mnist()
    for name, digest in sha256s(package_dir).items():
        assert f"{package_dir / name}: SHA-256 {digest}, expected {fashion_mnist.PACKAGE_SHA256[name]}" in str(err.value)
    assert "apt-get install --reinstall dataset-fashion-mnist" in str(err.value)
    # Recorded as the release, they load and say so; one changed byte is caught, naming only that file.
    monkeypatch.setattr(fashion_mnist, "PACKAGE_SHA256", sha256s(package_dir))
    assert fashion_mnist.load_fashion_mnist().source.endswith("(SHA-256 verified against the dataset-fashion-mnist release)")
    labels = package_dir / f"{mnist.TRAIN_LABELS}.gz"
    raw = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10]), mtime=0))
    with pytest.raises(mnist.MnistDataError) as err:
        fashion_mnist.load_fashion_mnist()
    assert str(labels) in str(err.value) and mnist.TRAIN_IMAGES not in str(err.value)


def test_the_environment_variable_names_a_users_directory(fake_dir, package_dir, monkeypatch):
    monkeypatch.setenv(fashion_mnist.ENV_VAR, str(fake_dir))
    assert fashion_mnist.default_data_dir() == (fake_dir, False)
    assert fashion_mnist.load_fashion_mnist().train_images.shape == (N_TRAIN, 28, 28)


@pytest.mark.parametrize("source", ["download", "npm"])
def test_sources_fashion_mnist_has_not_are_refused(source):
    config = config_lib.base_config()
    config.dataset.name, config.dataset.source = "fashion_mnist", source
    with pytest.raises(config_validation.ConfigError) as err:
        config_validation.validate(config)
    assert f"dataset.source={source!r} does not apply to dataset.name='fashion_mnist'" in str(err.value)
    assert "dataset-fashion-mnist" in str(err.value) and "['auto', 'idx']" in str(err.value)
    with pytest.raises(ValueError, match="does not apply"):
        fashion_mnist.load_fashion_mnist(source=source)


def test_fashion_mnist_is_image_data_everywhere():
    assert is_image_data("fashion_mnist") and is_image_data("mnist")
    assert not is_image_data("gmm8") and not is_image_data(None)
    config = config_lib.base_config()
    config.dataset.name, config.eval.ais_base = "fashion_mnist", "box_kde"
    config_validation.validate(config)  # the box_kde base is for image data
    config.dataset.name = "rings"
    with pytest.raises(config_validation.ConfigError, match="box_kde' needs training images"):
        config_validation.validate(config)
    with pytest.raises(ValueError, match="jebm's own"):
        pipeline.register("fashion_mnist", lambda cfg: None)


def test_the_quality_classifier_is_never_shared_between_mnist_and_fashion(fake_dir):
    # Even identical pixels and labels get their own classifier: the key holds the data's source.
    fashion = fashion_mnist.load_fashion_mnist(fake_dir)
    digits = mnist.MnistData(fashion.train_images, fashion.train_labels, fashion.test_images,
                             fashion.test_labels, source=f"IDX files in {fake_dir}")
    assert classifier_cache.cache_key(fashion) != classifier_cache.cache_key(digits)


@pytest.mark.usefixtures("fast_compiles")
def test_a_fashion_smoke_run_trains_and_scores_against_fashion_images(fake_dir, tmp_path, monkeypatch):
    """train_and_evaluate end to end on the fake files; the quality classifier is asked for the Fashion data.

    The classifier itself (data-agnostic, trained in test_mnist_train's smoke run and
    test_quality) is replaced by a fixed projection, which keeps this run to seconds.
    """
    asked = []
    projection = np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32)

    def fake_classifier(data, *args, **kwargs):
        asked.append(data)
        return None, 0.5, {}

    def fake_outputs(params, images, batch_size=500):
        features = np.asarray(images, np.float32).reshape(len(images), -1) @ projection
        odds = np.exp(features - features.max(axis=1, keepdims=True))
        return features, odds / odds.sum(axis=1, keepdims=True)

    monkeypatch.setattr(classifier_cache, "load_or_train_classifier", fake_classifier)
    monkeypatch.setattr(classifier, "classifier_outputs", fake_outputs)
    config = load_config("mnist_sgld", "smoke")
    config.dataset.name, config.dataset.data_dir = "fashion_mnist", str(fake_dir)
    config.energy.name, config.energy.hidden = "mlp", (16,)
    config.eval.ais_temps, config.eval.ais_curve = 3, (3,)
    config.eval.long_run_samples = 0
    config.training.sample_every = 0
    config_validation.validate(config)
    summary = train.train_and_evaluate(config, tmp_path)

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    files = ", ".join(f"{name}.gz" for name in mnist.MNIST_FILES)
    assert on_disk["data"].startswith(f"Fashion-MNIST IDX files {fake_dir}/{{{files}}}")
    assert np.load(tmp_path / "samples.npy").shape == (config.eval.num_samples, 28, 28)
    assert (tmp_path / "samples.png").is_file()
    assert asked and all(d.source.startswith("Fashion-MNIST IDX files") and len(d.train_images) == N_TRAIN for d in asked)
    np.testing.assert_array_equal(asked[0].test_images, mnist.read_idx(fake_dir / f"{mnist.TEST_IMAGES}.gz"))
    q = summary["quality"]
    assert q["n_reference"] == min(config.eval.quality_reference, N_TEST) and all(math.isfinite(q[k]) for k in ("fid", "kid_mean", "class_entropy"))
    assert summary["ais"]["base"] == "box_kde" and math.isfinite(summary["ais"]["log_z"])


@pytest.mark.skipif(not all((fashion_mnist.PACKAGE_DIR / n).is_file() for n in fashion_mnist.PACKAGE_SHA256),
                    reason="the Debian package dataset-fashion-mnist is not installed")
def test_the_package_files_load(monkeypatch):
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    data = pipeline.IMAGE_DATASETS["fashion_mnist"].load(config_dict.ConfigDict({"data_dir": "", "source": "auto"}))
    assert data.train_images.shape == (60_000, 28, 28) and data.test_images.shape == (10_000, 28, 28)
    assert np.array_equal(np.bincount(data.train_labels), [6000] * 10)
    assert np.array_equal(np.bincount(data.test_labels), [1000] * 10)
    assert "SHA-256 verified" in data.source
