"""Packaging: one metadata file, and the configs reachable after a regular install."""

import importlib
import importlib.resources
import tomllib

import ml_collections
import pytest
from packaging.requirements import Requirement

from conftest import ROOT
from jebm import launch

CONFIG_NAMES = sorted(p.stem for p in (ROOT / "src" / "jebm" / "configs").glob("*.py") if p.stem != "__init__")


def test_config_argument_falls_back_to_the_installed_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    packaged = importlib.resources.files("jebm.configs") / "mnist_sgld.py"
    argv = ["jebm.main", "--config=configs/mnist_sgld.py:cpu", "--config.seed=1", "--workdir=w"]
    assert launch.resolve_config_argv(argv) == ["jebm.main", f"--config={packaged}:cpu", "--config.seed=1", "--workdir=w"]
    assert launch.resolve_config_argv(["m", "--config", "configs/gmm_sgld.py"])[2] == str(
        importlib.resources.files("jebm.configs") / "gmm_sgld.py")
    # Not a shipped config: left for ml_collections to report.
    assert launch.resolve_config_argv(["m", "--config=configs/nope.py"]) == ["m", "--config=configs/nope.py"]


def test_config_argument_that_exists_is_left_alone(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mnist_sgld.py").write_text("def get_config(arg=None):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    argv = ["jebm.main", "--config=configs/mnist_sgld.py:cpu", "--workdir=w"]
    assert launch.resolve_config_argv(argv) == argv
    monkeypatch.chdir(ROOT)  # the clone's configs link
    assert launch.resolve_config_argv(argv) == argv


def test_clone_configs_is_the_package_directory():
    assert (ROOT / "configs").resolve() == (ROOT / "src" / "jebm" / "configs").resolve()
    assert CONFIG_NAMES == ["gmm_sghmc", "gmm_sgld", "mnist_convergent", "mnist_sghmc", "mnist_sgld"]


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_every_config_is_importable_from_the_package(name):
    module = importlib.import_module(f"jebm.configs.{name}")
    assert isinstance(module.get_config(), ml_collections.ConfigDict)
    assert isinstance(module.get_config("smoke"), ml_collections.ConfigDict)


def test_pyproject_is_the_one_metadata_source():
    assert not (ROOT / "setup.cfg").exists() and not (ROOT / "setup.py").exists()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "jebm" and project["requires-python"] == ">=3.11"
    deps = {r.name: r for r in map(Requirement, project["dependencies"])}
    assert deps["jax"].specifier.contains("0.10.2") and deps["jax"].specifier.contains("0.12.0")
    assert deps["flax"].specifier.contains("0.12.12")
    extras = project["optional-dependencies"]
    assert set(extras) == {"test", "docs", "viz", "cuda12", "bench"}
    for reqs in extras.values():
        [Requirement(r) for r in reqs]  # each parses
    assert (ROOT / project["license-files"][0]).is_file()
