"""jebm.samplers.sgld / sghmc / mala as BlackJAX users expect them, and samplers chosen by name."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config
from ml_collections import config_dict

from jebm import config_validation, samplers
from jebm.samplers import factory, registry

MODULES = {name: importlib.import_module(f"jebm.samplers.{name}") for name in ("mala", "sghmc", "sgld")}
OPTIONS = {"mala": {}, "sghmc": {"friction": 1.0}, "sgld": {}}


def quadratic(x):
    return 0.5 * jnp.sum(x**2, axis=-1)


@pytest.fixture
def registered():
    """Names registered by a test, removed again after it."""
    names = []
    yield names
    for name in names:
        samplers.unregister(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_family_exposes_its_module_parts(name):
    api, module = getattr(samplers, name), MODULES[name]
    assert api.init is module.init
    assert api.build_kernel is module.build_kernel
    assert api.State is module.State
    assert api.Info is module.Info
    assert api.as_top_level_api is module.as_top_level_api


def test_family_forwards_the_rest_of_its_module():
    assert samplers.sghmc.INTEGRATORS == MODULES["sghmc"].INTEGRATORS
    with pytest.raises(AttributeError):
        samplers.sgld.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", sorted(MODULES))
def test_family_call_is_the_module_constructor(name):
    """Calling the family gives the same chain as the module's own constructor."""
    x0 = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)
    ours = getattr(samplers, name)(quadratic, 0.1, **OPTIONS[name])
    theirs = MODULES[name].as_top_level_api(quadratic, 0.1, **OPTIONS[name])
    key = jax.random.key(0)
    a, info_a = ours.step(key, ours.init(x0, jax.random.key(1)))
    b, info_b = theirs.step(key, theirs.init(x0, jax.random.key(1)))
    for u, v in zip(jax.tree_util.tree_leaves((a, info_a)), jax.tree_util.tree_leaves((b, info_b))):
        np.testing.assert_array_equal(u, v)


def test_kernel_built_from_the_attributes_runs_as_blackjax_would():
    """``sgld.init`` + ``sgld.build_kernel`` make a step that lowers a quadratic's energy at T → 0."""
    kernel = samplers.sgld.build_kernel()
    state = samplers.sgld.init(jnp.full((4, 3), 2.0), quadratic)
    assert isinstance(state, samplers.sgld.State)
    state, info = kernel(jax.random.key(0), state, quadratic, 0.1, 1e-12)
    assert isinstance(info, samplers.sgld.Info)
    np.testing.assert_allclose(state.position, 1.8, rtol=1e-5)  # x - η∇E = 2 - 0.1·2


def sampler_config(name, **fields):
    cfg = config_dict.ConfigDict(
        dict(name=name, step_size=0.1, temperature=1.0, friction=1.0, mass=1.0, mass_convention="mass",
             integrator="symplectic_euler", bounds=None, grad_clip=None, chunk_size=0)
    )
    cfg.update(fields)
    return cfg


def gradient_descent(energy_fn, step_size, *, temperature=1.0):
    """A user's sampler: the T → 0 limit of SGLD, with jebm's State and Info."""

    def init(position, rng_key=None):
        del rng_key
        return samplers.sgld.init(position, energy_fn)

    def step(rng_key, state):
        del rng_key
        new = samplers.sgld.init(state.position - step_size * state.energy_grad, energy_fn)
        return new, samplers.sgld.Info(new.energy, samplers.base.per_chain_norm(new.energy_grad))

    return samplers.SamplingAlgorithm(init, step)


def test_registered_constructor_is_chosen_by_config_name(registered):
    samplers.register("gradient_descent", gradient_descent)
    registered.append("gradient_descent")
    algorithm = factory.make_sampler(sampler_config("gradient_descent", step_size=0.25), quadratic)
    state, _ = algorithm.step(jax.random.key(0), algorithm.init(jnp.full((2, 2), 4.0)))
    np.testing.assert_allclose(state.position, 3.0)  # 4 - 0.25·4: the config's step size reached it


