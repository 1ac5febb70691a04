"""The smoke run of every shipped config, fingerprinted: a refactor must leave them bit-identical.

Runs ``python -m jebm.main --config=configs/<name>.py:smoke`` for every config
in ``src/jebm/configs`` (the MNIST ones on a tiny fake IDX directory written
as the tests write it), each in its own process with this checkout's ``src``
first on ``PYTHONPATH``, and records per run:

* the SHA-256 of every ``.npy`` output (and of each array in every ``.npz``),
  taken over dtype, shape and the raw bytes;
* the SHA-256 of ``metrics.jsonl``'s records without their timings (at any depth);
* every number of ``summary.json`` except timings, by its ``/``-joined path.

``--write`` stores them in ``golden_outputs.json`` beside this file; ``--check``
compares and exits 1 with the differences listed. Numbers are compared
exactly: XLA's float order depends on the thread count, so run it as the
golden file was made (all of the machine's cores, no ``taskset``). The MNIST
runs' numbers can also differ between machines and between loads of one
machine; to compare two versions of the code, write a golden file with one
and check the other right after it, on the same machine.

    python tests/golden_outputs.py --check
    python tests/golden_outputs.py --write [--configs gmm_sgld,mnist_sgld]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOLDEN = HERE / "golden_outputs.json"
CONFIGS = sorted(p.stem for p in (ROOT / "src" / "jebm" / "configs").glob("*.py") if not p.stem.startswith("_"))
PRESET = "smoke"


def _is_timing(key: str) -> bool:
    """Summary fields that measure the machine, not the model: seconds and wall times."""
    return key.endswith("_s") or "_s_" in key or "time" in key or "seconds" in key


def summary_numbers(tree, prefix: str = "") -> dict:
    """The summary's numbers (lists of numbers kept whole), timings left out, keyed by path."""
    out = {}
    for key, value in sorted(tree.items()):
        if _is_timing(key):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(summary_numbers(value, name + "/"))
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):
                out.update(summary_numbers(item, f"{name}/{i}/"))
        elif isinstance(value, (bool, int, float)) or (
                isinstance(value, list) and all(isinstance(v, (bool, int, float)) for v in value)):
            out[name] = _json_safe(value)
    return out


def _json_safe(value):
    """NaN and infinities as strings, so that the golden file is plain JSON and compares exactly."""
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def array_digest(array: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def fingerprint(workdir: Path) -> dict:
    """What a run must reproduce exactly: its arrays, its training curve and its scores."""
    arrays = {}
    for path in sorted(workdir.glob("*.npy")):
        arrays[path.name] = array_digest(np.load(path))
    for path in sorted(workdir.glob("*.npz")):
        with np.load(path) as npz:
            for key in sorted(npz.files):
                arrays[f"{path.name}:{key}"] = array_digest(npz[key])
    records = []
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.append(_without_timings(record))
    metrics = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    summary = json.loads((workdir / "summary.json").read_text())
    return {"arrays": arrays, "metrics_jsonl": metrics, "summary": summary_numbers(summary)}


def _without_timings(tree):
    """``tree`` with every timing field left out, at any depth (the convergence watch's rows carry ``seconds``)."""
    if isinstance(tree, dict):
        return {k: _without_timings(v) for k, v in tree.items() if not _is_timing(k)}
    if isinstance(tree, list):
        return [_without_timings(v) for v in tree]
    return tree


def run_smoke(name: str, scratch: Path, mnist_dir: Path) -> dict:
    workdir = scratch / name
    args = [sys.executable, "-m", "jebm.main", f"--config={ROOT}/src/jebm/configs/{name}.py:{PRESET}",
            f"--workdir={workdir}"]
    if name.startswith("mnist"):
        args += ["--config.dataset.source=idx", f"--config.dataset.data_dir={mnist_dir}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
               JEBM_COMPILATION_CACHE="", JEBM_DATA_DIR=str(scratch / "jebm_data"))
    t0 = time.time()
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{name}:{PRESET} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    print(f"{name}:{PRESET}: {time.time() - t0:.0f} s", file=sys.stderr)
    return fingerprint(workdir)


def run_all(names) -> dict:
    sys.path[:0] = [str(HERE), str(ROOT / "src")]  # this checkout's jebm, whatever PYTHONPATH says
    from test_mnist_train import write_fake_mnist  # the tests' fake IDX digits

    with tempfile.TemporaryDirectory(prefix="jebm_golden_") as tmp:
        scratch = Path(tmp)
        mnist_dir = scratch / "fake_mnist"
        mnist_dir.mkdir()
        write_fake_mnist(mnist_dir)
        return {f"{name}:{PRESET}": run_smoke(name, scratch, mnist_dir) for name in names}


def differences(want: dict, got: dict, path: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(want) | set(got)):
            where = f"{path}/{key}" if path else key
            if key not in got:
                out.append(f"{where}: missing (golden {want[key]!r})")
            elif key not in want:
                out.append(f"{where}: new ({got[key]!r})")
            else:
                out += differences(want[key], got[key], where)
        return out
    return [] if want == got else [f"{path}: golden {want!r}, now {got!r}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"regenerate {GOLDEN.name}")
    mode.add_argument("--check", action="store_true", help=f"compare with {GOLDEN.name}; exit 1 on a difference")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    args = parser.parse_args(argv)
    names = [n for n in args.configs.split(",") if n]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {unknown}; valid: {CONFIGS}")
    got = run_all(names)
    if args.write:
        golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        golden.update(got)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN} ({', '.join(got)})")
        return 0
    golden = json.loads(GOLDEN.read_text())
    diff = differences({k: golden.get(k) for k in got}, got)
    if diff:
        print(f"{len(diff)} difference(s) from {GOLDEN.name}:\n" + "\n".join(diff))
        return 1
    print(f"identical to {GOLDEN.name}: {', '.join(got)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
