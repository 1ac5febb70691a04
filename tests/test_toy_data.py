"""Tests for jebm.data.toy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jebm.evaluation import metrics
from jebm.data import toy

N_MOMENTS = 100_000


def _assert_moments(samples, mean, cov, n_se=5.0):
    """Checks sample mean and covariance within ``n_se`` standard errors.

    The standard error of each estimate is sd / sqrt(n) of the quantity being
    averaged (x_i for the mean, centred x_i x_j for the covariance), estimated
    from the samples themselves.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[0]
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), n_se * x.std(0) / math.sqrt(n))
    centred = x - mean
    products = centred[:, :, None] * centred[:, None, :]
    se = products.std(0) / math.sqrt(n)
    np.testing.assert_array_less(np.abs(products.mean(0) - cov), n_se * se)


def _mixture_cov(means, weights, component_var):
    mean = weights @ means
    second = np.einsum("k,ki,kj->ij", weights, means, means) + component_var * np.eye(2)
    return mean, second - np.outer(mean, mean)


def test_gmm8_layout():
    dataset = toy.gmm8()
    assert dataset.means.shape == (8, 2) and dataset.std == 0.15
    np.testing.assert_allclose(dataset.weights, np.full(8, 1 / 8))
    np.testing.assert_allclose(np.linalg.norm(dataset.means, axis=1), 1.0)
    angles = np.arctan2(dataset.means[:, 1], dataset.means[:, 0]) % (2 * np.pi)
    np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-12)
    np.testing.assert_array_equal(dataset.modes, dataset.means)


def test_gmm8_moments():
    dataset = toy.gmm8()
    samples = dataset.sample(jax.random.key(0), N_MOMENTS)
    assert samples.shape == (N_MOMENTS, 2) and samples.dtype == jnp.float32
    mean, cov = _mixture_cov(dataset.means, dataset.weights, dataset.std**2)
    np.testing.assert_allclose(cov, (0.5 + 0.15**2) * np.eye(2), atol=1e-12)
    _assert_moments(samples, mean, cov)


def test_unequal_weights_moments():
    dataset = toy.GaussianMixture(means=[[1.0, 0.0], [-1.0, 0.5]], std=0.2, weights=[3.0, 1.0])
    np.testing.assert_allclose(dataset.weights, [0.75, 0.25])
    mean, cov = _mixture_cov(dataset.means, dataset.weights, dataset.std**2)
    _assert_moments(dataset.sample(jax.random.key(1), N_MOMENTS), mean, cov)


def test_rings_moments_and_ring_masses():
    dataset = toy.rings()
    samples = np.asarray(dataset.sample(jax.random.key(2), N_MOMENTS), dtype=np.float64)
    # Each ring: E[x x^T] = (a^2 / 2 + s^2) I, mean 0.
    second = np.sum(dataset.weights * (dataset.radii**2 / 2)) + dataset.std**2
    _assert_moments(samples, np.zeros(2), second * np.eye(2))
    # The sampler and the density agree on the mass inside radius 0.85.
    xs, ys = metrics.grid(lim=1.7, n=400)
    density = np.exp(metrics.evaluate_on_grid(dataset.log_density, xs, ys))
    inside = np.hypot(*np.meshgrid(xs, ys)) < 0.85
    mass_inside = density[inside].sum() * (xs[1] - xs[0]) ** 2
    frac_inside = np.mean(np.hypot(samples[:, 0], samples[:, 1]) < 0.85)
    assert mass_inside == pytest.approx(0.5, abs=2e-3)
    assert frac_inside == pytest.approx(mass_inside, abs=5 * math.sqrt(0.25 / N_MOMENTS) + 2e-3)


@pytest.mark.parametrize("name", toy.DATASET_NAMES)
def test_log_density_integrates_to_one(name):
    dataset = toy.make_toy_dataset(name)
    xs, ys = metrics.grid(lim=2.5, n=500)
    log_p = metrics.evaluate_on_grid(dataset.log_density, xs, ys)
    assert np.exp(log_p).sum() * (xs[1] - xs[0]) ** 2 == pytest.approx(1.0, abs=1e-6)


def test_gmm_log_density_matches_scipy():
    dataset = toy.GaussianMixture(means=[[1.0, 0.0], [-1.0, 0.5], [0.0, 0.0]], std=0.3, weights=[1, 2, 3])
    points = np.random.default_rng(0).standard_normal((50, 2))
    expected = np.log(
        sum(w * multivariate_normal(m, dataset.std**2 * np.eye(2)).pdf(points) for m, w in zip(dataset.means, dataset.weights))
    )
    np.testing.assert_allclose(dataset.log_density(points), expected, rtol=1e-12)


