"""log Z estimators against closed forms: grid quadrature, AIS, reverse AIS (jebm.evaluation.likelihood).

Closed forms used:
  * Gaussian ``E = ½ xᵀAx``: ``log Z = (d/2) log(2πT) - ½ log det A``.
  * Mixture ``E = -log Σ_j π_j N(x; μ_j, σ²I) + c``: ``Z = e^{-c}`` at T = 1.
  * ``E = ½|x|²`` restricted to ``[-1, 1]^d``: ``Z = (√(2π) erf(1/√2))^d``.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from jebm.evaluation import likelihood as lik
from jebm.evaluation import plots

# Compiles dominate (one per AIS run); the checks are of the mathematics.
pytestmark = pytest.mark.usefixtures("fast_compiles")


def gaussian(d, seed=0):
    """``E = ½ xᵀAx`` with a seeded SPD ``A`` (eigenvalues in [0.5, 4]) and its exact log Z at T = 1."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = (q * rng.uniform(0.5, 4.0, size=d)) @ q.T
    a = 0.5 * (a + a.T)
    a32 = jnp.asarray(a, jnp.float32)

    def energy(x):
        flat = jnp.reshape(x, (x.shape[0], -1))
        return 0.5 * jnp.einsum("ni,ij,nj->n", flat, a32, flat)

    return energy, a


def gaussian_log_z(a, temperature=1.0):
    d = a.shape[0]
    return 0.5 * d * math.log(2.0 * math.pi * temperature) - 0.5 * np.linalg.slogdet(a)[1]


MEANS = np.array([[2.5, 2.5], [-2.5, 2.5], [-2.5, -2.5], [2.5, -2.5]])
WEIGHTS = np.array([0.1, 0.2, 0.3, 0.4])
SIGMA = 0.5
OFFSET = 1.3  # c: log Z = -c


def mixture_energy(x):
    sq = jnp.sum((x[:, None, :] - jnp.asarray(MEANS, jnp.float32)) ** 2, axis=-1)
    log_n = -sq / (2 * SIGMA**2) - math.log(2 * math.pi * SIGMA**2)
    return -jax.scipy.special.logsumexp(log_n + jnp.log(jnp.asarray(WEIGHTS, jnp.float32)), axis=1) + OFFSET


def within(result, exact, tol):
    """|error| below 4 delta-method standard errors plus ``tol``."""
    err = result.log_z - exact
    assert abs(err) < 4 * result.log_z_std + tol, (err, result.log_z_std, result.ess)


# ---------------------------------------------------------------------------
# Schedule and grid
# ---------------------------------------------------------------------------


def test_sigmoid_schedule():
    betas = lik.sigmoid_schedule(10)
    assert betas.shape == (11,) and betas[0] == 0.0 and betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)
    steps = np.diff(betas)
    assert steps[0] < steps[5] and steps[-1] < steps[5]  # densest at the ends
    np.testing.assert_allclose(betas, 1.0 - betas[::-1], atol=1e-12)  # symmetric


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_grid_gaussian(temperature):
    energy, a = gaussian(2)
    log_z = lik.log_partition_grid(energy, lim=12.0, size=200, temperature=temperature)
    assert abs(log_z - gaussian_log_z(a, temperature)) < 1e-3


def test_grid_mixture_and_density():
    log_z = lik.log_partition_grid(mixture_energy, lim=6.0, size=200)
    assert abs(log_z + OFFSET) < 1e-3
    xs, ys, log_p = lik.grid_log_density(mixture_energy, lim=6.0, size=100)
    h = xs[1] - xs[0]
    assert log_p.shape == (100, 100) and abs(np.exp(log_p).sum() * h * h - 1.0) < 1e-9


def test_grid_errors_name_the_fix():
    energy, _ = gaussian(2)
    with pytest.raises(ValueError, match="too coarse.*larger `size`"):
        lik.log_partition_grid(energy, lim=12.0, size=6)
    with pytest.raises(ValueError, match="edge.*larger `lim`"):
        lik.log_partition_grid(energy, lim=1.5, size=100)


def test_nll():
    assert lik.nll([1.0, 3.0], log_z=0.5, temperature=2.0) == pytest.approx(1.5)


def test_grid_samples_match_the_density():
    energy, a = gaussian(2)
    x = np.asarray(lik.grid_samples(jax.random.key(0), energy, lim=10.0, size=200, num_samples=20000))
    assert x.shape == (20000, 2)
    np.testing.assert_allclose(np.cov(x.T), np.linalg.inv(a), atol=0.05)
    assert np.abs(x.mean(0)).max() < 0.03