def test_registered_constructor_takes_run_chain_schedules(registered):
    samplers.register("gradient_descent", gradient_descent)
    registered.append("gradient_descent")
    algorithm = factory.make_sampler(sampler_config("gradient_descent"), quadratic)
    steps = jnp.array([0.5, 0.25])
    state, _ = samplers.run_chain(jax.random.key(0), algorithm, algorithm.init(jnp.full((2, 1), 8.0)), 2,
                                  schedule={"step_size": steps})
    np.testing.assert_allclose(state.position, 8.0 * 0.5 * 0.75)


def test_registered_name_passes_config_validation(registered):
    samplers.register("gradient_descent", gradient_descent)
    registered.append("gradient_descent")
    config_validation.validate(config_validation_config("gradient_descent"))
    with pytest.raises(config_validation.ConfigError, match=r"sampler\.name='gradient_descnet' is not one of"):
        config_validation.validate(config_validation_config("gradient_descnet"))


def config_validation_config(name):
    config = load_config("gmm_sgld", "smoke")
    config.unlock()
    config.sampler.name = name
    return config


def test_bad_name_names_the_field_and_the_valid_values(registered):
    samplers.register("gradient_descent", gradient_descent)
    registered.append("gradient_descent")
    with pytest.raises(ValueError, match=r"sampler\.name='sgdl' is not one of .*'gradient_descent'.*'sgld'"):
        factory.make_sampler(sampler_config("sgdl"), quadratic)


def test_unregistered_name_is_rejected_again():
    samplers.register("gradient_descent", gradient_descent)
    samplers.unregister("gradient_descent")
    assert "gradient_descent" not in registry.NAMES
    with pytest.raises(ValueError, match=r"sampler\.name='gradient_descent' is not one of"):
        factory.make_sampler(sampler_config("gradient_descent"), quadratic)


def test_bounds_are_not_dropped_by_a_constructor_without_them(registered):
    samplers.register("gradient_descent", gradient_descent)
    registered.append("gradient_descent")
    with pytest.raises(ValueError, match=r"sampler\.bounds=\(-1\.0, 1\.0\) is set.*takes no 'bounds'"):
        factory.make_sampler(sampler_config("gradient_descent", bounds=(-1.0, 1.0)), quadratic)


@pytest.mark.parametrize("name, constructor, message", [
    ("sgld", gradient_descent, "jebm's own"),
    ("", gradient_descent, "non-empty string"),
    ("mine", 3, "must be callable"),
])
def test_register_rejects_bad_input(name, constructor, message):
    with pytest.raises(ValueError, match=message):
        samplers.register(name, constructor)
    assert set(registry.NAMES) == {"mala", "sghmc", "sgld"}


def test_unregister_rejects_names_it_did_not_add():
    for name in ("sgld", "never_added"):
        with pytest.raises(ValueError, match="not a registered one"):
            samplers.unregister(name)


def test_builtin_and_registered_names_take_one_path(registered):
    """jebm's sgld registered under another name builds the same chain: make_sampler has one path."""
    samplers.register("my_sgld", samplers.sgld)
    registered.append("my_sgld")
    ours = factory.make_sampler(sampler_config("sgld", bounds=(-1.0, 1.0)), quadratic)
    theirs = factory.make_sampler(sampler_config("my_sgld", bounds=(-1.0, 1.0)), quadratic)
    assert theirs.step.parameters == ("step_size", "temperature")  # not wrapped again by schedulable
    x0 = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)
    a, _ = samplers.run_chain(jax.random.key(0), ours, ours.init(x0), 3)
    b, _ = samplers.run_chain(jax.random.key(0), theirs, theirs.init(x0), 3)
    np.testing.assert_array_equal(a.position, b.position)


