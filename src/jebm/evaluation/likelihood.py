"""Log-partition functions and likelihoods of any energy.

An energy ``E`` at temperature ``T`` defines (``jebm.samplers.base``)

.. math::  p(x) = \\exp(-E(x)/T) / Z, \\qquad Z = \\int \\exp(-E(x)/T)\\, dx,

so the negative log-likelihood of data is ``mean(E(x))/T + log Z`` nats and
everything hinges on ``log Z``. This module estimates it three ways:

* :func:`log_partition_grid`: midpoint quadrature on a square in 2D, checked
  for convergence (the reference value for the toy).
* :func:`ais`: annealed importance sampling (R. M. Neal, "Annealed importance
  sampling", Statistics and Computing, 2001) along the geometric path from a
  normalised base density ``q`` to ``exp(-E/T)``. ``log`` of its mean weight
  is a stochastic *lower* bound on ``log Z`` (Jensen: ``E[log mean w] <= log Z``).
  Its base ``"box_kde"`` (a kernel density of data points, the chains on
  ``atanh(x)``) makes it usable on image energies restricted to a box.
* :func:`reverse_ais`: the same path run backwards from exact samples of the
  target, giving a stochastic *upper* bound (R. B. Grosse, Z. Ghahramani and
  R. P. Adams, "Sandwiching the marginal likelihood using bidirectional Monte
  Carlo", 2015). :func:`sandwich` pairs the two; in 2D
  :func:`grid_samples` supplies the exact samples.

Measured AIS error against the number of temperatures
-----------------------------------------------------
Gaussian energies ``E(x) = ½ xᵀAx`` with a seeded random SPD ``A``
(``A = Q diag(λ) Qᵀ``, ``Q`` from the QR of a ``numpy.random.default_rng(0)``
normal matrix, ``λ`` uniform in [0.5, 4]), ``T = 1``, base ``N(0, I)``, MALA
with one transition per temperature and the default step-size adaptation
(target acceptance 0.6), 256 chains, ``rng_key = jax.random.key(0)``.
Error = ``log Ẑ - log Z`` with the exact ``log Z = (d/2) log 2π - ½ log det A``,
± the delta-method ``log_z_std``, and the ESS of the 256 weights:

=====  ===============================  ===============================  ===============================
 K      d = 2                            d = 10                           d = 100
=====  ===============================  ===============================  ===============================
 10     -0.0696 ± 0.0447  (ESS 170)      -0.1412 ± 0.1067  (ESS 66)       -3.7263 ± 0.8590  (ESS 1)
 100    -0.0095 ± 0.0162  (ESS 240)      -0.0130 ± 0.0303  (ESS 207)      -0.2166 ± 0.2786  (ESS 12)
 1000   +0.0038 ± 0.0044  (ESS 255)      +0.0057 ± 0.0089  (ESS 251)      -0.0247 ± 0.0446  (ESS 170)
=====  ===============================  ===============================  ===============================

The error falls roughly like 1/K (d = 100: 3.7, 0.22, 0.025 nats), as the
variance of ``log w`` does, and is negative (``log Ẑ`` is a stochastic lower
bound, biased by about ``-Var(log w)/2`` for near-log-normal weights). A path
too short for the dimension shows up as a collapsed ESS and an error that
``log_z_std`` underestimates (d = 100, K = 10: error 4.3 standard errors):
trust ``log_z_std`` only when the ESS is a sizeable fraction of the chains.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from jebm.evaluation import metrics
from jebm.samplers import base as sbase
from jebm.samplers import proposal

Array = jax.Array
EnergyFn = Callable[[Any], Array]

__all__ = [
    "AISOptions",
    "AISResult",
    "ais",
    "ais_convergence",
    "bootstrap_log_z_std",
    "box_kde_centres",
    "effective_sample_size",
    "grid_log_density",
    "grid_samples",
    "log_partition_grid",
    "nll",
    "reverse_ais",
    "sandwich",
    "sigmoid_schedule",
]

_GRID_BATCH = 1 << 16


# ---------------------------------------------------------------------------
# Exact quadrature in 2D
# ---------------------------------------------------------------------------


def _grid_log_weights(energy_fn: EnergyFn, lim: float, size: int, temperature: float):
    """``(xs, ys, log_cell)``: ``log_cell[i, j] = -E((xs[j], ys[i]))/T + log h²`` in float64."""
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    sbase.check_positive("lim", lim)
    sbase.check_positive("temperature", temperature)
    xs, ys = metrics.grid(lim, size)
    points = metrics.grid_points(xs, ys).astype(np.float32)
    energies = np.concatenate([
        np.asarray(energy_fn(jnp.asarray(points[i:i + _GRID_BATCH])), dtype=np.float64)
        for i in range(0, len(points), _GRID_BATCH)
    ])
    if energies.shape != (len(points),):
        raise ValueError(f"energy_fn must return shape (n,), got {energies.shape} for n={len(points)}")
    cell = 2.0 * lim / size
    log_cell = -energies / temperature + 2.0 * math.log(cell)
    return xs, ys, log_cell.reshape(size, size)


def grid_log_density(energy_fn: EnergyFn, *, lim: float, size: int, temperature: float = 1.0):
    """The normalised log density ``log p = -E/T - log Z_grid`` at the cell centres.

    Args:
      energy_fn: maps ``(n, 2)`` float32 points to ``(n,)`` energies.
      lim: half-width of the square ``[-lim, lim]²``.
      size: cells per axis.
      temperature: T > 0.

    Returns:
      ``(xs, ys, log_p)``: cell centres and a ``(size, size)`` float64 array with
      ``log_p[i, j]`` the log density (per unit area) at ``(xs[j], ys[i])``,
      normalised so that ``Σ exp(log_p) h² = 1`` with ``h = 2 lim / size``.
    """
    xs, ys, log_cell = _grid_log_weights(energy_fn, lim, size, temperature)
    cell = 2.0 * lim / size
    log_p = log_cell - scipy.special.logsumexp(log_cell) - 2.0 * math.log(cell)
    return xs, ys, log_p


def log_partition_grid(
    energy_fn: EnergyFn, *, lim: float, size: int, temperature: float = 1.0, tol: float = 1e-3,
    on_box: bool = False,
) -> float:
    """``log Z`` of a 2D energy by midpoint quadrature, checked for convergence.

    .. math::

        \\log Z \\approx \\log \\sum_{i,j} h^2 \\exp(-E(c_{ij}) / T),
        \\qquad h = 2\\,\\mathrm{lim} / N,

    over the ``N x N`` cell centres ``c_ij`` of ``[-lim, lim]²``, computed as a
    float64 log-sum-exp (energies are cast to float64 first). It is evaluated
    at ``N = size`` and at ``N = 2·size``; the ``2·size`` value is returned.

    ``tol`` bounds two things: the absolute change of ``log Z`` (nats) between
    the two grids — larger means the grid is too coarse for the energy's
    features — and the probability mass of the outermost ring of cells of the
    ``size`` grid — larger means the density reaches the box's edge, so the
    integral over the plane is not captured by the box. With ``on_box=True``
    the model is a density *on the box* (how jebm reads the toy model, with
    AIS's uniform base on the same box), its integral is the box's by
    definition, and only the grid change is checked.

    Args:
      energy_fn: maps ``(n, 2)`` float32 points to ``(n,)`` energies.
      lim: half-width of the square.
      size: cells per axis of the coarse grid.
      temperature: T > 0.
      tol: tolerance in nats (grid change) and in probability (edge mass).
      on_box: the energy defines a density on the box only: skip the edge check.

    Returns:
      ``log Z`` on the ``2·size`` grid, a Python float.

    Raises:
      ValueError: if the edge ring holds more than ``tol`` of the mass (pass a
        larger ``lim``), or if the two grids differ by more than ``tol`` (pass
        a larger ``size``).
    """
    _, _, coarse = _grid_log_weights(energy_fn, lim, size, temperature)
    _, _, fine = _grid_log_weights(energy_fn, lim, 2 * size, temperature)
    log_z_coarse = float(scipy.special.logsumexp(coarse))
    log_z_fine = float(scipy.special.logsumexp(fine))
    if not (np.isfinite(log_z_coarse) and np.isfinite(log_z_fine)):
        raise ValueError(f"log Z on the grid is not finite ({log_z_coarse}, {log_z_fine}): check the energy")
    ring = np.ones_like(coarse, dtype=bool)
    ring[1:-1, 1:-1] = False
    edge_mass = float(np.exp(scipy.special.logsumexp(coarse[ring]) - log_z_coarse)) if size > 2 else 1.0
    if edge_mass > tol and not on_box:
        raise ValueError(
            f"the density reaches the edge of [-{lim}, {lim}]^2: the outermost ring of cells holds "
            f"{edge_mass:.3g} of the probability mass (> tol={tol}); pass a larger `lim`"
        )
    if abs(log_z_fine - log_z_coarse) > tol:
        raise ValueError(
            f"the grid is too coarse: log Z changes by {abs(log_z_fine - log_z_coarse):.3g} nats from "
            f"size={size} to {2 * size} (> tol={tol}); pass a larger `size`"
        )
    return log_z_fine


def nll(energies_of_data: Any, log_z: float, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood in nats: ``mean(E(x))/T + log Z``."""
    energies = np.asarray(energies_of_data, dtype=np.float64)
    return float(np.mean(energies) / temperature + log_z)


def grid_samples(
    rng_key: Array, energy_fn: EnergyFn, *, lim: float, size: int, num_samples: int, temperature: float = 1.0
) -> Array:
    """Exact samples of the grid-discretised density on ``[-lim, lim]²``.

    A cell is drawn with probability ``exp(-E(c)/T) / Σ exp(-E/T)`` (its
    centre's value times its area, normalised), then the point is uniform in
    that cell. For a fine grid (one that :func:`log_partition_grid` accepts)
    these are exact samples of ``p`` up to the quadrature error, as reverse
    AIS (:func:`reverse_ais`) requires.

    Returns:
      ``(num_samples, 2)`` float32 jax array.
    """
    xs, ys, log_cell = _grid_log_weights(energy_fn, lim, size, temperature)
    key_cell, key_jitter = jax.random.split(rng_key)
    # Inverse CDF in float64 (53-bit uniforms from two 32-bit words), so cells of
    # tiny probability are drawn at their rate and memory stays O(cells + samples).
    cdf = np.cumsum(np.exp(log_cell.ravel() - scipy.special.logsumexp(log_cell)))
    bits = np.asarray(jax.random.bits(key_cell, (num_samples, 2), jnp.uint32), np.uint64)
    u = ((bits[:, 0] >> np.uint64(5)) * np.float64(2.0**26) + (bits[:, 1] >> np.uint64(6))) / 2.0**53
    cells = np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), cdf.size - 1)
    centres = jnp.asarray(metrics.grid_points(xs, ys), jnp.float32)[cells]
    half = lim / size
    return centres + jax.random.uniform(key_jitter, (num_samples, 2), jnp.float32, -half, half)


