"""The contract every jebm sampler kernel follows, stated once.

Target distribution
    Every kernel samples from the Gibbs density of an energy ``E``
    at temperature ``T``:

    .. math::  p(x) \\propto \\exp(-E(x) / T),

    so lower energy means higher probability, and ``T = 1`` is the density the
    energy-based model defines (Eq. 2 of the paper).

Energy functions
    ``energy_fn(position) -> energies``. A *position* is a pytree (an array, a
    tuple of arrays, a dict, ...) whose every leaf has a leading *chain* axis of
    the same size ``n_chains``; ``energies`` has shape ``(n_chains,)``. Kernels
    differentiate ``sum(energy_fn(position))``: as long as the energy of chain
    ``i`` only reads chain ``i`` (no batch statistics!), the gradient of the sum
    with respect to chain ``i`` is exactly ``∇ₓE(x_i)``, so chains stay
    independent.

Kernels
    Each algorithm module (``sgld``, ``sghmc``, ``mala``) defines

    * ``State`` and ``Info`` NamedTuples;
    * ``init(position, energy_fn, ...) -> State``;
    * ``build_kernel(**static_options) -> kernel`` with
      ``kernel(rng_key, state, energy_fn, **params) -> (state, info)``;
    * ``as_top_level_api(energy_fn, ...) -> SamplingAlgorithm(init, step)``,
      re-exported as ``jebm.samplers.<name>``, with
      ``init(position, rng_key=None) -> state`` and
      ``step(rng_key, state, **params) -> (state, info)``: ``params``
      override the kernel's ``params`` for that one step (how
      ``run_chain`` applies a schedule); ``step.parameters`` names them
      (:func:`kernel_step`).

    Every ``State`` has ``position`` (the chains), ``energy`` (shape
    ``(n_chains,)``) and ``energy_grad`` (same pytree as ``position``), all at
    the same point, so one step costs exactly one energy-and-gradient
    evaluation. Every ``Info`` describes the *returned* state and carries at
    least ``energy`` and ``grad_norm`` (the per-chain Euclidean norm of
    ``∇ₓE`` over all leaves), the two diagnostics the paper tunes η by.

    Kernels are pure functions: they are never jitted inside the library, work
    under ``jax.jit``, ``jax.vmap`` and ``jax.lax.scan``, split their key once
    per consumer and never reuse it. ``jebm.samplers.run_chain`` owns the
    ``lax.scan`` over steps.

Because the state caches the energy gradient at its position, a state is tied
to the energy it was built with: after the energy's parameters change (the
outer training step), build a fresh state with ``init``.
"""

from __future__ import annotations

import math

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any
Array = jax.Array
EnergyFn = Callable[[PyTree], Array]


class SamplingAlgorithm(NamedTuple):
    """A sampler bound to its energy and parameters.

    Attributes:
      init: ``init(position, rng_key=None) -> state``.
      step: ``step(rng_key, state) -> (state, info)``.
    """

    init: Callable[..., Any]
    step: Callable[[Array, Any], tuple[Any, Any]]


def kernel_step(kernel, energy_fn: EnergyFn, owner: str, **params) -> Callable[..., tuple[Any, Any]]:
    """A constructor's ``step(rng_key, state, **overrides)``: ``kernel`` bound to ``energy_fn`` and ``params``.

    It returns ``kernel(rng_key, state, energy_fn, **params)``, with each
    override replacing that parameter for this one step, so a per-step value
    (a traced array under ``jit``/``scan``) reaches the kernel exactly as if it
    had been given at construction. ``step.parameters`` is the tuple of the
    names it takes: ``params``' keys.

    Args:
      kernel: ``kernel(rng_key, state, energy_fn, **params) -> (state, info)``.
      energy_fn: the energy the step samples.
      owner: the constructor's name, for the error message.
      **params: the kernel's parameters (e.g. ``step_size``, ``temperature``).

    Raises:
      ValueError: at step time, for an override that is not among ``params``,
        listing the ones that are.
    """

    def step(rng_key, state, **overrides):
        check_overrides(owner, params, overrides)
        return kernel(rng_key, state, energy_fn, **{**params, **overrides})

    step.parameters = tuple(params)
    return step


def step_parameters(step) -> tuple[str, ...]:
    """The per-step parameters ``step`` takes (its ``parameters``); ``()`` for a plain ``step(rng_key, state)``."""
    return tuple(getattr(step, "parameters", ()))


