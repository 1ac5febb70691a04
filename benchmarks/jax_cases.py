"""The JAX side of the benchmark: jebm's samplers, BlackJAX, the bare gradient.

Every builder returns a ``Prepared``: a blocking ``run`` callable that does
``units_per_call`` units of work (sampler steps, or toy iterations), already
compiled, with what compiling cost and what XLA says about the program.

Parameters are arguments of the jitted functions, not constants folded into
them, as in a training step where they change every iteration.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from benchmarks import flops as flops_lib
from benchmarks.timing import timed
from jebm import samplers
from jebm.data.toy import gmm8
from jebm.energies import energy_fn, make_energy

# Sampler settings. Speed does not depend on them; they are the paper's where
# it gives them (SGLD on MNIST: η = 5e-6; toy: η = 0.01, U(−2, 2)² chains,
# SGD lr 0.01) and ordinary values elsewhere.
CNN_SGLD_STEP = 5e-6
CNN_SGHMC_STEP = 1e-3
CNN_SGHMC_FRICTION = 1.0
CNN_HEAD = "quadratic"  # the head the paper trains its MNIST models with
TOY_STEP = 0.01
TOY_LR = 0.01
TOY_INIT_RANGE = 2.0

MiB = 1024.0 * 1024.0


@dataclasses.dataclass
class Prepared:
    """A compiled, ready-to-time unit of work.

    Attributes:
      run: blocking callable doing ``units_per_call`` units.
      units_per_call: units (sampler steps or iterations) per call.
      setup: builds ``run``'s arguments before each call, untimed.
      compile_s: seconds to trace, lower and compile (None: nothing compiled).
      xla_flops: XLA's FLOP count of the compiled program per call, or None.
      xla_temp_mb: XLA's temporary buffer size (the program's working memory
        besides its inputs and outputs), MiB, or None.
    """

    run: Callable[..., Any]
    units_per_call: int
    setup: Optional[Callable[[], tuple]] = None
    compile_s: Optional[float] = None
    xla_flops: Optional[float] = None
    xla_temp_mb: Optional[float] = None


def compile_jit(fn, *args, donate_argnums=()):
    """``jax.jit(fn)`` compiled for ``args``, with its cost and memory facts.

    Returns:
      ``(compiled, seconds, xla_flops, xla_temp_mb)``; the last two are None
      where the backend does not report them.
    """
    jitted = jax.jit(fn, donate_argnums=donate_argnums)
    compiled, seconds = timed(lambda: jitted.lower(*args).compile())
    return compiled, seconds, xla_cost_flops(compiled), xla_temp_mb(compiled)


def xla_cost_flops(compiled) -> Optional[float]:
    """``compiled.cost_analysis()["flops"]``, or None where unavailable."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if isinstance(cost, (list, tuple)):  # older jax returns one dict per device
        cost = cost[0] if cost else None
    return float(cost["flops"]) if cost and "flops" in cost else None


