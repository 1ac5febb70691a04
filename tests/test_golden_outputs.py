"""Every shipped config's smoke run gives the outputs recorded in golden_outputs.json, bit for bit.

Four CLI runs (two of them MNIST with the quality classifier) take minutes, so
the check runs only when asked for, ``JEBM_GOLDEN=1 python -m pytest tests/test_golden_outputs.py``,
or as ``python tests/golden_outputs.py --check``. The fingerprint's own pieces are
tested here cheaply.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import golden_outputs

HERE = Path(__file__).resolve().parent


def test_summary_numbers_keep_scores_and_drop_timings():
    summary = {"ks": 0.25, "train_time_s": 3.0, "wall_time_s": 9.0, "first_step_s_incl_compile": 1.0,
               "data": "gmm8", "quality": {"fid": 1.5, "class_histogram": [1, 2]},
               "long_run": {"curve": [{"steps": 10, "seconds": 4.0, "fid": float("nan")}]}}
    assert golden_outputs.summary_numbers(summary) == {
        "ks": 0.25, "quality/fid": 1.5, "quality/class_histogram": [1, 2],
        "long_run/curve/0/steps": 10, "long_run/curve/0/fid": "nan"}


def test_metrics_records_lose_their_timings_at_any_depth():
    record = {"step": 4, "wall_time": 1.0, "convergence": [{"steps": 2, "seconds": 0.5, "fid": 3.0}]}
    assert golden_outputs._without_timings(record) == {"step": 4, "convergence": [{"steps": 2, "fid": 3.0}]}


def test_differences_name_each_changed_missing_and_new_field():
    want = {"run": {"arrays": {"samples.npy": "a"}, "summary": {"ks": 0.25, "kl": 1.0}}}
    got = {"run": {"arrays": {"samples.npy": "b"}, "summary": {"ks": 0.25, "nll": 2.0}}}
    assert golden_outputs.differences(want, got) == [
        "run/arrays/samples.npy: golden 'a', now 'b'",
        "run/summary/kl: missing (golden 1.0)",
        "run/summary/nll: new (2.0)"]
    assert golden_outputs.differences(want, want) == []


@pytest.mark.skipif(not os.environ.get("JEBM_GOLDEN"), reason="minutes of CLI runs: set JEBM_GOLDEN=1")
def test_smoke_runs_of_every_config_match_the_golden_outputs():
    proc = subprocess.run([sys.executable, str(HERE / "golden_outputs.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
