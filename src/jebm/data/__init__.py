"""Datasets: the 2D toy mixtures (``toy``), MNIST-format digits (``mnist``), and the user's own.

``register(name, factory)`` makes a user dataset selectable by ``dataset.name``;
``train_and_evaluate(config, workdir, data=array)`` trains on an array directly
(:func:`jebm.data.pipeline.array_data`).
"""

from jebm.data.pipeline import array_data, dataset_names, register, unregister

__all__ = ["array_data", "dataset_names", "register", "unregister"]
