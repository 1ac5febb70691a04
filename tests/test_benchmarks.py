"""Smoke test of the benchmark's record-producing code (the benchmark itself is not a test)."""

import json

import jax
import pytest

from benchmarks import run


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: compiles dominate here


def test_smoke_run_writes_records_with_the_documented_schema(tmp_path):
    # jebm and bare_grad only: PyTorch and BlackJAX are optional extras.
    results = run.run_benchmark(run.PRESETS["smoke"], impls=("jebm", "bare_grad"), log=lambda _: None)
    json_path, md_path = run.write_results(results, tmp_path)

    loaded = json.loads(json_path.read_text())
    records = loaded["records"]
    assert {(r["case"], r["impl"]) for r in records} == {
        ("cnn_sgld_b2", "jebm"), ("cnn_sgld_b2", "bare_grad"),
        ("toy_iteration", "jebm"), ("toy_iteration", "bare_grad"),
    }
    for r in records:
        assert set(run.RECORD_FIELDS) <= set(r)
        assert r["impl"] in run.IMPLS
        assert 0 < r["ms_min"] <= r["ms_median"] <= r["ms_max"]
        assert r["compile_s"] > 0
    assert loaded["machine"]["backend"] == jax.default_backend()
    assert loaded["machine"]["versions"]["jax"] == jax.__version__
    assert {"case": "cnn_sgld_b2", "kind": "overhead"}.items() <= loaded["ratios"][0].items()
    assert "| cnn_sgld_b2 | jebm |" in md_path.read_text()


def test_unknown_impl_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match="valid: \\['jebm'"):
        run.run_benchmark(run.PRESETS["smoke"], impls=("jax",))
