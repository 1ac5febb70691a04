"""Targets and ratios over several benchmark runs: ``python -m benchmarks.median_of_runs DIR... [--out F]``.

Each ``DIR`` holds the ``results.json`` of one ``python -m benchmarks.run``
process. On a shared or throttled CPU one process's medians can be off by a
large factor (a core taken by another job for the whole run), so the
speed targets are better judged on the median over separate runs of each
run's own in-run ratio. Ratios are never formed across runs: every value
combined here is ``other ms / jebm ms`` (or ``jebm / bare_grad − 1``) from
inside one run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
from typing import Optional


def load(dirs: list[pathlib.Path]) -> list[dict]:
    """The ``results.json`` of each directory, in order.

    Raises:
      FileNotFoundError: naming the directory that has no ``results.json``.
    """
    out = []
    for d in dirs:
        path = d / "results.json" if d.is_dir() else d
        if not path.is_file():
            raise FileNotFoundError(f"{d}: no results.json (run python -m benchmarks.run --out {d} first)")
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def combine(runs: list[dict], field: str = "targets") -> list[dict]:
    """Per entry of ``runs[i][field]`` (``"targets"`` or ``"ratios"``, matched by name): each run's value and their median.

    Entries missing from some runs get ``None`` there and a median over the
    runs that have them. ``met`` of a target is re-judged on the median with
    the goal's own rule (``>= x`` or ``<= x``); reported-only entries keep
    ``met = None``.
    """
    names: list[str] = []
    values: dict[str, list[Optional[float]]] = {}
    goals: dict[str, str] = {}
    for i, run in enumerate(runs):
        for entry in run.get(field, []):
            name = entry["target"] if field == "targets" else f"{entry['case']}: {entry['compare']}"
            if name not in values:
                names.append(name)
                values[name] = [None] * len(runs)
            values[name][i] = entry["value"] if field == "targets" else entry["median"]
            goals[name] = entry.get("goal", "")
    out = []
    for name in names:
        present = [v for v in values[name] if v is not None]
        median = statistics.median(present)
        out.append({"name": name, "values": values[name], "median": median, "goal": goals[name],
                    "met": _judge(goals[name], median)})
    return out


def _judge(goal: str, value: float) -> Optional[bool]:
    goal = goal.strip()
    if goal.startswith(">="):
        return value >= float(goal[2:])
    if goal.startswith("<="):
        return value <= float(goal[2:])
    return None


def markdown(dirs: list[pathlib.Path], runs: list[dict]) -> str:
    """Both tables (targets, then all ratios) with one column per run."""
    head = "| entry | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " | median | goal | met |"
    rule = "|---|" + "---:|" * (len(runs) + 1) + "---|---|"
    lines = ["# jebm benchmark: median over separate runs", ""]
    for i, (d, run) in enumerate(zip(dirs, runs)):
        m = run["machine"]
        lines.append(f"- run {i + 1}: `{d}`, preset {run['preset']}, started {run['started']}, "
                     f"{m['cpu_model']}, load average start {run['load_average_start']} end {run['load_average_end']}")
    for title, field in (("Targets (each run's medians; median over runs)", "targets"),
                         ("Ratios (same-run; median over runs)", "ratios")):
        lines += ["", f"## {title}", "", head, rule]
        for e in combine(runs, field):
            cells = ["–" if v is None else f"{v:.3f}" for v in e["values"]]
            met = "–" if e["met"] is None else ("yes" if e["met"] else "**no**")
            lines.append(f"| {e['name']} | " + " | ".join(cells) + f" | {e['median']:.3f} | {e['goal'] or '–'} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=pathlib.Path, help="results folders of separate runs")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write the markdown here (default: print)")
    args = parser.parse_args(argv)
    runs = load(args.dirs)
    text = markdown(args.dirs, runs)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
