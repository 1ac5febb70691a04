"""Evaluators by name: the evaluation a training run ends with, one per kind of data.

An :class:`Evaluator` is a pair of functions: ``evaluate(config, parts,
params) -> (summary, arrays)`` runs fresh chains and scores them (``summary``
goes to ``summary.json``; ``arrays`` holds what the files are made of), and
``write(workdir, summary, arrays)`` writes its files. :data:`NAMES` lists
them:

* ``"toy"``: the 2D toy distributions (:mod:`jebm.evaluation.evaluators.toy`);
* ``"images"``: jebm's image data sets, MNIST and Fashion-MNIST
  (:mod:`jebm.evaluation.evaluators.images`);
* ``"user_data"``: a user's own array or registered dataset, 2D points or
  any other shape (:mod:`jebm.evaluation.evaluators.user_data`).

:func:`name_for` says which one a dataset gets; :func:`evaluate_and_write`
runs it. A new kind of data's evaluation is a module with its two functions
and a line in the table below.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, NamedTuple

from jebm.evaluation import plots
from jebm.evaluation.evaluators import images, toy, user_data
from jebm.samplers import base as sbase


class Evaluator(NamedTuple):
    """One kind of data's evaluation: ``evaluate`` scores a model, ``write`` writes its files."""

    evaluate: Callable[..., tuple[dict, dict]]
    """``evaluate(config, parts, params) -> (summary, arrays)``."""
    write: Callable[..., None]
    """``write(workdir, summary, arrays)``: the evaluation's files in ``workdir``."""


_evaluators: dict[str, Evaluator] = {
    "toy": Evaluator(toy.evaluate_toy, toy.write_toy_outputs),
    "images": Evaluator(images.evaluate_images, images.write_image_outputs),
    "user_data": Evaluator(user_data.evaluate_user_data, user_data.write_user_data_outputs),
}

NAMES: tuple[str, ...] = tuple(_evaluators)
"""The evaluators' names."""


def get(name: str) -> Evaluator:
    """The evaluator called ``name``.

    Raises:
      ValueError: naming ``evaluator`` and listing :data:`NAMES`.
    """
    sbase.check_choice("evaluator", name, NAMES)
    return _evaluators[name]


def name_for(data) -> str:
    """The evaluator a dataset (``jebm.data.pipeline.TrainData``) gets, by what it carries for evaluation.

    ``"toy"`` when it has a toy distribution (``data.toy``), ``"user_data"``
    when it has held-out examples (a user's array or registered dataset),
    ``"images"`` when it has MNIST-format images (``data.images``).

    Raises:
      ValueError: for a dataset that has none of the three, listing :data:`NAMES`.
    """
    if data.toy is not None:
        return "toy"
    if data.held_out is not None:
        return "user_data"
    if data.images is not None:
        return "images"
    raise ValueError(f"dataset {data.name!r} has no evaluator: it has no toy distribution, no held-out examples "
                     f"and no image data; the evaluators are {list(NAMES)}")


def evaluate_and_write(config, parts, params, workdir: Path, records) -> dict:
    """Runs the evaluator that fits the dataset (:func:`name_for`), writes its files and the training curves.

    Args:
      config: the run's config.
      parts: ``train.build_parts(config)``.
      params: the energy's parameters (the moving average when training keeps one).
      workdir: where the files go.
      records: the training metrics; non-empty: ``training_curves.png`` too.

    Returns:
      the evaluator's summary.
    """
    workdir = Path(workdir)
    evaluator = get(name_for(parts.data))
    summary, arrays = evaluator.evaluate(config, parts, params)
    evaluator.write(workdir, summary, arrays)
    if records:
        plots.plot_training_curves(workdir / "training_curves.png", records)
    logging.info("Evaluation: %s", {k: v for k, v in summary.items() if not isinstance(v, list)})
    return summary