def xla_temp_mb(compiled) -> Optional[float]:
    """XLA's temporary-buffer bytes for ``compiled`` in MiB, or None."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        return None
    return None if stats is None else stats.temp_size_in_bytes / MiB


def block(tree):
    """Waits for every array in ``tree``; returns it."""
    return jax.block_until_ready(tree)


# ---------------------------------------------------------------------------
# The custom CNN
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class CnnSetup:
    """The custom CNN energy on one batch of chains.

    Attributes:
      model: the ``EnergyModel``.
      params: its parameters.
      x: the chains' starting images, ``(batch, 28, 28, 1)``, U[0, 1].
      batch: the number of chains.
    """

    model: Any
    params: Any
    x: jax.Array
    batch: int
    chunk_size: Optional[int] = None


def cnn_setup(batch: int, conv_impl: str = "im2col", seed: int = 0, chunk_size: Optional[int] = None,
              **options) -> CnnSetup:
    """The paper's custom CNN with a quadratic head, initialised, and ``batch`` chains.

    ``chunk_size``: jebm's chains run their energy-and-gradient pass in groups
    of this many (``jebm.samplers.chunked``), and so does ``bare_grad``;
    None: the whole batch at once. ``options`` are further ``CustomCNN``
    fields, e.g. ``micro_batch``.
    """
    model = make_energy("custom_cnn", head=CNN_HEAD, conv_impl=conv_impl, **options)
    key_params, key_x = jax.random.split(jax.random.key(seed))
    x = jax.random.uniform(key_x, (batch, 28, 28, 1), jnp.float32)
    params = jax.jit(model.init)(key_params, x[:1])
    return CnnSetup(model, params, x, batch, chunk_size)


def with_model(setup: CnnSetup, model) -> CnnSetup:
    """The same parameters and chains on another (equivalent) model."""
    return dataclasses.replace(setup, model=model)


def _algorithm(model, params, sampler: str, chunk_size: Optional[int] = None):
    energy = energy_fn(model, params)
    if chunk_size:
        energy = samplers.chunked(energy, chunk_size)
    if sampler == "sgld":
        return samplers.sgld(energy, CNN_SGLD_STEP)
    if sampler == "sghmc":
        return samplers.sghmc(energy, CNN_SGHMC_STEP, friction=CNN_SGHMC_FRICTION)
    raise ValueError(f"sampler={sampler!r} is not one of ['sghmc', 'sgld']")


def _initial_state(setup: CnnSetup, sampler: str):
    init = jax.jit(lambda p, x, k: _algorithm(setup.model, p, sampler, setup.chunk_size).init(x, k))
    return block(init(setup.params, setup.x, jax.random.key(1)))


def jebm_chain(
    setup: CnnSetup,
    sampler: str,
    n_steps: int,
    *,
    unroll: int = 1,
    key_impl: Optional[str] = None,
    donate: bool = False,
) -> Prepared:
    """``n_steps`` of jebm's sampler through ``jebm.samplers.run_chain``.

    Args:
      setup: the energy and chains.
      sampler: ``"sgld"`` or ``"sghmc"``.
      n_steps: steps per call (L).
      unroll: ``lax.scan``'s unroll factor, passed to ``run_chain``.
      key_impl: PRNG implementation of the run's key (None: JAX's default,
        threefry; ``"rbg"`` or ``"unsafe_rbg"`` draw the noise with XLA's
        RngBitGenerator instead).
      donate: donate the chain state to the jitted call, so XLA may write the
        new state over the old one.
    """
    model = setup.model

    def chain(params, key, state):
        algorithm = _algorithm(model, params, sampler, setup.chunk_size)
        return samplers.run_chain(key, algorithm, state, n_steps, unroll=unroll)

    state = _initial_state(setup, sampler)
    key = jax.random.key(2, impl=key_impl) if key_impl else jax.random.key(2)
    compiled, seconds, cost, temp = compile_jit(
        chain, setup.params, key, state, donate_argnums=(2,) if donate else ()
    )
    if donate:
        # A donated buffer is consumed: every call gets a fresh copy, made untimed.
        setup_fn = lambda: (jax.tree_util.tree_map(jnp.copy, state),)  # noqa: E731
        run = lambda s: block(compiled(setup.params, key, s))  # noqa: E731
    else:
        setup_fn = None
        run = lambda: block(compiled(setup.params, key, state))  # noqa: E731
    return Prepared(run, n_steps, setup_fn, seconds, cost, temp)


def jebm_python_loop(setup: CnnSetup, sampler: str, n_steps: int, *, donate: bool = False) -> Prepared:
    """jebm's jitted ``step`` driven by a Python loop, one dispatch per step."""
    model = setup.model

    def step(params, key, state):
        return _algorithm(model, params, sampler, setup.chunk_size).step(key, state)

    state = _initial_state(setup, sampler)
    keys = list(jax.random.split(jax.random.key(2), n_steps))
    compiled, seconds, cost, temp = compile_jit(
        step, setup.params, keys[0], state, donate_argnums=(2,) if donate else ()
    )

    def run(s):
        for k in keys:
            s, _ = compiled(setup.params, k, s)
        return block(s)

    copy = lambda: (jax.tree_util.tree_map(jnp.copy, state),)  # noqa: E731
    return Prepared(run, n_steps, copy, seconds, cost, temp)