def check_overrides(owner: str, parameters, overrides) -> None:
    """Rejects an override that is not one of ``parameters``, naming it and listing the valid ones."""
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        raise ValueError(f"{unknown} not parameters of {owner}; it takes {list(parameters)}")


def energy_and_grad(energy_fn: EnergyFn, position: PyTree) -> tuple[Array, PyTree]:
    """Per-chain energies and ``∇ₓE`` at ``position`` in one pass.

    Args:
      energy_fn: maps a position to energies of shape ``(n_chains,)``.
      position: pytree of arrays with a leading chain axis.

    Returns:
      ``(energies, grad)``: energies of shape ``(n_chains,)`` and the gradient
      of ``sum(energies)``, a pytree shaped like ``position``.

    Raises:
      ValueError: if ``energy_fn`` does not return one energy per chain.
    """
    n_chains = num_chains(position)
    chunk = getattr(energy_fn, "chunk_size", None)
    if chunk is not None and n_chains > chunk:
        return _energy_and_grad_in_chunks(energy_fn.unchunked, position, n_chains, chunk)

    def total_energy(p):
        energies = energy_fn(p)
        if energies.shape != (n_chains,):
            raise ValueError(
                f"energy_fn must return energies of shape (n_chains,) = ({n_chains},), "
                f"got shape {energies.shape}"
            )
        return jnp.sum(energies), energies

    (_, energies), grad = jax.value_and_grad(total_energy, has_aux=True)(position)
    return energies, grad


def chunked(energy_fn: EnergyFn, chunk_size: int) -> EnergyFn:
    """``energy_fn`` whose energy-and-gradient pass runs ``chunk_size`` chains at a time.

    The returned function computes the same energies; what changes is
    :func:`energy_and_grad` (so every kernel's step): it splits the chains
    into groups of ``chunk_size`` (the last group padded with copies of the
    last chain, then dropped) and runs forward *and* backward pass of one
    group before the next (``lax.map``). The result is the same up to float
    reassociation, because chain ``i``'s energy reads only chain ``i``. On a
    CPU a group's activations stay in cache, which makes the step faster
    (measured in ``docs/samplers.md``); on GPUs it only adds a sequential
    loop, so leave it off there.

    Differentiating the returned function directly (``jax.grad``) is
    ordinary, unchunked autodiff; only ``energy_and_grad`` chunks.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")

    def fn(position):
        return energy_fn(position)

    fn.chunk_size = chunk_size
    fn.unchunked = energy_fn
    return fn


def _energy_and_grad_in_chunks(energy_fn: EnergyFn, position: PyTree, n_chains: int, chunk: int):
    groups = -(-n_chains // chunk)
    padded = groups * chunk

    def split(leaf):
        if padded > n_chains:
            edge = jnp.broadcast_to(leaf[-1:], (padded - n_chains, *leaf.shape[1:]))
            leaf = jnp.concatenate([leaf, edge])
        return leaf.reshape(groups, chunk, *leaf.shape[1:])

    def join(leaf):
        return leaf.reshape(padded, *leaf.shape[2:])[:n_chains]

    energies, grad = jax.lax.map(lambda p: energy_and_grad(energy_fn, p), jax.tree_util.tree_map(split, position))
    return join(energies), jax.tree_util.tree_map(join, grad)


def num_chains(position: PyTree) -> int:
    """Size of the leading chain axis, checked to agree across leaves."""
    sizes = {jnp.shape(leaf)[0] for leaf in jax.tree_util.tree_leaves(position)}
    if len(sizes) != 1:
        raise ValueError(
            "every leaf of a position must have the same leading chain axis, "
            f"got sizes {sorted(sizes)}"
        )
    return sizes.pop()


def per_chain_sum(tree: PyTree) -> Array:
    """Sum of every leaf over all axes but the leading chain axis, added over leaves."""
    leaves = jax.tree_util.tree_leaves(tree)
    return sum(jnp.sum(jnp.reshape(leaf, (leaf.shape[0], -1)), axis=1) for leaf in leaves)


def per_chain_sq_norm(tree: PyTree) -> Array:
    """Squared Euclidean norm of each chain's slice of ``tree``, over all leaves."""
    return per_chain_sum(jax.tree_util.tree_map(jnp.square, tree))


def per_chain_norm(tree: PyTree) -> Array:
    """Euclidean norm of each chain's slice of ``tree``, over all leaves."""
    return jnp.sqrt(per_chain_sq_norm(tree))


