"""experiments/runner.py, the experiment scripts' one way to train, reuse and merge runs; and both ways to start a script."""

import json
import shlex
import subprocess
import sys

from conftest import ROOT
from experiments import runner

# A stand-in for the CLI: writes the workdir's summary.json and one torn metrics line, prints, exits 3.
FAKE_CLI = ("import json, pathlib, sys; w = pathlib.Path(sys.argv[1]); w.mkdir(parents=True, exist_ok=True); "
            "(w / 'summary.json').write_text(json.dumps({'status': 'ok', 'wall_time_s': 12.5})); "
            "(w / 'metrics.jsonl').write_text('{\"step\": 1}\\n{\"step\": 2, \"lo'); print('trained'); sys.exit(3)")


def test_train_runs_once_then_reuses_and_reads_the_workdir_back(tmp_path, capsys):
    workdir = tmp_path / "w"
    command = [sys.executable, "-c", FAKE_CLI, str(workdir)]
    run = runner.train(command, workdir, reuse=True, label="row", log=tmp_path / "w" / "run.log")
    assert run.returncode == 3 and not run.reused and run.wall_time_s == run.wall_s > 0
    assert run.summary == {"status": "ok", "wall_time_s": 12.5}
    assert (workdir / "run.log").read_text() == "trained\n"
    assert runner.metrics(workdir) == [{"step": 1}]  # the torn last line is skipped
    assert run.shown == f"python -c {shlex.quote(FAKE_CLI)} {workdir}"
    again = runner.train(command, workdir, reuse=True, label="row")
    assert again.reused and again.returncode == 0 and again.wall_time_s == 12.5 and again.summary == run.summary
    assert "[row] reusing" in capsys.readouterr().out


def test_merge_keeps_the_rows_not_redone_and_rewrites_after_every_row(tmp_path):
    path = tmp_path / "r.json"
    assert runner.kept_rows(path, lambda r: r["name"], ["a"]) == []  # no earlier results
    path.write_text(json.dumps({"rows": [{"name": "a", "v": 0}, {"name": "b", "v": 0}]}))
    kept = runner.kept_rows(path, lambda r: r["name"], ["a", "c"])
    assert kept == [{"name": "b", "v": 0}]
    written = []
    rows = runner.run_rows([("a", 1), ("c", 2)], lambda name, v: {"name": name, "v": v},
                           lambda rows: written.append([r["name"] for r in rows]), kept)
    assert [r["name"] for r in rows] == ["b", "a", "c"] and written == [["b", "a"], ["b", "a", "c"]]


def test_a_script_starts_as_a_module_and_as_a_file_from_elsewhere(tmp_path):
    as_module = subprocess.run([sys.executable, "-m", "experiments.mnist_sweep", "--list"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    as_file = subprocess.run([sys.executable, str(ROOT / "experiments" / "mnist_sweep.py"), "--list"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    for proc in (as_module, as_file):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.startswith("cpu ") and "bank_500_3k" in proc.stdout
    assert as_module.stdout == as_file.stdout