# ---------------------------------------------------------------------------
# Annealed importance sampling
# ---------------------------------------------------------------------------


class AISResult(NamedTuple):
    """An AIS (or reverse-AIS) run.

    Attributes:
      log_z: forward: ``logsumexp(log_w) - log n``, the log of the mean
        importance weight (a stochastic lower bound on ``log Z``). Reverse:
        ``log n - logsumexp(log w_rev)``, the log of the inverse mean reverse
        weight (a stochastic upper bound).
      log_z_std: delta-method standard error of ``log_z``:
        ``std(w / mean(w)) / sqrt(n)`` of the (forward or reverse) weights.
      log_weights: ``(n,)`` float64 numpy array, one log weight per chain.
      ess: effective sample size ``(Σw)² / Σw²`` of the weights.
      num_temps: K, the number of annealing steps (``K + 1`` β values).
      acceptance: ``(K,)`` mean MH acceptance probability of each transition
        (over chains and the ``transitions`` steps), in run order.
      step_sizes: ``(K,)`` step size each transition used, in run order.
      kernel_betas: ``(K,)`` the β whose ``p_β`` each transition leaves
        invariant, in run order (forward: β_1..β_K; reverse: β_{K-1}..β_0).
      direction: ``"forward"`` or ``"reverse"``.
      mean_log_weight: forward: ``mean(log w)`` (a looser lower bound);
        reverse: ``-mean(log w_rev)`` (a looser upper bound).
      samples: the chains' final positions ``(n, *example_shape)``.
    """

    log_z: float
    log_z_std: float
    log_weights: np.ndarray
    ess: float
    num_temps: int
    acceptance: np.ndarray
    step_sizes: np.ndarray
    kernel_betas: np.ndarray
    direction: str
    mean_log_weight: float
    samples: Array