def grad_x_fn(model):
    """``(params, x) -> ∇ₓ sum E(x)``: the gradient every sampler step needs."""
    return lambda params, x: jax.grad(lambda y: jnp.sum(model.apply(params, y)))(x)


def setup_grad_x_fn(setup: CnnSetup):
    """``grad_x_fn`` of the setup's model, in ``setup.chunk_size`` groups of chains when it has one
    (``energy_and_grad`` of a ``chunked`` energy, as jebm's sampler computes it)."""
    if not setup.chunk_size:
        return grad_x_fn(setup.model)
    return lambda params, x: samplers.energy_and_grad(
        samplers.chunked(energy_fn(setup.model, params), setup.chunk_size), x)[1]


def bare_grad(setup: CnnSetup) -> Prepared:
    """One jitted ``∇ₓE`` on the batch: the floor a sampler step cannot beat.

    With ``setup.chunk_size`` it is computed in the same groups of chains as
    jebm's sampler (``energy_and_grad`` of a ``chunked`` energy), so the
    ratio of the two is the sampler's own overhead.
    """
    compiled, seconds, cost, temp = compile_jit(setup_grad_x_fn(setup), setup.params, setup.x)
    return Prepared(lambda: block(compiled(setup.params, setup.x)), 1, None, seconds, cost, temp)


def xla_grad_flops(setup: CnnSetup) -> Optional[float]:
    """XLA's FLOP count of ∇ₓE on the whole batch, for the check against the analytic one.

    Counted on the model without micro-batches: XLA's cost analysis counts a
    loop's body once, whatever its trip count, so a micro-batched program
    would report one group's FLOPs.
    """
    backbone = setup.model.backbone
    if getattr(backbone, "micro_batch", None) is not None:
        setup = with_model(setup, setup.model.clone(backbone=backbone.clone(micro_batch=None)))
    _, _, cost, _ = compile_jit(grad_x_fn(setup.model), setup.params, setup.x)
    return cost


def grad_descent_chain(setup: CnnSetup, n_steps: int) -> Prepared:
    """``x ← x − η ∇ₓE(x)`` in ``lax.scan``: SGLD without noise or diagnostics.

    Splits a sampler step's cost: the gradient as it runs inside a scan,
    versus everything the sampler adds (noise, update, grad norms). With
    ``setup.chunk_size`` the gradient runs in the sampler's groups of chains.
    """
    grad_x = setup_grad_x_fn(setup)

    def chain(params, x):
        def body(y, _):
            return y - CNN_SGLD_STEP * grad_x(params, y), None

        return jax.lax.scan(body, x, None, n_steps)[0]

    compiled, seconds, cost, temp = compile_jit(chain, setup.params, setup.x)
    return Prepared(lambda: block(compiled(setup.params, setup.x)), n_steps, None, seconds, cost, temp)


def noise_draw(setup: CnnSetup, n_draws: int, key_impl: Optional[str] = None) -> Prepared:
    """``n_draws`` standard-normal draws shaped like the chains, in ``lax.scan``."""
    shape = setup.x.shape

    def draws(key):
        def body(total, k):
            return total + jax.random.normal(k, shape), None

        keys = jax.random.split(key, n_draws)
        return jax.lax.scan(body, jnp.zeros(shape), keys)[0]

    key = jax.random.key(3, impl=key_impl) if key_impl else jax.random.key(3)
    compiled, seconds, cost, temp = compile_jit(draws, key)
    return Prepared(lambda: block(compiled(key)), n_draws, None, seconds, cost, temp)


def blackjax_chain(setup: CnnSetup, n_steps: int) -> Prepared:
    """BlackJAX's SGLD kernel in ``lax.scan`` on the same energy.

    BlackJAX's SGLD moves along the gradient of the log-density, ``−∇ₓE``,
    with ``x + η ∇log p + √(2η) w``: the same update as jebm's SGLD at T = 1.
    """
    import blackjax  # optional: the caller checks that it is installed

    grad_x = grad_x_fn(setup.model)

    def chain(params, key, x):
        kernel = blackjax.sgld(lambda position, _: -grad_x(params, position))

        def body(position, k):
            return kernel.step(k, position, None, CNN_SGLD_STEP), None

        return jax.lax.scan(body, x, jax.random.split(key, n_steps))[0]

    key = jax.random.key(2)
    compiled, seconds, cost, temp = compile_jit(chain, setup.params, key, setup.x)
    return Prepared(lambda: block(compiled(setup.params, key, setup.x)), n_steps, None, seconds, cost, temp)