@pytest.mark.parametrize("name", toy.DATASET_NAMES)
def test_log_density_numpy_and_jax_agree_and_differentiate(name):
    dataset = toy.make_toy_dataset(name)
    points = np.random.default_rng(1).uniform(-1.6, 1.6, size=(4, 5, 2))
    numpy_values = dataset.log_density(points)
    assert isinstance(numpy_values, np.ndarray) and numpy_values.shape == (4, 5)
    points = points.reshape(-1, 2)
    points[0] = 0.0  # the origin, where samplers may start
    numpy_values = numpy_values.reshape(-1)
    numpy_values[0] = dataset.log_density(points[0])

    def value_and_grad(xy):
        return dataset.log_density(xy), jax.vmap(jax.grad(dataset.log_density))(xy)

    jax_values, grads = jax.jit(value_and_grad)(jnp.asarray(points, dtype=jnp.float32))
    assert isinstance(jax_values, jax.Array)
    np.testing.assert_allclose(np.asarray(jax_values), numpy_values, rtol=1e-4, atol=1e-4)
    # Finite gradients everywhere, zero at the origin by symmetry.
    assert np.all(np.isfinite(np.asarray(grads)))
    np.testing.assert_allclose(np.asarray(grads[0]), 0.0, atol=1e-5)


@pytest.mark.parametrize("name", toy.DATASET_NAMES)
def test_sampler_is_deterministic_and_jittable(name):
    dataset = toy.make_toy_dataset(name)
    # Same size as the moment tests, so the eager ops are already compiled.
    eager = np.asarray(dataset.sample(jax.random.key(7), N_MOMENTS))
    np.testing.assert_array_equal(eager, np.asarray(dataset.sample(jax.random.key(7), N_MOMENTS)))
    assert not np.allclose(eager[:64], np.asarray(dataset.sample(jax.random.key(8), N_MOMENTS))[:64])
    jitted = jax.jit(dataset.sample, static_argnums=1)(jax.random.key(7), N_MOMENTS)
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-6, atol=1e-6)


def test_rings_modes():
    dataset = toy.rings(radii=(0.5, 1.2), points_per_ring=4)
    np.testing.assert_allclose(dataset.modes, [[0.5, 0], [0, 0.5], [-0.5, 0], [0, -0.5], [1.2, 0], [0, 1.2], [-1.2, 0], [0, -1.2]], atol=1e-12)


def test_factory_and_error_message():
    assert isinstance(toy.make_toy_dataset("gmm8"), toy.GaussianMixture)
    assert toy.make_toy_dataset("gmm8", std=0.1).std == 0.1
    assert isinstance(toy.make_toy_dataset("rings", radii=(1.0,)), toy.RingMixture)
    with pytest.raises(ValueError) as info:
        toy.make_toy_dataset("foo")
    assert str(info.value) == "dataset.name='foo' is not one of ['gmm8', 'rings']"


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="std"):
        toy.gmm8(std=0.0)
    with pytest.raises(ValueError, match="weights"):
        toy.GaussianMixture(means=np.zeros((2, 2)), std=1.0, weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="means"):
        toy.GaussianMixture(means=np.zeros((2, 3)), std=1.0, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        toy.gmm8().log_density(np.zeros((3, 3)))


def test_datasets_are_frozen():
    dataset = toy.gmm8()
    with pytest.raises(AttributeError):
        dataset.std = 1.0
    with pytest.raises(ValueError):
        dataset.means[0, 0] = 5.0


def test_fixed_points_and_batches():
    dataset = toy.gmm8()
    points = toy.fixed_points(jax.random.key(0), dataset, N_MOMENTS)
    assert points.shape == (N_MOMENTS, 2)
    np.testing.assert_array_equal(np.asarray(points), np.asarray(dataset.sample(jax.random.key(0), N_MOMENTS)))
    draw = jax.jit(toy.batch_from_fixed, static_argnums=2)
    batch = draw(points, jax.random.key(1), 64)
    assert batch.shape == (64, 2)
    # Every row of the batch is a row of the fixed set.
    rows = {tuple(p) for p in np.asarray(points).tolist()}
    assert all(tuple(p) in rows for p in np.asarray(batch).tolist())
    np.testing.assert_array_equal(np.asarray(batch), np.asarray(draw(points, jax.random.key(1), 64)))
    assert not np.array_equal(np.asarray(batch), np.asarray(draw(points, jax.random.key(2), 64)))
