"""MCMC chain diagnostics: autocorrelation, effective sample size, R̂, and the
drift-to-noise ratio of one Langevin step.

Every chain diagnostic takes ``draws`` shaped ``(num_chains, num_draws, ...)``:
``M = num_chains`` chains of ``N = num_draws`` draws each; any trailing axes
index independent scalar quantities, each diagnosed on its own (the result has
the trailing shape, or is a Python ``float`` when there are none). Inputs may
be NumPy or jax arrays; everything is computed in float64 NumPy.

Notation (per scalar quantity; chain ``m``, draw ``n``, lag ``t``):

* chain mean ``x̄_m = (1/N) Σ_n x_{m,n}``, grand mean ``x̄ = (1/M) Σ_m x̄_m``;
* biased autocovariance ``γ_{t,m} = (1/N) Σ_{n=1}^{N-t} (x_{m,n} - x̄_m)(x_{m,n+t} - x̄_m)``
  (divided by ``N``, not ``N - t``, as Stan and ArviZ do) and autocorrelation
  ``ρ_{t,m} = γ_{t,m} / γ_{0,m}``;
* within-chain variance ``W = (1/M) Σ_m s_m²`` with ``s_m² = N γ_{0,m} / (N - 1)``;
* between-chain variance ``B = N/(M-1) Σ_m (x̄_m - x̄)²`` (``B = 0`` when ``M = 1``);
* pooled variance estimate ``var⁺ = (N-1)/N · W + B/N``.

The ESS and R̂ estimators are those of Vehtari, Gelman, Simpson, Carpenter &
Bürkner (2021), "Rank-normalization, folding, and localization: An improved R̂
for assessing convergence of MCMC", Bayesian Analysis 16(2), written here from
the paper's equations:

* **split chains**: each chain is cut into its first and second half
  (``⌊N/2⌋`` draws each; when ``N`` is odd the middle draw is dropped), giving
  ``2M`` chains, so a trend within a chain shows up as between-chain variance;
* **rank-normalisation**: all ``S`` draws of a quantity (over every chain) are
  replaced by ``z = Φ⁻¹((r - 3/8) / (S + 1/4))``, ``r`` their pooled rank
  (ties get their average rank) and ``Φ⁻¹`` the standard normal quantile;
* **folding**: ``ζ = |x - median(x)|`` with the median over all draws.

Degenerate inputs: ``draws`` with fewer than 2 dimensions or fewer than 4
draws per chain raise :class:`ValueError`. A quantity that is constant over all
its draws, or that has a non-finite draw, has no defined ESS or R̂: its result
is ``nan`` (a whole run's summary is not lost to one stuck quantity).

:func:`drift_noise_ratio` compares the two terms of one Langevin step; see its
docstring. :func:`drift_noise_summary` says which regime a training run's logged
ratios sat in (random walk, balanced, gradient descent) and warns on a failure regime.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

__all__ = [
    "autocorrelation",
    "drift_noise_ratio",
    "drift_noise_summary",
    "ess",
    "rhat",
    "sampler_drift_noise_ratio",
    "summarize",
]

_MIN_DRAWS = 4
_SHAPE_TEXT = "(num_chains, num_draws, ...)"


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------


def _as_draws(draws: Any, min_draws: int = _MIN_DRAWS) -> np.ndarray:
    """``draws`` as a float64 array ``(M, N, K)`` (trailing axes flattened).

    Raises:
      ValueError: If ``draws`` has fewer than 2 dimensions, no chains, or fewer
        than ``min_draws`` draws per chain.
    """
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(
            f"draws must have shape {_SHAPE_TEXT} (at least 2 dimensions), "
            f"got shape {x.shape}"
        )
    if x.shape[0] < 1:
        raise ValueError(f"draws must have shape {_SHAPE_TEXT} with num_chains >= 1, got {x.shape}")
    if x.shape[1] < min_draws:
        raise ValueError(
            f"draws must have shape {_SHAPE_TEXT} with num_draws >= {min_draws}, "
            f"got shape {x.shape}"
        )
    return x.reshape(x.shape[0], x.shape[1], -1)


def _finish(values: np.ndarray, trailing: tuple[int, ...]) -> np.ndarray | float:
    """Per-quantity ``(K,)`` values back to the trailing shape (a float if none)."""
    values = values.reshape(trailing)
    return float(values) if values.ndim == 0 else values


def _degenerate(x: np.ndarray) -> np.ndarray:
    """``(K,)`` mask of quantities that are constant or have a non-finite draw."""
    flat = x.reshape(-1, x.shape[-1])
    nonfinite = ~np.all(np.isfinite(flat), axis=0)
    with np.errstate(invalid="ignore"):
        constant = np.all(flat == flat[:1], axis=0)
    return nonfinite | constant


def _split(x: np.ndarray) -> np.ndarray:
    """``(M, N, K)`` -> ``(2M, ⌊N/2⌋, K)``: first and second halves of each chain."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _rank_normalize(x: np.ndarray) -> np.ndarray:
    """``z = Φ⁻¹((r - 3/8) / (S + 1/4))`` with ranks pooled over chains and draws."""
    m, n, k = x.shape
    size = m * n
    ranks = scipy.stats.rankdata(x.reshape(size, k), method="average", axis=0)
    return scipy.special.ndtri((ranks - 0.375) / (size + 0.25)).reshape(m, n, k)


