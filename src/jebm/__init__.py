"""jebm: energy-based models trained by maximum likelihood with MCMC sampling.

The top level re-exports the few calls a user of a whole run needs:
:func:`train_and_evaluate` (train, evaluate, write the workdir), :func:`restore`
(a run's config, model and parameters) and :func:`sample` (fresh chains on a
restored energy). The subpackages a user touches, ``jebm.samplers``,
``jebm.energies``, ``jebm.data`` and ``jebm.evaluation``, are attributes too,
as ``jax.numpy`` is after ``import jax``. All are imported on first use, so
``import jebm`` stays light.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {"train_and_evaluate": "jebm.train", "restore": "jebm.api", "sample": "jebm.api", "Restored": "jebm.api"}
_SUBPACKAGES = ("data", "energies", "evaluation", "samplers")

__all__ = ["Restored", "restore", "sample", "train_and_evaluate"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        # import_module also binds the subpackage as an attribute of jebm, so this runs once.
        return importlib.import_module(f"jebm.{name}")
    raise AttributeError(f"module 'jebm' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})
