"""What a run shows: TensorBoard scalars, images and hparams, mid-training snapshots, and progress in logs."""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from tensorboardX.proto import event_pb2

from jebm import reporting, train
from tests.conftest import load_config


def read_events(directory: Path) -> dict:
    """Every event file under ``directory``: ``{"scalars": {tag: {step: value}}, "images": {tag: [steps]}, "plugins": set}``.

    Event files are TFRecords: an 8-byte length, a 4-byte CRC, the serialised
    ``Event`` and a 4-byte CRC.
    """
    out = {"scalars": defaultdict(dict), "images": defaultdict(list), "plugins": set()}
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name:
                    out["plugins"].add(value.metadata.plugin_data.plugin_name)
                if value.HasField("simple_value"):
                    out["scalars"][value.tag][event.step] = value.simple_value
                elif value.HasField("image"):
                    out["images"][value.tag].append(event.step)
    return out


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("visible")
    config = load_config("gmm_sghmc", "smoke")
    config.training.sample_every = 3  # a snapshot at step 3 of 6
    summary = train.train_and_evaluate(config, workdir)
    return workdir, summary


def test_tensorboard_holds_training_scalars_evaluation_scores_images_and_hparams(toy_run):
    workdir, summary = toy_run
    events = read_events(workdir / "tensorboard")
    scalars, images = events["scalars"], events["images"]
    assert set(scalars["train/loss"]) == {2, 4, 6}
    # the snapshots' KS at steps 3 and 6, then the final evaluation's scores at step 6
    assert set(scalars["snapshot/ks"]) == {3, 6} and set(scalars["eval/ks"]) == {6}
    assert scalars["eval/ks"][6] == pytest.approx(summary["ks"], rel=1e-6)
    for tag in ("eval/kl", "eval/nll_exact", "eval/nll_ais", "eval/ks_long", "eval/likelihood/log_z_ais"):
        assert 6 in scalars[tag], tag
    assert scalars["eval/kl"][6] == pytest.approx(summary["kl"], rel=1e-6)
    assert images["snapshot"] == [3, 6]  # the snapshots' figures
    for name in ("toy_fit", "toy_fit_long", "training_curves"):
        assert images[f"images/{name}"] == [6], name
    assert "hparams" in events["plugins"]
    assert (workdir / "grids" / "fit_step0000003.png").exists()


def test_progress_is_a_log_line_when_stderr_is_not_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert isinstance(reporting.progress(100, 0, True, 30.0), reporting.LogProgress)
    assert reporting.progress(100, 0, False) is None
    now = [0.0]
    bar = reporting.LogProgress(total=100, start=20, every_s=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO):
        now[0] = 10.0
        bar.update(10)  # 10 s < 30 s: no line yet
        assert not caplog.records
        now[0] = 40.0
        bar.set_postfix(E_pos="1.5")
        bar.update(10)  # 20 steps in 40 s: 0.5 steps/s, 60 left: 2 min
        assert caplog.records[-1].getMessage() == "train: step 40/100 (40%), 0.5 steps/s, ETA 2m00s, E_pos 1.5"
        now[0] = 41.0
        bar.update(60)  # the last step always logs
        assert caplog.records[-1].getMessage().startswith("train: step 100/100 (100%)")
