"""run_chain's per-step parameter schedules: exactly the kernel at each step's value, traced once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jebm import samplers

pytestmark = pytest.mark.usefixtures("fast_compiles")

NUM_STEPS = 6
# name -> (constructor options, build_kernel options, the kernel's parameters after the step size)
CASES = {
    "sgld": ({}, {}, ()),
    "mala": ({}, {}, ()),
    "sghmc": ({"friction": 1.0}, {}, (1.0,)),
    "sghmc_baoab": ({"friction": 1.0, "integrator": "baoab"}, {"integrator": "baoab"}, (1.0,)),
}


def energy(x):
    return 0.5 * jnp.sum(x**2, axis=-1) + 0.1 * jnp.sum(jnp.sin(3.0 * x), axis=-1)


def family(case):
    return getattr(samplers, case.split("_")[0])


def start(algorithm):
    return algorithm.init(jax.random.normal(jax.random.key(0), (5, 3)), jax.random.key(1))


def assert_trees_equal(a, b):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("trace", [False, True])
def test_annealed_step_size_is_the_kernel_stepped_by_hand(case, trace):
    options, kernel_options, kernel_params = CASES[case]
    step_sizes = 0.1 * 0.7 ** jnp.arange(NUM_STEPS)
    algorithm = family(case)(energy, 0.1, **options)
    state0 = start(algorithm)
    run = jax.jit(lambda k, s, eta: samplers.run_chain(k, algorithm, s, NUM_STEPS, trace=trace,
                                                       schedule={"step_size": eta}))
    scheduled, _ = run(jax.random.key(2), state0, step_sizes)

    kernel = family(case).build_kernel(**kernel_options)
    one_step = jax.jit(lambda k, s, eta: kernel(k, s, energy, eta, *kernel_params))
    state = state0
    for key, eta in zip(jax.random.split(jax.random.key(2), NUM_STEPS), step_sizes):
        state, _ = one_step(key, state, eta)
    assert_trees_equal(scheduled, state)
    # An annealed run differs from a constant one: the schedule reached the kernel.
    constant, _ = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, NUM_STEPS))(jax.random.key(2), state0)
    assert not np.array_equal(scheduled.position, constant.position)


@pytest.mark.parametrize("case", sorted(CASES))
def test_constant_schedule_is_the_run_without_one(case):
    """Bit for bit against today's run_chain with the step size given as an array (a jit argument)."""
    options = CASES[case][0]
    state0 = start(family(case)(energy, 0.01, **options))

    @jax.jit
    def unscheduled(key, state, eta):
        return samplers.run_chain(key, family(case)(energy, eta, **options), state, NUM_STEPS)

    @jax.jit
    def scheduled(key, state, etas):
        algorithm = family(case)(energy, 0.5, **options)  # overridden at every step
        return samplers.run_chain(key, algorithm, state, NUM_STEPS, schedule={"step_size": etas})

    want = unscheduled(jax.random.key(3), state0, jnp.float32(0.01))
    got = scheduled(jax.random.key(3), state0, jnp.full((NUM_STEPS,), 0.01))
    assert_trees_equal(got, want)
    # Against a Python-float step size, which XLA folds as a constant: equal to float rounding.
    folded = jax.jit(lambda k, s: samplers.run_chain(k, family(case)(energy, 0.01, **options), s, NUM_STEPS))
    np.testing.assert_allclose(got[0].position, folded(jax.random.key(3), state0)[0].position, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_without_schedule_is_the_algorithm_stepped_by_hand(case):
    """The default path is today's: one step of ``algorithm.step`` per key of ``split(key, L)``."""
    algorithm = family(case)(energy, 0.05, **CASES[case][0])
    state0 = start(algorithm)
    ran, summary = jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, NUM_STEPS))(jax.random.key(4), state0)
    step = jax.jit(algorithm.step)
    state, infos = state0, []
    for key in jax.random.split(jax.random.key(4), NUM_STEPS):
        state, info = step(key, state)
        infos.append(info)
    assert_trees_equal(ran, state)
    assert_trees_equal(summary.final, infos[-1])


def test_schedule_as_a_function_of_the_step_index():
    algorithm = samplers.sgld(energy, 0.1, temperature=0.5)
    state0 = start(algorithm)

    def decay(i):
        return 0.1 / (1.0 + i)

    def run(schedule):
        return jax.jit(lambda k, s: samplers.run_chain(k, algorithm, s, NUM_STEPS, schedule=schedule))(
            jax.random.key(5), state0)[0]

    by_function = run({"step_size": decay})
    by_array = run({"step_size": 0.1 / (1.0 + jnp.arange(NUM_STEPS))})
    assert_trees_equal(by_function, by_array)
    assert not np.array_equal(by_function.position, run(None).position)


