"""Training batches as a pure function of the step.

``TrainData.batch(step)`` depends only on the config's seed and the step, so
a run resumed from a checkpoint at step ``s`` sees exactly the batches an
uninterrupted run sees: the step *is* the data position.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jebm import names
from jebm.data import fashion_mnist, mnist, toy


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """An MNIST-format image data set: how to load it and which ``dataset.source`` values it takes."""

    load: Callable[[Any], mnist.MnistData]  # load(dataset_cfg)
    sources: tuple[str, ...]
    where: str = ""  # where its files come from, for validation's messages


# The image data sets, by ``dataset.name``. Config checks ask ``is_image_data``; evaluation
# (classifier scores, grids, the box_kde AIS base) branches on ``TrainData.images``, which only
# these set.
IMAGE_DATASETS = {
    "mnist": ImageDataset(lambda cfg: mnist.load_mnist(cfg.source, cfg.data_dir or None), mnist.VALID_SOURCES),
    "fashion_mnist": ImageDataset(lambda cfg: fashion_mnist.load_fashion_mnist(cfg.data_dir or None, cfg.source),
                                  fashion_mnist.VALID_SOURCES,
                                  f"read from the Debian package {fashion_mnist.PACKAGE} or dataset.data_dir, never downloaded"),
}
DATASETS = ("gmm8", "rings", *IMAGE_DATASETS)
TOY_MODES = ("fixed", "fresh")
# What train_and_evaluate(..., data=array) calls the dataset in summaries.
USER_ARRAY = "array"

# name -> factory(dataset_cfg) -> array (n, *example_shape), added by ``register``.
_REGISTERED: dict[str, Callable[[Any], np.ndarray]] = {}
_REGISTRY = names.Registry("dataset", _REGISTERED, DATASETS, reserved=(USER_ARRAY,))


def is_image_data(name: str) -> bool:
    """Whether ``dataset.name`` is one of jebm's image data sets (MNIST, Fashion-MNIST)."""
    return isinstance(name, str) and name in IMAGE_DATASETS


def dataset_names() -> tuple[str, ...]:
    """Every name ``dataset.name`` may take: jebm's own and the registered ones."""
    return (*DATASETS, *sorted(_REGISTERED))


def register(name: str, factory: Callable[[Any], np.ndarray]) -> None:
    """Makes a user dataset selectable as ``config.dataset.name = name``.

    Args:
      name: a new name (not one of ``DATASETS``); registering it again
        replaces its factory.
      factory: ``factory(dataset_cfg) -> array (n, *example_shape)`` of
        training examples, called with the config's ``dataset`` block. jebm
        treats the array as :func:`array_data` does (shuffled, a
        ``dataset.held_out_fraction`` share held out for evaluation).

    Raises:
      ValueError: for a name that is not a non-empty string or is jebm's own,
        or a factory that is not callable.
    """
    _REGISTRY.register(name, factory)


def unregister(name: str) -> None:
    """Removes a name added by :func:`register`.

    Raises:
      ValueError: if ``name`` was not registered.
    """
    _REGISTRY.unregister(name)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainData:
    """What training needs from a dataset.

    Attributes:
      name: the dataset's name.
      example_shape: shape of one example (``(2,)`` or ``(28, 28, 1)``).
      steps_per_epoch: optimizer steps in one epoch.
      batch: ``batch(step) -> (batch_size, *example_shape)``, jittable.
      toy: the toy distribution (for evaluation), or None.
      images: MNIST-format data (MNIST, Fashion-MNIST; for evaluation), or None.
      description: where the data came from, for logs and summaries.
      held_out: user data's held-out examples ``(m, *example_shape)``
        (for evaluation), or None.
      value_range: user data's ``(min, max)`` over all its values, or None.
      train_examples: user data's training examples (NumPy), or None.
    """

    name: str
    example_shape: tuple[int, ...]
    steps_per_epoch: int
    batch: Callable[[Any], jax.Array]
    toy: Any = None
    images: Any = None
    description: str = ""
    held_out: Any = None
    value_range: Any = None
    train_examples: Any = None


def _epoch_batch(points: jax.Array, key: jax.Array, step, batch_size: int, steps_per_epoch: int) -> jax.Array:
    """Minibatch ``step`` of a reshuffle-every-epoch pass over ``points`` (drop-last)."""
    epoch, within = jnp.divmod(step, steps_per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), points.shape[0])
    idx = jax.lax.dynamic_slice_in_dim(perm, within * batch_size, batch_size)
    return points[idx]