def sigmoid_schedule(num_temps: int, delta: float = 4.0) -> np.ndarray:
    """The sigmoid-spaced β schedule of Grosse et al. (2013) and Wu et al. (2017).

    .. math::

        \\tilde\\beta_k = \\sigma\\big(\\delta (2k/K - 1)\\big), \\qquad
        \\beta_k = \\frac{\\tilde\\beta_k - \\tilde\\beta_0}{\\tilde\\beta_K - \\tilde\\beta_0},
        \\qquad k = 0, \\dots, K,

    with σ the logistic function: ``β_0 = 0``, ``β_K = 1`` and the steps are
    densest at both ends of the path.

    Returns:
      ``(K + 1,)`` float64 array.
    """
    if not isinstance(num_temps, int) or num_temps < 1:
        raise ValueError(f"num_temps must be an int >= 1, got {num_temps!r}")
    sbase.check_positive("delta", delta)
    k = np.arange(num_temps + 1, dtype=np.float64)
    tilde = scipy.special.expit(delta * (2.0 * k / num_temps - 1.0))
    betas = (tilde - tilde[0]) / (tilde[-1] - tilde[0])
    betas[0], betas[-1] = 0.0, 1.0
    return betas


class _Path(NamedTuple):
    log_q: Callable[[Array], Array]
    grad_log_q: Callable[[Array], Array]
    sample_q: Callable[[Array, tuple], Array]
    bounds: tuple[float, float] | None


def _make_base(name: str, scale: float, dim: int) -> _Path:
    """The normalised base ``q``: ``log q`` (with its normaliser), its gradient, a sampler, the box."""
    sbase.check_choice("base", name, {"gaussian", "uniform"})
    sbase.check_positive("base_scale", scale)

    if name == "gaussian":
        log_norm = -0.5 * dim * math.log(2.0 * math.pi * scale**2)
        return _Path(
            lambda x: -0.5 * _sum_sq(x) / scale**2 + log_norm,
            lambda x: -x / scale**2,
            lambda key, shape: scale * jax.random.normal(key, shape, jnp.float32),
            None,
        )
    log_norm = -dim * math.log(2.0 * scale)
    return _Path(
        lambda x: jnp.full((x.shape[0],), log_norm, jnp.float32),
        jnp.zeros_like,
        lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -scale, scale),
        (-scale, scale),
    )


BASES = ("gaussian", "uniform", "box_kde")


def box_kde_centres(points: Any, box: float, margin: float = 1e-3) -> np.ndarray:
    """The ``box_kde`` base's centres in the unbounded space: ``atanh(clip(y/b, −1+δ, 1−δ))``, δ = ``margin``.

    The margin sets where a point on the box's faces (an image's background
    pixel) puts its kernel: ``u = atanh(−1+δ) ≈ −½ log(2/δ)``. It should match
    how far into the box the model's mass reaches from the faces: on jebm's
    MNIST CNNs, whose samplers clip to the box, pilots over 1e-4..0.2 found the
    tightest bounds between 1e-3 (1 temperature) and 1e-2 (100 temperatures);
    the MNIST evaluation uses 3e-3 (``eval.ais_kde_margin``).

    Args:
      points: ``(N, *example_shape)`` points of the box ``[−b, b]^d`` (e.g. training images).
      box: the half-width ``b``.
      margin: δ in (0, 1), as a fraction of ``b``.

    Returns:
      ``(N, d)`` float32 array.
    """
    sbase.check_positive("box", box)
    if not 0.0 < margin < 1.0:
        raise ValueError(f"centre_margin={margin!r} must be in (0, 1): the fraction of the box's half-width")
    y = np.asarray(points, np.float64)
    if y.ndim < 2 or y.shape[0] < 1 or not np.all(np.isfinite(y)):
        raise ValueError(f"centres must be a finite (N, *example_shape) array with N >= 1, got shape {y.shape}")
    if np.any(np.abs(y) > box * (1 + 1e-6)):
        raise ValueError(f"centres must lie in the box [-{box}, {box}]^d; their range is [{y.min()}, {y.max()}]")
    u = np.arctanh(np.clip(y / box, -1.0 + margin, 1.0 - margin))
    return u.reshape(y.shape[0], -1).astype(np.float32)