# ---------------------------------------------------------------------------
# AIS on Gaussians
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d, num_temps, tol", [(2, 100, 0.02), (10, 300, 0.05), (100, 1000, 0.1)])
def test_ais_gaussian(d, num_temps, tol):
    energy, a = gaussian(d)
    result = lik.ais(jax.random.key(d), energy, (d,), num_chains=128, num_temps=num_temps)
    within(result, gaussian_log_z(a), tol)
    assert abs(result.log_z - gaussian_log_z(a)) < tol + 0.1
    assert result.log_weights.shape == (128,) and result.acceptance.shape == (num_temps,)
    assert result.ess > 32
    # the adaptation brings the acceptance to its target after a few temperatures
    assert abs(result.acceptance[num_temps // 2:].mean() - 0.6) < 0.05
    assert result.mean_log_weight <= result.log_z


def test_ais_temperature():
    energy, a = gaussian(10, seed=1)
    result = lik.ais(jax.random.key(1), energy, (10,), num_chains=128, num_temps=200,
                     options=lik.AISOptions(temperature=2.0, base_scale=2.0))
    within(result, gaussian_log_z(a, 2.0), 0.05)


def test_ais_hmc_kernel():
    energy, a = gaussian(10)
    result = lik.ais(jax.random.key(2), energy, (10,), num_chains=128, num_temps=100,
                     options=lik.AISOptions(kernel="hmc", num_leapfrog=3, transitions=2))
    within(result, gaussian_log_z(a), 0.05)
    assert 0.3 < result.acceptance[-20:].mean() < 0.9


def test_ais_image_shaped_and_chunked():
    energy, a = gaussian(16, seed=3)
    result = lik.ais(jax.random.key(3), energy, (4, 4, 1), num_chains=48, num_temps=100,
                     options=lik.AISOptions(chunk_size=16, step_size=0.1))
    assert result.samples.shape == (48, 4, 4, 1)
    np.testing.assert_allclose(result.step_sizes, 0.1)
    within(result, gaussian_log_z(a), 0.1)


def test_reverse_ais_upper_bounds_gaussian():
    d = 10
    energy, a = gaussian(d)
    exact = gaussian_log_z(a)
    forward = lik.ais(jax.random.key(4), energy, (d,), num_chains=128, num_temps=30)
    chol = np.linalg.cholesky(np.linalg.inv(a))
    samples = np.random.default_rng(0).normal(size=(128, d)) @ chol.T
    reverse = lik.reverse_ais(jax.random.key(5), energy, samples, num_temps=30,
                              options=lik.AISOptions(step_sizes=forward.step_sizes))
    bounds = lik.sandwich(forward, reverse)
    assert reverse.direction == "reverse" and reverse.kernel_betas[-1] == 0.0
    # stochastic bounds: lower <= exact <= upper up to noise
    assert bounds["lower"] < exact + 3 * forward.log_z_std
    assert bounds["upper"] > exact - 3 * reverse.log_z_std
    assert reverse.mean_log_weight >= reverse.log_z
    assert 0 < bounds["gap"] < 0.5  # 30 temperatures: a loose but informative sandwich


# ---------------------------------------------------------------------------
# Mixture, box-restricted targets
# ---------------------------------------------------------------------------


def test_mixture_ais_grid_and_reverse_agree():
    exact = -OFFSET
    forward = lik.ais(jax.random.key(6), mixture_energy, (2,), num_chains=256, num_temps=200,
                      options=lik.AISOptions(base_scale=3.0))
    within(forward, exact, 0.03)
    samples = lik.grid_samples(jax.random.key(7), mixture_energy, lim=6.0, size=300, num_samples=256)
    reverse = lik.reverse_ais(jax.random.key(8), mixture_energy, samples, num_temps=200,
                              options=lik.AISOptions(base_scale=3.0, step_sizes=forward.step_sizes))
    within(reverse, exact, 0.03)
    bounds = lik.sandwich(forward, reverse)
    assert abs(bounds["gap"]) < 0.1


def test_uniform_base_box_restricted_gaussian():
    d = 4
    exact = d * math.log(math.sqrt(2 * math.pi) * scipy.special.erf(1 / math.sqrt(2)))
    energy = lambda x: 0.5 * jnp.sum(x**2, axis=-1)  # noqa: E731
    result = lik.ais(jax.random.key(9), energy, (d,), num_chains=128, num_temps=100, options=lik.AISOptions(base="uniform"))
    within(result, exact, 0.02)
    assert np.all(np.abs(np.asarray(result.samples)) <= 1.0)
    # the box is hit: without it log Z would be (d/2) log 2π, 0.40 nats higher than the box's
    assert 0.5 * d * math.log(2 * math.pi) - exact > 0.3


def test_uniform_base_flat_energy_is_exact():
    energy = lambda x: jnp.zeros(x.shape[0])  # noqa: E731
    result = lik.ais(jax.random.key(10), energy, (3,), num_chains=16, num_temps=10,
                     options=lik.AISOptions(base="uniform", base_scale=1.0))
    assert result.log_z == pytest.approx(3 * math.log(2.0), abs=1e-5)
    assert result.log_z_std < 1e-5


def test_bad_arguments():
    energy, _ = gaussian(2)
    with pytest.raises(ValueError, match="options must be an AISOptions, got dict"):
        lik.ais(jax.random.key(0), energy, (2,), num_chains=4, num_temps=2, options={"kernel": "hmc"})
    with pytest.raises(ValueError, match="kernel"):
        lik.ais(jax.random.key(0), energy, (2,), num_chains=4, num_temps=2, options=lik.AISOptions(kernel="nuts"))
    with pytest.raises(ValueError, match="not both"):
        lik.ais(jax.random.key(0), energy, (2,), num_chains=4, num_temps=2,
                options=lik.AISOptions(step_size=0.1, step_sizes=[0.1, 0.1]))
    with pytest.raises(ValueError, match="box"):
        lik.reverse_ais(jax.random.key(0), energy, np.full((4, 2), 3.0), num_temps=2,
                        options=lik.AISOptions(base="uniform"))


def test_convergence_rows_and_plot(tmp_path):
    energy, a = gaussian(2)
    rows = lik.ais_convergence(jax.random.key(11), energy, (2,), temps=(5, 20), num_chains=32)
    assert [r["num_temps"] for r in rows] == [5, 20]
    assert set(rows[0]) == {"num_temps", "log_z", "log_z_std", "ess"}
    path = plots.plot_ais_convergence(tmp_path / "ais.png", rows, exact=gaussian_log_z(a),
                                      upper=gaussian_log_z(a) + 0.01, title="d=2 Gaussian")
    assert path.endswith("ais.png") and (tmp_path / "ais.png").stat().st_size > 0


# ---------------------------------------------------------------------------
# The box_kde base: chains on u = atanh(x/b), a kernel density of data as base
# ---------------------------------------------------------------------------


def box_gaussian(mean, s, box=1.0):
    """``E = |x - m|²/(2s²)`` on ``[-b, b]^d``: ``log Z = Σ_j log(√(2π) s [Φ((b-m_j)/s) - Φ((-b-m_j)/s)])``."""
    m = np.asarray(mean, np.float64)
    mass = scipy.special.ndtr((box - m) / s) - scipy.special.ndtr((-box - m) / s)
    exact = float(np.sum(np.log(math.sqrt(2 * math.pi) * s * mass)))
    m32 = jnp.asarray(m, jnp.float32)
    energy = lambda x: 0.5 * jnp.sum((jnp.reshape(x, (x.shape[0], -1)) - m32) ** 2, axis=1) / s**2  # noqa: E731
    return energy, exact


# An image-like well: half its coordinates on the box's faces (like MNIST's background pixels).
PEAK_MEAN = np.array([-1.0, -1.0, 1.0, -1.0, 0.3, -0.6, -1.0, 0.9, -1.0, 1.0, 0.0, -1.0, 0.5, -1.0, -0.2, 1.0])


def test_box_kde_base_box_restricted_gaussian():
    d = 4
    exact = d * math.log(math.sqrt(2 * math.pi) * scipy.special.erf(1 / math.sqrt(2)))
    energy = lambda x: 0.5 * jnp.sum(x**2, axis=-1)  # noqa: E731
    centres = np.random.default_rng(0).uniform(-1, 1, size=(64, d))
    result = lik.ais(jax.random.key(12), energy, (d,), num_chains=128, num_temps=100,
                     options=lik.AISOptions(base="box_kde", base_scale=1.0, centres=centres))
    within(result, exact, 0.03)
    assert np.all(np.abs(np.asarray(result.samples)) < 1.0)


def test_box_kde_finds_a_narrow_well_on_the_faces_that_the_uniform_base_misses():
    energy, exact = box_gaussian(PEAK_MEAN, 0.1)
    d = PEAK_MEAN.size
    rng = np.random.default_rng(1)
    # "training data": noisy copies of the well's centre, in the box
    centres = np.clip(PEAK_MEAN + 0.1 * rng.normal(size=(32, d)), -1.0, 1.0)
    kde = lik.ais(jax.random.key(13), energy, (d,), num_chains=128, num_temps=200,
                  options=lik.AISOptions(base="box_kde", base_scale=0.5, centres=centres, centre_margin=0.05))
    within(kde, exact, 0.1)
    assert kde.ess > 16
    uniform = lik.ais(jax.random.key(13), energy, (d,), num_chains=128, num_temps=200,
                      options=lik.AISOptions(base="uniform"))
    assert exact - uniform.log_z > 5 * abs(kde.log_z - exact) + 0.5  # the box's faces reject its moves


def test_box_kde_reverse_ais_bounds_from_above():
    energy, exact = box_gaussian(PEAK_MEAN, 0.1)
    d = PEAK_MEAN.size
    rng = np.random.default_rng(2)
    centres = np.clip(PEAK_MEAN + 0.1 * rng.normal(size=(32, d)), -1.0, 1.0)
    # exact samples of the truncated Gaussian, coordinate by coordinate
    lo, hi = scipy.special.ndtr((-1 - PEAK_MEAN) / 0.1), scipy.special.ndtr((1 - PEAK_MEAN) / 0.1)
    samples = PEAK_MEAN + 0.1 * scipy.special.ndtri(lo + (hi - lo) * rng.uniform(size=(128, d)))
    samples = np.clip(samples, -1 + 1e-6, 1 - 1e-6)
    reverse = lik.reverse_ais(jax.random.key(14), energy, samples, num_temps=200,
                              options=lik.AISOptions(base="box_kde", base_scale=0.5, centres=centres,
                                                     centre_margin=0.05))
    assert reverse.log_z > exact - 3 * reverse.log_z_std - 0.02
    assert reverse.log_z < exact + 0.5


def test_box_kde_weighted_centres_stay_unbiased_and_cut_the_spread_of_the_weights():
    # Two narrow wells on the box's faces, one e^6 times heavier: E = -log(a N(m1) + b N(m2)), Z = a Z1 + b Z2.
    d, s, log_a, log_b = 8, 0.1, 0.0, -6.0
    m1 = PEAK_MEAN[:d]
    m2 = -PEAK_MEAN[:d]
    zs = []
    for m in (m1, m2):
        mass = scipy.special.ndtr((1 - m) / s) - scipy.special.ndtr((-1 - m) / s)
        zs.append(float(np.sum(np.log(math.sqrt(2 * math.pi) * s * mass))))
    exact = float(np.logaddexp(log_a + zs[0], log_b + zs[1]))
    means = jnp.asarray(np.stack([m1, m2]), jnp.float32)
    logs = jnp.asarray([log_a, log_b], jnp.float32)

    def energy(x):
        sq = jnp.sum((x[:, None, :] - means) ** 2, axis=-1)
        return -jax.scipy.special.logsumexp(logs - 0.5 * sq / s**2, axis=1)

    rng = np.random.default_rng(3)
    centres = np.clip(np.concatenate([m1 + 0.1 * rng.normal(size=(16, d)), m2 + 0.1 * rng.normal(size=(16, d))]), -1, 1)
    options = lik.AISOptions(base="box_kde", base_scale=0.5, centres=centres, centre_margin=0.05)
    equal = lik.ais(jax.random.key(15), energy, (d,), num_chains=128, num_temps=200, options=options)
    tilted = lik.ais(jax.random.key(15), energy, (d,), num_chains=128, num_temps=200,
                     options=dataclasses.replace(
                         options, centre_log_weights=-np.asarray(energy(jnp.asarray(centres, jnp.float32)))))
    within(equal, exact, 0.1)
    within(tilted, exact, 0.1)
    # half the equal-weight chains start in the light well, e^-6 down: their weights spread by ~6 nats
    assert np.std(tilted.log_weights) < 0.5 * np.std(equal.log_weights)
    assert tilted.ess > equal.ess


def test_box_kde_bad_arguments_name_the_fix():
    energy, _ = box_gaussian(np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="needs centres"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2, options=lik.AISOptions(base="box_kde"))
    with pytest.raises(ValueError, match="must lie in the box"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2,
                options=lik.AISOptions(base="box_kde", centres=np.full((2, 3), 1.5)))
    with pytest.raises(ValueError, match="centres have 2 values"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2,
                options=lik.AISOptions(base="box_kde", centres=np.zeros((2, 2))))
    with pytest.raises(ValueError, match="for base='box_kde'"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2,
                options=lik.AISOptions(base="uniform", centres=np.zeros((2, 3))))
    with pytest.raises(ValueError, match="base"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2, options=lik.AISOptions(base="kde"))
    with pytest.raises(ValueError, match="centre_margin"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2,
                options=lik.AISOptions(base="box_kde", centres=np.zeros((2, 3)), centre_margin=1.0))
    with pytest.raises(ValueError, match="centre_log_weights must be 2 finite numbers"):
        lik.ais(jax.random.key(0), energy, (3,), num_chains=4, num_temps=2,
                options=lik.AISOptions(base="box_kde", centres=np.zeros((2, 3)), centre_log_weights=[0.0, np.nan]))
    with pytest.raises(ValueError, match="strictly inside"):
        lik.reverse_ais(jax.random.key(0), energy, np.ones((4, 3)), num_temps=2,
                        options=lik.AISOptions(base="box_kde", centres=np.zeros((2, 3))))