def make_train_data(cfg, batch_size: int, seed: int, data: np.ndarray | None = None) -> TrainData:
    """Builds the dataset of ``cfg`` (a ``config.dataset`` block), or of the user's ``data`` array."""
    if data is not None:
        return array_data(data, batch_size, seed, held_out_fraction=cfg.get("held_out_fraction", 0.1))
    if cfg.name in _REGISTERED:
        return array_data(_REGISTERED[cfg.name](cfg), batch_size, seed,
                          held_out_fraction=cfg.get("held_out_fraction", 0.1), name=cfg.name)
    if cfg.name not in DATASETS:
        raise ValueError(f"dataset.name={cfg.name!r} is not one of {sorted(dataset_names())}")
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0xDA7A)
    if is_image_data(cfg.name):
        return _image_data(cfg, batch_size, key)
    dist = toy.make_toy_dataset(cfg.name)
    if cfg.mode not in TOY_MODES:
        raise ValueError(f"dataset.mode={cfg.mode!r} is not one of {sorted(TOY_MODES)}")
    if cfg.mode == "fresh":
        spe = cfg.points_per_epoch // batch_size

        def batch(step):
            return dist.sample(jax.random.fold_in(key, step), batch_size)

        desc = f"{cfg.name}: {batch_size} fresh points per step, {spe * batch_size} per epoch"
    else:
        points = toy.fixed_points(key, dist, cfg.num_points)
        spe = cfg.num_points // batch_size

        def batch(step):
            return _epoch_batch(points, jax.random.fold_in(key, 1), step, batch_size, spe)

        desc = f"{cfg.name}: fixed set of {cfg.num_points} points, reshuffled every epoch"
    _check_steps(spe, batch_size)
    return TrainData(cfg.name, (2,), spe, batch, toy=dist, description=desc)


def _image_data(cfg, batch_size: int, key: jax.Array) -> TrainData:
    data = IMAGE_DATASETS[cfg.name].load(cfg)
    train = data.train_images
    if cfg.max_train_images:
        train = train[: cfg.max_train_images]
    images = jnp.asarray(mnist.preprocess(train, cfg.scale))
    spe = images.shape[0] // batch_size
    _check_steps(spe, batch_size)
    noise_std = float(cfg.noise_std)

    def batch(step):
        x = _epoch_batch(images, key, step, batch_size, spe)
        if noise_std:
            x = x + noise_std * jax.random.normal(jax.random.fold_in(key, -1 - step), x.shape, x.dtype)
        return x

    desc = f"{data.source}: {images.shape[0]} training images"
    logging.info("%s source: %s", cfg.name, desc)
    return TrainData(cfg.name, tuple(images.shape[1:]), spe, batch, images=data, description=desc)


def array_data(data, batch_size: int, seed: int, *, held_out_fraction: float = 0.1, name: str = USER_ARRAY) -> TrainData:
    """A user's array of training examples as jebm's training data.

    The examples are shuffled once (by ``seed``); the first
    ``ceil(held_out_fraction · n)`` (at least 1) are held out for evaluation,
    the rest train, reshuffled every epoch (drop-last batches), as a pure
    function of the step like every jebm dataset.

    Args:
      data: array-like ``(n, *example_shape)``, finite, ``n >= 2``.
      batch_size: examples per step.
      seed: the run's seed.
      held_out_fraction: in ``(0, 0.5]``.
      name: the dataset's name in summaries.

    Raises:
      ValueError: naming ``data`` and what is wrong with it.
    """
    try:
        points = np.asarray(data, np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"data must be a numeric array (n, *example_shape), got {type(data).__name__}: {err}") from err
    if points.ndim < 2 or points.shape[0] < 2:
        raise ValueError(f"data must have shape (n, *example_shape) with n >= 2 examples, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"data has {int(np.sum(~np.isfinite(points)))} non-finite values (NaN/Inf)")
    if not 0 < held_out_fraction <= 0.5:
        raise ValueError(f"dataset.held_out_fraction={held_out_fraction!r} must be in (0, 0.5]")
    n = points.shape[0]
    order = np.random.default_rng(np.random.SeedSequence([seed, 0xDA7A])).permutation(n)
    n_held = max(1, math.ceil(held_out_fraction * n))
    held_out, train = points[order[:n_held]], points[order[n_held:]]
    spe = train.shape[0] // batch_size
    _check_steps(spe, batch_size)
    train_jax = jnp.asarray(train)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0xDA7A)

    def batch(step):
        return _epoch_batch(train_jax, key, step, batch_size, spe)

    desc = f"{name}: {train.shape[0]} training and {n_held} held-out examples of shape {points.shape[1:]}"
    logging.info("Data: %s", desc)
    return TrainData(name, tuple(points.shape[1:]), spe, batch, description=desc, held_out=held_out,
                     value_range=(float(points.min()), float(points.max())), train_examples=train)


def _check_steps(steps_per_epoch: int, batch_size: int) -> None:
    if steps_per_epoch < 1:
        raise ValueError(f"training.batch_size={batch_size} is larger than the dataset's epoch; lower it")


def to_unit_range(images: np.ndarray, scale: str) -> np.ndarray:
    """Maps images in the data's scale back to [0, 1] (for grids and scores)."""
    return (images + 1.0) / 2.0 if scale == "minus_one_one" else images
