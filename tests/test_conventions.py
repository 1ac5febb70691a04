"""``jebm.samplers.conventions``: both directions, checked on the chain itself.

On the linear energy E(x) = c·x the gradient is c everywhere, so one SGLD step moves every chain by
exactly −λc plus noise of standard deviation σ. 20,000 chains measure σ to 0.5% (one standard error),
so a convention off by √2 (41%) or by 2 is far outside the 3% tolerance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import samplers
from jebm.samplers import conventions

C = jnp.array([0.3, -2.0])
N = 20_000


def one_step_displacement(step_size, temperature):
    """Displacement of 20,000 chains after one SGLD step of jebm's (η, T) on E = c·x."""
    algorithm = samplers.sgld(lambda x: x @ C, step_size, temperature=temperature)
    x = jnp.zeros((N, 2))
    new, _ = algorithm.step(jax.random.key(0), algorithm.init(x))
    return np.asarray(new.position - x, np.float64)


def assert_step_and_noise(displacement, step, noise_std):
    np.testing.assert_allclose(displacement.mean(0), -step * np.asarray(C), atol=4 * noise_std / np.sqrt(N))
    np.testing.assert_allclose(displacement.std(0), noise_std, rtol=0.03)


def test_to_step_and_noise_is_the_update_sgld_makes():
    step, noise_std = conventions.to_step_and_noise(0.02, 0.5)
    assert step == 0.02 and noise_std == pytest.approx(np.sqrt(2 * 0.02 * 0.5))
    assert_step_and_noise(one_step_displacement(0.02, 0.5), step, noise_std)


def test_from_step_and_noise_gives_the_sgld_that_makes_that_update():
    params = conventions.from_step_and_noise(0.01, 0.005)  # IGEBM-like: a low temperature, 1.25e-3
    assert params == {"step_size": 0.01, "temperature": pytest.approx(0.005 ** 2 / 0.02)}
    assert_step_and_noise(one_step_displacement(**params), 0.01, 0.005)


def test_the_two_directions_invert_each_other():
    assert conventions.to_step_and_noise(**conventions.from_step_and_noise(0.1, 0.3)) == pytest.approx((0.1, 0.3))
    params = conventions.from_step_and_noise(*conventions.to_step_and_noise(0.05, 2.0))
    assert params == {"step_size": 0.05, "temperature": pytest.approx(2.0)}


@pytest.mark.parametrize("call, match", [
    (lambda: conventions.from_step_and_noise(0.0, 1.0), "step must be > 0"),
    (lambda: conventions.from_step_and_noise(0.1, -1.0), "noise_std must be > 0"),
    (lambda: conventions.to_step_and_noise(-0.1, 1.0), "step_size must be > 0"),
    (lambda: conventions.to_step_and_noise(0.1, 0.0), "temperature must be > 0"),
])
def test_bad_values_name_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call()