# ---------------------------------------------------------------------------
# The 2D toy: one full training iteration
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ToySetup:
    """The toy energy, its optimiser and the iteration's sizes.

    Attributes:
      model: ``make_energy("toy_mlp")``.
      params: initial parameters.
      n_chains: chains per iteration (also the data batch).
      n_steps: sampler steps per iteration (L).
    """

    model: Any
    params: Any
    n_chains: int
    n_steps: int


def toy_setup(n_chains: int = 100, n_steps: int = 500, seed: int = 0) -> ToySetup:
    """The toy energy network, initialised, for ``n_chains`` chains of ``n_steps``."""
    model = make_energy("toy_mlp")
    params = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 2), jnp.float32))
    return ToySetup(model, params, n_chains, n_steps)


def toy_iteration_fn(setup: ToySetup, sampler: str = "jebm", unroll: int = 1):
    """``(params, opt_state, key) -> (params, opt_state, loss)``, one training iteration.

    Data batch ``x⁺`` from the 8-Gaussian mixture; ``x⁻`` from ``L`` steps of
    SGLD (η = 0.01) from U(−2, 2)²; the contrastive-divergence loss
    ``mean E(x⁺) − mean E(x⁻)`` with ``x⁻`` held constant; one SGD step.

    Args:
      setup: the toy energy and sizes.
      sampler: ``"jebm"`` (``jebm.samplers.sgld`` in ``run_chain``),
        ``"blackjax"`` (BlackJAX's SGLD kernel in ``lax.scan``) or
        ``"grad_descent"`` (the chain without noise or diagnostics: the
        floor).
      unroll: ``lax.scan`` unroll factor of the chain.
    """
    model, n, n_steps = setup.model, setup.n_chains, setup.n_steps
    dataset = gmm8()
    optimizer = optax.sgd(TOY_LR)
    grad_x = grad_x_fn(model)

    def negatives(params, key, x0):
        if sampler == "jebm":
            algorithm = samplers.sgld(energy_fn(model, params), TOY_STEP)
            return samplers.run_chain(key, algorithm, algorithm.init(x0), n_steps, unroll=unroll)[0].position
        if sampler == "blackjax":
            import blackjax

            kernel = blackjax.sgld(lambda position, _: -grad_x(params, position))
            body = lambda x, k: (kernel.step(k, x, None, TOY_STEP), None)  # noqa: E731
            return jax.lax.scan(body, x0, jax.random.split(key, n_steps), unroll=unroll)[0]
        if sampler == "grad_descent":
            body = lambda x, _: (x - TOY_STEP * grad_x(params, x), None)  # noqa: E731
            return jax.lax.scan(body, x0, None, n_steps, unroll=unroll)[0]
        raise ValueError(f"sampler={sampler!r} is not one of ['blackjax', 'grad_descent', 'jebm']")

    def iteration(params, opt_state, key):
        key_data, key_init, key_chain = jax.random.split(key, 3)
        x_pos = dataset.sample(key_data, n)
        x0 = samplers.uniform(key_init, (n, 2), low=-TOY_INIT_RANGE, high=TOY_INIT_RANGE)
        x_neg = jax.lax.stop_gradient(negatives(params, key_chain, x0))

        def loss_fn(p):
            return jnp.mean(model.apply(p, x_pos)) - jnp.mean(model.apply(p, x_neg))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return iteration, optimizer


def toy_iteration(setup: ToySetup, sampler: str = "jebm", *, unroll: int = 1, donate: bool = False) -> Prepared:
    """One jitted toy training iteration per call, parameters carried across calls."""
    iteration, optimizer = toy_iteration_fn(setup, sampler, unroll)
    params = setup.params
    if donate:
        # The first call consumes what it is given: keep setup.params intact.
        params = jax.tree_util.tree_map(jnp.copy, params)
    carry = {"params": params, "opt_state": optimizer.init(params)}
    key = jax.random.key(4)
    compiled, seconds, cost, temp = compile_jit(
        iteration, carry["params"], carry["opt_state"], key, donate_argnums=(0, 1) if donate else ()
    )

    def run():
        # The same key every call: the parameters change, and speed does not
        # depend on which points are drawn.
        params, opt_state, loss = compiled(carry["params"], carry["opt_state"], key)
        carry["params"], carry["opt_state"] = params, opt_state
        return block(loss)

    return Prepared(run, 1, None, seconds, cost, temp)


