"""Known-answer tests for the sampler kernels (jebm.samplers).

The target of the moment tests is a correlated, anisotropic 2D Gaussian
E(x) = ½ (x − μ)ᵀ P (x − μ), P = Σ⁻¹, whose stationary mean μ and covariance
T·Σ are known. Each test runs many independent chains and compares the
final positions' moments to the truth. With 20,000 chains the standard error
of a variance is about 1% of its value, so the tolerances below (3% of the
covariance in relative Frobenius norm, 0.03 on the mean) are 3-5 standard
errors plus the discretisation bias at η = 0.01 (the paper's step size), which
the Lyapunov equation of each linear update puts at 0.5% (SGLD), 1.1% (explicit
Euler SGHMC) and < 0.01% (symplectic Euler SGHMC) of the covariance here.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jebm import samplers
from jebm.samplers import base

MU = np.array([0.5, -1.0])
SIGMA = np.array([[1.0, 0.5], [0.5, 0.5]])  # correlation 0.71, variances 1.31 / 0.19 on its axes
PRECISION = np.linalg.inv(SIGMA)
N_CHAINS = 20_000


def gaussian_energy(x):
    d = x - jnp.asarray(MU, jnp.float32)
    return 0.5 * jnp.einsum("ni,ij,nj->n", d, jnp.asarray(PRECISION, jnp.float32), d)


def run_final(algorithm, num_steps, seed=0, n=N_CHAINS, x0=None):
    position = jnp.zeros((n, 2)) if x0 is None else x0
    state = algorithm.init(position, jax.random.key(seed + 1000))
    run = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, num_steps))
    state, summary = run(jax.random.key(seed), state)
    return np.asarray(state.position, np.float64), summary


def assert_moments(samples, mean, cov, mean_tol=0.03, cov_rel_tol=0.03):
    emp_mean = samples.mean(0)
    emp_cov = np.cov(samples.T)
    rel = np.linalg.norm(emp_cov - cov) / np.linalg.norm(cov)
    assert np.max(np.abs(emp_mean - mean)) < mean_tol, (emp_mean, mean)
    assert rel < cov_rel_tol, (emp_cov, cov, rel)


# ---------------------------------------------------------------- stationary moments


def test_sgld_stationary_moments_small_step():
    samples, summary = run_final(samplers.sgld(gaussian_energy, 0.01), 1500)
    assert_moments(samples, MU, SIGMA)
    # The gradient-norm diagnostic is E‖P(x−μ)‖ = sqrt(tr P) at stationarity, approximately.
    assert summary.mean.grad_norm.shape == (N_CHAINS,)


def test_sgld_temperature_scales_covariance():
    samples, _ = run_final(samplers.sgld(gaussian_energy, 0.01, temperature=2.0), 1500)
    assert_moments(samples, MU, 2.0 * SIGMA)


@pytest.mark.parametrize("integrator", ["symplectic_euler", "explicit_euler"])
def test_sghmc_stationary_moments_small_step(integrator):
    algorithm = samplers.sghmc(gaussian_energy, 0.01, friction=1.0, mass=1.0, integrator=integrator)
    samples, summary = run_final(algorithm, 1500)
    assert_moments(samples, MU, SIGMA)
    # Momentum equilibrates to N(0, T·M): mean kinetic energy d/2 = 1 per chain (standard
    # error 0.007; explicit Euler inflates the momentum's variance by about 3% at this η).
    assert abs(float(summary.final.kinetic_energy.mean()) - 1.0) < 0.05


def test_sghmc_mass_and_temperature():
    algorithm = samplers.sghmc(gaussian_energy, 0.01, friction=2.0, mass=0.5, temperature=0.5)
    samples, summary = run_final(algorithm, 1500)
    assert_moments(samples, MU, 0.5 * SIGMA, cov_rel_tol=0.04)
    # Kinetic energy rᵀM⁻¹r/2 averages d·T/2 = 0.5 at stationarity.
    assert abs(float(summary.final.kinetic_energy.mean()) - 0.5) < 0.02


def test_mala_exact_at_large_step_where_sgld_is_biased():
    step = 0.3  # η·λ_max(P) = 1.57: SGLD's variance along that axis is 4.7x the truth
    mala_samples, summary = run_final(samplers.mala(gaussian_energy, step), 400)
    assert_moments(mala_samples, MU, SIGMA)
    acceptance = float(summary.mean.acceptance_rate.mean())
    assert 0.2 < acceptance < 0.95

    sgld_samples, _ = run_final(samplers.sgld(gaussian_energy, step), 400)
    emp = np.cov(sgld_samples.T)
    assert np.linalg.norm(emp - SIGMA) / np.linalg.norm(SIGMA) > 0.5
    # ... and SGLD's bias is exactly the one its update predicts (Lyapunov equation).
    a = np.eye(2) - step * PRECISION
    predicted = scipy.linalg.solve_discrete_lyapunov(a, 2 * step * np.eye(2))
    np.testing.assert_allclose(emp, predicted, rtol=0.05, atol=0.02)


def test_mala_small_step_accepts_almost_everything():
    _, summary = run_final(samplers.mala(gaussian_energy, 0.005), 200, n=2000)
    assert float(summary.mean.acceptance_rate.mean()) > 0.98


# ---------------------------------------------------------------- SGHMC stability on a quadratic well


def well_energy(k):
    """Independent 1D wells E_i = k_i x_i² / 2, one curvature per chain."""
    return lambda x: 0.5 * k * x[:, 0] ** 2


def explicit_limit(step, friction):
    return friction / step  # η k < C


def symplectic_limit(step, friction, mass):
    return (4 * mass - 2 * step * friction) / step**2  # η² k < 4m − 2ηC


@pytest.mark.parametrize(
    "integrator,limit",
    [
        ("explicit_euler", explicit_limit(0.01, 1.0)),
        ("symplectic_euler", symplectic_limit(0.01, 1.0, 1.0)),
    ],
)
def test_sghmc_stability_limit_measured(integrator, limit):
    # One chain per curvature on a 1%-spaced grid around the predicted limit, almost noise-free,
    # so growth is the deterministic part's spectral radius.
    ks = limit * np.linspace(0.80, 1.20, 41)
    algorithm = samplers.sghmc(
        well_energy(jnp.asarray(ks, jnp.float32)), 0.01, friction=1.0, mass=1.0,
        integrator=integrator, temperature=1e-10,
    )
    position = jnp.ones((len(ks), 1))
    state = algorithm.init(position)
    state, _ = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, 20_000))(jax.random.key(0), state)
    # Energy in the (x, r) phase space, relative to its start k/2: decays for a stable chain,
    # grows for a diverging one (by e^{±4} at ±2% of the explicit limit after 20,000 steps).
    hamiltonian = 0.5 * ks * np.asarray(state.position[:, 0], np.float64) ** 2 + 0.5 * np.asarray(
        state.momentum[:, 0], np.float64) ** 2
    growth = hamiltonian / (0.5 * ks)
    stable = np.isfinite(growth) & (growth < 1.0)
    assert np.all(stable[ks < 0.98 * limit]), ks[~stable]
    assert not np.any(stable[ks > 1.02 * limit]), ks[stable]
    measured = ks[stable].max()
    assert 0.98 * limit <= measured <= 1.02 * limit


def test_explicit_euler_diverges_where_symplectic_is_stable():
    k = 150.0  # η k = 1.5 > C = 1 at the paper's η = 0.01, C = 1
    results = {}
    for integrator in ("explicit_euler", "symplectic_euler"):
        algorithm = samplers.sghmc(well_energy(k), 0.01, friction=1.0, integrator=integrator)
        x, _ = run_final(algorithm, 8000, n=1000, x0=jnp.ones((1000, 1)))
        results[integrator] = x[:, 0]
    assert not np.all(np.isfinite(results["explicit_euler"])) or np.abs(results["explicit_euler"]).max() > 1e6
    np.testing.assert_allclose(np.var(results["symplectic_euler"]), 1 / k, rtol=0.15)


def test_explicit_euler_inflates_spread_at_toy_curvature():
    k = 1 / 0.15**2  # curvature of one mode of the paper's toy mixture
    variances = {}
    for integrator in ("explicit_euler", "symplectic_euler"):
        algorithm = samplers.sghmc(well_energy(k), 0.01, friction=1.0, integrator=integrator)
        x, _ = run_final(algorithm, 2000, n=N_CHAINS, x0=jnp.zeros((N_CHAINS, 1)))
        variances[integrator] = np.var(x[:, 0]) * k  # 1.0 is exact
    assert 1.70 < variances["explicit_euler"] < 1.90  # Lyapunov prediction: 1.80
    assert 0.97 < variances["symplectic_euler"] < 1.03  # prediction: 1.001


# ---------------------------------------------------------------- exact update equations


def linear_energy(c):
    """E(x) = c · x per chain: ∇E = c everywhere, so one step is known in closed form."""
    return lambda x: x @ c


def test_sgld_update_equation_exact():
    c = jnp.array([0.3, -2.0])
    x = jnp.array([[1.0, 2.0], [-1.0, 0.5]])
    key = jax.random.key(3)
    state = samplers.sgld(linear_energy(c), 0.1, temperature=0.5).init(x)
    new, info = samplers.sgld(linear_energy(c), 0.1, temperature=0.5).step(key, state)
    w = base.normal_like(key, x)
    np.testing.assert_allclose(new.position, x - 0.1 * c + np.sqrt(2 * 0.1 * 0.5) * w, rtol=1e-6)
    np.testing.assert_allclose(info.energy, new.position @ c, rtol=1e-6)
    np.testing.assert_allclose(info.grad_norm, jnp.linalg.norm(c) * jnp.ones(2), rtol=1e-6)


@pytest.mark.parametrize("integrator", ["explicit_euler", "symplectic_euler"])
def test_sghmc_update_equation_exact(integrator):
    c = jnp.array([0.3, -2.0])
    x = jnp.array([[1.0, 2.0], [-1.0, 0.5]])
    eta, fr, m, t = 0.1, 0.7, 2.0, 0.5
    algorithm = samplers.sghmc(linear_energy(c), eta, friction=fr, mass=m, integrator=integrator, temperature=t)
    state = algorithm.init(x, jax.random.key(1))
    r = state.momentum
    key = jax.random.key(4)
    new, _ = algorithm.step(key, state)
    w = base.normal_like(key, x)
    r_new = r - eta * c - eta * fr / m * r + np.sqrt(2 * eta * fr * t) * w
    x_new = x + eta / m * (r_new if integrator == "symplectic_euler" else r)
    np.testing.assert_allclose(new.momentum, r_new, rtol=1e-5)
    np.testing.assert_allclose(new.position, x_new, rtol=1e-5)


def test_sghmc_momentum_init():
    x = jnp.zeros((50_000, 2))
    algorithm = samplers.sghmc(gaussian_energy, 0.01, friction=1.0, mass=2.0, temperature=1.5)
    assert float(jnp.abs(algorithm.init(x).momentum).max()) == 0.0  # no key: r = 0
    r = np.asarray(algorithm.init(x, jax.random.key(0)).momentum)
    np.testing.assert_allclose(r.var(0), [3.0, 3.0], rtol=0.03)  # N(0, T·m·I)


def test_mala_accept_reject_consistent():
    state = samplers.mala(gaussian_energy, 0.5).init(jnp.zeros((500, 2)))
    new, info = samplers.mala(gaussian_energy, 0.5).step(jax.random.key(0), state)
    moved = np.any(np.asarray(new.position) != 0.0, axis=1)
    np.testing.assert_array_equal(moved, np.asarray(info.is_accepted) == 1.0)
    np.testing.assert_allclose(info.energy, gaussian_energy(new.position), rtol=1e-5)
    assert 0.0 < float(info.is_accepted.mean()) < 1.0


def test_langevin_algorithm_binds_a_kernel_with_bounds_and_a_name():
    """sgld.langevin_algorithm (SGLD's and MALA's constructor): init clips into the bounds and ignores its key;
    step is the kernel at η and T (one SGLD step, computed by hand); bad η names the field; a bad override names
    the sampler."""
    c, eta, t = jnp.array([0.3, -2.0]), 0.1, 0.5
    algorithm = samplers.sgld.langevin_algorithm(lambda: samplers.sgld.build_kernel(), linear_energy(c), eta, t,
                                                 (-1.0, 1.0), "mine")
    state = algorithm.init(jnp.array([[3.0, 0.5], [-2.0, -0.25]]), jax.random.key(9))
    x = np.array([[1.0, 0.5], [-1.0, -0.25]])
    np.testing.assert_array_equal(state.position, x)
    np.testing.assert_allclose(state.energy, x @ np.asarray(c), rtol=1e-6)
    key = jax.random.key(2)
    new, _ = algorithm.step(key, state, temperature=2 * t)
    w = np.asarray(base.normal_like(key, state.position))
    np.testing.assert_allclose(new.position, x - eta * np.asarray(c) + np.sqrt(2 * eta * 2 * t) * w, rtol=1e-6)
    assert algorithm.step.parameters == ("step_size", "temperature")
    with pytest.raises(ValueError, match=r"\['mass'\] not parameters of jebm.samplers.mine"):
        algorithm.step(key, state, mass=1.0)
    with pytest.raises(ValueError, match="step_size must be > 0, got 0"):
        samplers.sgld.langevin_algorithm(samplers.sgld.build_kernel, linear_energy(c), 0, t, None, "mine")


# ---------------------------------------------------------------- the shared Langevin proposal and MH step


def test_langevin_proposal_and_its_density_against_the_gaussian():
    """x* = x − η∇E + √(2ηT)·w leaf by leaf; log q(a | b) is log N(a; b − η∇E(b), 2ηT·I) (by hand)
    plus its normaliser ½d·log(4πηT); at the drawn point it equals −½‖w‖² (noise_log_density)."""
    from jebm.samplers import proposal

    eta, t = 0.1, 0.5
    rng = np.random.default_rng(0)
    x, g, w, a = ({"u": rng.standard_normal((3, 2)), "v": rng.standard_normal((3, 1, 2))} for _ in range(4))
    drawn = proposal.langevin_proposal(x, g, w, eta, t)
    for k in x:
        np.testing.assert_allclose(drawn[k], x[k] - eta * g[k] + np.sqrt(2 * eta * t) * w[k], rtol=1e-6)

    def log_q(to, frm, grad):  # the full Gaussian log density per chain, d = 4 coordinates of variance s² = 2ηT
        s2 = 2 * eta * t
        return sum((-(to[k] - frm[k] + eta * grad[k]) ** 2 / (2 * s2) - 0.5 * np.log(2 * np.pi * s2))
                   .reshape(3, -1).sum(1) for k in to)

    normaliser = 0.5 * 4 * np.log(4 * np.pi * eta * t)
    np.testing.assert_allclose(proposal.langevin_log_density(a, x, g, eta, t), log_q(a, x, g) + normaliser,
                               rtol=1e-6)
    np.testing.assert_allclose(proposal.langevin_log_density(drawn, x, g, eta, t), log_q(drawn, x, g) + normaliser,
                               rtol=1e-6)
    np.testing.assert_allclose(proposal.noise_log_density(w), log_q(drawn, x, g) + normaliser, rtol=1e-6)
    # Over standard normal w: mean x − η∇E = 1 − 0.2 and variance 2ηT = 0.1.
    draws = proposal.langevin_proposal(np.ones(40_000), np.full(40_000, 2.0), rng.standard_normal(40_000), eta, t)
    assert draws.mean() == pytest.approx(0.8, abs=0.005) and draws.var() == pytest.approx(0.1, rel=0.03)


def test_mh_accept_decides_by_log_u_below_log_r():
    """With the uniforms u the key draws known, the decision is log u < log r exactly (so P(accept) = min(1, r));
    α = min(1, r); NaN and invalid proposals are rejected; the chosen chains are proposed where accepted, else
    current (every leaf)."""
    from jebm.samplers import proposal

    key = jax.random.key(5)
    u = np.asarray(jax.random.uniform(key, (7,), jnp.float32))
    log_u = np.log(u)
    log_ratio = jnp.asarray([log_u[0] + 1e-3, log_u[1] - 1e-3, 0.5, np.nan, 10.0, -np.inf, np.log(0.3)], jnp.float32)
    valid = jnp.array([True, True, True, True, False, True, True])
    proposed = {"a": jnp.arange(7.0) + 100, "b": jnp.ones((7, 2))}
    current = {"a": jnp.arange(7.0), "b": jnp.zeros((7, 2))}
    mh_accept = jax.jit(proposal.mh_accept)  # under jit, as the kernels run it
    chosen, acceptance, accepted = mh_accept(key, log_ratio, proposed, current, valid)
    expected = [True, False, True, False, False, False, u[6] < 0.3]
    np.testing.assert_array_equal(accepted, expected)
    np.testing.assert_allclose(acceptance, [u[0] * np.exp(1e-3), u[1] * np.exp(-1e-3), 1.0, 0.0, 0.0, 0.0, 0.3],
                               rtol=1e-5)
    np.testing.assert_array_equal(chosen["a"], np.where(expected, np.arange(7.0) + 100, np.arange(7.0)))
    np.testing.assert_array_equal(chosen["b"], np.repeat(np.asarray(expected, np.float32)[:, None], 2, 1))
    assert bool(mh_accept(key, log_ratio, proposed, current)[2][4])  # without valid, log r = 10 passes


# ---------------------------------------------------------------- contract: keys, pytrees, transforms


ALGORITHMS = {
    "sgld": lambda e: samplers.sgld(e, 0.01),
    "sghmc": lambda e: samplers.sghmc(e, 0.01, friction=1.0),
    "sghmc_explicit": lambda e: samplers.sghmc(e, 0.01, friction=1.0, integrator="explicit_euler"),
    "mala": lambda e: samplers.mala(e, 0.1),
}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_same_key_same_output_different_key_different(name):
    algorithm = ALGORITHMS[name](gaussian_energy)
    state = algorithm.init(jnp.zeros((8, 2)), jax.random.key(0))
    run = jax.jit(lambda k: samplers.run_chain(k, algorithm, state, 10)[0].position)
    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.any(np.asarray(a) == np.asarray(c))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_pytree_positions(name):
    def energy(p):  # independent standard normals on every element of both leaves
        return 0.5 * (jnp.sum(p["a"] ** 2, axis=1) + jnp.sum(p["b"] ** 2, axis=(1, 2)))

    position = {"a": jnp.zeros((4000, 2)), "b": jnp.zeros((4000, 3, 1))}
    algorithm = ALGORITHMS[name](energy)
    state = algorithm.init(position, jax.random.key(0))
    state, summary = jax.jit(lambda k: samplers.run_chain(k, algorithm, state, 800))(jax.random.key(1))
    assert state.position["a"].shape == (4000, 2) and state.position["b"].shape == (4000, 3, 1)
    for leaf in jax.tree_util.tree_leaves(state.position):
        np.testing.assert_allclose(np.var(np.asarray(leaf), axis=0), 1.0, atol=0.12)
    # ‖∇E‖ is computed over all leaves: ∇E = x, so its mean square is the 5 dimensions' variance.
    assert abs(float(jnp.mean(summary.final.grad_norm**2)) - 5.0) < 0.4


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_run_chain_trace_and_summary_agree(name):
    algorithm = ALGORITHMS[name](gaussian_energy)
    state = algorithm.init(jnp.zeros((16, 2)), jax.random.key(0))
    key = jax.random.key(7)
    run = jax.jit(samplers.run_chain, static_argnums=(1, 3), static_argnames=("trace", "unroll"))
    s_trace, trace = run(key, algorithm, state, 25, trace=True)
    s_sum, summary = run(key, algorithm, state, 25)
    # Same keys, same trajectory; the two scans compile differently, hence float32 round-off.
    np.testing.assert_allclose(s_trace.position, s_sum.position, rtol=1e-6, atol=1e-6)
    assert trace.energy.shape == (25, 16)
    for field in trace._fields:
        np.testing.assert_allclose(getattr(summary.mean, field), getattr(trace, field).mean(0), rtol=1e-5)
        np.testing.assert_allclose(getattr(summary.final, field), getattr(trace, field)[-1], rtol=1e-5, atol=1e-6)
    # unroll is a speed knob only
    s_unrolled, _ = run(key, algorithm, state, 25, unroll=5)
    np.testing.assert_allclose(s_unrolled.position, s_sum.position, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_jit_traces_once_per_shape(name):
    algorithm = ALGORITHMS[name](gaussian_energy)

    @jax.jit
    @chex.assert_max_traces(n=2)
    def run(key, position):
        state = algorithm.init(position, key)
        return samplers.run_chain(key, algorithm, state, 5)[0].position

    chex.clear_trace_counter()
    run(jax.random.key(0), jnp.zeros((4, 2)))
    run(jax.random.key(1), jnp.ones((4, 2)))  # same shape: no retrace
    run(jax.random.key(2), jnp.zeros((6, 2)))  # new shape: the second and last trace
    with pytest.raises(AssertionError):
        run(jax.random.key(3), jnp.zeros((7, 2)))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_vmap_over_independent_ensembles(name):
    algorithm = ALGORITHMS[name](gaussian_energy)
    keys = jax.random.split(jax.random.key(0), 3)
    positions = jnp.zeros((3, 5, 2))

    def one(key, position):
        state = algorithm.init(position, key)
        return samplers.run_chain(key, algorithm, state, 10)[0].position

    batched = jax.jit(jax.vmap(one))(keys, positions)
    for i in range(3):
        np.testing.assert_allclose(batched[i], one(keys[i], positions[i]), rtol=1e-5, atol=1e-6)


def test_energy_shape_is_checked():
    algorithm = samplers.sgld(lambda x: jnp.sum(x), 0.1)  # a scalar, not one energy per chain
    with pytest.raises(ValueError, match=r"shape \(n_chains,\)"):
        algorithm.init(jnp.zeros((3, 2)))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: samplers.sgld(gaussian_energy, 0.0), "step_size must be > 0"),
        (lambda: samplers.sgld(gaussian_energy, 0.1, temperature=-1.0), "temperature must be > 0"),
        (lambda: samplers.sghmc(gaussian_energy, 0.1, friction=0.0), "friction must be > 0"),
        (lambda: samplers.sghmc(gaussian_energy, 0.1, friction=1.0, mass=0.0), "mass must be > 0"),
        (lambda: samplers.sghmc(gaussian_energy, 0.1, friction=1.0, integrator="leapfrog"),
         r"integrator='leapfrog' is not one of \['baoab', 'explicit_euler', 'symplectic_euler'\]"),
        (lambda: samplers.mala(gaussian_energy, -0.1), "step_size must be > 0"),
    ],
)
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_run_chain_rejects_bad_num_steps():
    algorithm = samplers.sgld(gaussian_energy, 0.1)
    with pytest.raises(ValueError, match="num_steps must be an int >= 1"):
        samplers.run_chain(jax.random.key(0), algorithm, algorithm.init(jnp.zeros((2, 2))), 0)


def test_run_chain_memory_flat_in_num_steps():
    # trace=False carries only the state and a running sum: its output does not grow with L.
    algorithm = samplers.sgld(gaussian_energy, 0.01)
    state = algorithm.init(jnp.zeros((4, 2)))
    for steps in (10, 1000):
        out = jax.eval_shape(lambda k: samplers.run_chain(k, algorithm, state, steps), jax.random.key(0))
        assert all(leaf.shape[0] == 4 for leaf in jax.tree_util.tree_leaves(out))


# ---------------------------------------------------------------- chain initialisation and the PCD bank


def test_noise_inits():
    x = samplers.gaussian(jax.random.key(0), (20_000, 2), mean=1.0, std=0.5)
    np.testing.assert_allclose(np.mean(x, 0), 1.0, atol=0.02)
    np.testing.assert_allclose(np.std(x, 0), 0.5, rtol=0.03)
    u = samplers.uniform(jax.random.key(1), (20_000, 2), low=-2.0, high=2.0)
    assert float(u.min()) >= -2.0 and float(u.max()) < 2.0
    np.testing.assert_allclose(np.var(u, 0), 16 / 12, rtol=0.04)
    with pytest.raises(ValueError, match="low < high"):
        samplers.uniform(jax.random.key(1), (2, 2), low=1.0, high=0.0)


def noise(key, n):
    return samplers.uniform(key, (n, 2), low=-1.0, high=1.0)


def test_bank_draw_and_write_back():
    bank = samplers.bank_init(jax.random.key(0), lambda k, n: jnp.arange(n * 2.0).reshape(n, 2), 100)
    batch, idx, reinit = samplers.bank_draw(jax.random.key(1), bank, 30, noise, reinit_fraction=0.0)
    assert len(set(np.asarray(idx).tolist())) == 30  # distinct chains
    assert not bool(reinit.any())
    np.testing.assert_array_equal(batch, bank.position[idx])
    bank2 = samplers.bank_write(bank, idx, batch + 1000.0)
    np.testing.assert_array_equal(bank2.position[idx], batch + 1000.0)
    untouched = np.setdiff1d(np.arange(100), np.asarray(idx))
    np.testing.assert_array_equal(bank2.position[untouched], bank.position[untouched])


@pytest.mark.parametrize("fraction", [0.0, 0.05, 1.0])
def test_bank_reinit_fraction(fraction):
    bank = samplers.bank_init(jax.random.key(0), lambda k, n: jnp.full((n, 2), 5.0), 1000)
    draw = jax.jit(lambda k: samplers.bank_draw(k, bank, 500, noise, reinit_fraction=fraction))
    keys = jax.random.split(jax.random.key(2), 40)
    masks, batches = zip(*[(d[2], d[0]) for d in map(draw, keys)])
    masks, batches = np.stack(masks), np.stack(batches)
    # Re-initialised chains hold fresh noise in [-1, 1]; the others keep the bank's 5.0.
    np.testing.assert_array_equal(np.all(np.abs(batches) <= 1.0, axis=-1), masks)
    # 20,000 Bernoulli draws: the standard error at 5% is 0.15%.
    assert abs(masks.mean() - fraction) < 0.006


def test_bank_too_small():
    bank = samplers.bank_init(jax.random.key(0), noise, 10)
    with pytest.raises(ValueError, match="bank of 10"):
        samplers.bank_draw(jax.random.key(1), bank, 11, noise)


# ---------------------------------------------------------------- chunked energy-and-gradient


def _nonlinear_pytree_energy(p):
    """Per-chain energy reading only its own chain, nonlinear so gradients are position-dependent."""
    return jnp.sum(jnp.sin(p["a"]) * p["a"] ** 2, axis=1) + jnp.sum(jnp.cosh(p["b"]), axis=(1, 2))


@pytest.mark.parametrize("n, chunk", [(10, 4), (12, 4), (3, 4), (10, 1)])
def test_chunked_energy_and_grad_equals_whole_batch(n, chunk):
    """Groups of chunk chains (last group padded, then dropped) give the whole batch's values."""
    key_a, key_b = jax.random.split(jax.random.key(5))
    position = {"a": jax.random.normal(key_a, (n, 3)), "b": jax.random.normal(key_b, (n, 2, 2))}
    want_e, want_g = base.energy_and_grad(_nonlinear_pytree_energy, position)
    chunked = base.chunked(_nonlinear_pytree_energy, chunk)
    got_e, got_g = jax.jit(lambda p: base.energy_and_grad(chunked, p))(position)
    np.testing.assert_allclose(got_e, want_e, rtol=1e-6)
    for leaf_got, leaf_want in zip(jax.tree_util.tree_leaves(got_g), jax.tree_util.tree_leaves(want_g)):
        assert leaf_got.shape == leaf_want.shape
        np.testing.assert_allclose(leaf_got, leaf_want, rtol=1e-6, atol=1e-7)
    # Called directly it is the same energy, with ordinary autodiff.
    np.testing.assert_allclose(chunked(position), want_e, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_chunked_sampler_runs_the_same_chain(name):
    """A sampler on a chunked energy follows the unchunked chain step for step (same keys)."""
    x0 = jnp.zeros((9, 2))
    final = []
    for energy in (gaussian_energy, base.chunked(gaussian_energy, 4)):
        algorithm = ALGORITHMS[name](energy)
        state = algorithm.init(x0, jax.random.key(0))
        state, _ = jax.jit(lambda k, s, a=algorithm: samplers.run_chain(k, a, s, 20))(jax.random.key(1), state)
        final.append(np.asarray(state.position))
    np.testing.assert_allclose(final[1], final[0], rtol=1e-5, atol=1e-6)


def test_sampler_config_chunk_size_reaches_the_energy():
    from ml_collections import config_dict

    from jebm.samplers import factory

    seen = []

    def energy(x):
        seen.append(x.shape[0])  # trace-time shapes: the chunk, not the batch
        return gaussian_energy(x)

    cfg = config_dict.ConfigDict({"name": "sgld", "step_size": 0.01, "temperature": 1.0, "chunk_size": 4})
    factory.make_sampler(cfg, energy).init(jnp.zeros((10, 2)))
    assert seen == [4]
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        base.chunked(gaussian_energy, 0)
