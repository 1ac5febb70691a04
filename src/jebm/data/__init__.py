"""Datasets: the 2D toy mixtures (``toy``), MNIST-format images (``mnist``, ``fashion_mnist``), and the user's own.

``register(name, factory)`` makes a user dataset selectable by ``dataset.name``;
``train_and_evaluate(config, workdir, data=array)`` trains on an array directly
(:func:`jebm.data.pipeline.array_data`). ``is_image_data(name)`` says whether a
``dataset.name`` is one of jebm's image data sets.
"""

from jebm.data.pipeline import array_data, dataset_names, is_image_data, register, unregister

__all__ = ["array_data", "dataset_names", "is_image_data", "register", "unregister"]
