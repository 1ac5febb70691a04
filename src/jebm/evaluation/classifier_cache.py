"""The on-disk cache of trained classifiers (:mod:`jebm.evaluation.classifier`).

Training the classifier takes about a minute, so :func:`load_or_train_classifier`
keeps the weights of each (data, hyperparameters) pair under :func:`cache_key`
in :func:`default_cache_dir`, checksummed, and retrains when an entry is
missing, stale or damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pathlib
import time
from typing import Any

import flax.serialization
import jax
import numpy as np

from jebm import fileio
from jebm.data.mnist import MnistData
from jebm.evaluation import classifier

__all__ = [
    "FORMAT_VERSION",
    "cache_key",
    "default_cache_dir",
    "load_or_train_classifier",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

# Bump when the architecture, the training procedure or the file layout
# changes, so that stale cached classifiers are never loaded.
FORMAT_VERSION = 1


def _architecture() -> str:
    """A string that changes whenever the classifier's architecture does.

    It is hashed into :func:`cache_key`: keep its spelling (it names no module),
    or every classifier cached so far is retrained.
    """
    m = classifier.Classifier()
    return f"Classifier(conv1={m.conv1}, conv2={m.conv2}, feature_dim={m.feature_dim})"


def default_cache_dir() -> pathlib.Path:
    """Returns ``$JEBM_DATA_DIR/classifier``, or ``~/.cache/jebm/classifier``."""
    base = os.environ.get("JEBM_DATA_DIR")
    root = pathlib.Path(base).expanduser() if base else pathlib.Path.home() / ".cache" / "jebm"
    return root / "classifier"


def _data_digest(data: MnistData) -> str:
    """SHA-256 over the shapes, dtypes and bytes of all four arrays."""
    h = hashlib.sha256()
    # The test split is hashed too because the cached accuracy depends on it.
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        array = np.ascontiguousarray(getattr(data, name))
        h.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def cache_key(data: MnistData, **hparams: Any) -> str:
    """The cache key of a classifier trained on ``data`` with ``hparams``.

    A hash of the format version, the architecture, the data source string,
    the image counts, a checksum of the image/label bytes and the (complete,
    defaults filled in) hyperparameters.

    Args:
      data: The digits.
      **hparams: Overrides of :data:`jebm.evaluation.classifier.DEFAULT_HPARAMS`.

    Returns:
      A 20-character hex string.
    """
    return _cache_key(data, classifier.training_hparams(**hparams), _data_digest(data))


def _cache_key(data: MnistData, hp: dict, digest: str) -> str:
    payload = {
        "format_version": FORMAT_VERSION,
        "architecture": _architecture(),
        "source": data.source,
        "n_train": len(data.train_images),
        "n_test": len(data.test_images),
        "data_sha256": digest,
        "hparams": hp,
    }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class _BadCacheError(Exception):
    """A cached classifier exists but cannot be used."""


def _read_cache(params_path: pathlib.Path, meta_path: pathlib.Path, key: str, seed: int):
    """Loads and validates a cached classifier; raises _BadCacheError."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise _BadCacheError(f"{meta_path}: unreadable metadata ({err})") from err
    if (
        not isinstance(meta, dict)
        or meta.get("key") != key
        or meta.get("format_version") != FORMAT_VERSION
    ):
        raise _BadCacheError(f"{meta_path}: metadata does not match key {key}")
    try:
        blob = params_path.read_bytes()
    except OSError as err:
        raise _BadCacheError(f"{params_path}: unreadable ({err})") from err
    # The checksum catches damage that still decodes as msgpack (flipped bits
    # in a float), which from_bytes alone would accept.
    if hashlib.sha256(blob).hexdigest() != meta.get("params_sha256"):
        raise _BadCacheError(f"{params_path}: checksum does not match {meta_path.name}")
    template = jax.eval_shape(lambda: classifier.init_variables(seed))
    try:
        restored = flax.serialization.from_bytes(template, blob)
    except Exception as err:  # msgpack raises several unrelated types on bad input.
        raise _BadCacheError(f"{params_path}: cannot decode ({type(err).__name__}: {err})") from err
    want = jax.tree_util.tree_structure(template)
    if jax.tree_util.tree_structure(restored) != want:
        raise _BadCacheError(f"{params_path}: parameter tree does not match the classifier")
    for leaf, spec in zip(jax.tree.leaves(restored), jax.tree.leaves(template)):
        leaf = np.asarray(leaf)
        if leaf.shape != spec.shape or leaf.dtype != spec.dtype:
            raise _BadCacheError(f"{params_path}: a parameter has the wrong shape or dtype")
    accuracy = meta.get("test_accuracy")
    if accuracy is None and meta.get("n_test") == 0:
        accuracy = float("nan")  # Stored as null: JSON has no NaN.
    if not isinstance(accuracy, (int, float)):
        raise _BadCacheError(f"{meta_path}: no test accuracy")
    return restored, float(accuracy), meta


