"""experiments/mnist_sweep.py: every variant's config is valid, and --reuse/--merge/--seeds keep and label rows."""

import json
import sys
from pathlib import Path

from jebm import config_lib, config_validation

from experiments import _common
from experiments import mnist_sweep as sweep

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_mnist_ablations import _set  # noqa: E402  (the CLI's parsing of --config.FIELD=VALUE)


def _config_of(name):
    config = _common.load_config(sweep.config_of(name))
    for override in sweep.VARIANTS[name][1]:
        field, _, value = override.partition("=")
        if value == "None":
            _set(config, field, "(None,)")  # what ml_collections makes of --config.FIELD=None on a tuple
        else:
            _set(config, field, value)
    config_lib.none_from_command_line(config)
    return config


def test_every_variant_builds_a_valid_config():
    for name in sweep.VARIANTS:
        config_validation.validate(_config_of(name))
    assert _config_of("mala_unbounded").sampler.bounds is None
    assert _config_of("warmup").optimizer.warmup_steps == 200


def test_presets_are_the_rows_that_measured_them():
    # The scores docs/reproductions.md quotes for :cpu_3k and :cpu_6k are these rows' scores.
    for row, preset in (("bank_500_3k", "cpu_3k"), ("bank_500_6k", "cpu_6k")):
        assert _config_of(row).to_json() == _common.load_config(f"configs/mnist_sgld.py:{preset}").to_json(), preset
    # :cpu is :cpu_6k on two CPU devices: the same training, split over two cores.
    cpu = _common.load_config("configs/mnist_sgld.py:cpu")
    assert (cpu.sharding.num_cpu_devices, cpu.sharding.enabled) == (2, True)
    assert cpu.training.sample_every == 500  # half as many training grids: they do not change the training
    cpu.sharding.num_cpu_devices, cpu.sharding.enabled, cpu.training.sample_every = 0, False, 250
    assert cpu.to_json() == _common.load_config("configs/mnist_sgld.py:cpu_6k").to_json()


def _fake_run(workdir: Path, summary: dict, metrics=()):
    workdir.mkdir(parents=True)
    (workdir / "summary.json").write_text(json.dumps(summary))
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))


def test_reuse_merge_and_seeds_keep_earlier_rows_and_label_diverged_runs(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "out"
    ok = {"status": "ok", "sampler_steps": 1000, "wall_time_s": 600.0, "quality": {"fid": 90.0, "class_entropy": 2.2}}
    _fake_run(root / "warmup", ok)
    _fake_run(root / "warmup_s1", {"status": "diverged", "step": 128, "wall_time_s": 30.0})
    _fake_run(root / "mala", {"status": "diverged", "step": 99, "wall_time_s": 30.0},
              [{"step": 10, "acceptance_rate": 0.004}, {"step": 90, "acceptance_rate": 0.0}])
    common = ["--reuse", f"--workroot={root}", f"--out-dir={out}"]
    assert sweep.main(["--variants=mala", *common]) == 0
    assert sweep.main(["--variants=warmup", "--seeds=0,1", "--merge", *common]) == 0
    rows = json.loads((out / "mnist_sweep.json").read_text())["rows"]
    assert [(r["variant"], r["seed"], r["diverged"]) for r in rows] == [
        ("mala", 0, True), ("warmup", 0, False), ("warmup", 1, True)]
    assert "--config.seed=1" in rows[2]["command"] and "seed=" not in rows[1]["command"]
    assert rows[0]["acceptance_rate"]["first"] == 0.004 and rows[0]["acceptance_rate"]["last_step"] == 90
    md = (out / "mnist_sweep.md").read_text()
    assert "| warmup | 1 |" in md and "yes, step 128 |" in md and "| warmup | 0 | 1000 | 90.0 |" in md
    assert "## warmup (seed 1):" in md and "0.004 at step 10" in md
    # A hand-written reading of the table survives the next regeneration, once, between the table and the rows.
    table_end = md.index("\n\n## mala")
    (out / "mnist_sweep.md").write_text(md[:table_end] + "\n\n## What it shows\n\n- warmup seed 1 diverged.\n" + md[table_end:])
    assert sweep.main(["--variants=warmup", "--seeds=1", "--merge", *common]) == 0
    md = (out / "mnist_sweep.md").read_text()
    assert md.count("## What it shows") == 1 and md.count("- warmup seed 1 diverged.") == 1
    assert "{" not in md.splitlines()[2] and f"`{sweep.SHORTRUN}`" in md  # the header's names are filled in
    assert md.index("| warmup | 1 |") < md.index("## What it shows") < md.index("## mala")


def test_toy_table_rewrite_keeps_its_what_it_shows_section(tmp_path):
    # toy_table1.py rewrites its .md after every row; the hand-written reading below the table must survive.
    from experiments import toy_table1

    row = {"label": "SGHMC (activation)", "config": "configs/gmm_sghmc.py:quadratic", "ks": [0.06, 0.07],
           "ks_long": [0.06, 0.06], "b_star": [0.05, 0.05], "kl": [0.01, 0.2], "paper_ks": (0.08, 0.002),
           "paper_kl": (0.077, 0.005), "diverged": [False, False], "seconds": 10.0}
    md = tmp_path / "t.md"
    toy_table1.write_markdown(md, [row], "--best", best=True)
    assert "## What it shows" not in md.read_text()
    md.write_text(md.read_text() + "\n## What it shows\n\n- two seeds, one ring.\n")
    toy_table1.write_markdown(md, [dict(row, kl=[0.01, 0.02])], "--best --rows x", best=True)
    text = md.read_text()
    assert text.count("## What it shows") == 1 and text.count("- two seeds, one ring.") == 1
    assert "1.50e-02" in text and text.index("| SGHMC (activation) |") < text.index("## What it shows")
