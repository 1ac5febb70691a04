"""jebm's speed benchmark, in one process: ``python -m benchmarks.run [--quick] --out DIR``.

Cases (``case`` in the results):

* ``cnn_sgld_b{64,256,1024}``: one SGLD step on the paper's custom CNN
  (Table 3) with ``{64,256,1024}`` chains of 28×28 images;
* ``cnn_sghmc_b64``: one SGHMC step, 64 chains;
* ``toy_iteration``: one full toy training iteration: 100 chains, L = 500
  SGLD steps (η = 0.01) from U(−2, 2)², the contrastive-divergence loss and
  one SGD step (lr 0.01), on the 2D 8-Gaussian mixture with
  ``make_energy("toy_mlp")``.

Implementations (``impl``): ``jebm`` (jebm's sampler through ``run_chain``,
i.e. one ``lax.scan``), ``torch_eager`` and ``torch_channels_last`` (the same
network and loop written plainly in PyTorch), ``blackjax`` (BlackJAX's SGLD
kernel in ``lax.scan`` on the same energy), ``bare_grad`` (one jitted
``∇ₓE`` on the same batch: the floor; for the toy, the iteration with its
chain replaced by plain gradient descent). Times are per sampler step, or per
iteration for ``toy_iteration``. PyTorch and BlackJAX are optional: when one
is missing its rows are skipped with a printed note.

Writes ``DIR/results.json`` (``records``: one per case and implementation)
and ``DIR/results.md``; see ``benchmarks/README.md`` for every field.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import sys
from typing import Callable, Optional

import jax
import numpy as np

from benchmarks import flops as flops_lib
from benchmarks import jax_cases as jc
from benchmarks import torch_impl
from benchmarks.timing import load_average, machine_info, max_rss_mb, time_interleaved
from jebm.energies import resolve_conv_impl

IMPLS = ("jebm", "torch_eager", "torch_channels_last", "blackjax", "bare_grad")
RECORD_FIELDS = ("case", "impl", "ms_median", "ms_min", "ms_max")
SCHEMA_VERSION = 1

# "Memory flat in L": XLA's working memory may grow by at most this many bytes
# per extra step, e.g. run_chain's array of per-step PRNG keys (8 bytes a
# step), while keeping anything per chain per step (a trace: 800 bytes a step
# for the toy's 100 chains, 200 KB for 64 images) would fail.
FLAT_BYTES_PER_STEP = 16


@dataclasses.dataclass(frozen=True)
class Preset:
    """How much to measure.

    Attributes:
      name: ``"full"``, ``"quick"`` or ``"smoke"``.
      sgld_batches: chain counts of the ``cnn_sgld_b*`` cases.
      sghmc_batches: chain counts of the ``cnn_sghmc_b*`` cases.
      steps_per_call: chain count -> sampler steps per timed call.
      repeats: timed calls per implementation.
      toy_chains: chains (and data points) per toy iteration.
      toy_steps: SGLD steps per toy iteration (L).
      matmul_n: size of the matmul that gives the peak.
      kernels: also time a matmul and one convolution in each framework.
      levers: also run the lever study (``benchmarks.levers``).
      lever_batches: chain counts of the conv_impl lever.
      micro_batch_lever_batches: chain counts of the micro_batch lever.
      xla_flag_levers: include the XLA-flag lever (child processes).
      memory_steps_toy: L values of the toy memory-versus-L check.
      memory_steps_cnn: L values of the CNN memory-versus-L check.
    """

    name: str
    sgld_batches: tuple
    sghmc_batches: tuple
    steps_per_call: dict
    repeats: int
    toy_chains: int
    toy_steps: int
    matmul_n: int
    kernels: bool
    levers: bool
    lever_batches: tuple = ()
    micro_batch_lever_batches: tuple = ()
    xla_flag_levers: bool = False
    memory_steps_toy: tuple = ()
    memory_steps_cnn: tuple = ()


# Steps per call keep each timed call near 0.1-0.3 s on a 2-core CPU, so the
# per-call dispatch is spread over the steps as in real use (L = 1000 in the
# paper) while a full run stays within minutes.
PRESETS = {
    "full": Preset(
        name="full", sgld_batches=(64, 256, 1024), sghmc_batches=(64, 256, 1024),
        steps_per_call={64: 20, 256: 8, 1024: 3}, repeats=7, toy_chains=100, toy_steps=500,
        matmul_n=1024, kernels=True, levers=True, lever_batches=(64, 256), micro_batch_lever_batches=(256, 1024),
        xla_flag_levers=True,
        memory_steps_toy=(50, 500, 5000), memory_steps_cnn=(10, 100, 1000),
    ),
    "quick": Preset(
        name="quick", sgld_batches=(64, 256), sghmc_batches=(64, 256), steps_per_call={64: 10, 256: 4}, repeats=5,
        toy_chains=100, toy_steps=500, matmul_n=1024, kernels=True, levers=False,
        memory_steps_toy=(50, 5000),
    ),
    "smoke": Preset(
        name="smoke", sgld_batches=(2,), sghmc_batches=(), steps_per_call={2: 2}, repeats=2,
        toy_chains=2, toy_steps=2, matmul_n=64, kernels=False, levers=False,
    ),
}

# On an accelerator a step takes microseconds: more steps per call keep the
# host's dispatch out of the per-step time.
ACCELERATOR_STEP_FACTOR = 10


def default_chunk_size(backend: str) -> Optional[int]:
    """Chains per energy-and-gradient pass in jebm's rows: 64 on CPU, all at once elsewhere.

    On CPU a group's activations stay in cache (the ``chunk_size`` lever);
    on an accelerator the groups would only serialise the work.
    """
    return 64 if backend == "cpu" else None


def _steps(preset: Preset, batch: int, backend: str) -> int:
    factor = 1 if backend == "cpu" else ACCELERATOR_STEP_FACTOR
    return preset.steps_per_call[batch] * factor


def _device_peak_mb() -> Optional[float]:
    """JAX's device peak memory so far in MiB (GPU); None on CPU, which has no stats."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats or "peak_bytes_in_use" not in stats else stats["peak_bytes_in_use"] / jc.MiB


