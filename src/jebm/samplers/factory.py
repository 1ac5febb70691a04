"""Samplers and chain initialisers chosen by name from a config."""

from __future__ import annotations

from typing import Callable

import jax

from jebm.samplers import base, registry
from jebm.samplers import init as chain_init
from jebm.samplers.base import EnergyFn, SamplingAlgorithm, check_choice

# jebm's constructors, whose steps also take per-step overrides (run_chain's schedules).
mala_api, sghmc_api, sgld_api = registry.mala, registry.sghmc, registry.sgld

SAMPLERS = registry.NAMES  # live: jebm's own names and those added by jebm.samplers.register
MASS_CONVENTIONS = ("inverse_mass", "mass")
CHAIN_INITS = ("gaussian", "uniform")


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
    :func:`jebm.samplers.register` (see :func:`jebm.samplers.registry.make_registered`).
    """
    check_choice("sampler.name", cfg.name, SAMPLERS)
    chunk_size = cfg.get("chunk_size", 0)
    if chunk_size:
        energy_fn = base.chunked(energy_fn, chunk_size)
    if cfg.name not in registry.BUILT_IN:
        return registry.make_registered(cfg, energy_fn)
    bounds = cfg.get("bounds")
    grad_clip = cfg.get("grad_clip")
    if cfg.name == "sgld":
        return sgld_api(energy_fn, cfg.step_size, temperature=cfg.temperature, bounds=bounds, grad_clip=grad_clip)
    if cfg.name == "mala":
        if grad_clip is not None:
            raise ValueError(
                f"sampler.grad_clip={grad_clip!r} is supported by sampler.name in ['sghmc', 'sgld'], not 'mala' "
                "(MALA is exact; set sampler.grad_clip=None)"
            )
        return mala_api(energy_fn, cfg.step_size, temperature=cfg.temperature, bounds=bounds)
    return sghmc_api(
        energy_fn,
        cfg.step_size,
        friction=cfg.friction,
        mass=effective_mass(cfg.mass, cfg.mass_convention),
        integrator=cfg.integrator,
        temperature=cfg.temperature,
        bounds=bounds,
        grad_clip=grad_clip,
    )


def make_noise_init(cfg, example_shape: tuple[int, ...]) -> Callable[[jax.Array, int], jax.Array]:
    """``noise(rng_key, n) -> (n, *example_shape)`` chains for ``cfg`` (a ``config.chain_init`` block)."""
    check_choice("chain_init.name", cfg.name, CHAIN_INITS)
    if cfg.name == "uniform":
        return lambda key, n: chain_init.uniform(key, (n, *example_shape), low=cfg.low, high=cfg.high)
    return lambda key, n: chain_init.gaussian(key, (n, *example_shape), mean=cfg.mean, std=cfg.std)