def test_two_parameters_scheduled_together():
    """An annealed temperature with the step size: the kernel sees both per step."""
    algorithm = samplers.sgld(energy, 0.1)
    state0 = start(algorithm)
    etas, temps = jnp.linspace(0.1, 0.01, NUM_STEPS), jnp.geomspace(1.0, 1e-3, NUM_STEPS)
    got, _ = jax.jit(lambda k, s: samplers.run_chain(
        k, algorithm, s, NUM_STEPS, schedule={"step_size": etas, "temperature": temps}))(jax.random.key(6), state0)
    kernel = jax.jit(lambda k, s, eta, t: samplers.sgld.build_kernel()(k, s, energy, eta, t))
    state = state0
    for key, eta, t in zip(jax.random.split(jax.random.key(6), NUM_STEPS), etas, temps):
        state, _ = kernel(key, state, eta, t)
    assert_trees_equal(got, state)


def test_new_schedule_values_do_not_retrace():
    algorithm = samplers.sghmc(energy, 0.1, friction=1.0)
    state0 = start(algorithm)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(key, etas):
        return samplers.run_chain(key, algorithm, state0, NUM_STEPS, schedule={"step_size": etas})[0].position

    first = run(jax.random.key(7), jnp.linspace(0.1, 0.1, NUM_STEPS))
    second = run(jax.random.key(7), jnp.linspace(0.1, 0.001, NUM_STEPS))  # would raise on a second trace
    assert not np.array_equal(first, second)


def test_energy_is_traced_a_fixed_number_of_times_whatever_the_length():
    """The schedule is scanned over, not unrolled into one kernel call per value."""
    traces = []

    def counted_energy(x):
        traces.append(None)
        return energy(x)

    def count(num_steps):
        traces.clear()
        algorithm = samplers.sgld(counted_energy, 0.1)
        etas = jnp.full((num_steps,), 0.05)
        jax.eval_shape(lambda s: samplers.run_chain(jax.random.key(0), algorithm, s, num_steps,
                                                    schedule={"step_size": etas}),
                       algorithm.init(jnp.zeros((2, 2))))
        return len(traces)

    assert count(3) == count(40)


def test_schedule_of_the_wrong_length_is_rejected():
    algorithm = samplers.sgld(energy, 0.1)
    with pytest.raises(ValueError, match=r"schedule\['step_size'\] must have num_steps=6 values.*\(5,\)"):
        samplers.run_chain(jax.random.key(0), algorithm, start(algorithm), NUM_STEPS,
                           schedule={"step_size": jnp.ones(5)})
    with pytest.raises(ValueError, match=r"schedule\['step_size'\] must have num_steps=6 values.*\(\)"):
        samplers.run_chain(jax.random.key(0), algorithm, start(algorithm), NUM_STEPS, schedule={"step_size": 0.1})


def test_unknown_parameter_is_named():
    algorithm = samplers.sgld(energy, 0.1)
    with pytest.raises(ValueError, match=r"\['friction'\] not parameters of jebm\.samplers\.sgld; it takes \['step_size', 'temperature'\]"):
        samplers.run_chain(jax.random.key(0), algorithm, start(algorithm), NUM_STEPS,
                           schedule={"friction": jnp.ones(NUM_STEPS)})


def test_algorithm_without_parameters_in_its_step_is_rejected():
    plain = samplers.SamplingAlgorithm(lambda x, rng_key=None: x, lambda key, state: (state, None))
    with pytest.raises(ValueError, match=r"needs an algorithm whose step takes parameters"):
        samplers.run_chain(jax.random.key(0), plain, jnp.zeros((2, 2)), NUM_STEPS,
                           schedule={"step_size": jnp.ones(NUM_STEPS)})


def test_schedulable_wraps_any_constructor():
    """A user's constructor gets per-step overrides without writing them."""

    def drift(energy_fn, step_size, *, shift=0.0):
        def step(key, state):
            del key
            return state - step_size + shift, None

        return samplers.SamplingAlgorithm(lambda x, rng_key=None: x, step)

    algorithm = samplers.schedulable(drift, energy, step_size=1.0, shift=0.5)
    assert algorithm.step.parameters == ("step_size", "shift")
    assert float(algorithm.step(None, jnp.float32(0.0))[0]) == -0.5
    assert float(algorithm.step(None, jnp.float32(0.0), step_size=3.0)[0]) == -2.5
    assert float(algorithm.step(None, jnp.float32(0.0), shift=2.0)[0]) == 1.0
    # Only what was given by keyword can be overridden: a positional value has no name to replace.
    positional = samplers.schedulable(drift, energy, 1.0, shift=0.5)
    with pytest.raises(ValueError, match=r"\['step_size'\] not parameters of .*drift; it takes \['shift'\]"):
        positional.step(None, jnp.float32(0.0), step_size=3.0)