def load_or_train_classifier(
    data: MnistData, cache_dir: PathLike | None = None, **hparams: Any
) -> tuple[dict, float, dict]:
    """Loads the classifier for ``data`` from the cache, or trains and caches it.

    Two files per classifier in ``cache_dir``: ``classifier-<key>.msgpack``
    (the variables, :func:`flax.serialization.to_bytes`) and
    ``classifier-<key>.json`` (key, accuracy, hyperparameters, data summary
    and the SHA-256 of the msgpack file). Both are written atomically (temp
    file + ``os.replace``), weights first, so the JSON only ever describes a
    complete weights file. A damaged, mismatched or half-present cache entry
    is logged as a warning and replaced by retraining.

    Args:
      data: The digits (see :func:`jebm.evaluation.classifier.train_classifier`).
      cache_dir: Directory of the cached files (created if needed); defaults
        to :func:`default_cache_dir`.
      **hparams: Overrides of :data:`jebm.evaluation.classifier.DEFAULT_HPARAMS` (seed, epochs,
        batch_size, learning_rate, max_steps).

    Returns:
      ``(params, test_accuracy, info)``; ``info`` has ``cached`` (True if
      loaded from disk), ``key``, ``params_path``, ``meta_path``,
      ``test_accuracy``, ``hparams``, ``train_seconds`` (of the run that
      produced the weights), ``n_train``, ``n_test``, ``source`` and
      ``cache_problem`` (why an existing entry was rejected, else None).
    """
    hp = classifier.training_hparams(**hparams)
    cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = _data_digest(data)
    key = _cache_key(data, hp, digest)
    params_path = cache_dir / f"classifier-{key}.msgpack"
    meta_path = cache_dir / f"classifier-{key}.json"
    info = {
        "key": key,
        "params_path": str(params_path),
        "meta_path": str(meta_path),
        "hparams": hp,
        "n_train": len(data.train_images),
        "n_test": len(data.test_images),
        "source": data.source,
        "cache_problem": None,
    }

    if params_path.exists() or meta_path.exists():
        try:
            params, accuracy, meta = _read_cache(params_path, meta_path, key, hp["seed"])
        except _BadCacheError as err:
            logger.warning("Ignoring the cached classifier and retraining: %s", err)
            info["cache_problem"] = str(err)
        else:
            info.update(
                cached=True, test_accuracy=accuracy, train_seconds=meta.get("train_seconds")
            )
            return params, accuracy, info

    start = time.perf_counter()
    params, accuracy = classifier.train_classifier(data, **hp)
    seconds = time.perf_counter() - start
    logger.info("Trained the classifier on %s in %.1f s: test accuracy %.4f", data.source, seconds, accuracy)

    blob = flax.serialization.to_bytes(params)
    meta = {
        "key": key,
        "format_version": FORMAT_VERSION,
        "architecture": _architecture(),
        "feature": classifier.FEATURE_DESCRIPTION,
        # JSON has no NaN; an empty test split is stored as null.
        "test_accuracy": None if math.isnan(accuracy) else accuracy,
        "hparams": hp,
        "train_seconds": seconds,
        "n_train": len(data.train_images),
        "n_test": len(data.test_images),
        "source": data.source,
        "data_sha256": digest,
        "params_sha256": hashlib.sha256(blob).hexdigest(),
        "versions": {"jax": jax.__version__, "flax": _flax_version(), "numpy": np.__version__},
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fileio.write_bytes(params_path, blob)
        fileio.write_bytes(meta_path, json.dumps(meta, indent=2, sort_keys=True).encode())
    except OSError as err:
        # A read-only cache must not cost the trained classifier.
        logger.warning("Could not cache the classifier in %s: %s", cache_dir, err)
    info.update(cached=False, test_accuracy=accuracy, train_seconds=seconds)
    return params, accuracy, info


def _flax_version() -> str:
    import flax

    return getattr(flax, "__version__", "unknown")
