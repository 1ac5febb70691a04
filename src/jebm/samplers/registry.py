"""Samplers by name: each family shaped as BlackJAX shapes its own, and the registry configs choose from.

``jebm.samplers.sgld`` (likewise ``sghmc``, ``mala``) is a :class:`SamplerAPI`:
call it as the constructor, ``sgld(energy_fn, step_size, ...) ->
SamplingAlgorithm``, and reach the module's parts as attributes,
``sgld.init``, ``sgld.build_kernel``, ``sgld.State``, ``sgld.Info`` (BlackJAX's
``blackjax.sgld`` has the same shape).

Every algorithm these constructors return has a ``step`` that also takes
parameter overrides for that one step, ``step(rng_key, state, step_size=η_l)``:
that is how :func:`jebm.samplers.run_chain` applies a per-step schedule.
:func:`schedulable` gives any other ``SamplingAlgorithm`` constructor the same
step.

``register(name, constructor)`` makes a constructor selectable by a config's
``sampler.name``; :func:`jebm.samplers.factory.make_sampler` fills its keyword
arguments from the ``config.sampler`` fields of the same name.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Callable

from jebm.samplers import base
from jebm.samplers import mala as mala_module
from jebm.samplers import sghmc as sghmc_module
from jebm.samplers import sgld as sgld_module

Constructor = Callable[..., base.SamplingAlgorithm]

# Config fields that change what a sampler does even at their default: a
# registered constructor that does not take one must not silently drop it.
_FIELDS_NOT_TO_DROP = ("bounds", "grad_clip")


def schedulable(constructor: Constructor, *args, **kwargs) -> base.SamplingAlgorithm:
    """``constructor(*args, **kwargs)``, whose ``step`` also takes per-step overrides.

    The returned ``step(rng_key, state, **params)`` with no ``params`` is the
    constructed algorithm's own step, unchanged. With ``params`` (e.g.
    ``step_size=η_l``) it is the step of ``constructor`` called again with
    those arguments replaced, so the kernel sees the step's value exactly as
    if it had been given at construction. Under ``jit``/``scan`` the value may
    be a traced array: the constructor runs once per trace, not per value.

    Only parameters the kernel reads at step time can be scheduled (for jebm's
    samplers: ``step_size``, ``temperature``, and SGHMC's ``friction`` and
    ``mass``); static options such as ``bounds``, ``integrator`` or
    ``grad_clip`` are checked as Python values and cannot be traced.

    Raises:
      ValueError: at step time, for a name that is not a parameter of
        ``constructor``, listing the ones that are.
    """
    algorithm = constructor(*args, **kwargs)
    signature = inspect.signature(constructor)

    def step(rng_key, state, **params):
        if not params:
            return algorithm.step(rng_key, state)
        unknown = sorted(set(params) - set(signature.parameters))
        if unknown:
            raise ValueError(
                f"{unknown} not parameters of {_name_of(constructor)}; it takes {list(signature.parameters)}"
            )
        bound = signature.bind(*args, **kwargs)
        bound.arguments.update(params)
        return constructor(*bound.args, **bound.kwargs).step(rng_key, state)

    return base.SamplingAlgorithm(algorithm.init, step)


class SamplerAPI:
    """A sampler family as BlackJAX exposes one: callable as its constructor, its parts as attributes.

    ``api(energy_fn, ...)`` is ``module.as_top_level_api(energy_fn, ...)``
    (through :func:`schedulable`, so its step takes per-step overrides). The
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
        return schedulable(self.as_top_level_api, *args, **kwargs)

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

BUILT_IN = {"mala": mala, "sghmc": sghmc, "sgld": sgld}
_constructors: dict[str, Constructor] = dict(BUILT_IN)

NAMES = _constructors.keys()
"""The names a config's ``sampler.name`` may take: jebm's and every registered one (a live view)."""


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
        ``sampler.grad_clip``, when set, must be among them.

    Raises:
      ValueError: if ``name`` is not a non-empty string or is one of jebm's
        own, or ``constructor`` is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"sampler name must be a non-empty string, got {name!r}")
    if name in BUILT_IN:
        raise ValueError(f"sampler name {name!r} is jebm's own; choose a name not in {sorted(BUILT_IN)}")
    if not callable(constructor):
        raise ValueError(f"constructor for sampler {name!r} must be callable, got {constructor!r}")
    _constructors[name] = constructor


def unregister(name: str) -> None:
    """Removes a name added by :func:`register` (jebm's own cannot be removed).

    Raises:
      ValueError: if ``name`` was not registered.
    """
    if name in BUILT_IN or name not in _constructors:
        registered = sorted(set(_constructors) - set(BUILT_IN))
        raise ValueError(f"sampler name {name!r} is not a registered one; registered: {registered}")
    del _constructors[name]


def make_registered(cfg, energy_fn: base.EnergyFn) -> base.SamplingAlgorithm:
    """The algorithm a registered (not built-in) ``cfg.name`` names, on ``energy_fn``.

    ``cfg`` is a ``config.sampler`` block; its fields named like the
    constructor's parameters (after the energy) become keyword arguments.

    Raises:
      ValueError: if ``cfg.name`` is not registered, or ``sampler.bounds`` /
        ``sampler.grad_clip`` is set but the constructor does not take it.
    """
    base.check_choice("sampler.name", cfg.name, NAMES)
    constructor = _constructors[cfg.name]
    parameters = inspect.signature(constructor).parameters
    named = [
        p.name
        for p in list(parameters.values())[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    for field in _FIELDS_NOT_TO_DROP:
        if cfg.get(field) is not None and field not in named:
            raise ValueError(
                f"sampler.{field}={cfg.get(field)!r} is set, but sampler.name={cfg.name!r} "
                f"({_name_of(constructor)}) takes no {field!r}; set sampler.{field}=None"
            )
    options = {field: cfg[field] for field in named if field in cfg}
    return schedulable(constructor, energy_fn, **options)


def _name_of(constructor) -> str:
    return getattr(constructor, "__qualname__", None) or repr(constructor)
