"""Samplers by name: the one table a config's ``sampler.name`` chooses from, jebm's own and the user's.

``jebm.samplers.sgld`` (likewise ``sghmc``, ``mala``) is a :class:`SamplerAPI`:
call it as the constructor, ``sgld(energy_fn, step_size, ...) ->
SamplingAlgorithm``, and reach the module's parts as attributes,
``sgld.init``, ``sgld.build_kernel``, ``sgld.State``, ``sgld.Info`` (BlackJAX's
``blackjax.sgld`` has the same shape).

Every algorithm these constructors return has a ``step`` that also takes
the kernel's parameters for that one step, ``step(rng_key, state,
step_size=η_l)`` (:func:`jebm.samplers.base.kernel_step`): that is how
:func:`jebm.samplers.run_chain` applies a per-step schedule.
:func:`schedulable` gives any other ``SamplingAlgorithm`` constructor such a
step.

``register(name, constructor)`` adds a constructor to the table;
:func:`jebm.samplers.factory.make_sampler` builds any name in it from a
``config.sampler`` block the same way.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

from jebm import names
from jebm.samplers import base
from jebm.samplers import mala as mala_module
from jebm.samplers import sghmc as sghmc_module
from jebm.samplers import sgld as sgld_module

Constructor = Callable[..., base.SamplingAlgorithm]


def schedulable(constructor: Constructor, *args, **kwargs) -> base.SamplingAlgorithm:
    """``constructor(*args, **kwargs)``, whose ``step`` also takes per-step overrides of ``kwargs``.

    An algorithm whose step already takes parameters (``step.parameters``,
    e.g. from jebm's own constructors) is returned as it is. Otherwise the
    returned ``step(rng_key, state, **params)`` with no ``params`` is the
    constructed algorithm's own step, unchanged; with ``params`` (e.g.
    ``step_size=η_l``) it is the step of ``constructor`` called again with
    those keyword arguments replaced, so the step sees the value exactly as
    if it had been given at construction. Under ``jit``/``scan`` the value may
    be a traced array: the constructor runs once per trace, not per value.

    Only keyword arguments can be overridden (``step.parameters`` lists them),
    and only those the algorithm reads at step time can take a traced value:
    static options such as ``bounds`` are checked as Python values.

    Raises:
      ValueError: at step time, for a name that is not among ``kwargs``,
        listing the ones that are.
    """
    algorithm = constructor(*args, **kwargs)
    if base.step_parameters(algorithm.step):
        return algorithm
    owner = name_of(constructor)

    def step(rng_key, state, **params):
        if not params:
            return algorithm.step(rng_key, state)
        base.check_overrides(owner, kwargs, params)
        return constructor(*args, **{**kwargs, **params}).step(rng_key, state)

    step.parameters = tuple(kwargs)
    return base.SamplingAlgorithm(algorithm.init, step)


class SamplerAPI:
    """A sampler family as BlackJAX exposes one: callable as its constructor, its parts as attributes.

    ``api(energy_fn, ...)`` is ``module.as_top_level_api(energy_fn, ...)``. The
    attributes are the module's: ``init``, ``build_kernel``, ``State``,
    ``Info``, ``as_top_level_api``, and any other public name (e.g.
    ``sghmc.INTEGRATORS``); ``module`` is the module itself.
    """

    def __init__(self, module: types.ModuleType):
        functools.update_wrapper(self, module.as_top_level_api)
        self.module = module
        self.as_top_level_api = module.as_top_level_api
        self.init = module.init
        self.build_kernel = module.build_kernel
        self.State = module.State
        self.Info = module.Info

    def __call__(self, *args, **kwargs) -> base.SamplingAlgorithm:
        return self.as_top_level_api(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set in __init__: the rest of the module's public names.
        if name.startswith("_") or "module" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.module, name)

    def __repr__(self) -> str:
        return f"<jebm sampler {self.module.__name__}>"


sgld = SamplerAPI(sgld_module)
sghmc = SamplerAPI(sghmc_module)
mala = SamplerAPI(mala_module)

_constructors: dict[str, Constructor] = {"mala": mala, "sghmc": sghmc, "sgld": sgld}
_REGISTRY = names.Registry("sampler", _constructors, _constructors, role="constructor")  # jebm's names stay fixed

NAMES = _constructors.keys()
"""The names a config's ``sampler.name`` may take: jebm's and every registered one (a live view)."""


def constructor(name: str) -> Constructor:
    """The constructor ``config.sampler.name = name`` selects.

    Raises:
      ValueError: naming ``sampler.name`` and listing the valid names.
    """
    base.check_choice("sampler.name", name, NAMES)
    return _constructors[name]


def register(name: str, constructor: Constructor) -> None:
    """Makes ``constructor`` selectable as ``config.sampler.name = name``.

    Args:
      name: a new name; registering a name again replaces its constructor,
        but jebm's own names (``"mala"``, ``"sghmc"``, ``"sgld"``) are fixed.
      constructor: ``constructor(energy_fn, **options) -> SamplingAlgorithm``
        following the contract of :mod:`jebm.samplers.base`
        (``init(position, rng_key=None)``, ``step(rng_key, state)``). From a
        config it is called with ``energy_fn`` and, as keywords, the
        ``config.sampler`` fields named like its other parameters (e.g.
        ``step_size``, ``temperature``); ``sampler.bounds`` and
        ``sampler.grad_clip``, when set, must be among them
        (:func:`jebm.samplers.factory.make_sampler`).

    Raises:
      ValueError: if ``name`` is not a non-empty string or is one of jebm's
        own, or ``constructor`` is not callable.
    """
    _REGISTRY.register(name, constructor)


def unregister(name: str) -> None:
    """Removes a name added by :func:`register` (jebm's own cannot be removed).

    Raises:
      ValueError: if ``name`` was not registered.
    """
    _REGISTRY.unregister(name)


def name_of(constructor) -> str:
    """``module.qualname`` of a constructor, for messages."""
    qualname = getattr(constructor, "__qualname__", None)
    if qualname is None:
        return repr(constructor)
    module = getattr(constructor, "__module__", None)
    return f"{module}.{qualname}" if module else qualname
