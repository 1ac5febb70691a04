"""Datasets: the 2D toy mixtures (``toy``) and MNIST-format digits (``mnist``)."""