def normal_like(rng_key: Array, tree: PyTree) -> PyTree:
    """Standard normal noise shaped like ``tree``, one fresh key per leaf."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(rng_key, len(leaves))
    noise = [jax.random.normal(k, jnp.shape(x), jnp.result_type(x)) for k, x in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(treedef, noise)


def tree_axpy(a, x: PyTree, y: PyTree) -> PyTree:
    """``a * x + y`` leaf by leaf (``a`` a scalar)."""
    return jax.tree_util.tree_map(lambda xi, yi: a * xi + yi, x, y)


def tree_where(mask: Array, x: PyTree, y: PyTree) -> PyTree:
    """Per-chain select: chain ``i`` from ``x`` where ``mask[i]`` else from ``y``."""

    def select(xi, yi):
        m = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(xi) - 1))
        return jnp.where(m, xi, yi)

    return jax.tree_util.tree_map(select, x, y)


def check_positive(name: str, value) -> None:
    """Reject a non-positive Python number early; traced values pass through.

    Args:
      name: the parameter's name, used in the message.
      value: the value given.

    Raises:
      ValueError: naming the parameter, the value and the valid range.
    """
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_choice(name: str, value, valid) -> None:
    """Reject a name that is not among ``valid``, listing the valid names."""
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not one of {sorted(valid)}")


def check_grad_clip(grad_clip) -> float | None:
    """Validates an optional per-chain gradient-norm cap: None or a number > 0.

    Raises:
      ValueError: naming ``grad_clip`` and the valid values otherwise.
    """
    if grad_clip is None:
        return None
    try:
        value = float(grad_clip)
    except (TypeError, ValueError):
        raise ValueError(f"grad_clip must be None or a number > 0, got {grad_clip!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"grad_clip must be None or a finite number > 0, got {grad_clip!r}")
    return value


def clip_grad_norm(tree: PyTree, max_norm) -> PyTree:
    """Each chain's gradient rescaled to norm at most ``max_norm``: ``g · min(1, c / ‖g‖)``.

    ``‖g‖`` is the chain's Euclidean norm over all leaves (as
    :func:`per_chain_norm`). ``max_norm=None`` returns ``tree`` unchanged. This
    is IGEBM's ``proj_norm`` option on the Langevin drift: it caps how far one
    step can move a chain, which keeps sampling stable on energies with very
    steep walls, but the chain is then a Langevin diffusion of a different
    energy wherever the cap binds (its drift is no longer ``-∇E``), so its
    stationary law is no longer ``exp(-E/T)``.
    """
    if max_norm is None:
        return tree
    norm = per_chain_norm(tree)
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny))

    def rescale(g):
        return g * scale.reshape(scale.shape + (1,) * (jnp.ndim(g) - 1)).astype(jnp.result_type(g))

    return jax.tree_util.tree_map(rescale, tree)


def check_bounds(bounds) -> tuple[float, float] | None:
    """Validates an optional box ``(low, high)`` for the chains' coordinates.

    Raises:
      ValueError: unless ``bounds`` is None or two numbers with ``low < high``.
    """
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be None or (low, high), got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"bounds must have low < high, got {bounds!r}")
    return low, high


def clip_to_bounds(tree: PyTree, bounds) -> PyTree:
    """Every coordinate clipped into ``bounds = (low, high)``; ``tree`` unchanged when ``bounds`` is None.

    A projection: applied after a Langevin step it keeps the chains in the data's
    box (IGEBM clips its samples to the image range the same way), but the chain
    is then no longer a discretised Langevin diffusion of ``exp(-E/T)`` — mass
    that would leave the box piles up on its faces.
    """
    if bounds is None:
        return tree
    low, high = bounds
    return jax.tree_util.tree_map(lambda x: jnp.clip(x, low, high), tree)


def in_bounds(tree: PyTree, bounds) -> Array:
    """Per chain: True where every coordinate lies in ``[low, high]`` (all True without bounds)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if bounds is None:
        return jnp.ones((jnp.shape(leaves[0])[0],), bool)
    low, high = bounds
    inside = [jnp.all(jnp.reshape((x >= low) & (x <= high), (x.shape[0], -1)), axis=1) for x in leaves]
    return jnp.logical_and.reduce(jnp.stack(inside), axis=0) if len(inside) > 1 else inside[0]
