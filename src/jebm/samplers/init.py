"""Chain initialisation: noise (non-informative) and the persistent bank (PCD).

All functions are pure and jittable. A *position* follows the sampler
contract of :mod:`jebm.samplers.base`: a pytree whose leaves have a leading
chain axis.

* ``gaussian`` / ``uniform`` draw fresh noise chains. The paper initialises
  from N(0, I) or U[0, 1] / U[−1, 1]; its author's toy code uses U[−2, 2]².
* ``PersistentBank`` holds ``size`` chains on device (persistent contrastive
  divergence). ``bank_draw`` takes a batch of distinct chains at random and
  re-initialises each of them from noise with probability
  ``reinit_fraction`` (5% in IGEBM and JEM); after sampling, ``bank_write``
  puts the advanced chains back at the same indices.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jebm.samplers import base

Array = jax.Array
NoiseFn = Callable[[Array, int], base.PyTree]


def gaussian(rng_key: Array, shape, *, mean=0.0, std=1.0, dtype=jnp.float32) -> Array:
    """Chains ``~ N(mean, std²·I)`` of the given shape (leading axis = chains)."""
    return mean + std * jax.random.normal(rng_key, shape, dtype)


def uniform(rng_key: Array, shape, *, low=-1.0, high=1.0, dtype=jnp.float32) -> Array:
    """Chains ``~ U[low, high]`` element-wise, of the given shape."""
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not low < high:
        raise ValueError(f"uniform chain init needs low < high, got low={low}, high={high}")
    return jax.random.uniform(rng_key, shape, dtype, low, high)


class PersistentBank(NamedTuple):
    """A bank of persistent chains (PCD), kept on device inside the train state.

    Attributes:
      position: pytree of arrays with leading axis ``size``.
    """

    position: base.PyTree


def bank_init(rng_key: Array, noise_fn: NoiseFn, size: int) -> PersistentBank:
    """A bank of ``size`` chains drawn by ``noise_fn(rng_key, size)``."""
    return PersistentBank(noise_fn(rng_key, size))


def bank_draw(
    rng_key: Array,
    bank: PersistentBank,
    batch_size: int,
    noise_fn: NoiseFn,
    reinit_fraction: float = 0.0,
) -> tuple[base.PyTree, Array, Array]:
    """Draws ``batch_size`` distinct chains, re-initialising some from noise.

    Args:
      rng_key: PRNG key (split into three: indices, re-init mask, noise).
      bank: the persistent bank.
      batch_size: number of chains to draw (≤ bank size).
      noise_fn: ``noise_fn(key, n) -> position`` for fresh chains.
      reinit_fraction: probability in [0, 1] that a drawn chain is replaced
        by fresh noise.

    Returns:
      ``(position, indices, reinitialised)``: the chains, their indices in the
      bank (to write them back), and the boolean mask of replaced chains.
    """
    size = base.num_chains(bank.position)
    if batch_size > size:
        raise ValueError(f"cannot draw batch_size={batch_size} chains from a bank of {size}")
    key_idx, key_mask, key_noise = jax.random.split(rng_key, 3)
    indices = jax.random.choice(key_idx, size, (batch_size,), replace=False)
    drawn = jax.tree_util.tree_map(lambda x: x[indices], bank.position)
    reinit = jax.random.bernoulli(key_mask, reinit_fraction, (batch_size,))
    fresh = noise_fn(key_noise, batch_size)
    return base.tree_where(reinit, fresh, drawn), indices, reinit


def bank_write(bank: PersistentBank, indices: Array, position: base.PyTree) -> PersistentBank:
    """Writes the advanced chains back at ``indices``."""
    return PersistentBank(
        jax.tree_util.tree_map(lambda b, x: b.at[indices].set(x), bank.position, position)
    )
