"""Samplers, chain initialisers and fresh chains, built from a config's ``sampler`` and ``chain_init`` blocks."""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import jax

from jebm.samplers import base, registry
from jebm.samplers import init as chain_init
from jebm.samplers.base import EnergyFn, SamplingAlgorithm, check_choice
from jebm.samplers.chain import run_chain

MASS_CONVENTIONS = ("inverse_mass", "mass")
CHAIN_INITS = ("gaussian", "uniform")

# Config fields that change what a sampler does even at their default: a
# constructor that does not take one must not silently drop it.
_FIELDS_NOT_TO_DROP = ("bounds", "grad_clip")


def effective_mass(mass: float, convention: str) -> float:
    """The mass ``M = m·I`` of Algorithm 3 that a config's ``sampler.mass`` means.

    ``"mass"``: ``m`` is Algorithm 3's mass (``M = m·I``). ``"inverse_mass"``:
    ``m`` multiplies the momentum in the position update, as in the paper's
    author's code, so it plays the role of ``M⁻¹`` and ``M = I/m``.
    """
    check_choice("sampler.mass_convention", convention, MASS_CONVENTIONS)
    return mass if convention == "mass" else 1.0 / mass


def make_sampler(cfg, energy_fn: EnergyFn) -> SamplingAlgorithm:
    """``SamplingAlgorithm`` for ``cfg`` (a ``config.sampler`` block) on ``energy_fn``.

    ``cfg.name`` is one of jebm's samplers or a name added by
    :func:`jebm.samplers.register`; both are built the same way. The
    constructor is called with ``energy_fn`` and, as keywords, the ``cfg``
    fields named like its other parameters; ``sampler.mass`` reaches it as
    the mass ``M`` that ``sampler.mass_convention`` makes of it
    (:func:`effective_mass`). ``cfg.chunk_size > 0`` runs the energy's
    gradient passes in groups (:func:`jebm.samplers.base.chunked`). The
    algorithm's ``step`` takes per-step overrides (:func:`jebm.samplers.schedulable`).

    Raises:
      ValueError: for a name not in the registry (listing the valid ones), or
        ``sampler.bounds`` / ``sampler.grad_clip`` set for a constructor that
        does not take it.
    """
    constructor = registry.constructor(cfg.name)
    chunk_size = cfg.get("chunk_size", 0)
    if chunk_size:
        energy_fn = base.chunked(energy_fn, chunk_size)
    return registry.schedulable(constructor, energy_fn, **_options(cfg, constructor))


def _options(cfg, constructor) -> dict:
    """The ``cfg`` fields named like ``constructor``'s parameters after the energy."""
    parameters = list(inspect.signature(constructor).parameters.values())[1:]
    named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for field in _FIELDS_NOT_TO_DROP:
        if cfg.get(field) is not None and field not in named:
            raise ValueError(
                f"sampler.{field}={cfg.get(field)!r} is set, but sampler.name={cfg.name!r} "
                f"({registry.name_of(constructor)}) takes no {field!r}; set sampler.{field}=None"
            )
    options = {field: cfg[field] for field in named if field in cfg}
    if "mass" in options and "mass_convention" in cfg:
        options["mass"] = effective_mass(cfg.mass, cfg.mass_convention)
    return options


class ChainKeys(NamedTuple):
    """The three keys fresh chains use: their starting points, their initial momentum, their run."""

    start: jax.Array
    momentum: jax.Array
    run: jax.Array


def chain_keys(rng_key: jax.Array) -> ChainKeys:
    """``rng_key`` split once into the :class:`ChainKeys` of :func:`fresh_chains`."""
    return ChainKeys(*jax.random.split(rng_key, 3))


def fresh_chains(cfg, energy_fn: EnergyFn, position, keys: ChainKeys, num_steps: int):
    """Chains started at ``position`` and run ``num_steps`` steps of the ``cfg`` sampler.

    The one place training's negative chains, the evaluation's samples and
    :func:`jebm.api.sample` start and run their chains. The sampler's state is
    built at ``position`` (drawn by the caller with ``keys.start``: noise or a
    draw from the persistent bank) with its momentum from ``keys.momentum``
    where ``cfg.momentum_init == "random"`` (SGHMC; zero otherwise), and run
    with ``keys.run`` through :func:`jebm.samplers.run_chain` (``cfg.unroll``).

    Args:
      cfg: a ``config.sampler`` block.
      energy_fn: ``position -> energies``.
      position: the chains' starting points.
      keys: from :func:`chain_keys`.
      num_steps: steps to run; 0 returns the initial state (for a caller that
        runs the chains on in segments).

    Returns:
      ``(state, summary)``: the sampler's state and ``run_chain``'s
      ``ChainSummary`` (``None`` for ``num_steps=0``).
    """
    algorithm = make_sampler(cfg, energy_fn)
    state = algorithm.init(position, keys.momentum if cfg.momentum_init == "random" else None)
    if num_steps == 0:
        return state, None
    return run_chain(keys.run, algorithm, state, num_steps, unroll=cfg.unroll)


def make_noise_init(cfg, example_shape: tuple[int, ...]) -> Callable[[jax.Array, int], jax.Array]:
    """``noise(rng_key, n) -> (n, *example_shape)`` chains for ``cfg`` (a ``config.chain_init`` block)."""
    check_choice("chain_init.name", cfg.name, CHAIN_INITS)
    if cfg.name == "uniform":
        return lambda key, n: chain_init.uniform(key, (n, *example_shape), low=cfg.low, high=cfg.high)
    return lambda key, n: chain_init.gaussian(key, (n, *example_shape), mean=cfg.mean, std=cfg.std)
