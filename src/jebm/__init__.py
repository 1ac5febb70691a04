"""jebm: energy-based models trained by maximum likelihood with MCMC sampling."""

__version__ = "0.1.0"
