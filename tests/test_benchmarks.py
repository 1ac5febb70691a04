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


def _record(case, impl, ms, sampler="sgld", batch=64, pct=None):
    return {"case": case, "impl": impl, "ms_median": ms, "sampler": sampler, "batch": batch,
            "pct_of_matmul_peak": pct}


def test_targets_hold_every_cnn_case_to_both_goals_and_report_the_peak_share():
    records = [
        _record("cnn_sgld_b256", "jebm", 10.0, batch=256, pct=30.0),
        _record("cnn_sgld_b256", "torch_channels_last", 9.0, batch=256),
        _record("cnn_sgld_b256", "bare_grad", 9.6, batch=256),
        _record("cnn_sghmc_b1024", "jebm", 40.0, sampler="sghmc", batch=1024, pct=35.0),
        _record("cnn_sghmc_b1024", "torch_channels_last", 44.0, sampler="sghmc", batch=1024),
        _record("cnn_sghmc_b1024", "bare_grad", 39.0, sampler="sghmc", batch=1024),
    ]
    by_name = {t["target"]: t for t in run.targets(records, memory=[])}
    assert by_name["cnn_sgld_b256: jebm no slower than torch channels_last"]["value"] == pytest.approx(0.9)
    assert by_name["cnn_sgld_b256: jebm no slower than torch channels_last"]["met"] is False
    assert by_name["cnn_sgld_b256: sampler overhead over bare ∇ₓE"]["value"] == pytest.approx(10 / 9.6 - 1)
    assert by_name["cnn_sgld_b256: sampler overhead over bare ∇ₓE"]["met"] is True
    assert by_name["cnn_sghmc_b1024: jebm no slower than torch channels_last"]["met"] is True
    assert by_name["cnn_sghmc_b1024: sampler overhead over bare ∇ₓE"]["met"] is True
    assert by_name["cnn_sghmc_b1024: jebm's share of the matmul peak (%)"]["value"] == 35.0
    assert by_name["cnn_sghmc_b1024: jebm's share of the matmul peak (%)"]["met"] is None
    assert len(by_name) == 6


def test_quick_and_full_presets_cover_batch_256_for_both_samplers():
    for name in ("quick", "full"):
        preset = run.PRESETS[name]
        assert 256 in preset.sgld_batches and 256 in preset.sghmc_batches
        assert set(preset.sgld_batches) | set(preset.sghmc_batches) <= set(preset.steps_per_call)
    assert run.PRESETS["full"].sghmc_batches == (64, 256, 1024)


def test_median_of_runs_takes_each_runs_own_ratio_and_rejudges_the_median(tmp_path):
    from benchmarks import median_of_runs

    def fake(values, load):
        return {"preset": "full", "started": "t", "load_average_start": load, "load_average_end": load,
                "machine": {"cpu_model": "cpu"},
                "targets": [{"target": "a: jebm no slower than torch channels_last", "value": v, "goal": ">= 1",
                             "met": v >= 1} for v in values[:1]]
                + [{"target": "a: share of peak", "value": values[1], "goal": "reported", "met": None}],
                "ratios": [{"case": "a", "compare": "torch_channels_last / jebm", "median": values[0]}]}

    dirs = []
    for i, (vals, load) in enumerate((([0.9, 30.0], [1.5]), ([1.1, 31.0], [0.1]), ([1.05, 29.0], [0.2]))):
        d = tmp_path / f"r{i}"
        d.mkdir()
        (d / "results.json").write_text(json.dumps(fake(vals, load)))
        dirs.append(d)
    combined = {e["name"]: e for e in median_of_runs.combine(median_of_runs.load(dirs))}
    target = combined["a: jebm no slower than torch channels_last"]
    assert target["values"] == [0.9, 1.1, 1.05] and target["median"] == 1.05 and target["met"] is True
    assert combined["a: share of peak"]["median"] == 30.0 and combined["a: share of peak"]["met"] is None
    ratios = median_of_runs.combine(median_of_runs.load(dirs), "ratios")
    assert ratios[0]["name"] == "a: torch_channels_last / jebm" and ratios[0]["median"] == 1.05
    text = median_of_runs.markdown(dirs, median_of_runs.load(dirs))
    assert "| a: jebm no slower than torch channels_last | 0.900 | 1.100 | 1.050 | 1.050 | >= 1 | yes |" in text
    with pytest.raises(FileNotFoundError, match="no results.json"):
        median_of_runs.load([tmp_path / "missing"])


def test_interleaved_timing_alternates_the_order_so_no_run_always_follows_the_same_one():
    from benchmarks import timing

    order = []
    runs = {name: (lambda name=name: order.append(name), 1, None) for name in "abc"}
    out = timing.time_interleaved(runs, repeats=3, warmup=0)
    assert order == list("abccbaabc")
    follows = {(x, y) for x, y in zip(order, order[1:]) if x != y}  # y timed right after x
    assert {("a", "b"), ("c", "b"), ("b", "c"), ("b", "a")} <= follows  # b after a and after c
    assert set(out) == set("abc") and all(t.repeats == 3 for t in out.values())
