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
* :mod:`jebm.evaluation.protocol`: the evaluation a training run ends with
  (fresh chains, never the persistent bank) and the files it writes.
* :mod:`jebm.evaluation.plots`: every figure; the only module that imports
  matplotlib.

The protocol's entry points are re-exported here, so
``jebm.evaluation.evaluate_and_write`` is the run's evaluation.
"""

from jebm.evaluation.protocol import (  # noqa: F401
    evaluate_and_write,
    evaluate_images,
    evaluate_toy,
    eval_sampler_steps,
    fresh_samples,
    quality_scores,
    write_toy_outputs,
    write_training_grid,
    write_training_snapshot,
)
