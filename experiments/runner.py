"""Training runs of the experiment scripts: each one the CLI in its own workdir, read back through the library.

A script builds each row's command with :func:`cli_command`, trains it with
:func:`train` (or, with ``--reuse``, reads a workdir that already has a
``summary.json``), and turns the :class:`Run` into a row. :func:`run_rows` runs a
selection and rewrites the results after every row, so a partial run leaves a
partial table; with ``--merge`` a script starts from :func:`kept_rows`, the rows of
its earlier results file that this call does not redo.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Hashable, Iterable

from experiments._common import ROOT
from jebm import fileio


def cli_command(config: str, workdir: Path, overrides: Iterable[str] = (), *, progress: bool | None = False) -> list[str]:
    """``python -m jebm.main --config=CONFIG --workdir=WORKDIR --config.FIELD=VALUE ...`` as an argv.

    ``progress=False`` adds ``--config.training.progress=False`` (no progress bar in a log
    file); ``None`` leaves the config's own setting.
    """
    quiet = ["training.progress=False"] if progress is False else []
    return [sys.executable, "-m", "jebm.main", f"--config={config}", f"--workdir={workdir}",
            *(f"--config.{o}" for o in [*quiet, *overrides])]


def shown(command: list[str]) -> str:
    """The command as a reader would type it: ``python`` for the interpreter, arguments shell-quoted."""
    return " ".join(["python", *map(shlex.quote, command[1:])])


def summary(workdir: Path) -> dict | None:
    """The run's ``summary.json`` (written when it finished, or stopped on a divergence); ``None`` before that."""
    path = Path(workdir) / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def metrics(workdir: Path) -> list[dict]:
    """The run's logged training records (``metrics.jsonl``), a line torn by a kill skipped."""
    return fileio.read_jsonl(Path(workdir) / "metrics.jsonl")


def newest_scores(workdir: Path) -> tuple[Path, dict]:
    """The run's newest evaluation: its highest ``eval_<step>.json`` (``--mode=eval``), else ``summary.json``."""
    workdir = Path(workdir)
    evals = sorted(workdir.glob("eval_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    source = evals[-1] if evals else workdir / "summary.json"
    return source, json.loads(source.read_text())


@dataclasses.dataclass
class Run:
    """One CLI run: trained now, or reused from its workdir.

    Attributes:
      workdir: the run's workdir.
      command: its argv (``sys.executable`` first); :attr:`shown` is the readable form.
      returncode: the CLI's exit status; 0 for a reused run.
      wall_s: seconds the command took; ``None`` for a reused run.
      summary: its ``summary.json``, ``None`` where it wrote none (it failed, or is unfinished).
    """

    workdir: Path
    command: list[str]
    returncode: int
    wall_s: float | None
    summary: dict | None

    @property
    def reused(self) -> bool:
        return self.wall_s is None

    @property
    def shown(self) -> str:
        return shown(self.command)

    @property
    def wall_time_s(self) -> float | None:
        """Seconds it took: measured now, or the reused run's own ``wall_time_s``."""
        return self.wall_s if self.wall_s is not None else (self.summary or {}).get("wall_time_s")


def train(command: list[str], workdir: Path, *, reuse: bool, label: str, log: Path | None = None) -> Run:
    """Runs ``command`` (a :func:`cli_command`) from the repository root, unless ``reuse`` and ``workdir`` has a summary.

    A failed run is reported by its ``returncode``, not raised. ``log``: a file for the
    command's output (default: this process's stdout and stderr). ``label`` prefixes the
    line printed before the run.
    """
    workdir = Path(workdir)
    if reuse and (workdir / "summary.json").exists():
        print(f"[{label}] reusing {workdir / 'summary.json'}", flush=True)
        return Run(workdir, command, 0, None, summary(workdir))
    print(f"[{label}] {shown(command)}", flush=True)
    t0 = time.time()
    if log is None:
        returncode = subprocess.run(command, cwd=ROOT, check=False).returncode
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            returncode = subprocess.run(command, cwd=ROOT, check=False, stdout=out, stderr=subprocess.STDOUT).returncode
    return Run(workdir, command, returncode, time.time() - t0, summary(workdir))


def read_results(path: Path) -> dict:
    """An earlier results file of a script (``<out-dir>/<name>.json``); ``{}`` where there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def kept_rows(path: Path, key: Callable[[dict], Hashable], redo: Iterable[Hashable]) -> list[dict]:
    """The rows of an earlier results file whose ``key(row)`` is not in ``redo``: runs of other sessions that ``--merge`` keeps."""
    redo = set(redo)
    return [r for r in read_results(path).get("rows", []) if key(r) not in redo]


def run_rows(selection: Iterable, run_one: Callable[..., dict], write: Callable[[list[dict]], object],
             kept: Iterable[dict] = ()) -> list[dict]:
    """``run_one(*item)`` for each item of ``selection``, after the ``kept`` rows; ``write(rows)`` after every row."""
    rows = list(kept)
    for item in selection:
        rows.append(run_one(*item))
        write(rows)
    return rows