def _box_kde_base(centres: np.ndarray, scale: float, log_weights: np.ndarray | None = None) -> _Path:
    """``q(u) = Σ_i π_i N(u; c_i, σ² I)`` on all of R^d (no box: the box lives in the transform).

    ``π = softmax(log_weights)``, uniform (``1/N``) when ``log_weights`` is None.
    """
    sbase.check_positive("base_scale", scale)
    c = jnp.asarray(centres, jnp.float32)
    n, dim = c.shape
    if log_weights is None:
        log_pi = np.full(n, -math.log(n))
    else:
        lw = np.asarray(log_weights, np.float64)
        if lw.shape != (n,) or not np.all(np.isfinite(lw)):
            raise ValueError(f"centre_log_weights must be {n} finite numbers (one per centre), got shape {lw.shape}")
        log_pi = lw - scipy.special.logsumexp(lw)
    log_pi = jnp.asarray(log_pi, jnp.float32)
    c2 = jnp.sum(c * c, axis=1)
    log_norm = -0.5 * dim * math.log(2.0 * math.pi * scale**2)

    def logits(u):
        flat = jnp.reshape(u, (u.shape[0], -1))
        sq = jnp.sum(flat * flat, axis=1)[:, None] - 2.0 * flat @ c.T + c2[None, :]
        return -0.5 * jnp.maximum(sq, 0.0) / scale**2 + log_pi[None, :]

    def grad_log_q(u):
        resp = jax.nn.softmax(logits(u), axis=1)
        flat = jnp.reshape(u, (u.shape[0], -1))
        return jnp.reshape((resp @ c - flat) / scale**2, u.shape)

    def sample_q(key, shape):
        key_i, key_w = jax.random.split(key)
        if log_weights is None:
            idx = jax.random.randint(key_i, (shape[0],), 0, n)
        else:
            idx = jax.random.categorical(key_i, log_pi, shape=(shape[0],))
        return jnp.reshape(c[idx], shape) + scale * jax.random.normal(key_w, shape, jnp.float32)

    return _Path(lambda u: jax.nn.logsumexp(logits(u), axis=1) + log_norm, grad_log_q, sample_q, None)


def _log_tanh_jacobian(u, box: float):
    """``log |det ∂x/∂u|`` of ``x = b·tanh(u)``: ``Σ_j log b + log(1 − tanh² u_j)``, computed stably."""
    # 1 - tanh²(u) = 4 e^{-2u} / (1 + e^{-2u})², so log(1 - tanh² u) = 2 (log 2 - u - softplus(-2u)).
    per = math.log(box) + 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(jnp.reshape(per, (u.shape[0], -1)), axis=1)


class _Space(NamedTuple):
    """Where the chains run: the base path, the energy there, and the maps to and from x."""

    path: _Path
    energy_fn: EnergyFn
    to_x: Callable[[Array], Array]
    from_x: Callable[[Array], Array]


def _space(options: AISOptions, dim: int, energy_fn) -> _Space:
    """The chains' space for ``options.base``: x itself, or ``u = atanh(x/b)`` for ``box_kde``.

    For ``box_kde`` the chains run on ``u`` with the energy
    ``E_u(u) = E(b·tanh u) − T log|det ∂x/∂u|``, so that
    ``∫ exp(−E_u/T) du = ∫_box exp(−E/T) dx``: the same ``Z`` as the uniform base's.
    """
    base, base_scale, temperature, box = options.base, options.base_scale, options.temperature, options.box
    centres, margin, log_weights = options.centres, options.centre_margin, options.centre_log_weights
    sbase.check_choice("base", base, set(BASES))
    if base != "box_kde":
        if centres is not None or log_weights is not None:
            raise ValueError(f"centres and centre_log_weights are for base='box_kde', not base={base!r}")
        identity = lambda x: x  # noqa: E731
        return _Space(_make_base(base, base_scale, dim), energy_fn, identity, identity)
    if centres is None:
        raise ValueError("base='box_kde' needs centres: (N, *example_shape) points of the box, e.g. training data")
    c = box_kde_centres(centres, box, margin)
    if c.shape[1] != dim:
        raise ValueError(f"centres have {c.shape[1]} values each, the examples {dim}")

    def energy_u(u):
        return energy_fn(box * jnp.tanh(u)) - temperature * _log_tanh_jacobian(u, box)

    def from_x(x):
        return jnp.arctanh(jnp.clip(x / box, -1.0 + 1e-6, 1.0 - 1e-6))

    return _Space(_box_kde_base(c, base_scale, log_weights), energy_u, lambda u: box * jnp.tanh(u), from_x)


def _sum_sq(x):
    return jnp.sum(jnp.reshape(x * x, (x.shape[0], -1)), axis=1)