def test_sampler_mass_reaches_any_constructor_by_its_convention(registered):
    seen = []

    def heavy(energy_fn, step_size, *, mass=1.0):
        seen.append(mass)
        return gradient_descent(energy_fn, step_size)

    samplers.register("heavy", heavy)
    registered.append("heavy")
    factory.make_sampler(sampler_config("heavy", mass=4.0, mass_convention="inverse_mass"), quadratic)
    factory.make_sampler(sampler_config("heavy", mass=4.0, mass_convention="mass"), quadratic)
    assert seen == [0.25, 4.0]


def test_fresh_chains_start_and_run_the_config_sampler():
    cfg = sampler_config("sghmc", momentum_init="random", unroll=1)
    keys = factory.chain_keys(jax.random.key(3))
    x0 = jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)
    state, summary = factory.fresh_chains(cfg, quadratic, x0, keys, 4)
    algorithm = samplers.sghmc(quadratic, 0.1, friction=1.0)
    by_hand, _ = samplers.run_chain(keys.run, algorithm, algorithm.init(x0, keys.momentum), 4)
    np.testing.assert_array_equal(state.position, by_hand.position)
    assert summary.final.energy.shape == (3,)
    start, none = factory.fresh_chains(cfg, quadratic, x0, keys, 0)
    assert none is None
    np.testing.assert_array_equal(start.momentum, algorithm.init(x0, keys.momentum).momentum)


def test_kernel_step_binds_params_and_overrides_one_step():
    """base.kernel_step passes its params to the kernel, an override replaces that one for one step (a traced
    value under jit too), and an unknown override is refused by check_overrides, naming it and the valid ones;
    base.step_parameters reads the names."""
    from jebm.samplers import base

    def kernel(rng_key, state, energy_fn, *, step_size, temperature):  # echoes what it was given
        return state + step_size, {"temperature": temperature, "energy": energy_fn(state)}

    step = base.kernel_step(kernel, quadratic, "jebm.samplers.echo", step_size=0.5, temperature=1.0)
    state = jnp.array([[2.0]])
    new, info = step(None, state)
    assert float(new[0, 0]) == 2.5 and info["temperature"] == 1.0 and float(info["energy"][0]) == 2.0
    new, info = step(None, state, temperature=3.0)
    assert float(new[0, 0]) == 2.5 and info["temperature"] == 3.0
    new, info = jax.jit(lambda s, eta, t: step(None, s, step_size=eta, temperature=t))(state, 0.25, 7.0)
    assert float(new[0, 0]) == 2.25 and float(info["temperature"]) == 7.0
    with pytest.raises(ValueError, match=r"^\['friction', 'mass'\] not parameters of jebm.samplers.echo; "
                                         r"it takes \['step_size', 'temperature'\]$"):
        step(None, state, mass=1.0, friction=2.0, temperature=3.0)
    assert base.step_parameters(step) == ("step_size", "temperature")
    assert base.step_parameters(lambda rng_key, state: (state, None)) == ()
    assert base.step_parameters(samplers.sghmc(quadratic, 0.1, friction=1.0).step) == (
        "step_size", "friction", "mass", "temperature")
    assert base.check_overrides("x", ("a", "b"), {"b": 1}) is None
    with pytest.raises(ValueError, match=r"^\['c'\] not parameters of x; it takes \['a', 'b'\]$"):
        base.check_overrides("x", ("a", "b"), {"c": 1})


def test_name_of_names_a_constructor_by_module_and_qualname():
    from types import SimpleNamespace

    def local():
        pass

    assert registry.name_of(samplers.sghmc.as_top_level_api) == "jebm.samplers.sghmc.as_top_level_api"
    assert registry.name_of(local) == f"{__name__}.{local.__qualname__}"
    assert local.__qualname__.endswith("<locals>.local")
    assert registry.name_of(SimpleNamespace(__qualname__="Bare", __module__=None)) == "Bare"
    assert registry.name_of(3) == "3"  # no __qualname__: its repr
