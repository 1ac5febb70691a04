"""Every kernel at T ≠ 1: the stationary law of ``exp(-E/T)`` on the correlated Gaussian of test_samplers
has mean μ and covariance T·Σ, at T = 0.5 and T = 2.

Each kernel is compiled once, for both temperatures (vmapped over T). Tolerances as in test_samplers
(20,000 chains: the standard error of a variance is 1%): 4% of T·Σ in relative Frobenius norm, and
0.03·√T on the mean. A kernel that drops T anywhere (in its noise, its momentum refresh, or MALA's
accept test) misses T·Σ by far more: at T = 2 a T-free accept test targets a law between Σ and 2Σ.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import samplers
from test_samplers import MU, N_CHAINS, SIGMA, assert_moments, gaussian_energy

TEMPERATURES = (0.5, 2.0)


def stationary_positions(make, num_steps):
    """Final positions ``(len(TEMPERATURES), N_CHAINS, 2)`` of chains from 0 under ``make(T)`` at each T."""

    def run(temperature, key):
        algorithm = make(temperature)
        state = algorithm.init(jnp.zeros((N_CHAINS, 2)), jax.random.fold_in(key, 1))
        return samplers.run_chain(key, algorithm, state, num_steps)[0].position

    keys = jax.random.split(jax.random.key(0), len(TEMPERATURES))
    return np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(TEMPERATURES), keys), np.float64)


KERNELS = {
    "sgld": (lambda t: samplers.sgld(gaussian_energy, 0.01, temperature=t), 1500),
    # MALA at a step where its accept test does most of the work (SGLD's variance there is 4.7x the truth).
    "mala": (lambda t: samplers.mala(gaussian_energy, 0.3, temperature=t), 400),
    **{f"sghmc_{i}": ((lambda i: lambda t: samplers.sghmc(gaussian_energy, 0.01, friction=1.0, mass=0.5,
                                                         integrator=i, temperature=t))(i), 1500)
       for i in ("symplectic_euler", "explicit_euler", "baoab")},
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_stationary_covariance_is_temperature_times_sigma(name):
    make, num_steps = KERNELS[name]
    positions = stationary_positions(make, num_steps)
    for t, samples in zip(TEMPERATURES, positions):
        assert_moments(samples, MU, t * SIGMA, mean_tol=0.03 * t ** 0.5, cov_rel_tol=0.04)