def _build_transition(kernel: str, path: _Path, energy_fn, temperature: float, num_leapfrog: int):
    """``step(key, x, E, gE, beta, step_size) -> (x, E, gE, acceptance)``: one exact MH step for ``p_β``.

    ``log f_β(x) = (1 - β) log q(x) - β E(x)/T``, and ``U = -log f_β``. MALA
    proposes the Langevin step of :mod:`jebm.samplers.proposal` on ``U`` at unit
    temperature, ``x* = x - ε ∇U(x) + sqrt(2ε) w``; HMC runs ``num_leapfrog``
    leapfrog steps of size ε with momentum ``r ~ N(0, I)`` on ``U``. Both are
    accepted with the usual Metropolis–Hastings ratio
    (:func:`jebm.samplers.proposal.mh_accept`). With a box (uniform base) a
    proposal with any coordinate outside the box is rejected, which is MH for
    the box-restricted target (``f = 0`` outside).
    """

    def log_f(x, e, beta):
        return (1.0 - beta) * path.log_q(x) - beta * e / temperature

    def grad_log_f(x, ge, beta):
        return (1.0 - beta) * path.grad_log_q(x) - beta * ge / temperature

    def finish(key, log_ratio, proposed, current):
        valid = None if path.bounds is None else sbase.in_bounds(proposed[0], path.bounds)
        (x, e, ge), acceptance, _ = proposal.mh_accept(key, log_ratio, proposed, current, valid)
        return x, e, ge, acceptance

    def mala(key, x, e, ge, beta, eps):
        key_w, key_u = jax.random.split(key)
        w = jax.random.normal(key_w, x.shape, x.dtype)
        # The Langevin proposal on U = -log f_β, whose gradient is -∇log f_β, at unit temperature.
        xp = proposal.langevin_proposal(x, -grad_log_f(x, ge, beta), w, eps, 1.0)
        ep, gep = sbase.energy_and_grad(energy_fn, xp)
        log_forward = proposal.noise_log_density(w)
        log_backward = proposal.langevin_log_density(x, xp, -grad_log_f(xp, gep, beta), eps, 1.0)
        log_ratio = log_f(xp, ep, beta) - log_f(x, e, beta) + log_backward - log_forward
        return finish(key_u, log_ratio, (xp, ep, gep), (x, e, ge))

    def hmc(key, x, e, ge, beta, eps):
        key_r, key_u = jax.random.split(key)
        r0 = jax.random.normal(key_r, x.shape, x.dtype)
        r = r0 + 0.5 * eps * grad_log_f(x, ge, beta)

        def leap(_, carry):
            xi, _, _, ri = carry
            xi = xi + eps * ri
            ei, gei = sbase.energy_and_grad(energy_fn, xi)
            return xi, ei, gei, ri + eps * grad_log_f(xi, gei, beta)

        xp, ep, gep, r = jax.lax.fori_loop(0, num_leapfrog, leap, (x, e, ge, r))
        r = r - 0.5 * eps * grad_log_f(xp, gep, beta)
        log_ratio = log_f(xp, ep, beta) - 0.5 * _sum_sq(r) - log_f(x, e, beta) + 0.5 * _sum_sq(r0)
        return finish(key_u, log_ratio, (xp, ep, gep), (x, e, ge))

    return {"mala": mala, "hmc": hmc}[kernel]


def effective_sample_size(log_weights: Any) -> float:
    """``(Σw)² / Σw²`` of weights given by their logs (computed without leaving log space)."""
    log_w = np.asarray(log_weights, np.float64)
    return float(np.exp(2.0 * scipy.special.logsumexp(log_w) - scipy.special.logsumexp(2.0 * log_w)))


