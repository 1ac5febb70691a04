"""Shared test helpers: load configs the way the CLI does, keep compiles small."""

import importlib.util
import pathlib

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_config(name: str, arg: str | None = None):
    """``configs/<name>.py:get_config(arg)``, as ``--config=configs/<name>.py:arg`` would."""
    path = ROOT / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.fixture
def config_loader():
    return load_config


@pytest.fixture(scope="module")
def fast_compiles():
    """Skip XLA's optimisation passes for one test module: compiles dominate its time.

    For tests whose checks are of the mathematics (or of a schema), which XLA's
    optimisations must not change; the benchmark times the optimised programs.
    Use with ``pytestmark = pytest.mark.usefixtures("fast_compiles")``.
    """
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
