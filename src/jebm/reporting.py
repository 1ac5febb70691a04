"""What a training run reports as it goes: ``metrics.jsonl``, TensorBoard and progress.

* :class:`MetricsLog`: the logged training records, one JSON object a line in
  ``workdir/metrics.jsonl`` and as TensorBoard scalars, cut back to the resumed
  step on restart; :func:`read_metrics` reads them back.
* :func:`write_tensorboard_summary`: the final evaluation's scores, figures and
  the config as hparams.
* :func:`progress`: a tqdm bar on a terminal, :class:`LogProgress` log lines elsewhere.

Only process 0 (``jax.process_index()``) writes files.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import jax

from jebm import fileio


def read_metrics(path: str | Path, up_to_step: int | None = None) -> list[dict]:
    """The records of a ``metrics.jsonl`` (all, or those up to ``up_to_step``); lines torn by a kill are skipped."""
    return [r for r in fileio.read_jsonl(path) if up_to_step is None or r.get("step", 0) <= up_to_step]


class MetricsLog:
    """``metrics.jsonl`` plus TensorBoard, truncated to the resumed step on restart.

    TensorBoard (``workdir/tensorboard``) gets every logged scalar under
    ``train/``, the mid-training snapshots' scores under ``snapshot/`` and their
    figures as the image ``snapshot``; :func:`write_tensorboard_summary` adds
    the final evaluation and the config. Only process 0 writes (``jax.process_index()``).
    """

    def __init__(self, workdir: Path, resume_step: int):
        self.path = workdir / "metrics.jsonl"
        self.records = self.read(self.path, resume_step)
        self.writes = jax.process_index() == 0  # the others keep the records in memory only
        self._rewrite()
        self.tb = _tensorboard_writer(workdir, purge_step=resume_step + 1)

    read = staticmethod(read_metrics)

    def _rewrite(self):
        if not self.writes:
            return
        fileio.write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in self.records).encode())

    def write(self, record: dict):
        self.records.append(record)
        if self.writes:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"train/{key}", value, record["step"])

    def snapshot(self, png: Path | None, scalars: dict, step: int, *, prefix: str = "snapshot",
                 image: str = "snapshot") -> None:
        """A mid-training check: its scores under ``<prefix>/`` and its figure as the image ``<image>``."""
        if self.tb is None:
            return
        for key, value in scalars.items():
            self.tb.add_scalar(f"{prefix}/{key}", value, step)
        if png is not None:
            _add_png(self.tb, image, png, step)

    def close(self):
        if self.tb is not None:
            self.tb.close()


def _tensorboard_writer(workdir: Path, **kwargs):
    """A tensorboardX writer on ``workdir/tensorboard``, or None on processes other than 0."""
    if jax.process_index() != 0:
        return None
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(workdir / "tensorboard"), **kwargs)


def _add_png(tb, tag: str, png: Path, step: int) -> None:
    from jebm.evaluation import plots

    tb.add_image(tag, plots.read_png_rgb(png), step, dataformats="HWC")


# The figures a run's evaluation writes, shown in TensorBoard under images/<name>.
EVALUATION_FIGURES = ("toy_fit", "toy_fit_long", "energy_fit", "samples", "samples_long", "long_run",
                      "ais_convergence", "training_curves")


def _flat_scalars(tree, prefix: str = "") -> dict:
    """The finite numbers of a nested summary, keyed by their ``/``-joined path (lists are skipped)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat_scalars(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def write_tensorboard_summary(config, workdir: Path, summary: dict, step: int) -> None:
    """The final evaluation in TensorBoard: every score under ``eval/``, the figures, and the config as hparams.

    Scores: the summary's numbers (KS, KL, NLL, FID, KID, class entropy, AIS,
    ...; nested ones as ``eval/quality/fid``). Hparams: every scalar config
    field, with the headline scores as the hparams metrics.
    """
    tb = _tensorboard_writer(workdir)
    if tb is None:
        return
    try:
        scores = _flat_scalars({k: v for k, v in summary.items() if k not in ("drift_noise", "head")})
        for key, value in scores.items():
            tb.add_scalar(f"eval/{key}", value, step)
        for name in EVALUATION_FIGURES:
            if (workdir / f"{name}.png").exists():
                _add_png(tb, f"images/{name}", workdir / f"{name}.png", step)
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                   for k, v in _flat_config(config.to_dict()).items()}
        headline = {f"hparam/{k}": v for k, v in scores.items()
                    if k in ("ks", "kl", "nll_exact", "nll_ais", "quality/fid", "quality/kid_mean", "quality/class_entropy")}
        tb.add_hparams(hparams, headline, name="hparams", global_step=step)
    finally:
        tb.close()


def _flat_config(tree, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat_config(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = value
    return out


def progress(total: int, start: int, enabled: bool, every_s: float = 30.0, desc: str = "train"):
    """A tqdm bar on a terminal; elsewhere (a log file, a batch job) a log line every ``every_s`` seconds.

    ``desc`` names what advances (training's steps, or ``"sample"``'s sampler steps in ``jebm.sample``).
    """
    if not enabled:
        return None
    if not sys.stderr.isatty():
        return LogProgress(total, start, every_s, desc=desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True, mininterval=1.0)


class LogProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` as log lines: step, share done, steps/s, ETA and the postfix.

    The rate counts the steps of this process since it started (a resumed run's
    earlier steps are not in it), so the ETA is that of the remaining steps.
    """

    def __init__(self, total: int, start: int, every_s: float, clock=time.monotonic, desc: str = "train"):
        self.total, self.step, self.every_s, self.clock, self.desc = total, start, every_s, clock, desc
        self.t0 = self.last = clock()
        self.start, self.postfix = start, {}

    def update(self, n: int = 1) -> None:
        self.step += n
        now = self.clock()
        if now - self.last >= self.every_s or self.step >= self.total:
            self.last = now
            logging.info("%s", self.line(now))

    def line(self, now: float) -> str:
        rate = (self.step - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - self.step) / rate if rate > 0 else float("inf")
        post = "".join(f", {k} {v}" for k, v in self.postfix.items())
        return (f"{self.desc}: step {self.step}/{self.total} ({100 * self.step / max(self.total, 1):.0f}%), "
                f"{rate:.3g} steps/s, ETA {_duration(eta)}{post}")

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = values

    def close(self) -> None:
        pass


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "unknown"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"
