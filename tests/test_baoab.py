"""Known-answer tests for SGHMC's BAOAB integrator and for SGHMC's ``bounds`` (jebm.samplers.sghmc).

BAOAB (Leimkuhler & Matthews, "Rational construction of stochastic numerical
methods for molecular sampling", 2013) discretises the same SDE as the two
Euler integrators, dx = M⁻¹r dt, dr = −∇E dt − CM⁻¹r dt + √(2CT) dW, with one
gradient per step. On a quadratic well E = k x²/2 its configurational law is
exact, N(0, T/k), at every stable step (η²k < 4m); the Euler integrators'
variance is biased. Measured here at k = 44, C = m = T = 1, 60,000 chains
(variance × k; 1.0 is exact, standard error 0.6%):

    integrator          η = 0.01   η = 0.25 (η²k = 2.75)
    baoab               0.999      0.999  (exact: 1)
    symplectic_euler    1.000      4.665  (Lyapunov: 4.667)
    explicit_euler      1.783      diverges (ηk = 11 > C = 1)

Moment tests reuse tests/test_samplers.py's target (a correlated 2D Gaussian,
20,000 chains, 1,500 steps at η = 0.01, 3% tolerance on the covariance).
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import samplers
from jebm.samplers import base

sghmc = importlib.import_module("jebm.samplers.sghmc")  # the module; samplers.sghmc is the constructor

from test_samplers import MU, N_CHAINS, SIGMA, assert_moments, gaussian_energy  # noqa: E402  (the same target)

INTEGRATORS = ("baoab", "explicit_euler", "symplectic_euler")


def run_final(algorithm, num_steps, seed=0, n=N_CHAINS, x0=None):
    position = jnp.zeros((n, 2)) if x0 is None else x0
    state = algorithm.init(position, jax.random.key(seed + 1000))
    run = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, num_steps))
    state, summary = run(jax.random.key(seed), state)
    return state, summary


def diagonal_energy(k):
    """E(x) = ½ Σ_i k_i x_i² per chain: separable, so ∇E is known coordinate by coordinate."""
    k = jnp.asarray(k, jnp.float32)
    return lambda x: 0.5 * jnp.sum(k * x**2, axis=1)


# ---------------------------------------------------------------- the update, exactly


def test_baoab_update_equation_exact():
    k = np.array([3.0, 0.4])
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, -0.7]])
    eta, fr, m, t = 0.1, 0.7, 2.0, 0.5
    algorithm = samplers.sghmc(diagonal_energy(k), eta, friction=fr, mass=m, integrator="baoab", temperature=t)
    state = algorithm.init(jnp.asarray(x, jnp.float32), jax.random.key(1))
    key = jax.random.key(4)
    new, info = algorithm.step(key, state)

    w = np.asarray(base.normal_like(key, state.momentum), np.float64)  # the kernel's draw
    r = np.asarray(state.momentum, np.float64)
    a = np.exp(-eta * fr / m)
    r = r - eta / 2 * k * x  # B
    x1 = x + eta / 2 / m * r  # A
    r = a * r + np.sqrt(t * m * (1 - a**2)) * w  # O
    x1 = x1 + eta / 2 / m * r  # A
    r = r - eta / 2 * k * x1  # B, with the gradient at the new position
    np.testing.assert_allclose(new.position, x1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.momentum, r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.energy_grad, k * x1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(info.energy, 0.5 * np.sum(k * x1**2, axis=1), rtol=1e-5)
    np.testing.assert_allclose(info.kinetic_energy, 0.5 * np.sum(r**2, axis=1) / m, rtol=1e-5)


def test_baoab_one_gradient_per_step():
    calls = []

    def energy(x):
        calls.append(1)  # counted at trace time: one energy (and gradient) per traced step
        return gaussian_energy(x)

    algorithm = samplers.sghmc(energy, 0.01, friction=1.0, integrator="baoab")
    state = algorithm.init(jnp.zeros((4, 2)), jax.random.key(0))
    calls.clear()
    jax.jit(algorithm.step).lower(jax.random.key(1), state)
    assert len(calls) == 1


def test_bad_integrator_and_bounds_raise():
    with pytest.raises(ValueError, match=r"is not one of \['baoab', 'explicit_euler', 'symplectic_euler'\]"):
        samplers.sghmc(gaussian_energy, 0.1, friction=1.0, integrator="leapfrog")
    with pytest.raises(ValueError, match="low < high"):
        samplers.sghmc(gaussian_energy, 0.1, friction=1.0, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"bounds must be None or \(low, high\)"):
        samplers.sghmc(gaussian_energy, 0.1, friction=1.0, integrator="baoab", bounds=1.0)


# ---------------------------------------------------------------- stationary moments


def test_baoab_stationary_moments_small_step():
    algorithm = samplers.sghmc(gaussian_energy, 0.01, friction=1.0, mass=1.0, integrator="baoab")
    state, summary = run_final(algorithm, 1500)
    assert_moments(np.asarray(state.position, np.float64), MU, SIGMA)
    # Kinetic energy d·T/2 = 1 (BAOAB's momentum variance T·m(1 − η²λ/4m) is 0.9999 here).
    assert abs(float(summary.final.kinetic_energy.mean()) - 1.0) < 0.05


@pytest.mark.parametrize("temperature,friction,mass", [(0.5, 2.0, 0.5), (2.0, 1.0, 1.0)])
def test_baoab_temperature_scales_covariance_and_kinetic_energy(temperature, friction, mass):
    algorithm = samplers.sghmc(
        gaussian_energy, 0.01, friction=friction, mass=mass, integrator="baoab", temperature=temperature
    )
    state, summary = run_final(algorithm, 1500)
    assert_moments(np.asarray(state.position, np.float64), MU, temperature * SIGMA, mean_tol=0.03 * temperature**0.5)
    # rᵀM⁻¹r/2 averages d·T/2 at stationarity (standard error 0.7% of it).
    assert abs(float(summary.final.kinetic_energy.mean()) / temperature - 1.0) < 0.03


def test_baoab_pytree_positions():
    def energy(p):
        return 0.5 * (jnp.sum(p["a"] ** 2, axis=1) + jnp.sum(p["b"] ** 2, axis=(1, 2)))

    position = {"a": jnp.zeros((2000, 2)), "b": jnp.zeros((2000, 3, 1))}
    algorithm = samplers.sghmc(energy, 0.1, friction=1.0, integrator="baoab")
    state = algorithm.init(position, jax.random.key(0))
    state, _ = jax.jit(lambda k: samplers.run_chain(k, algorithm, state, 100))(jax.random.key(1))
    for leaf in jax.tree_util.tree_leaves(state.position):
        np.testing.assert_allclose(np.var(np.asarray(leaf), axis=0), 1.0, atol=0.12)


# ---------------------------------------------------------------- the quadratic well: exact variance, stability

WELL_K = 44.0  # 1/0.15²: the curvature of one mode of the paper's toy mixture
WELL_CHAINS = 60_000  # standard error of a variance: √(2/N) = 0.6%


def well_variance(integrator, step, num_steps, k=WELL_K):
    algorithm = samplers.sghmc(lambda x: 0.5 * k * x[:, 0] ** 2, step, friction=1.0, mass=1.0, integrator=integrator)
    state, summary = run_final(algorithm, num_steps, n=WELL_CHAINS, x0=jnp.zeros((WELL_CHAINS, 1)))
    x = np.asarray(state.position[:, 0], np.float64)
    kinetic = float(np.mean(np.asarray(summary.final.kinetic_energy, np.float64)))
    return np.var(x) * k, kinetic  # variance × k: 1.0 is exact


def test_baoab_configurational_variance_exact_at_any_stable_step():
    small, large = 0.01, 0.25  # η²k = 0.0044 and 2.75 (< 4m = 4)
    measured = {}
    for integrator, step, steps in [
        ("baoab", small, 1000), ("symplectic_euler", small, 1000), ("explicit_euler", small, 1000),
        ("baoab", large, 300), ("symplectic_euler", large, 300), ("explicit_euler", large, 300),
    ]:
        measured[integrator, step] = well_variance(integrator, step, steps)
    print({key: round(v[0], 4) for key, v in measured.items()})

    # BAOAB: exact at both steps.
    assert abs(measured["baoab", small][0] - 1.0) < 0.02
    assert abs(measured["baoab", large][0] - 1.0) < 0.02
    # ... while its momentum is not: variance T·m(1 − η²k/4m) = 0.3125 at the large step.
    np.testing.assert_allclose(measured["baoab", large][1], 0.5 * (1 - large**2 * WELL_K / 4), rtol=0.03)
    # Symplectic Euler: fine at the small step (Lyapunov: 1.001), 4.7x the truth at the large one.
    assert abs(measured["symplectic_euler", small][0] - 1.0) < 0.03
    np.testing.assert_allclose(measured["symplectic_euler", large][0], 14 / 3, rtol=0.04)
    # Explicit Euler: 1.79x at the small step (Lyapunov: 1.788), diverges at the large one (ηk = 11 > C).
    assert 1.72 < measured["explicit_euler", small][0] < 1.86
    big = measured["explicit_euler", large][0]
    assert not np.isfinite(big) or big > 1e6


def baoab_limit(step, mass):
    return 4 * mass / step**2  # η² k < 4m, whatever the friction


@pytest.mark.parametrize(
    "step,friction,mass", [(0.01, 1.0, 1.0), (0.01, 1.0, 2.0), (0.01, 30.0, 1.0), (0.25, 1.0, 1.0)]
)
def test_baoab_stability_limit_measured(step, friction, mass):
    # As tests/test_samplers.py: one chain per curvature on a 1%-spaced grid, almost noise-free.
    limit = baoab_limit(step, mass)
    ks = limit * np.linspace(0.80, 1.20, 41)
    algorithm = samplers.sghmc(
        lambda x: 0.5 * jnp.asarray(ks, jnp.float32) * x[:, 0] ** 2, step, friction=friction, mass=mass,
        integrator="baoab", temperature=1e-10,
    )
    state = algorithm.init(jnp.ones((len(ks), 1)))
    state, _ = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, 4000))(jax.random.key(0), state)
    x = np.asarray(state.position[:, 0], np.float64)
    r = np.asarray(state.momentum[:, 0], np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        growth = (0.5 * ks * x**2 + 0.5 * r**2 / mass) / (0.5 * ks)
    stable = np.isfinite(growth) & (growth < 1.0)
    assert np.all(stable[ks < 0.98 * limit]), ks[~stable]
    assert not np.any(stable[ks > 1.02 * limit]), ks[stable]
    measured = ks[stable].max()
    print(f"step {step} friction {friction} mass {mass}: measured limit {measured:.1f}, predicted {limit:.1f}")
    assert 0.98 * limit <= measured <= 1.02 * limit


# ---------------------------------------------------------------- bounds


def run_with_box_check(algorithm, state, num_steps, bounds, seed=0):
    """Runs the chain, returning the final state and whether every chain was in the box after every step."""

    def body(carry, key):
        s, ok = carry
        s, _ = algorithm.step(key, s)
        return (s, ok & base.in_bounds(s.position, bounds)), None

    keys = jax.random.split(jax.random.key(seed), num_steps)
    ok0 = jnp.ones((base.num_chains(state.position),), bool)
    (state, ok), _ = jax.jit(lambda s, ks: jax.lax.scan(body, (s, ok0), ks))(state, keys)
    return state, np.asarray(ok)


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_bounds_keep_chains_in_box(integrator):
    bounds = (-1.0, 0.8)  # the target's mean −1 of x₂ sits on the lower face: half its mass presses on it
    algorithm = samplers.sghmc(gaussian_energy, 0.05, friction=1.0, integrator=integrator, bounds=bounds)
    state = algorithm.init(jnp.zeros((2000, 2)), jax.random.key(0))
    state, ok = run_with_box_check(algorithm, state, 400, bounds)
    assert ok.all()
    x, r = np.asarray(state.position), np.asarray(state.momentum)
    on_face = (x == bounds[0]) | (x == bounds[1])
    assert on_face[:, 1].mean() > 0.05  # the projection piles mass up on the faces
    if integrator != "explicit_euler":
        # A chain on a face was clipped there this step, so its momentum there is 0. (Explicit Euler
        # moves x with the old, zeroed momentum: it sits on the face one more step, unclipped.)
        assert np.all(r[on_face] == 0.0)


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_bounds_zero_momentum_where_clipped(integrator):
    bounds = (-1.0, 1.0)
    energy = diagonal_energy([2.0, 0.5, 1.0])  # separable: unclipped coordinates see the same gradient
    x0 = samplers.uniform(jax.random.key(0), (200, 3), low=-1.0, high=1.0)
    state = sghmc.init(x0, energy, jax.random.key(1), mass=1.0, temperature=25.0)  # fast chains: many clip
    key = jax.random.key(2)
    kwargs = dict(friction=1.0, integrator=integrator)
    free, _ = samplers.sghmc(energy, 0.1, **kwargs).step(key, state)
    boxed, info = samplers.sghmc(energy, 0.1, bounds=bounds, **kwargs).step(key, state)
    x_free, r_free = np.asarray(free.position), np.asarray(free.momentum)
    x_box, r_box = np.asarray(boxed.position), np.asarray(boxed.momentum)
    clipped = (x_free < bounds[0]) | (x_free > bounds[1])
    assert 0 < clipped.sum() < clipped.size
    np.testing.assert_array_equal(x_box, np.clip(x_free, *bounds))
    assert np.all(r_box[clipped] == 0.0)
    np.testing.assert_allclose(r_box[~clipped], r_free[~clipped], rtol=1e-6, atol=1e-6)
    # The energy and gradient are those at the clipped position.
    np.testing.assert_allclose(info.energy, energy(boxed.position), rtol=1e-6)
    np.testing.assert_allclose(boxed.energy_grad, np.array([2.0, 0.5, 1.0]) * x_box, rtol=1e-6)


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_bounds_none_is_the_default_bit_for_bit(integrator):
    finals = []
    for kwargs in ({}, {"bounds": None}):
        algorithm = samplers.sghmc(gaussian_energy, 0.05, friction=1.0, integrator=integrator, **kwargs)
        state = algorithm.init(jnp.zeros((64, 2)), jax.random.key(0))
        step = jax.jit(algorithm.step)
        for key in jax.random.split(jax.random.key(1), 20):
            state, _ = step(key, state)
        finals.append((np.asarray(state.position), np.asarray(state.momentum)))
    (x_default, r_default), (x_none, r_none) = finals
    np.testing.assert_array_equal(x_none, x_default)  # bounds=None traces exactly the unbounded step
    np.testing.assert_array_equal(r_none, r_default)
