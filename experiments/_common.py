"""Shared helpers for the experiment scripts (config loading, tables)."""

from __future__ import annotations

import importlib.util
import json
import platform
import subprocess
from pathlib import Path

import jax
import numpy as np

from jebm import fileio

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"


def load_config(spec: str):
    """``configs/<file>.py[:presets]`` -> ConfigDict, as the CLI reads it."""
    path, _, arg = spec.partition(":")
    module_path = ROOT / path if not Path(path).is_absolute() else Path(path)
    module_spec = importlib.util.spec_from_file_location("experiment_config", module_path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


FINDINGS = "## What it shows"


def findings(md: Path) -> list[str]:
    """The hand-written section of an earlier results file (from its ``## What it shows`` heading to the next
    ``## `` heading or the environment line), so that regenerating the table keeps the reading of it."""
    if not md.exists():
        return []
    lines = md.read_text().splitlines()
    if FINDINGS not in lines:
        return []
    start = lines.index(FINDINGS)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("## ", "jax "))), len(lines))
    while end > start + 1 and not lines[end - 1].strip():  # the writer adds its own blank line after it
        end -= 1
    return lines[start:end]


def mean_std(values) -> tuple[float, float]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def fmt(mean: float, std: float) -> str:
    return f"{mean:.2e} ± {std:.2e}"


def environment() -> str:
    """One line about where the numbers came from."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (f"jax {jax.__version__} on {jax.default_backend()} ({cpu}, {os.cpu_count()} cores), "
            f"Python {platform.python_version()}, jebm commit {commit}")


def write_json(path: Path, obj) -> None:
    """``obj`` as indented JSON, its keys in the order the script built them, written atomically (``jebm.fileio``)."""
    fileio.write_bytes(path, json.dumps(obj, indent=2).encode())
