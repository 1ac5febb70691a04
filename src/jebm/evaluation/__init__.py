"""Everything jebm measures, in one place.

* :mod:`jebm.evaluation.metrics`: the toy's 2D KS statistic, B*, the discretised
  KL and mode fractions.
* :mod:`jebm.evaluation.quality`: the MNIST sample-quality score (classifier
  FID/KID, class entropy, confidence) in one call.
* :mod:`jebm.evaluation.classifier`: the small CNN those scores use, its
  deterministic training and its input scaling;
  :mod:`jebm.evaluation.classifier_cache` keeps trained ones on disk.
* :mod:`jebm.evaluation.features`: FID, KID, class-histogram entropy and mean
  confidence from features and class probabilities (NumPy, no model).
* :mod:`jebm.evaluation.likelihood`: log-partition functions and likelihoods
  (exact quadrature in 2D, annealed importance sampling and its reverse).
* :mod:`jebm.evaluation.diagnostics`: MCMC chain diagnostics (autocorrelation,
  ESS, split-R̂) and the drift-to-noise ratio of a Langevin step.
* :mod:`jebm.evaluation.chains`: the fresh chains every evaluation scores
  (never the persistent bank), long runs and their diagnostics.
* :mod:`jebm.evaluation.evaluators`: the evaluation a training run ends with,
  one evaluator per kind of data (the 2D toy, images, a user's data), chosen
  by name, each with the files it writes.
* :mod:`jebm.evaluation.snapshots`: the sample grids and 2D fits a run writes
  while it trains.
* :mod:`jebm.evaluation.convergence`: the convergence watch of long chains
  during training.
* :mod:`jebm.evaluation.plots`: every figure; the only module that imports
  matplotlib.

The entry points are re-exported here, so
``jebm.evaluation.evaluate_and_write`` is the run's evaluation.
"""

from jebm.evaluation.chains import eval_sampler_steps, fresh_samples  # noqa: F401
from jebm.evaluation.evaluators import evaluate_and_write  # noqa: F401
from jebm.evaluation.evaluators.images import evaluate_images, quality_scores  # noqa: F401
from jebm.evaluation.evaluators.toy import evaluate_toy, write_toy_outputs  # noqa: F401
from jebm.evaluation.snapshots import write_training_grid, write_training_snapshot  # noqa: F401