def _summarise(log_w: np.ndarray, sign: float) -> tuple[float, float, float]:
    """``(log_z, log_z_std, ess)`` from log weights; ``sign=-1`` for reverse weights."""
    n = log_w.shape[0]
    lse = float(scipy.special.logsumexp(log_w))
    normalised = np.exp(log_w - lse) * n  # w / mean(w)
    std = float(np.std(normalised, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return sign * (lse - math.log(n)), std, effective_sample_size(log_w)


def bootstrap_log_z_std(log_weights: Any, rng_key: Array, num_resamples: int = 1000) -> float:
    """Bootstrap standard error of ``logsumexp(log_w) - log n`` (chains resampled with replacement)."""
    log_w = np.asarray(log_weights, np.float64)
    n = log_w.shape[0]
    idx = np.asarray(jax.random.randint(rng_key, (num_resamples, n), 0, n))
    estimates = scipy.special.logsumexp(log_w[idx], axis=1) - math.log(n)
    return float(np.std(estimates, ddof=1))


@dataclasses.dataclass(frozen=True, eq=False)
class AISOptions:
    """How :func:`ais` and :func:`reverse_ais` anneal: the base, the MH kernel and its step size.

    One object serves both directions (a forward run's options, with its
    ``step_sizes``, give the reverse run the same path). The defaults are a
    Gaussian base ``N(0, I)`` and one MALA step per temperature at ``T = 1``,
    the step size adapting towards 60% acceptance. The fields are checked when
    :func:`ais` or :func:`reverse_ais` runs, each error naming its field.
    """

    base: str = "gaussian"
    """The normalised base ``q``: ``"gaussian"``, ``"uniform"`` or ``"box_kde"`` (see :func:`ais`)."""
    base_scale: float = 1.0
    """The Gaussian's standard deviation, the uniform box's half-width, or the ``box_kde`` bandwidth σ in ``u``."""
    transitions: int = 1
    """MH steps at each temperature (>= 1)."""
    kernel: str = "mala"
    """The MH kernel: ``"mala"`` or ``"hmc"``."""
    step_size: float | None = None
    """One fixed step size ε for every temperature (None: adapt, or ``step_sizes``)."""
    step_sizes: Any = None
    """``(K,)`` fixed step sizes, one per temperature, e.g. a previous run's ``AISResult.step_sizes``."""
    step_size_init: float | None = None
    """The adapted ε's start (None: ``0.1 base_scale²`` for MALA, ``0.2 base_scale`` for HMC)."""
    temperature: float = 1.0
    """T > 0 of the target ``exp(-E/T)``."""
    chunk_size: int = 0
    """> 0: the energy-and-gradient passes run in groups of this many chains
    (:func:`jebm.samplers.base.chunked`)."""
    target_accept: float = 0.6
    """The acceptance in (0, 1) the step-size adaptation aims at."""
    adapt_rate: float = 1.0
    """The adaptation's gain: ``log ε ← log ε + adapt_rate (ā_k − target_accept)``."""
    num_leapfrog: int = 5
    """Leapfrog steps of one HMC proposal."""
    delta: float = 4.0
    """The steepness of :func:`sigmoid_schedule`."""
    centres: Any = None
    """``box_kde`` only: ``(N, *example_shape)`` points of the box (e.g. training data) the base's kernels sit on."""
    box: float = 1.0
    """``box_kde`` only: the half-width ``b`` of the box ``[−b, b]^d`` the target lives on."""
    centre_margin: float = 1e-3
    """``box_kde`` only: δ in (0, 1), how far inside the box a point on a face puts its kernel
    (:func:`box_kde_centres`)."""
    centre_log_weights: Any = None
    """``box_kde`` only: ``(N,)`` log weights of the centres (None: equal weights)."""


def _check_options(options: AISOptions, num_temps):
    if not isinstance(options, AISOptions):
        raise ValueError(f"options must be an AISOptions, got {type(options).__name__}")
    sbase.check_choice("kernel", options.kernel, {"mala", "hmc"})
    if not isinstance(num_temps, int) or num_temps < 1:
        raise ValueError(f"num_temps must be an int >= 1, got {num_temps!r}")
    if not isinstance(options.transitions, int) or options.transitions < 1:
        raise ValueError(f"transitions must be an int >= 1, got {options.transitions!r}")
    sbase.check_positive("temperature", options.temperature)
    if not 0.0 < options.target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {options.target_accept!r}")
    if options.step_size is not None:
        sbase.check_positive("step_size", options.step_size)
    if not isinstance(options.chunk_size, int) or options.chunk_size < 0:
        raise ValueError(f"chunk_size must be an int >= 0, got {options.chunk_size!r}")


def _run(rng_key, space: _Space, x0, path_betas, fixed_steps, options: AISOptions):
    """The one ``lax.scan`` over annealing steps, shared by forward and reverse AIS.

    Step k (in run order) goes from ``from = path_betas[k]`` to ``to = path_betas[k + 1]``:
    ``log w += log f_{to}(x) - log f_{from}(x)`` at the current x, then
    ``transitions`` MH steps leaving ``p_{to}`` invariant.
    """
    path, temperature, transitions = space.path, options.temperature, options.transitions
    target_accept, adapt_rate = options.target_accept, options.adapt_rate
    init_step = _default_init_step(options)
    energy_fn = space.energy_fn
    fn = sbase.chunked(energy_fn, options.chunk_size) if options.chunk_size > 0 else energy_fn
    step = _build_transition(options.kernel, path, fn, temperature, options.num_leapfrog)
    adapt = fixed_steps is None
    betas_from, betas_to, kernel_betas = path_betas[:-1], path_betas[1:], path_betas[1:]

    def run(key, x0, betas_from, betas_to, kernel_betas, fixed):
        e0, ge0 = sbase.energy_and_grad(fn, x0)
        keys = jax.random.split(key, betas_from.shape[0])

        def body(carry, inputs):
            x, e, ge, log_w, log_eps = carry
            key_k, b_from, b_to, b_kernel, fixed_k = inputs
            # (β_to - β_from) (-log q(x) - E(x)/T) = log f_to(x) - log f_from(x)
            log_w = log_w + (b_to - b_from) * (-path.log_q(x) - e / temperature)
            eps = jnp.exp(log_eps) if adapt else fixed_k

            def one(c, k):
                xi, ei, gei, acc = c
                xi, ei, gei, a = step(k, xi, ei, gei, b_kernel, eps)
                return (xi, ei, gei, acc + jnp.mean(a)), None

            (x, e, ge, acc), _ = jax.lax.scan(
                one, (x, e, ge, jnp.float32(0.0)), jax.random.split(key_k, transitions)
            )
            acc = acc / transitions
            if adapt:
                log_eps = log_eps + adapt_rate * (acc - target_accept)
            return (x, e, ge, log_w, log_eps), (acc, eps)

        carry0 = (x0, e0, ge0, jnp.zeros(x0.shape[0], jnp.float32), jnp.log(jnp.float32(init_step)))
        (x, _, _, log_w, _), (acc, eps) = jax.lax.scan(
            body, carry0, (keys, betas_from, betas_to, kernel_betas, fixed)
        )
        return x, log_w, acc, eps

    num = betas_from.shape[0]
    fixed = jnp.zeros(num, jnp.float32) if fixed_steps is None else jnp.asarray(fixed_steps, jnp.float32)
    as32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    x, log_w, acc, eps = jax.jit(run)(
        rng_key, as32(x0), as32(betas_from), as32(betas_to), as32(kernel_betas), fixed
    )
    return x, np.asarray(log_w, np.float64), np.asarray(acc), np.asarray(eps)


def _anneal(rng_key, space: _Space, x0, path_betas, fixed_steps, options: AISOptions, direction: str) -> AISResult:
    """Runs the chains along ``path_betas`` and summarises their weights: the body of both directions.

    Forward, the weights' log mean is ``log Ẑ``; reverse, the weights are ``log w_rev``
    (``_run`` accumulates ``log f_to − log f_from`` with ``to = β_{k−1}``, ``from = β_k``)
    and ``log Ẑ = −(log mean w_rev)``; ``mean_log_weight`` takes the same sign.
    """
    sign = 1.0 if direction == "forward" else -1.0
    u, log_w, acc, eps = _run(rng_key, space, x0, path_betas, fixed_steps, options)
    log_z, std, ess = _summarise(log_w, sign)
    return AISResult(log_z, std, log_w, ess, len(path_betas) - 1, acc, eps, path_betas[1:], direction,
                     sign * float(np.mean(log_w)), space.to_x(u))


def _default_init_step(options: AISOptions):
    if options.step_size_init is not None:
        sbase.check_positive("step_size_init", options.step_size_init)
        return float(options.step_size_init)
    return 0.1 * options.base_scale**2 if options.kernel == "mala" else 0.2 * options.base_scale


def ais(
    rng_key: Array,
    energy_fn: EnergyFn,
    example_shape: Sequence[int],
    *,
    num_chains: int,
    num_temps: int,
    options: AISOptions = AISOptions(),
) -> AISResult:
    """Annealed importance sampling estimate of ``log Z`` (Neal, "Annealed importance sampling", 2001).

    Path: ``f_k(x) = q(x)^{1-β_k} exp(-β_k E(x)/T)``, ``k = 0..K``, with ``q``
    a normalised base (so ``Z_0 = 1``), ``f_K = exp(-E/T)`` and β from
    :func:`sigmoid_schedule` (``delta``). Each chain starts at ``x_0 ~ q``
    exactly and for ``k = 1..K``

    .. math::

        \\log w \\mathrel{+}= \\log f_k(x_{k-1}) - \\log f_{k-1}(x_{k-1})
            = -(\\beta_k - \\beta_{k-1}) \\big(\\log q(x_{k-1}) + E(x_{k-1})/T\\big),

    then ``x_k`` follows ``transitions`` MH steps that leave
    ``p_k ∝ f_k`` invariant. ``E[w] = Z``; ``log_z = log mean(w)`` is a
    stochastic lower bound on ``log Z``.

    Base ``q``: ``"gaussian"`` is ``N(0, base_scale² I)`` (``log q`` includes
    ``-(d/2) log(2π base_scale²)``); ``"uniform"`` is uniform on the box
    ``[-base_scale, base_scale]^d``, and then the *target* is the energy
    restricted to that box (how jebm defines image models on [-1, 1]^d and
    the toy on a box): ``log Z = log ∫_box exp(-E/T)``. Every proposal with a
    coordinate outside the box is rejected, which keeps each MH step exact
    for the box-restricted ``p_k``.

    ``"box_kde"`` targets the same box-restricted ``Z`` on the box
    ``[-box, box]^d`` from a base near the data. The chains run on
    ``u = atanh(x/b)`` (``b = box``), where the target is

    .. math::

        f(u) = \\exp\\big(-E(b \\tanh u)/T\\big) \\prod_j b\\,(1 - \\tanh^2 u_j),
        \\qquad \\int_{\\mathbb{R}^d} f(u)\\, du = \\int_{[-b, b]^d} e^{-E(x)/T} dx,

    and the base is a Gaussian kernel density on ``centres`` (``N`` points of
    the box, e.g. training images; :func:`box_kde_centres`):
    ``q(u) = Σ_i π_i N(u; c_i, σ² I)``, ``c_i = atanh(clip(y_i/b, ±(1 − δ)))`` with δ = ``centre_margin``,
    ``σ = base_scale`` and ``π = softmax(centre_log_weights)`` (``1/N`` each by default; any
    weights keep ``q`` normalised, so the estimate stays unbiased: weights that favour the
    centres where the model puts its mass only lower its variance). Nothing is rejected at the box's faces, where image
    pixels sit, and the chains start next to the data instead of in uniform
    noise, whose energy on a trained CNN is 10⁵-10⁶ nats above the data's.
    ``q`` depends only on the centres, so with centres from the training set
    and log-likelihoods of held-out data the bound is honest. ``samples`` are
    returned in x.

    Kernels: ``"mala"`` proposes ``x* = x + ε ∇log f_k(x) + sqrt(2ε) w``,
    ``w ~ N(0, I)`` (jebm's MALA at T = 1 on ``-log f_k``); ``"hmc"`` runs
    ``num_leapfrog`` leapfrog steps of size ε on ``U = -log f_k`` with fresh
    momentum ``r ~ N(0, I)``. Both accept with the exact MH ratio.

    Step size: ``step_size`` fixes ε for every temperature; ``step_sizes``
    (``(K,)``, e.g. a previous run's ``AISResult.step_sizes``) fixes one per
    temperature. Otherwise ε adapts across temperatures, starting from
    ``step_size_init`` (default ``0.1 base_scale²`` for MALA, ``0.2 base_scale``
    for HMC): after the transitions at temperature k,
    ``log ε ← log ε + adapt_rate (ā_k - target_accept)`` with ``ā_k`` the
    chains' mean acceptance at k, and the new ε is used at temperature k+1.
    ε is never changed within a temperature, so each temperature's kernel is a
    valid MH kernel for its own ``p_k`` at that ε, and ε at k depends only on
    earlier temperatures. Strictly, since ε is computed from all chains'
    past acceptances, a chain's weight is then unbiased only up to its O(1/n)
    influence on the shared ε; for an exactly unbiased estimate pass a pilot
    run's ``step_sizes``.

    All chains run in parallel in one jitted ``jax.lax.scan`` over
    temperatures (memory independent of K); ``chunk_size > 0`` runs the
    energy-and-gradient passes in groups (:func:`jebm.samplers.base.chunked`).

    Args:
      rng_key: PRNG key.
      energy_fn: ``(n, *example_shape) -> (n,)`` energies.
      example_shape: shape of one example, e.g. ``(2,)`` or ``(28, 28, 1)``.
      num_chains: n, the number of independent AIS chains.
      num_temps: K, the number of annealing steps.
      options: the base, kernel and step size (:class:`AISOptions`); the
        names above (``base``, ``base_scale``, ``step_sizes``, ...) are its fields.

    Returns:
      :class:`AISResult` with ``direction="forward"``.
    """
    _check_options(options, num_temps)
    example_shape = tuple(int(s) for s in example_shape)
    dim = int(np.prod(example_shape))
    space = _space(options, dim, energy_fn)
    betas = sigmoid_schedule(num_temps, options.delta)
    fixed = _fixed_steps(options, num_temps)
    key_init, key_run = jax.random.split(rng_key)
    x0 = space.path.sample_q(key_init, (num_chains, *example_shape))
    return _anneal(key_run, space, x0, betas, fixed, options, "forward")


def _fixed_steps(options: AISOptions, num_temps):
    step_size, step_sizes = options.step_size, options.step_sizes
    if step_size is not None and step_sizes is not None:
        raise ValueError("pass step_size or step_sizes, not both")
    if step_size is not None:
        return np.full(num_temps, float(step_size), np.float32)
    if step_sizes is not None:
        steps = np.asarray(step_sizes, np.float32)
        if steps.shape != (num_temps,) or not np.all(steps > 0):
            raise ValueError(f"step_sizes must be {num_temps} positive numbers, got shape {steps.shape}")
        return steps
    return None


def reverse_ais(
    rng_key: Array,
    energy_fn: EnergyFn,
    samples: Any,
    *,
    num_temps: int,
    options: AISOptions = AISOptions(),
) -> AISResult:
    """Reverse AIS from exact target samples: a stochastic upper bound on ``log Z``.

    Grosse, Ghahramani and Adams, "Sandwiching the marginal likelihood using
    bidirectional Monte Carlo" (2015). The path of :func:`ais` is run
    backwards: ``x_K`` are the given exact samples of ``p = exp(-E/T)/Z`` and
    for ``k = K..1``

    .. math::

        \\log w_{rev} \\mathrel{+}= \\log f_{k-1}(x) - \\log f_k(x)
            = (\\beta_k - \\beta_{k-1}) \\big(\\log q(x) + E(x)/T\\big),

    at the current x, then ``transitions`` MH steps leaving ``p_{k-1}``
    invariant. ``E[w_rev] = Z_0 / Z_K = 1/Z``, so by Jensen

    .. math::  \\log Z \\le \\mathbb{E}\\big[\\log n - \\operatorname{logsumexp}(\\log w_{rev})\\big]
               \\le \\mathbb{E}\\big[-\\operatorname{mean}(\\log w_{rev})\\big].

    ``log_z`` is the first (tighter) upper bound, ``mean_log_weight`` the
    second. The bounds hold only if ``samples`` are exact samples of ``p``
    (e.g. :func:`grid_samples` in 2D, or data of a known model).

    ``step_sizes`` takes a forward run's ``AISResult.step_sizes`` (ordered for
    β_1..β_K); the transition for ``p_{k-1}`` then uses the forward step size
    of β_{k-1} (β_1's for β_0, whose transition does not affect the weights).
    Otherwise the step size is fixed (``step_size``) or adapts as in
    :func:`ais`, starting at β_{K-1}. ``options`` (:class:`AISOptions`) as in :func:`ais`.

    Returns:
      :class:`AISResult` with ``direction="reverse"``; ``log_weights`` are the
      ``log w_rev``, ``acceptance``/``step_sizes`` are in run order
      (``kernel_betas`` = β_{K-1}..β_0).
    """
    _check_options(options, num_temps)
    samples = jnp.asarray(samples, jnp.float32)
    dim = int(np.prod(samples.shape[1:]))
    space = _space(options, dim, energy_fn)
    path, box = space.path, options.box
    if path.bounds is not None and not bool(jnp.all(sbase.in_bounds(samples, path.bounds))):
        raise ValueError(f"samples must lie in the base box [-{options.base_scale}, {options.base_scale}]^d")
    if options.base == "box_kde":
        if not bool(jnp.all(jnp.abs(samples) < box)):
            raise ValueError(f"samples must lie strictly inside the box (-{box}, {box})^d for base='box_kde'")
        samples = space.from_x(samples)
    betas = sigmoid_schedule(num_temps, options.delta)
    fixed = _fixed_steps(options, num_temps)
    if options.step_sizes is not None:
        # run step j (k = K - j) transitions for β_{k-1}: forward index k-2 (β_{k-1}), clamped at β_1.
        k = num_temps - np.arange(num_temps)
        fixed = fixed[np.maximum(k - 2, 0)]
    return _anneal(rng_key, space, samples, betas[::-1], fixed, options, "reverse")


def sandwich(forward: AISResult, reverse: AISResult) -> dict:
    """Bidirectional Monte Carlo bounds (Grosse, Ghahramani & Adams 2015).

    Returns:
      ``{"lower": forward.log_z, "upper": reverse.log_z, "gap": upper - lower}``:
      ``lower = log mean(w)`` of forward AIS and
      ``upper = log n - logsumexp(log w_rev)`` of reverse AIS, stochastic lower
      and upper bounds on ``log Z``; the gap bounds the error of either
      (in expectation) when the reverse run started from exact samples.
    """
    if forward.direction != "forward" or reverse.direction != "reverse":
        raise ValueError("sandwich(forward, reverse) needs an ais() result and a reverse_ais() result")
    lower, upper = float(forward.log_z), float(reverse.log_z)
    return {"lower": lower, "upper": upper, "gap": upper - lower}


def ais_convergence(
    rng_key: Array,
    energy_fn: EnergyFn,
    example_shape: Sequence[int],
    *,
    num_chains: int,
    temps: Sequence[int] = (10, 30, 100, 300, 1000),
    options: AISOptions = AISOptions(),
) -> list[dict]:
    """:func:`ais` with ``num_chains`` chains and ``options`` at each K in ``temps`` (a fresh key each).

    Returns:
      ``[{"num_temps": K, "log_z": ..., "log_z_std": ..., "ess": ...}, ...]``,
      ready for :func:`jebm.evaluation.plots.plot_ais_convergence`.
    """
    rows = []
    for key, k in zip(jax.random.split(rng_key, len(temps)), temps):
        result = ais(key, energy_fn, example_shape, num_chains=num_chains, num_temps=int(k), options=options)
        rows.append({"num_temps": int(k), "log_z": result.log_z, "log_z_std": result.log_z_std, "ess": result.ess})
    return rows
