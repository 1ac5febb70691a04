"""Training batches as a pure function of the step.

``TrainData.batch(step)`` depends only on the config's seed and the step, so
a run resumed from a checkpoint at step ``s`` sees exactly the batches an
uninterrupted run sees: the step *is* the data position.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jebm.data import mnist, toy

DATASETS = ("gmm8", "mnist", "rings")
TOY_MODES = ("fixed", "fresh")


@dataclasses.dataclass(frozen=True, eq=False)
class TrainData:
    """What training needs from a dataset.

    Attributes:
      name: the dataset's name.
      example_shape: shape of one example (``(2,)`` or ``(28, 28, 1)``).
      steps_per_epoch: optimizer steps in one epoch.
      batch: ``batch(step) -> (batch_size, *example_shape)``, jittable.
      toy: the toy distribution (for evaluation), or None.
      images: MNIST-format data (for evaluation), or None.
      description: where the data came from, for logs and summaries.
    """

    name: str
    example_shape: tuple[int, ...]
    steps_per_epoch: int
    batch: Callable[[Any], jax.Array]
    toy: Any = None
    images: Any = None
    description: str = ""


def _epoch_batch(points: jax.Array, key: jax.Array, step, batch_size: int, steps_per_epoch: int) -> jax.Array:
    """Minibatch ``step`` of a reshuffle-every-epoch pass over ``points`` (drop-last)."""
    epoch, within = jnp.divmod(step, steps_per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), points.shape[0])
    idx = jax.lax.dynamic_slice_in_dim(perm, within * batch_size, batch_size)
    return points[idx]


def make_train_data(cfg, batch_size: int, seed: int) -> TrainData:
    """Builds the dataset of ``cfg`` (a ``config.dataset`` block)."""
    if cfg.name not in DATASETS:
        raise ValueError(f"dataset.name={cfg.name!r} is not one of {sorted(DATASETS)}")
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 0xDA7A)
    if cfg.name == "mnist":
        return _mnist_data(cfg, batch_size, key)
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


def _mnist_data(cfg, batch_size: int, key: jax.Array) -> TrainData:
    data = mnist.load_mnist(cfg.source, cfg.data_dir or None)
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
    logging.info("MNIST source: %s", desc)
    return TrainData("mnist", tuple(images.shape[1:]), spe, batch, images=data, description=desc)


def _check_steps(steps_per_epoch: int, batch_size: int) -> None:
    if steps_per_epoch < 1:
        raise ValueError(f"training.batch_size={batch_size} is larger than the dataset's epoch; lower it")


def to_unit_range(images: np.ndarray, scale: str) -> np.ndarray:
    """Maps images in the data's scale back to [0, 1] (for grids and scores)."""
    return (images + 1.0) / 2.0 if scale == "minus_one_one" else images
