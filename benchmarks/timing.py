"""Timing, memory and machine facts shared by every benchmark case."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable, Optional


@dataclasses.dataclass
class Timing:
    """Wall-clock times of repeated calls, per unit of work.

    A *unit* is what a record reports: one sampler step, or one training
    iteration. A call may run several units (a chain of L steps) so that the
    per-call dispatch is spread over them, as it is in real use.

    Attributes:
      ms_median: median over the repeats of call time / units, in ms.
      ms_min: fastest repeat, per unit.
      ms_max: slowest repeat, per unit.
      repeats: number of timed calls.
      units_per_call: units of work in one call.
      cpu_ms_median: median process CPU time (all threads) per unit, in ms,
        where measured. On a machine shared with other jobs it moves less
        than wall time, so it separates JAX variants when wall times are
        noisy; it ignores parallel speedup, and PyTorch's OpenMP threads add
        their spin-waiting to it.
      cpu_ms_min: the smallest such CPU time per unit.
    """

    ms_median: float
    ms_min: float
    ms_max: float
    repeats: int
    units_per_call: int
    cpu_ms_median: Optional[float] = None
    cpu_ms_min: Optional[float] = None


def time_calls(
    fn: Callable[..., Any],
    *,
    repeats: int,
    units_per_call: int = 1,
    warmup: int = 1,
    setup: Optional[Callable[[], tuple]] = None,
) -> Timing:
    """Times ``fn(*setup())`` ``repeats`` times after ``warmup`` untimed calls.

    Args:
      fn: the work; it must block until its result is ready (JAX's calls
        return before the device finishes, so wrap them in
        ``jax.block_until_ready``).
      repeats: timed calls (≥ 1).
      units_per_call: units of work per call; times are divided by it.
      warmup: untimed calls first (caches, lazy initialisation, the first
        call's allocations).
      setup: called before every call, untimed, to build its arguments (e.g.
        fresh buffers for a jitted function that donates its inputs).

    Returns:
      The per-unit ``Timing``.
    """
    make_args = setup or (lambda: ())
    for _ in range(warmup):
        fn(*make_args())
    seconds = []
    for _ in range(max(1, repeats)):
        args = make_args()
        start = time.perf_counter()
        fn(*args)
        seconds.append(time.perf_counter() - start)
    per_unit_ms = [1e3 * s / units_per_call for s in seconds]
    return Timing(
        ms_median=statistics.median(per_unit_ms),
        ms_min=min(per_unit_ms),
        ms_max=max(per_unit_ms),
        repeats=len(per_unit_ms),
        units_per_call=units_per_call,
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds it took)``; for one-off costs such as compilation."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def max_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB).

    It only ever grows, so a case's delta shows the memory it needed beyond
    what earlier cases had already touched: a lower bound, not the case's own
    peak.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average() -> Optional[list[float]]:
    """The 1, 5 and 15 minute load averages (None where the OS has none).

    The benchmark records them at its start and end: on a shared machine a
    load above the core count means the times include waiting for a core.
    """
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The vector ISA extensions the CPU reports (AVX2, AVX-512, AMX ...)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def package_version(name: str) -> Optional[str]:
    """Installed version of distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """What the numbers were measured on: CPU, cores, backend, versions."""
    import jax

    devices = jax.devices()
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_vector_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{getattr(d, 'device_kind', '?')}" for d in devices],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": {
            name: package_version(name)
            for name in ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "blackjax", "jebm")
        },
    }


def time_interleaved(
    runs: dict[str, tuple[Callable[..., Any], int, Optional[Callable[[], tuple]]]],
    *,
    repeats: int,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Times several alternatives round-robin, reversing the order every other round: A, B, C, C, B, A, A, B, C, ...

    On a machine shared with other jobs the load drifts over seconds; taking
    the alternatives' repeats in turn exposes them to the same drift, so
    their ratios are steadier than if each were timed in one block. The
    order is reversed every other round, so that no alternative always runs
    right after the same other one: on a 2-core CPU a JAX call timed right
    after PyTorch's channels_last step can run up to 2x slower (in a fixed
    order the bare gradient, always after PyTorch, ran 3.84 ms per step
    against 2.05 ms for the same program after jebm's chain). A 20 ms sleep
    before each call was tried as well and made JAX's calls slower, 2x in
    5 of 18 cases, so there is none.

    Args:
      runs: name -> ``(fn, units_per_call, setup)`` as for ``time_calls``.
      repeats: timed calls of each.
      warmup: untimed calls of each first.

    Returns:
      name -> per-unit ``Timing``.
    """
    def call(fn, setup):
        args = setup() if setup else ()
        start, cpu_start = time.perf_counter(), time.process_time()
        fn(*args)
        return time.perf_counter() - start, time.process_time() - cpu_start

    for fn, _, setup in runs.values():
        for _ in range(warmup):
            call(fn, setup)
    seconds = {name: [] for name in runs}
    names = list(runs)
    for r in range(max(1, repeats)):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, _, setup = runs[name]
            seconds[name].append(call(fn, setup))
    out = {}
    for name, (_, units, _) in runs.items():
        per_unit_ms = [1e3 * wall / units for wall, _ in seconds[name]]
        cpu_ms = [1e3 * cpu / units for _, cpu in seconds[name]]
        out[name] = Timing(
            ms_median=statistics.median(per_unit_ms),
            ms_min=min(per_unit_ms),
            ms_max=max(per_unit_ms),
            repeats=len(per_unit_ms),
            units_per_call=units,
            cpu_ms_median=statistics.median(cpu_ms),
            cpu_ms_min=min(cpu_ms),
        )
    return out
