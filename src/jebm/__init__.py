"""jebm: energy-based models trained by maximum likelihood with MCMC sampling.

The top level re-exports the few calls a user of a whole run needs:
:func:`train_and_evaluate` (train, evaluate, write the workdir), :func:`restore`
(a run's config, model and parameters) and :func:`sample` (fresh chains on a
restored energy). They are imported on first use, so ``import jebm`` stays light.
"""

__version__ = "0.1.0"

_LAZY = {"train_and_evaluate": "jebm.train", "restore": "jebm.api", "sample": "jebm.api", "Restored": "jebm.api"}

__all__ = ["Restored", "restore", "sample", "train_and_evaluate"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jebm' has no attribute {name!r}")