def _fold(x: np.ndarray) -> np.ndarray:
    """``ζ = |x - median(x)|``, the median pooled over chains and draws."""
    return np.abs(x - np.median(x.reshape(-1, x.shape[-1]), axis=0))


# ---------------------------------------------------------------------------
# Autocorrelation
# ---------------------------------------------------------------------------


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance ``γ_{t,m}`` along axis 1 at lags ``0..N-1``, by FFT.

    The centred chain is zero-padded to at least ``2N`` points, so the circular
    correlation the FFT computes equals the linear one (no wrap-around).
    """
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()  # power of two >= 2N - 1
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :n]
    return acov / n


def autocorrelation(draws: Any, max_lag: int | None = None) -> np.ndarray:
    """Per-chain autocorrelation ``ρ_{t,m} = γ_{t,m} / γ_{0,m}`` at lags ``0..max_lag``.

    ``γ_{t,m} = (1/N) Σ_{n=1}^{N-t} (x_{m,n} - x̄_m)(x_{m,n+t} - x̄_m)`` is the
    biased autocovariance estimator (divided by ``N`` at every lag, as Stan and
    ArviZ do), computed by FFT of the centred chain zero-padded to at least
    ``2N - 1`` points so there is no circular wrap-around. ``ρ_{0,m} = 1``.

    Args:
      draws: ``(num_chains, num_draws, ...)``; trailing axes are independent
        scalar quantities.
      max_lag: Largest lag, ``0 <= max_lag <= num_draws - 1``; default
        ``num_draws - 1``.

    Returns:
      float64 array ``(num_chains, max_lag + 1, ...)``. A chain that is constant
      in a quantity has ``γ_0 = 0`` and gets ``nan`` there.

    Raises:
      ValueError: If ``draws`` has fewer than 2 dimensions or fewer than 2
        draws, or ``max_lag`` is out of range.
    """
    x = _as_draws(draws, min_draws=2)
    shape = np.shape(np.asarray(draws))
    n = x.shape[1]
    if max_lag is None:
        max_lag = n - 1
    if not (isinstance(max_lag, (int, np.integer)) and 0 <= max_lag <= n - 1):
        raise ValueError(f"max_lag must be an integer in [0, num_draws - 1] = [0, {n - 1}], got {max_lag!r}")
    acov = _autocovariance(x)[:, : max_lag + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = acov / acov[:, :1]
    return acf.reshape((shape[0], max_lag + 1) + tuple(shape[2:]))


# ---------------------------------------------------------------------------
# ESS
# ---------------------------------------------------------------------------


def _ess_core(x: np.ndarray) -> np.ndarray:
    """Multi-chain ESS of each quantity of ``(M, N, K)`` chains (no splitting)."""
    m, n, _ = x.shape
    acov = _autocovariance(x)  # (M, N, K)
    chain_var = acov[:, 0] * n / (n - 1)  # s_m²
    w = chain_var.mean(axis=0)
    b_over_n = x.mean(axis=1).var(axis=0, ddof=1) if m > 1 else np.zeros_like(w)
    var_plus = (n - 1) / n * w + b_over_n
    # ρ_t = 1 - (W - (1/M) Σ_m s_m² ρ_{t,m}) / var⁺, and s_m² ρ_{t,m} = N γ_{t,m} / (N - 1).
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (w - acov.mean(axis=0) * n / (n - 1)) / var_plus  # (N, K)
    # Geyer's initial monotone sequence on pair sums Γ_k = ρ_{2k} + ρ_{2k+1}.
    pairs = n // 2
    gamma = rho[0 : 2 * pairs : 2] + rho[1 : 2 * pairs : 2]  # (pairs, K)
    positive = np.cumprod(gamma > 0, axis=0).astype(bool)  # initial positive run
    monotone = np.minimum.accumulate(gamma, axis=0)
    tau = -1.0 + 2.0 * np.sum(np.where(positive, monotone, 0.0), axis=0)
    # Antithetic chains can make τ tiny; cap ESS at S·log10(S) (as Stan does).
    size = m * n
    tau = np.maximum(tau, 1.0 / math.log10(size)) if size > 1 else tau
    with np.errstate(invalid="ignore", divide="ignore"):
        return size / tau


def ess(draws: Any, *, method: str = "bulk") -> np.ndarray | float:
    """Effective sample size over all chains (Vehtari et al. 2021).

    With ``M`` chains of ``N`` draws, the combined autocorrelation at lag ``t``
    is (Vehtari et al. 2021, eq. 10)::

        ρ̂_t = 1 - (W - (1/M) Σ_m s_m² ρ_{t,m}) / var⁺

    (``W``, ``s_m²``, ``ρ_{t,m}`` and ``var⁺`` as in the module docstring), so
    chains that disagree (large ``B``) count as strongly autocorrelated. The
    sum is truncated with Geyer's initial monotone sequence: pair sums
    ``Γ_k = ρ̂_{2k} + ρ̂_{2k+1}`` are kept for ``k = 0, 1, ...`` while
    ``Γ_k > 0``, each replaced by ``min(Γ_0, ..., Γ_k)`` so the sequence is
    non-increasing, and::

        τ = -1 + 2 Σ_k Γ_k,     ESS = M N / τ.

    As a safeguard against antithetic chains ``τ`` is at least
    ``1 / log10(M N)`` (ESS at most ``M N log10(M N)``).

    Methods:

    * ``"bulk"`` (default): bulk-ESS of the paper: the chains are **split** in
      halves (``2M`` chains of ``⌊N/2⌋`` draws) and **rank-normalised** before
      the estimator above, so it is robust to heavy tails and sensitive to
      trends and chains that disagree. ``M N`` above is then ``2M ⌊N/2⌋``.
    * ``"classic"``: the estimator above on the raw draws, chains **not**
      split and **not** rank-normalised. For ``M`` stationary AR(1) chains
      ``x_t = φ x_{t-1} + √(1-φ²) ε_t`` it estimates ``M N (1-φ)/(1+φ)``.

    Args:
      draws: ``(num_chains, num_draws, ...)`` with ``num_draws >= 4``; trailing
        axes are independent scalar quantities.
      method: ``"bulk"`` or ``"classic"``.

    Returns:
      ESS per quantity: an array of the trailing shape, or a float. ``nan`` for
      a quantity that is constant over all draws or has a non-finite draw.

    Raises:
      ValueError: On a shape other than ``(num_chains, num_draws, ...)`` with
        ``num_draws >= 4``, or an unknown ``method``.
    """
    if method not in ("bulk", "classic"):
        raise ValueError(f"method must be 'bulk' or 'classic', got {method!r}")
    x = _as_draws(draws)
    trailing = np.shape(np.asarray(draws))[2:]
    bad = _degenerate(x)
    x = np.where(bad, 0.0, x)
    if method == "bulk":
        x = _rank_normalize(_split(x))
    values = _ess_core(x)
    values[bad] = np.nan
    return _finish(values, trailing)


# ---------------------------------------------------------------------------
# R̂
# ---------------------------------------------------------------------------


def _rhat_core(x: np.ndarray) -> np.ndarray:
    """``R̂ = √(var⁺ / W)`` of each quantity of ``(M, N, K)`` chains (no splitting)."""
    n = x.shape[1]
    w = x.var(axis=1, ddof=1).mean(axis=0)
    b_over_n = x.mean(axis=1).var(axis=0, ddof=1)
    var_plus = (n - 1) / n * w + b_over_n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(var_plus / w)


def rhat(draws: Any, *, method: str = "rank") -> np.ndarray | float:
    """Potential scale reduction factor R̂ of split chains.

    For ``M'`` chains of ``N'`` draws (after splitting: ``M' = 2M``,
    ``N' = ⌊N/2⌋``; ``W``, ``B``, ``var⁺`` as in the module docstring)::

        R̂ = √(var⁺ / W),   var⁺ = (N'-1)/N' · W + B/N'.

    Methods:

    * ``"rank"`` (default): the rank-normalised split-R̂ of Vehtari et al.
      (2021): ``max(R̂_bulk, R̂_tail)`` where ``R̂_bulk`` is the split-R̂ of
      the rank-normalised draws ``z`` and ``R̂_tail`` that of the rank-normalised
      folded draws ``ζ = |x - median(x)|``. The folded R̂ catches chains that
      agree in location but differ in scale. The paper recommends ``R̂ < 1.01``.
    * ``"split"``: the classic split-R̂ of Gelman et al., *Bayesian Data
      Analysis* (3rd ed.), on the raw draws; sensitive to means only.

    ``R̂ -> 1`` as the chains converge to a common distribution; it is ``inf``
    when every chain is constant but they differ.

    Args:
      draws: ``(num_chains, num_draws, ...)`` with ``num_draws >= 4``; trailing
        axes are independent scalar quantities. One chain is allowed (split-R̂
        then compares its halves).
      method: ``"rank"`` or ``"split"``.

    Returns:
      R̂ per quantity: an array of the trailing shape, or a float. ``nan`` for a
      quantity that is constant over all draws or has a non-finite draw.

    Raises:
      ValueError: On a shape other than ``(num_chains, num_draws, ...)`` with
        ``num_draws >= 4``, or an unknown ``method``.
    """
    if method not in ("rank", "split"):
        raise ValueError(f"method must be 'rank' or 'split', got {method!r}")
    x = _as_draws(draws)
    trailing = np.shape(np.asarray(draws))[2:]
    bad = _degenerate(x)
    x = np.where(bad, 0.0, x)
    if method == "split":
        values = _rhat_core(_split(x))
    else:
        bulk = _rhat_core(_split(_rank_normalize(x)))
        tail = _rhat_core(_split(_rank_normalize(_fold(x))))
        values = np.maximum(bulk, tail)
    values[bad] = np.nan
    return _finish(values, trailing)


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------


def summarize(draws: Any) -> dict[str, float]:
    """ESS and R̂ of one scalar quantity, as plain floats (for ``summary.json``).

    Args:
      draws: ``(num_chains, num_draws)`` with ``num_draws >= 4``, e.g. the
        energies of ``num_chains`` chains over ``num_draws`` recorded steps.

    Returns:
      ``{"ess_bulk": ess(method="bulk"), "ess_classic": ess(method="classic"),
      "rhat": rhat(method="rank"), "rhat_split": rhat(method="split")}``;
      values are ``nan`` for a constant or non-finite quantity.

    Raises:
      ValueError: If ``draws`` is not 2-dimensional with ``num_draws >= 4``.
    """
    shape = np.shape(np.asarray(draws))
    if len(shape) != 2:
        raise ValueError(f"draws must have shape (num_chains, num_draws) for summarize, got shape {shape}")
    return {
        "ess_bulk": float(ess(draws, method="bulk")),
        "ess_classic": float(ess(draws, method="classic")),
        "rhat": float(rhat(draws, method="rank")),
        "rhat_split": float(rhat(draws, method="split")),
    }


# ---------------------------------------------------------------------------
# Langevin step
# ---------------------------------------------------------------------------


def _check_positive(value: Any, name: str) -> None:
    """Raises ValueError on a concrete non-positive number (tracers pass through)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def drift_noise_ratio(grad_norm, *, step_size, temperature, dim, friction=None):
    """Ratio of one Langevin step's drift to its noise.

    * SGLD, ``x ← x - η ∇ₓE + √(2ηT) ξ`` with ``ξ ~ N(0, I_d)``::

          ratio = η ‖∇ₓE‖ / √(2 η T d)

    * SGHMC with friction ``C`` (``friction`` given), whose momentum update
      ``v ← v - η ∇ₓE - η C v + √(2 η C T) ξ`` pits the force against the
      noise::

          ratio = η ‖∇ₓE‖ / √(2 η C T d)

    The denominator is the expected norm of the noise vector: ``d``
    independent coordinates of variance ``2ηT`` (``2ηCT``) have
    ``E‖noise‖² = 2ηT d``, and ``√(2ηT d)`` is its norm for large ``d``.
    A ratio ``≫ 1`` means the noise is negligible (the sampler is gradient
    descent on ``E``); ``≪ 1`` means the drift is negligible (a random walk);
    Langevin sampling of ``exp(-E/T)`` needs both.

    Written with plain arithmetic and ``** 0.5``, so it works on Python
    numbers, NumPy arrays and jax arrays alike, including inside ``jax.jit``.

    Args:
      grad_norm: ``‖∇ₓE‖`` per sample (any shape), NumPy or jax.
      step_size: ``η > 0``.
      temperature: ``T > 0``.
      dim: ``d``, the number of coordinates (e.g. 784 for MNIST).
      friction: ``C > 0`` for SGHMC; ``None`` for SGLD.

    Returns:
      The ratio, of ``grad_norm``'s shape and array type.

    Raises:
      ValueError: On a concrete non-positive ``step_size``, ``temperature``,
        ``dim`` or ``friction`` (traced values are not checked).
    """
    _check_positive(step_size, "step_size")
    _check_positive(temperature, "temperature")
    _check_positive(dim, "dim")
    if friction is not None:
        _check_positive(friction, "friction")
    if isinstance(grad_norm, (list, tuple)):
        grad_norm = np.asarray(grad_norm, dtype=np.float64)
    noise_variance = 2 * step_size * temperature * dim
    if friction is not None:
        noise_variance = noise_variance * friction
    return step_size * grad_norm / noise_variance**0.5


def sampler_drift_noise_ratio(sampler, example_shape):
    """:func:`drift_noise_ratio` for a config's ``sampler`` block on examples of ``example_shape``.

    Returns a function of ``‖∇ₓE‖`` alone: the SGHMC form (with ``sampler.friction``)
    for ``sampler.name == "sghmc"``, the SGLD form for every other sampler.
    """
    return functools.partial(drift_noise_ratio, step_size=sampler.step_size, temperature=sampler.temperature,
                             dim=math.prod(example_shape),
                             friction=sampler.friction if sampler.name == "sghmc" else None)


# The two failure regimes of a Langevin sampler, by the per-step ratio of its drift
# η‖∇ₓE‖ to its noise √(2ηT·d) (drift_noise_ratio); see drift_noise_summary.
RANDOM_WALK_BELOW = 0.01
DESCENT_ABOVE = 10.0


def drift_noise_summary(records, num_steps: int) -> dict:
    """The training run's drift/noise ratio and the regime it sat in, warning once if it is a failure regime.

    Below ``RANDOM_WALK_BELOW`` the gradient moves a chain less in its whole run of L
    steps than the noise does in a few steps (L·r < √L·1 needs r < 1/√L, and
    0.01 ≤ 1/√L for every L ≤ 10,000): the sampler is a random walk that ignores
    the energy. Above ``DESCENT_ABOVE`` the noise is a tenth of the drift: the
    sampler is gradient descent and draws the energy's minima, not its Gibbs law.
    "Most of training" means more than half of the logged steps.
    """
    ratios = np.asarray([r["drift_noise_ratio"] for r in records if "drift_noise_ratio" in r], float)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return {}
    low, high = float(np.mean(ratios < RANDOM_WALK_BELOW)), float(np.mean(ratios > DESCENT_ABOVE))
    regime = "random_walk" if low > 0.5 else "gradient_descent" if high > 0.5 else "balanced"
    if regime == "random_walk":
        logging.warning(
            "The sampler's drift/noise ratio η‖∇ₓE‖/√(2ηT·d) was below %g for %.0f%% of the logged steps "
            "(median %.3g): the chains are a random walk that ignores the energy. Raise sampler.step_size (η) "
            "or sampler.num_steps (L), or lower sampler.temperature (T).", RANDOM_WALK_BELOW, 100 * low,
            float(np.median(ratios)))
    elif regime == "gradient_descent":
        logging.warning(
            "The sampler's drift/noise ratio η‖∇ₓE‖/√(2ηT·d) was above %g for %.0f%% of the logged steps "
            "(median %.3g): the noise is negligible and the sampler is gradient descent. Lower sampler.step_size "
            "(η) or raise sampler.temperature (T).", DESCENT_ABOVE, 100 * high, float(np.median(ratios)))
    return {"mean": float(ratios.mean()), "median": float(np.median(ratios)), "min": float(ratios.min()),
            "max": float(ratios.max()), "fraction_below": low, "fraction_above": high,
            "random_walk_below": RANDOM_WALK_BELOW, "descent_above": DESCENT_ABOVE, "regime": regime,
            "num_steps": num_steps}