def toy_memory_by_steps(step_counts, n_chains: int = 100) -> list[dict]:
    """XLA's working memory of the toy iteration for several L (compiled only)."""
    out = []
    for n_steps in step_counts:
        setup = toy_setup(n_chains, n_steps)
        iteration, optimizer = toy_iteration_fn(setup, "jebm")
        _, seconds, _, temp = compile_jit(iteration, setup.params, optimizer.init(setup.params), jax.random.key(0))
        out.append({"case": "toy_iteration", "n_steps": n_steps, "xla_temp_mb": temp, "compile_s": seconds})
    return out


def _sgld_chain(model, params, key, state, *, n_steps):
    return samplers.run_chain(key, _algorithm(model, params, "sgld"), state, n_steps)


def cnn_memory_by_steps(step_counts, batch: int, conv_impl: str = "im2col") -> list[dict]:
    """XLA's working memory of a jebm SGLD chain on the CNN for several L (compiled only)."""
    setup = cnn_setup(batch, conv_impl)
    state = _initial_state(setup, "sgld")
    out = []
    for n_steps in step_counts:
        chain = functools.partial(_sgld_chain, setup.model, n_steps=n_steps)
        _, seconds, _, temp = compile_jit(chain, setup.params, jax.random.key(0), state)
        out.append({"case": f"cnn_sgld_b{batch}", "n_steps": n_steps, "xla_temp_mb": temp, "compile_s": seconds})
    return out


# ---------------------------------------------------------------------------
# Kernels: the machine's matmul peak and one convolution
# ---------------------------------------------------------------------------


def matmul(n: int) -> Prepared:
    """One jitted float32 ``n × n`` matrix product per call."""
    a = jax.random.normal(jax.random.key(5), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(6), (n, n), jnp.float32)
    compiled, seconds, cost, temp = compile_jit(jnp.matmul, a, b)
    return Prepared(lambda: block(compiled(a, b)), 1, None, seconds, cost, temp)


def conv_forward(batch: int, conv_impl: str, shape=(16, 16, 16, 32, 3, 2)) -> Prepared:
    """One 3×3 convolution's forward pass (XLA's, or as one matmul).

    ``shape = (H, W, C_in, C_out, k, stride)``; the default is the CNN's
    second layer.
    """
    from jax import lax

    from jebm.energies.networks import conv_as_matmul

    height, width, c_in, c_out, k, stride = shape
    x = jax.random.normal(jax.random.key(7), (batch, height, width, c_in), jnp.float32)
    w = jax.random.normal(jax.random.key(8), (k, k, c_in, c_out), jnp.float32)
    numbers = lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    conv = lax.conv_general_dilated if conv_impl == "xla" else conv_as_matmul
    pad = ((k // 2, k // 2), (k // 2, k // 2))
    fn = lambda x, w: conv(x, w, (stride, stride), pad, dimension_numbers=numbers)  # noqa: E731
    compiled, seconds, cost, temp = compile_jit(fn, x, w)
    return Prepared(lambda: block(compiled(x, w)), 1, None, seconds, cost, temp)


def conv_output_hw(size: int, k: int, stride: int) -> int:
    """Output size of a ``k``-wide convolution with padding ``k // 2``."""
    return (size + 2 * (k // 2) - k) // stride + 1


def conv_forward_flops(batch: int, shape=(16, 16, 16, 32, 3, 2)) -> int:
    """FLOPs of ``conv_forward``'s convolution."""
    height, width, c_in, c_out, k, stride = shape
    out_h, out_w = conv_output_hw(height, k, stride), conv_output_hw(width, k, stride)
    return flops_lib.conv_flops(batch, out_h, out_w, c_out, k, k, c_in)
