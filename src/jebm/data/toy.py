"""Two-dimensional toy datasets with known densities (paper section 4.1).

Two families are provided:

* :class:`GaussianMixture`, with :func:`gmm8` building the paper's dataset:
  eight isotropic Gaussians (sd 0.15) centred on the unit circle at angles
  ``2*pi*k/8``, equal weights.
* :class:`RingMixture`, with :func:`rings` building concentric rings of
  radii 0.5 and 1.2 (radial spread 0.08), equal weights.

Both live essentially inside the evaluation square ``[-1.6, 1.6]^2`` used by
:mod:`jebm.evaluation.metrics` (the gmm8 modes reach 1 + 4 * 0.15 = 1.6, the outer ring
1.2 + 4 * 0.08 = 1.52).

Every dataset offers the same interface:

* ``sample(rng_key, n)``: a pure, jittable sampler returning an ``(n, 2)``
  float32 jax array (``n`` must be static under ``jax.jit``).
* ``log_density(xy)``: the exact, normalised log-density at points of shape
  ``(..., 2)``. NumPy input is evaluated in float64 NumPy; jax input (including
  tracers) in jax, so it can be jitted and differentiated.
* ``modes``: ``(k, 2)`` reference points for :func:`jebm.evaluation.metrics.mode_fractions`.

A trainer can either draw fresh points for every batch (call ``sample``) or
fix a dataset of N points once (:func:`fixed_points`) and draw minibatches
from it (:func:`batch_from_fixed`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp_special
import numpy as np
import scipy.special as sp_special

__all__ = [
    "DATASET_NAMES",
    "GaussianMixture",
    "RingMixture",
    "ToyDataset",
    "batch_from_fixed",
    "fixed_points",
    "gmm8",
    "make_toy_dataset",
    "rings",
]


class ToyDataset(Protocol):
    """Interface shared by the toy datasets."""

    @property
    def modes(self) -> np.ndarray:
        """Reference points ``(k, 2)`` for mode-fraction metrics."""
        ...

    def sample(self, rng_key: jax.Array, n: int) -> jax.Array:
        """Draws ``n`` points as an ``(n, 2)`` float32 array."""
        ...

    def log_density(self, xy: Any) -> Any:
        """Normalised log-density at points ``(..., 2)``, shape ``(...)``."""
        ...


# ---------------------------------------------------------------------------
# Small shared helpers
# ---------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    """Returns ``array`` marked read-only so frozen dataclasses stay frozen."""
    array.setflags(write=False)
    return array


def _normalised_weights(weights: Any, k: int) -> np.ndarray:
    """Validates mixture weights and rescales them to sum to one.

    Args:
      weights: Non-negative weights, one per component.
      k: Expected number of components.

    Returns:
      A read-only float64 array of shape ``(k,)`` summing to one.

    Raises:
      ValueError: If the shape is wrong, a weight is negative or not finite,
        or all weights are zero.
    """
    w = np.array(weights, dtype=np.float64)
    if w.shape != (k,):
        raise ValueError(f"weights must have shape ({k},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w}")
    return _readonly(w / w.sum())


def _positive_scalar(value: Any, field: str) -> float:
    """Checks that ``value`` is a finite positive number and returns it as float."""
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{field} must be a finite positive number, got {value}")
    return value


def _backend(xy: Any):
    """Picks the array namespace and logsumexp matching the input type.

    Jax arrays (and tracers, which are ``jax.Array`` instances) stay in jax so
    that the log-density can be jitted and differentiated; everything else is
    evaluated in float64 NumPy for accurate metrics.
    """
    if isinstance(xy, jax.Array):
        return jnp, jnp.asarray(xy), jsp_special
    return np, np.asarray(xy, dtype=np.float64), sp_special


def _check_points(xy: Any) -> None:
    """Raises ValueError unless the trailing dimension holds 2D coordinates."""
    if xy.ndim < 1 or xy.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {xy.shape}")


def _component_indices(rng_key: jax.Array, weights: np.ndarray, n: int) -> jax.Array:
    """Draws ``n`` mixture-component indices with the given probabilities."""
    # log(0) = -inf is fine for categorical: such components are never drawn.
    with np.errstate(divide="ignore"):
        logits = jnp.asarray(np.log(weights), dtype=jnp.float32)
    return jax.random.categorical(rng_key, logits, shape=(n,))


# ---------------------------------------------------------------------------
# Gaussian mixture
# ---------------------------------------------------------------------------


# eq=False: the fields are arrays, so the generated __eq__/__hash__ would fail
# or be ambiguous; identity semantics keep instances usable as static jit args.
@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
    """Mixture of isotropic 2D Gaussians with a shared standard deviation.

    The density is ``p(x) = sum_k w_k N(x; means[k], std**2 I)``.

    Attributes:
      means: ``(k, 2)`` component centres.
      std: Standard deviation of every component (per coordinate).
      weights: ``(k,)`` mixture weights; rescaled to sum to one on
        construction.
    """

    means: np.ndarray
    std: float
    weights: np.ndarray

    def __post_init__(self) -> None:
        means = np.array(self.means, dtype=np.float64)
        if means.ndim != 2 or means.shape[1] != 2 or means.shape[0] == 0:
            raise ValueError(f"means must have shape (k, 2) with k >= 1, got {means.shape}")
        object.__setattr__(self, "means", _readonly(means))
        object.__setattr__(self, "std", _positive_scalar(self.std, "std"))
        object.__setattr__(self, "weights", _normalised_weights(self.weights, means.shape[0]))

    @property
    def modes(self) -> np.ndarray:
        """The component centres, ``(k, 2)``."""
        return self.means

    def sample(self, rng_key: jax.Array, n: int) -> jax.Array:
        """Draws ``n`` i.i.d. points from the mixture.

        Args:
          rng_key: A jax PRNG key.
          n: Number of points (static under ``jax.jit``).

        Returns:
          An ``(n, 2)`` float32 array.
        """
        key_component, key_noise = jax.random.split(rng_key)
        idx = _component_indices(key_component, self.weights, n)
        centres = jnp.asarray(self.means, dtype=jnp.float32)[idx]
        noise = jax.random.normal(key_noise, (n, 2), dtype=jnp.float32)
        return centres + jnp.float32(self.std) * noise

    def log_density(self, xy: Any) -> Any:
        """Exact normalised log-density of the mixture.

        Args:
          xy: Points of shape ``(..., 2)``; NumPy-like or jax.

        Returns:
          Log-density of shape ``(...)``: float64 NumPy for NumPy input,
          a jax array for jax input.
        """
        xp, xy, special = _backend(xy)
        _check_points(xy)
        means = xp.asarray(self.means, dtype=xy.dtype)
        sq_dist = xp.sum((xy[..., None, :] - means) ** 2, axis=-1)  # (..., k)
        var = self.std**2
        log_norm = -math.log(2.0 * math.pi * var)
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        log_components = xp.asarray(log_w, dtype=xy.dtype) - sq_dist / (2.0 * var)
        return special.logsumexp(log_components, axis=-1) + log_norm


def gmm8(radius: float = 1.0, std: float = 0.15) -> GaussianMixture:
    """The paper's 8-mode mixture: means at angles ``2*pi*k/8`` on a circle.

    Args:
      radius: Radius of the circle carrying the means (paper: 1).
      std: Standard deviation of each component (paper: 0.15).

    Returns:
      An equally weighted :class:`GaussianMixture` with 8 components, the
      first centred at ``(radius, 0)``.
    """
    radius = _positive_scalar(radius, "radius")
    angles = 2.0 * np.pi * np.arange(8) / 8
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture(means=means, std=std, weights=np.full(8, 1.0 / 8))


# ---------------------------------------------------------------------------
# Concentric rings
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class RingMixture:
    """Mixture of concentric rings centred at the origin.

    Ring ``k`` is the uniform distribution on the circle of radius
    ``radii[k]`` blurred by isotropic Gaussian noise of standard deviation
    ``std``: ``x = radii[k] * (cos t, sin t) + std * z`` with ``t`` uniform on
    ``[0, 2*pi)`` and ``z ~ N(0, I)``. Its density depends only on
    ``r = |x|`` (uniform angle) and has the closed, exactly normalised form

        p_k(x) = exp(-(r - a)**2 / (2 s**2)) * i0e(r a / s**2) / (2 pi s**2)

    with ``a = radii[k]``, ``s = std`` and ``i0e(z) = exp(-z) I_0(z)`` the
    exponentially scaled modified Bessel function (so the radius follows a
    Rice distribution). For ``a >> s`` this is a radial Gaussian bump of
    width ``s`` around ``r = a``: ``i0e(z) ~ 1 / sqrt(2 pi z)``. The mixture
    density is ``sum_k w_k p_k(x)``.

    The density of a ring peaks on a whole circle, so there are no isolated
    modes; :attr:`modes` instead returns ``points_per_ring`` evenly spaced
    reference points on every ring (angles ``2*pi*j/points_per_ring``), which
    makes :func:`jebm.evaluation.metrics.mode_fractions` measure the balance between
    rings and angular sectors (expected fraction ``w_k / points_per_ring``
    per point, up to tail overlap).

    Attributes:
      radii: ``(k,)`` ring radii.
      std: Gaussian blur of every ring.
      weights: ``(k,)`` mixture weights; rescaled to sum to one on
        construction.
      points_per_ring: Number of reference points per ring in :attr:`modes`.
    """

    radii: np.ndarray
    std: float
    weights: np.ndarray
    points_per_ring: int = 8

    def __post_init__(self) -> None:
        radii = np.array(self.radii, dtype=np.float64)
        if radii.ndim != 1 or radii.size == 0 or np.any(~np.isfinite(radii)) or np.any(radii < 0):
            raise ValueError(f"radii must be a non-empty 1-D array of finite values >= 0, got {radii}")
        if int(self.points_per_ring) < 1:
            raise ValueError(f"points_per_ring must be >= 1, got {self.points_per_ring}")
        object.__setattr__(self, "radii", _readonly(radii))
        object.__setattr__(self, "std", _positive_scalar(self.std, "std"))
        object.__setattr__(self, "weights", _normalised_weights(self.weights, radii.size))
        object.__setattr__(self, "points_per_ring", int(self.points_per_ring))

    @property
    def modes(self) -> np.ndarray:
        """``points_per_ring`` reference points per ring, ring by ring, ``(k*m, 2)``."""
        angles = 2.0 * np.pi * np.arange(self.points_per_ring) / self.points_per_ring
        unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return (self.radii[:, None, None] * unit[None]).reshape(-1, 2)

    def sample(self, rng_key: jax.Array, n: int) -> jax.Array:
        """Draws ``n`` i.i.d. points from the ring mixture.

        Args:
          rng_key: A jax PRNG key.
          n: Number of points (static under ``jax.jit``).

        Returns:
          An ``(n, 2)`` float32 array.
        """
        key_component, key_angle, key_noise = jax.random.split(rng_key, 3)
        idx = _component_indices(key_component, self.weights, n)
        radius = jnp.asarray(self.radii, dtype=jnp.float32)[idx]
        angle = jax.random.uniform(key_angle, (n,), dtype=jnp.float32, maxval=2.0 * jnp.pi)
        on_ring = radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
        noise = jax.random.normal(key_noise, (n, 2), dtype=jnp.float32)
        return on_ring + jnp.float32(self.std) * noise

    def log_density(self, xy: Any) -> Any:
        """Exact normalised log-density of the ring mixture (see class docstring).

        Args:
          xy: Points of shape ``(..., 2)``; NumPy-like or jax.

        Returns:
          Log-density of shape ``(...)``: float64 NumPy for NumPy input,
          a jax array for jax input.
        """
        xp, xy, special = _backend(xy)
        _check_points(xy)
        r = _safe_norm(xp, xy)[..., None]  # (..., 1)
        a = xp.asarray(self.radii, dtype=xy.dtype)
        var = self.std**2
        # log I0(z) = log(i0e(z)) + z; folding the +z into the square keeps
        # everything O(1) and avoids the overflow of I0 at large z.
        log_components = -((r - a) ** 2) / (2.0 * var) + xp.log(special.i0e(r * a / var))
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        log_components = log_components + xp.asarray(log_w, dtype=xy.dtype)
        return special.logsumexp(log_components, axis=-1) - math.log(2.0 * math.pi * var)


def _safe_norm(xp, xy):
    """Euclidean norm over the last axis with a finite gradient at the origin.

    The plain ``sqrt`` has an infinite derivative at 0, which would make
    ``jax.grad`` of the ring log-density NaN at the origin (where samplers are
    often initialised). The double ``where`` gives gradient 0 there, which is
    the true gradient since the ring density is smooth and even in ``x``.
    """
    sq = xp.sum(xy**2, axis=-1)
    positive = sq > 0
    return xp.where(positive, xp.sqrt(xp.where(positive, sq, 1.0)), 0.0)


def rings(
    radii: tuple[float, ...] = (0.5, 1.2),
    std: float = 0.08,
    weights: tuple[float, ...] | None = None,
    points_per_ring: int = 8,
) -> RingMixture:
    """Concentric rings, by default radii 0.5 and 1.2 with radial spread 0.08.

    The defaults keep the rings separated by about 9 standard deviations and
    the outer ring (1.2 + 4 * 0.08 = 1.52) inside ``[-1.6, 1.6]^2``.

    Args:
      radii: Ring radii.
      std: Gaussian blur of every ring.
      weights: Mixture weights; equal weights when ``None``.
      points_per_ring: Reference points per ring for mode fractions.

    Returns:
      A :class:`RingMixture`.
    """
    if weights is None:
        weights = np.ones(len(radii))
    return RingMixture(radii=np.asarray(radii), std=std, weights=np.asarray(weights), points_per_ring=points_per_ring)


# ---------------------------------------------------------------------------
# Factory and fixed datasets
# ---------------------------------------------------------------------------


_FACTORIES = {"gmm8": gmm8, "rings": rings}
DATASET_NAMES: tuple[str, ...] = tuple(sorted(_FACTORIES))


def make_toy_dataset(name: str, **kwargs: Any) -> GaussianMixture | RingMixture:
    """Builds a toy dataset by name.

    Args:
      name: One of :data:`DATASET_NAMES` (``"gmm8"``, ``"rings"``).
      **kwargs: Forwarded to the constructor (:func:`gmm8` or :func:`rings`).

    Returns:
      The dataset.

    Raises:
      ValueError: If ``name`` is unknown; the message names the config field
        and lists the valid names.
    """
    if name not in _FACTORIES:
        raise ValueError(f"dataset.name={name!r} is not one of {list(DATASET_NAMES)}")
    return _FACTORIES[name](**kwargs)


def fixed_points(rng_key: jax.Array, dataset: ToyDataset, n: int) -> jax.Array:
    """Draws a fixed training set of ``n`` points once.

    Args:
      rng_key: A jax PRNG key.
      dataset: Any toy dataset.
      n: Number of points.

    Returns:
      An ``(n, 2)`` float32 array.
    """
    return dataset.sample(rng_key, n)


def batch_from_fixed(points: jax.Array, rng_key: jax.Array, batch_size: int) -> jax.Array:
    """Draws a random minibatch from a fixed set of points, with replacement.

    Sampling with replacement keeps the function pure and jittable (no epoch
    state); for ``batch_size`` much smaller than ``len(points)`` it is close
    to sampling without replacement.

    Args:
      points: ``(N, 2)`` fixed dataset.
      rng_key: A jax PRNG key.
      batch_size: Minibatch size (static under ``jax.jit``).

    Returns:
      A ``(batch_size, 2)`` array with rows of ``points``.
    """
    idx = jax.random.randint(rng_key, (batch_size,), 0, points.shape[0])
    return jnp.asarray(points)[idx]
