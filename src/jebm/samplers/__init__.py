"""jebm's MCMC sampler kernels. The contract they share is in :mod:`jebm.samplers.base`.

Top-level constructors, each returning ``SamplingAlgorithm(init, step)``:

* ``sgld(energy_fn, step_size, *, temperature=1.0)``
* ``sghmc(energy_fn, step_size, *, friction, mass=1.0, integrator="symplectic_euler", temperature=1.0)``
* ``mala(energy_fn, step_size, *, temperature=1.0)``

and ``run_chain(rng_key, algorithm, state, num_steps, *, trace=False)``.
"""

from jebm.samplers import base, init, mala as mala_module, sghmc as sghmc_module, sgld as sgld_module
from jebm.samplers.base import SamplingAlgorithm, chunked, energy_and_grad
from jebm.samplers.chain import ChainSummary, run_chain
from jebm.samplers.init import PersistentBank, bank_draw, bank_init, bank_write, gaussian, uniform

sgld = sgld_module.as_top_level_api
sghmc = sghmc_module.as_top_level_api
mala = mala_module.as_top_level_api

ALGORITHMS = {"sgld": sgld, "sghmc": sghmc, "mala": mala}

__all__ = [
    "ALGORITHMS",
    "ChainSummary",
    "PersistentBank",
    "SamplingAlgorithm",
    "bank_draw",
    "bank_init",
    "bank_write",
    "base",
    "chunked",
    "energy_and_grad",
    "gaussian",
    "init",
    "mala",
    "run_chain",
    "sghmc",
    "sgld",
    "uniform",
]
