"""Shared test helpers: load configs the way the CLI does, keep compiles small.

Compiled programs are kept in a JAX persistent compilation cache for the session: many
tests (and the CLI runs they start as subprocesses) compile the same smoke programs,
and XLA's compiles are most of their time. Each pytest-xdist worker has its own
directory (no two processes write one cache), inherited by its subprocesses, under a
temporary directory that the session removes at its end. A cached executable is the
program XLA compiled, so results are unchanged. ``JAX_COMPILATION_CACHE_DIR`` set by
the caller is respected.
"""

import atexit
import importlib.util
import os
import pathlib
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ or "JEBM_TEST_JAX_CACHE" in os.environ:
    if "JEBM_TEST_JAX_CACHE" not in os.environ:  # the first process of the session (xdist's controller) makes it
        os.environ["JEBM_TEST_JAX_CACHE"] = tempfile.mkdtemp(prefix="jebm-tests-jax-cache-")
        atexit.register(shutil.rmtree, os.environ["JEBM_TEST_JAX_CACHE"], ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
        os.environ["JEBM_TEST_JAX_CACHE"], os.environ.get("PYTEST_XDIST_WORKER", "main"))
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402  (after the cache's environment)
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

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