class Bench:
    """Collects the records of one run; each case times its implementations round-robin."""

    def __init__(self, preset: Preset, impls, conv_impl: str, log: Callable[[str], None],
                 chunk_size: Optional[int] = None):
        self.preset, self.impls, self.conv_impl, self.log = preset, tuple(impls), conv_impl, log
        self.chunk_size = chunk_size
        self.backend = jax.default_backend()
        self.records: list[dict] = []
        self.notes: list[str] = []
        self.checks: dict = {}
        self.peak_gflops: Optional[float] = None
        self.torch_device = torch_impl.device_for(self.backend) if torch_impl.available() else None
        self._skipped: set[str] = set()  # optional packages already noted as missing

    def note(self, text: str) -> None:
        self.log(f"  note: {text}")
        self.notes.append(text)

    def wanted(self, impl: str) -> bool:
        """Whether ``impl`` is selected and installed; notes the reason when it is not."""
        if impl not in self.impls:
            return False
        if impl.startswith("torch") and not torch_impl.available():
            if "torch" not in self._skipped:
                self.note("PyTorch is not installed: torch_* rows skipped (pip install torch==2.13.0)")
                self._skipped.add("torch")
            return False
        if impl == "blackjax" and not _blackjax_available():
            if "blackjax" not in self._skipped:
                self.note("BlackJAX is not installed: blackjax rows skipped (pip install blackjax)")
                self._skipped.add("blackjax")
            return False
        return True

    def measure_case(self, case: str, builders: dict, *, flops_per_unit: Optional[float], unit: str,
                     meta: dict, xla_flops_check: Optional[tuple[str, Callable[[], Optional[float]]]] = None) -> None:
        """Builds each implementation (compiling it), then times them round-robin.

        Args:
          case: the case's name.
          builders: impl -> zero-argument function returning a ``jax_cases.Prepared``.
          flops_per_unit: analytic FLOPs per step or iteration, for GFLOP/s.
          unit: ``"step"`` or ``"iteration"``.
          meta: fields copied into every record (batch, L, ...).
          xla_flops_check: ``(impl, count)``: ``count()`` gives XLA's FLOPs
            per unit, recorded on ``impl``'s row beside the analytic count.
        """
        prepared, memory = {}, {}
        for impl, build in builders.items():
            rss_before = max_rss_mb()
            try:
                p = build()
                # Two warm-up calls: the first one also pays lazy initialisation.
                for _ in range(2):
                    p.run(*(p.setup() if p.setup else ()))
            except Exception as e:  # noqa: BLE001 - report and go on with the others
                self.note(f"{case}/{impl} failed and is skipped: {type(e).__name__}: {e}")
                continue
            prepared[impl] = p
            memory[impl] = {"rss_delta_mb": max_rss_mb() - rss_before, "device_peak_mb": _device_peak_mb()}
        timings = time_interleaved(
            {impl: (p.run, p.units_per_call, p.setup) for impl, p in prepared.items()},
            repeats=self.preset.repeats, warmup=0,
        )
        for impl, t in timings.items():
            p = prepared[impl]
            gflops = None if not flops_per_unit else flops_per_unit / (t.ms_median * 1e6)
            record = {
                "case": case, "impl": impl, "unit": unit,
                "ms_median": t.ms_median, "ms_min": t.ms_min, "ms_max": t.ms_max,
                "repeats": t.repeats, "units_per_call": t.units_per_call,
                "cpu_ms_median": t.cpu_ms_median,
                **meta,
                "flops_per_unit": flops_per_unit,
                "gflops": gflops,
                "pct_of_matmul_peak": None if not (gflops and self.peak_gflops) else 100 * gflops / self.peak_gflops,
                "compile_s": p.compile_s,
                "xla_temp_mb": p.xla_temp_mb,
                **memory[impl],
            }
            if xla_flops_check and impl == xla_flops_check[0]:
                xla_flops = xla_flops_check[1]()
                if xla_flops:
                    record["xla_flops_per_unit"] = xla_flops
                    record["analytic_over_xla_flops"] = flops_per_unit / xla_flops
            self.records.append(record)
            self.log(f"  {case:15s} {impl:20s} {t.ms_median:9.3f} ms  [{t.ms_min:.3f}, {t.ms_max:.3f}]"
                     + (f"  {gflops:6.1f} GFLOP/s" if gflops else "")
                     + (f"  compile {p.compile_s:.2f} s" if p.compile_s else ""))

    # -- the cases ---------------------------------------------------------

    def matmul_peak(self) -> None:
        """The float32 matmul rate that the GFLOP/s columns are compared with."""
        n = self.preset.matmul_n if self.backend == "cpu" else 8192
        p = jc.matmul(n)
        runs = {"jax": (p.run, 1, None)}
        if torch_impl.available():
            runs["torch"] = (torch_impl.matmul_run(n, self.torch_device), 1, None)
        timings = time_interleaved(runs, repeats=max(5, self.preset.repeats), warmup=2)
        rates = {k: flops_lib.matmul_flops(n) / (t.ms_min * 1e6) for k, t in timings.items()}
        # The best of both frameworks: the machine's attainable rate, not one library's.
        self.peak_gflops = max(rates.values())
        self.checks["matmul"] = {"n": n, **{f"{k}_gflops_best": v for k, v in rates.items()}}
        self.log(f"  matmul {n}x{n} float32: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in rates.items()))

    def cnn_case(self, sampler: str, batch: int) -> None:
        case = f"cnn_{sampler}_b{batch}"
        n_steps = _steps(self.preset, batch, self.backend)
        setup = jc.cnn_setup(batch, self.conv_impl, chunk_size=self.chunk_size)
        builders = {}
        if self.wanted("jebm"):
            builders["jebm"] = lambda: jc.jebm_chain(setup, sampler, n_steps)
        for impl, channels_last in (("torch_eager", False), ("torch_channels_last", True)):
            if self.wanted(impl):
                builders[impl] = self._torch_cnn_builder(setup, sampler, n_steps, channels_last)
        if sampler == "sgld" and self.wanted("blackjax"):
            builders["blackjax"] = lambda: jc.blackjax_chain(setup, n_steps)
        if self.wanted("bare_grad"):
            builders["bare_grad"] = lambda: jc.bare_grad(setup)
        meta = {"batch": batch, "steps_per_call": n_steps, "sampler": sampler, "conv_impl": self.conv_impl,
                "micro_batch": setup.model.backbone.micro_batch if self.conv_impl == "im2col" else None,
                "chunk_size": self.chunk_size}
        self.measure_case(case, builders, flops_per_unit=flops_lib.cnn_grad_x_flops(batch), unit="step",
                          meta=meta, xla_flops_check=("bare_grad", lambda: jc.xla_grad_flops(setup)))

    def _torch_cnn_builder(self, setup: jc.CnnSetup, sampler: str, n_steps: int, channels_last: bool):
        device = self.torch_device

        def build():
            net = torch_impl.cnn_from_flax(setup.params, device, channels_last)
            energy = torch_impl.quadratic_energy(net, setup.model.offset)
            x = torch_impl.images_from_jax(setup.x, device, channels_last)
            self._check_torch(setup, energy, x, "channels_last" if channels_last else "eager")
            chain = torch_impl.sgld_chain if sampler == "sgld" else torch_impl.sghmc_chain

            def run():
                out = chain(energy, x, n_steps)
                torch_impl.synchronize(device)
                return out

            return jc.Prepared(run, n_steps)

        return build

    def _check_torch(self, setup: jc.CnnSetup, energy, x, layout: str) -> None:
        """Once per batch and layout: PyTorch computes the same energy and gradient as jebm."""
        key = f"torch_{layout}_vs_jax_b{setup.batch}"
        if key in self.checks:
            return
        e_jax = np.asarray(jax.jit(setup.model.apply)(setup.params, setup.x))
        g_jax = np.asarray(jax.jit(jc.grad_x_fn(setup.model))(setup.params, setup.x))
        self.checks[key] = torch_impl.check_cnn(energy, x, e_jax, g_jax)

    def toy_case(self) -> None:
        preset = self.preset
        toy = jc.toy_setup(preset.toy_chains, preset.toy_steps)
        builders = {}
        if self.wanted("jebm"):
            builders["jebm"] = lambda: jc.toy_iteration(toy, "jebm")
        if self.wanted("torch_eager"):
            device = self.torch_device
            builders["torch_eager"] = lambda: jc.Prepared(
                torch_impl.ToyIteration(toy.params, toy.n_chains, toy.n_steps, device), 1)
        if self.wanted("blackjax"):
            builders["blackjax"] = lambda: jc.toy_iteration(toy, "blackjax")
        if self.wanted("bare_grad"):
            builders["bare_grad"] = lambda: jc.toy_iteration(toy, "grad_descent")
        if "torch_channels_last" in self.impls:
            self.log("  toy_iteration: torch_channels_last does not apply (no images); no row")
        meta = {"batch": toy.n_chains, "steps_per_call": toy.n_steps, "sampler": "sgld"}
        flops = flops_lib.toy_iteration_flops(toy.n_chains, toy.n_steps, toy.n_chains)
        self.measure_case("toy_iteration", builders, flops_per_unit=flops, unit="iteration", meta=meta)

    def kernels(self) -> list[dict]:
        """One 3×3 convolution's forward pass in each framework (the CNN's conv2, batch 256)."""
        batch, shape = 256, (16, 16, 16, 32, 3, 2)
        flops = jc.conv_forward_flops(batch, shape)
        runs = {}
        for impl in ("xla", "im2col"):
            p = jc.conv_forward(batch, impl, shape)
            runs[f"jax conv ({impl})"] = (p.run, 1, None)
        if torch_impl.available():
            for channels_last in (False, True):
                name = "torch conv" + (" channels_last" if channels_last else "")
                runs[name] = (torch_impl.conv_forward_run(batch, shape, self.torch_device, channels_last), 1, None)
        timings = time_interleaved(runs, repeats=max(5, self.preset.repeats), warmup=2)
        out = []
        for name, t in timings.items():
            out.append({"kernel": f"conv3x3 s2 16->32ch 16x16, batch {batch}, forward", "impl": name,
                        "ms_median": t.ms_median, "ms_min": t.ms_min, "ms_max": t.ms_max,
                        "gflops": flops / (t.ms_median * 1e6), "gflops_best": flops / (t.ms_min * 1e6)})
            self.log(f"  {name:28s} {t.ms_median:8.3f} ms  {flops / (t.ms_median * 1e6):7.1f} GFLOP/s")
        return out


def _blackjax_available() -> bool:
    try:
        import blackjax  # noqa: F401
    except ImportError:
        return False
    return True


def ratios(records: list[dict]) -> list[dict]:
    """Every comparison with jebm measured in the same run, per case.

    ``speedup`` entries are ``other ms / jebm ms`` (above 1: jebm faster);
    the ``overhead`` entry is ``jebm ms / bare_grad ms − 1`` (the sampler's
    cost beyond the gradient it needs).
    """
    out = []
    by_case: dict[str, dict[str, dict]] = {}
    for r in records:
        by_case.setdefault(r["case"], {})[r["impl"]] = r
    for case, rows in by_case.items():
        jebm = rows.get("jebm")
        if not jebm:
            continue
        for impl in ("torch_eager", "torch_channels_last", "blackjax"):
            if impl in rows:
                out.append({"case": case, "kind": "speedup", "compare": f"{impl} / jebm",
                            "median": rows[impl]["ms_median"] / jebm["ms_median"],
                            "min": rows[impl]["ms_min"] / jebm["ms_min"]})
        if "bare_grad" in rows:
            out.append({"case": case, "kind": "overhead", "compare": "jebm / bare_grad - 1",
                        "median": jebm["ms_median"] / rows["bare_grad"]["ms_median"] - 1,
                        "min": jebm["ms_min"] / rows["bare_grad"]["ms_min"] - 1})
    return out


def targets(records: list[dict], memory: list[dict]) -> list[dict]:
    """The speed targets of issues 5 and 13, judged on this run's medians.

    Every CNN case that ran (SGLD and SGHMC at each batch) is held to two
    targets: jebm no slower than PyTorch channels_last on the same step, and
    the sampler's overhead over a bare jitted ∇ₓE at most 5%. The share of
    the float32 matmul peak is reported beside them (no goal).
    """
    rows = {(r["case"], r["impl"]): r for r in records}
    out = []

    def ms(case, impl):
        r = rows.get((case, impl))
        return None if r is None else r["ms_median"]

    order = {r["case"]: (r["sampler"], r["batch"]) for r in records if r["case"].startswith("cnn_")}
    cnn_cases = sorted(order, key=order.get)
    for case in cnn_cases:
        j, t, b = ms(case, "jebm"), ms(case, "torch_channels_last"), ms(case, "bare_grad")
        if j and t:
            out.append({"target": f"{case}: jebm no slower than torch channels_last",
                        "value": t / j, "goal": ">= 1", "met": t / j >= 1.0})
        if j and b:
            out.append({"target": f"{case}: sampler overhead over bare ∇ₓE",
                        "value": j / b - 1, "goal": "<= 0.05", "met": j / b - 1 <= 0.05})
        pct = rows.get((case, "jebm"), {}).get("pct_of_matmul_peak")
        if pct is not None:
            out.append({"target": f"{case}: jebm's share of the matmul peak (%)",
                        "value": pct, "goal": "reported", "met": None})
    j, t = ms("toy_iteration", "jebm"), ms("toy_iteration", "torch_eager")
    if j and t:
        out.append({"target": "toy_iteration: jebm vs torch eager", "value": t / j, "goal": ">= 4", "met": t / j >= 4})
    for case in sorted({m["case"] for m in memory}):
        sizes = [m for m in memory if m["case"] == case and m["xla_temp_mb"] is not None]
        if len(sizes) >= 2:
            lo, hi = sizes[0], sizes[-1]
            per_step = (hi["xla_temp_mb"] - lo["xla_temp_mb"]) * jc.MiB / (hi["n_steps"] - lo["n_steps"])
            out.append({"target": f"{case}: memory flat in L (XLA temp bytes per extra step, "
                                  f"L={lo['n_steps']} to {hi['n_steps']})",
                        "value": per_step, "goal": f"<= {FLAT_BYTES_PER_STEP}",
                        "met": per_step <= FLAT_BYTES_PER_STEP})
    return out


def run_benchmark(preset: Preset, impls=IMPLS, conv_impl: Optional[str] = None,
                  log: Callable[[str], None] = print, chunk_size: Optional[int] = -1) -> dict:
    """Runs every case of ``preset``; returns the results dict that is written as JSON.

    Args:
      preset: what to measure.
      impls: the implementations to include (a subset of ``IMPLS``).
      conv_impl: the custom CNN's ``conv_impl`` for jebm, BlackJAX and the
        bare gradient (None: ``jebm.energies.resolve_conv_impl``'s choice for the backend).
      log: where progress lines go.
      chunk_size: chains per energy-and-gradient pass of jebm and the bare
        gradient (-1: ``default_chunk_size`` of the backend; None or 0: all).
    """
    unknown = set(impls) - set(IMPLS)
    if unknown:
        raise ValueError(f"unknown impls {sorted(unknown)}; valid: {list(IMPLS)}")
    backend = jax.default_backend()
    conv_impl = resolve_conv_impl(conv_impl or "", backend)
    chunk_size = default_chunk_size(backend) if chunk_size == -1 else (chunk_size or None)
    bench = Bench(preset, impls, conv_impl, log, chunk_size)
    results = {
        "schema_version": SCHEMA_VERSION,
        "preset": preset.name,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
        "machine": machine_info(),
        "torch_threads": torch_impl.torch.get_num_threads() if torch_impl.available() else None,
        "torch_device": bench.torch_device,
        "conv_impl": conv_impl,
        "chunk_size": chunk_size,
    }
    log(f"jebm benchmark ({preset.name}) on {results['machine']['cpu_model']}, backend {backend}, "
        f"load {results['load_average_start']}")
    if preset.kernels:
        bench.matmul_peak()
    for batch in preset.sgld_batches:
        bench.cnn_case("sgld", batch)
    for batch in preset.sghmc_batches:
        bench.cnn_case("sghmc", batch)
    bench.toy_case()
    kernels = bench.kernels() if preset.kernels else []
    memory = []
    if preset.memory_steps_toy:
        log("  memory versus L (XLA temp buffers, compiled only)")
        memory += jc.toy_memory_by_steps(preset.memory_steps_toy, preset.toy_chains)
    if preset.memory_steps_cnn:
        memory += jc.cnn_memory_by_steps(preset.memory_steps_cnn, preset.sgld_batches[0], conv_impl)
    for m in memory:
        log(f"    {m['case']:15s} L={m['n_steps']:5d}  XLA temp {m['xla_temp_mb']} MiB")
    levers = []
    if preset.levers:
        from benchmarks import levers as levers_lib

        log("  levers")
        levers = levers_lib.run_levers(preset, conv_impl, log, chunk_size=chunk_size)
    results.update(
        peak_gflops=bench.peak_gflops,
        records=bench.records,
        ratios=ratios(bench.records),
        targets=targets(bench.records, memory),
        kernels=kernels,
        memory_vs_steps=memory,
        levers=levers,
        checks=bench.checks,
        notes=bench.notes,
        load_average_end=load_average(),
    )
    return results


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _fmt(v, spec=".3f") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _table(title: str, columns: list[tuple[str, str]], rows) -> list[str]:
    """A markdown section: ``## title`` and a table; ``columns`` are (name, alignment) pairs."""
    return ["", f"## {title}", "", "| " + " | ".join(name for name, _ in columns) + " |",
            "|" + "|".join(align for _, align in columns) + "|",
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def markdown(results: dict) -> str:
    """The results as markdown tables."""
    m = results["machine"]
    left, right = "---", "---:"
    lines = [
        f"# jebm benchmark ({results['preset']})",
        "",
        f"- machine: {m['cpu_model']}, {m['usable_cores']} usable cores; backend `{m['backend']}` "
        f"({', '.join(m['devices'])})",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        f"- load average (1/5/15 min): start {results['load_average_start']}, end {results['load_average_end']}",
        f"- float32 matmul peak: {_fmt(results['peak_gflops'], '.1f')} GFLOP/s; CNN conv_impl for jebm/blackjax/bare_grad: "
        f"`{results['conv_impl']}`; jebm/bare_grad chunk_size `{results.get('chunk_size')}`; torch threads {results['torch_threads']}",
        f"- started {results['started']}; XLA_FLAGS `{m['xla_flags']}`",
    ]
    lines += _table(
        "Per step (per iteration for toy_iteration)",
        [("case", left), ("impl", left), ("ms median", right), ("ms min", right), ("ms max", right),
         ("GFLOP/s", right), ("% peak", right), ("compile s", right), ("XLA temp MiB", right), ("RSS Δ MiB", right)],
        ([r["case"], r["impl"], _fmt(r["ms_median"]), _fmt(r["ms_min"]), _fmt(r["ms_max"]), _fmt(r["gflops"], ".1f"),
          _fmt(r["pct_of_matmul_peak"], ".1f"), _fmt(r["compile_s"], ".2f"), _fmt(r["xla_temp_mb"], ".2f"),
          _fmt(r["rss_delta_mb"], ".1f")] for r in results["records"]))
    lines += _table("Ratios (same run)", [("case", left), ("ratio", left), ("median", right), ("min", right)],
                    ([r["case"], r["compare"], _fmt(r["median"], ".3f"), _fmt(r["min"], ".3f")]
                     for r in results["ratios"]))
    if results["targets"]:
        lines += _table("Targets (medians)",
                        [("target", left), ("value", right), ("goal", left), ("met", left)],
                        ([t["target"], _fmt(t["value"], ".3f"), t["goal"], _fmt(t["met"])] for t in results["targets"]))
    flops_rows = [r for r in results["records"] if "xla_flops_per_unit" in r]
    if flops_rows:
        lines += _table("FLOP count check (bare ∇ₓE)",
                        [("case", left), ("analytic", right), ("XLA cost analysis", right), ("analytic / XLA", right)],
                        ([r["case"], f"{r['flops_per_unit']:.4g}", f"{r['xla_flops_per_unit']:.4g}",
                          f"{r['analytic_over_xla_flops']:.3f}"] for r in flops_rows))
    if results["kernels"]:
        lines += _table("Kernels",
                        [("kernel", left), ("impl", left), ("ms median", right), ("GFLOP/s (median)", right),
                         ("GFLOP/s (best)", right)],
                        ([k["kernel"], k["impl"], _fmt(k["ms_median"]), _fmt(k["gflops"], ".1f"),
                          _fmt(k["gflops_best"], ".1f")] for k in results["kernels"]))
    if results["memory_vs_steps"]:
        lines += _table("Memory versus L (XLA temp buffers)",
                        [("case", left), ("L", right), ("XLA temp MiB", right), ("compile s", right)],
                        ([mm["case"], str(mm["n_steps"]), _fmt(mm["xla_temp_mb"], ".4f"), _fmt(mm["compile_s"], ".2f")]
                         for mm in results["memory_vs_steps"]))
    if results["levers"]:
        lines += _table("Levers (speedup = baseline ms / setting ms; > 1 is faster)",
                        [("lever", left), ("case", left), ("what", left), ("setting", left), ("baseline", left),
                         ("ms median", right), ("ms min", right), ("speedup (median)", right), ("speedup (min)", right)],
                        ([e["lever"], e["case"], e["what"], e["setting"], e["baseline"], _fmt(e["ms_median"]),
                          _fmt(e["ms_min"]), _fmt(e["speedup_median"], ".2f"), _fmt(e["speedup_min"], ".2f")]
                         for e in results["levers"]))
    if results["checks"]:
        lines += ["", "## Checks", "", "```", json.dumps(results["checks"], indent=1), "```"]
    if results["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    return "\n".join(lines) + "\n"


def write_results(results: dict, out_dir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes ``results.json`` and ``results.md`` into ``out_dir`` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results), encoding="utf-8")
    return json_path, md_path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="jebm's speed benchmark (see benchmarks/README.md).")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="batch 64 and 256 and the toy iteration only, no levers")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the benchmark runs")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="results folder (default: benchmarks/results/<backend>)")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--conv-impl", choices=("im2col", "xla"), default=None,
                        help="custom CNN convolutions for jebm/blackjax/bare_grad (default: im2col on CPU, xla elsewhere)")
    parser.add_argument("--chunk-size", type=int, default=-1,
                        help="chains per energy-and-gradient pass for jebm/bare_grad (0: all; default: 64 on CPU, all elsewhere)")
    parser.add_argument("--no-levers", action="store_true", help="skip the lever study of the full preset")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "smoke" if args.smoke else "full"]
    if args.no_levers:
        preset = dataclasses.replace(preset, levers=False)
    impls = tuple(i for i in args.impls.split(",") if i)
    out_dir = args.out or pathlib.Path(__file__).parent / "results" / jax.default_backend()
    results = run_benchmark(preset, impls, args.conv_impl, chunk_size=args.chunk_size)
    json_path, md_path = write_results(results, out_dir)
    print(f"\nwrote {json_path} and {md_path}")
    for t in results["targets"]:
        verdict = "" if t["met"] is None else "met" if t["met"] else "NOT met"
        print(f"  target {t['target']}: {t['value']:.3f} (goal {t['goal']}) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
