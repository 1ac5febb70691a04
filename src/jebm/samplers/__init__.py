"""jebm's MCMC sampler kernels. The contract they share is in :mod:`jebm.samplers.base`.

Top-level constructors, each returning ``SamplingAlgorithm(init, step)``:

* ``sgld(energy_fn, step_size, *, temperature=1.0)``
* ``sghmc(energy_fn, step_size, *, friction, mass=1.0, integrator="symplectic_euler", temperature=1.0)``
* ``mala(energy_fn, step_size, *, temperature=1.0)``

Each is also its module, as in BlackJAX: ``sgld.init``, ``sgld.build_kernel``,
``sgld.State``, ``sgld.Info`` (:class:`jebm.samplers.registry.SamplerAPI`).

``run_chain(rng_key, algorithm, state, num_steps, *, trace=False, schedule=None)``
runs a chain, with optional per-step parameter schedules, and
``register(name, constructor)`` makes any ``SamplingAlgorithm`` constructor
selectable by a config's ``sampler.name`` (:mod:`jebm.samplers.registry`
holds the one table of names). :mod:`jebm.samplers.proposal` holds the
Langevin proposal and the Metropolis–Hastings step the kernels share;
:mod:`jebm.samplers.conventions` converts other code's Langevin (step, noise)
pairs to jebm's (η, T).
"""

from jebm.samplers import base, conventions, init, proposal
from jebm.samplers.base import SamplingAlgorithm, chunked, energy_and_grad
from jebm.samplers.chain import ChainSummary, run_chain
from jebm.samplers.init import PersistentBank, bank_draw, bank_init, bank_write, gaussian, uniform
from jebm.samplers.registry import SamplerAPI, mala, register, schedulable, sghmc, sgld, unregister

# The modules themselves, under the names earlier jebm code imported them by.
mala_module, sghmc_module, sgld_module = mala.module, sghmc.module, sgld.module

__all__ = [
    "ChainSummary",
    "PersistentBank",
    "SamplerAPI",
    "SamplingAlgorithm",
    "bank_draw",
    "bank_init",
    "bank_write",
    "base",
    "chunked",
    "conventions",
    "energy_and_grad",
    "gaussian",
    "init",
    "mala",
    "proposal",
    "register",
    "run_chain",
    "schedulable",
    "sghmc",
    "sgld",
    "uniform",
    "unregister",
]
