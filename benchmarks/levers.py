"""Speed levers: each measured against the plain setting, in the same run.

A lever is one knob (how convolutions are computed, the scan's unroll, the
PRNG behind the noise, donation, XLA's CPU flags, ...). Every group times its
settings round-robin on the same case, and reports each setting's speedup
over the group's baseline, the plain setting: ``baseline ms / setting ms``,
above 1 when the setting is faster.

XLA reads its flags once per process, so each flag setting runs in a child
process (``python -m benchmarks.levers --probe``) that prints its timings as
one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from typing import Callable, Optional

import jax
from jax import lax

from benchmarks import jax_cases as jc
from benchmarks.timing import Timing, time_interleaved
from jebm.energies import networks

# XLA CPU flag settings probed, by name. Every one keeps the mathematics:
# flags that relax float semantics (fast math) are left out on purpose.
XLA_FLAG_SETTINGS = {
    "default": "",
    "ynn_fusions_off": "--xla_cpu_experimental_ynn_fusion_type=",
    "xnn_fusions_on": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "onednn_on": "--xla_cpu_use_onednn=true",
    "eigen_single_thread": "--xla_cpu_multi_thread_eigen=false",
    "prefer_vector_width_512": "--xla_cpu_prefer_vector_width=512",
}

PROBE_MARKER = "LEVER_PROBE_JSON "


def _entry(lever: str, setting: str, case: str, what: str, baseline: str, timing: Timing, base: Timing, **extra) -> dict:
    return {
        "lever": lever,
        "setting": setting,
        "baseline": baseline,
        "case": case,
        "what": what,
        "ms_median": timing.ms_median,
        "ms_min": timing.ms_min,
        "ms_max": timing.ms_max,
        "speedup_median": base.ms_median / timing.ms_median,
        "speedup_min": base.ms_min / timing.ms_min,
        "cpu_ms_median": timing.cpu_ms_median,
        "cpu_speedup_median": base.cpu_ms_median / timing.cpu_ms_median,
        **extra,
    }


def compare(lever: str, case: str, what: str, baseline: str, prepared: dict, repeats: int) -> list[dict]:
    """Times the settings of one lever round-robin; one entry per setting.

    Args:
      lever: the knob's name.
      case: the benchmark case it was measured on.
      what: what was timed (``"jebm chain"``, ``"bare grad"``, ...).
      baseline: the setting the speedups are relative to (a key of ``prepared``).
      prepared: setting -> ``jax_cases.Prepared``.
      repeats: timed calls per setting.
    """
    timings = time_interleaved(
        {name: (p.run, p.units_per_call, p.setup) for name, p in prepared.items()}, repeats=repeats
    )
    return [
        _entry(lever, name, case, what, baseline, t, timings[baseline], compile_s=prepared[name].compile_s)
        for name, t in timings.items()
    ]


def conv_nchw(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, preferred_element_type=None,
              *, micro_batch=None):
    """XLA's convolution run channels-first (NCHW / OIHW), for the layout lever.

    Same signature as ``conv_as_matmul``; takes and returns NHWC, transposing
    at the edges, so XLA sees a channels-first convolution.
    """
    del dimension_numbers, micro_batch  # NHWC / HWIO in, by construction of nn.Conv; whole batch
    out = lax.conv_general_dilated(
        lhs.transpose(0, 3, 1, 2), rhs.transpose(3, 2, 0, 1), window_strides, padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=feature_group_count,
        precision=precision, preferred_element_type=preferred_element_type,
    )
    return out.transpose(0, 2, 3, 1)


@contextlib.contextmanager
def conv_hook(fn: Callable):
    """While tracing inside, ``CustomCNN(conv_impl="im2col")`` convolves with ``fn``.

    A benchmark-only way to try another convolution in the unchanged network:
    ``CustomCNN`` looks ``conv_as_matmul`` up when it is traced.
    """
    original = networks.conv_as_matmul
    networks.conv_as_matmul = fn
    try:
        yield
    finally:
        networks.conv_as_matmul = original


def _cnn(batch: int, conv_impl: str) -> jc.CnnSetup:
    return jc.cnn_setup(batch, conv_impl)


def conv_impl_levers(batches, steps_per_call: dict, repeats: int) -> list[dict]:
    """XLA's convolution versus ``conv_as_matmul``: chain and bare gradient."""
    out = []
    for batch in batches:
        setups = {impl: _cnn(batch, impl) for impl in ("xla", "im2col")}
        n_steps = steps_per_call[batch]
        case = f"cnn_sgld_b{batch}"
        out += compare("conv_impl", case, "jebm SGLD chain (run_chain)", "xla",
                       {k: jc.jebm_chain(s, "sgld", n_steps) for k, s in setups.items()}, repeats)
        out += compare("conv_impl", case, "bare grad", "xla",
                       {k: jc.bare_grad(s) for k, s in setups.items()}, repeats)
    return out


def _chain_and_grad_levers(lever: str, batches, steps_per_call: dict, repeats: int, make_setup,
                           sizes) -> list[dict]:
    """A size knob (``None`` = off, the baseline) on jebm's SGLD chain and on the bare gradient."""
    out = []
    for batch in batches:
        setups = {str(m): make_setup(batch, m) for m in sizes if m is None or m < batch}
        case = f"cnn_sgld_b{batch}"
        out += compare(lever, case, "jebm SGLD chain", "None",
                       {k: jc.jebm_chain(s, "sgld", steps_per_call[batch]) for k, s in setups.items()}, repeats)
        out += compare(lever, case, "bare grad", "None", {k: jc.bare_grad(s) for k, s in setups.items()}, repeats)
    return out


def micro_batch_levers(batches, steps_per_call: dict, repeats: int, sizes=(None, 32, 64, 128)) -> list[dict]:
    """``CustomCNN.micro_batch``: im2col convolutions over groups of images."""
    return _chain_and_grad_levers("micro_batch (im2col)", batches, steps_per_call, repeats,
                                  lambda b, m: jc.cnn_setup(b, "im2col", micro_batch=m), sizes)


def chunk_levers(batches, steps_per_call: dict, repeats: int, conv_impl: str, sizes=(None, 64)) -> list[dict]:
    """``jebm.samplers.chunked``: the energy-and-gradient pass over groups of chains."""
    return _chain_and_grad_levers("chunk_size (sampler)", batches, steps_per_call, repeats,
                                  lambda b, c: jc.cnn_setup(b, conv_impl, chunk_size=c), sizes)


def layout_levers(batch: int, n_steps: int, repeats: int) -> list[dict]:
    """XLA's convolution channels-last (NHWC, Flax's) versus channels-first (NCHW)."""
    nhwc = _cnn(batch, "xla")
    nchw = _cnn(batch, "im2col")  # traced under conv_hook(conv_nchw) below
    with conv_hook(conv_nchw):
        nchw_chain, nchw_grad = jc.jebm_chain(nchw, "sgld", n_steps), jc.bare_grad(nchw)
    case = f"cnn_sgld_b{batch}"
    return compare("layout (XLA conv)", case, "jebm SGLD chain (run_chain)", "NHWC",
                   {"NHWC": jc.jebm_chain(nhwc, "sgld", n_steps), "NCHW": nchw_chain}, repeats) + compare(
        "layout (XLA conv)", case, "bare grad", "NHWC", {"NHWC": jc.bare_grad(nhwc), "NCHW": nchw_grad}, repeats)


def driver_levers(batch: int, n_steps: int, repeats: int, conv_impls) -> list[dict]:
    """``lax.scan`` (run_chain) versus a Python loop over the jitted step."""
    out = []
    for impl in conv_impls:
        setup = _cnn(batch, impl)
        out += compare(f"driver (conv {impl})", f"cnn_sgld_b{batch}", "jebm SGLD steps", "lax.scan", {
            "lax.scan": jc.jebm_chain(setup, "sgld", n_steps),
            "python loop": jc.jebm_python_loop(setup, "sgld", n_steps),
            "python loop + donate": jc.jebm_python_loop(setup, "sgld", n_steps, donate=True),
        }, repeats)
    return out


def unroll_levers(batch: int, n_steps: int, repeats: int, conv_impl: str, unrolls=(1, 2, 4)) -> list[dict]:
    """``run_chain``'s ``unroll`` (the scan's unroll factor)."""
    setup = _cnn(batch, conv_impl)
    return compare("scan unroll", f"cnn_sgld_b{batch}", "jebm SGLD chain", "1",
                   {str(u): jc.jebm_chain(setup, "sgld", n_steps, unroll=u) for u in unrolls}, repeats)


def noise_levers(batch: int, n_steps: int, repeats: int, conv_impl: str,
                 chunk_size: Optional[int] = None) -> list[dict]:
    """The noise draw: its PRNG, its cost alone, and the chain without it.

    ``chunk_size`` groups the chains' gradient as in the benchmark's jebm and
    bare-gradient rows, so the split adds up to those rows.
    """
    setup = jc.cnn_setup(batch, conv_impl, chunk_size=chunk_size)
    case = f"cnn_sgld_b{batch}"
    out = compare("noise PRNG", case, "jebm SGLD chain", "threefry", {
        "threefry": jc.jebm_chain(setup, "sgld", n_steps),
        "rbg": jc.jebm_chain(setup, "sgld", n_steps, key_impl="rbg"),
        "unsafe_rbg": jc.jebm_chain(setup, "sgld", n_steps, key_impl="unsafe_rbg"),
    }, repeats)
    out += compare("step cost split", case, "per step", "jebm SGLD step", {
        "jebm SGLD step": jc.jebm_chain(setup, "sgld", n_steps),
        "grad descent in scan (no noise, no info)": jc.grad_descent_chain(setup, n_steps),
        "bare grad (jitted, one call)": jc.bare_grad(setup),
        "noise draw alone (threefry)": jc.noise_draw(setup, n_steps),
        "noise draw alone (rbg)": jc.noise_draw(setup, n_steps, "rbg"),
    }, repeats)
    return out


def donation_levers(batch: int, n_steps: int, repeats: int, conv_impl: str, toy: jc.ToySetup) -> list[dict]:
    """Donating the chain state (CNN) and the parameters and optimiser state (toy)."""
    setup = _cnn(batch, conv_impl)
    out = compare("donation", f"cnn_sgld_b{batch}", "jebm SGLD chain", "no", {
        "no": jc.jebm_chain(setup, "sgld", n_steps),
        "yes": jc.jebm_chain(setup, "sgld", n_steps, donate=True),
    }, repeats)
    out += compare("donation", "toy_iteration", "iteration", "no", {
        "no": jc.toy_iteration(toy),
        "yes": jc.toy_iteration(toy, donate=True),
    }, repeats)
    return out


def toy_unroll_levers(toy: jc.ToySetup, repeats: int, unrolls=(1, 2, 4, 8)) -> list[dict]:
    """The toy chain's scan unroll factor."""
    return compare("scan unroll", "toy_iteration", "iteration", "1",
                   {str(u): jc.toy_iteration(toy, unroll=u) for u in unrolls}, repeats)


def run_levers(preset, conv_impl: str, log: Callable[[str], None] = print,
               chunk_size: Optional[int] = None) -> list[dict]:
    """Every lever group of ``preset``; a group that fails is logged and skipped.

    ``chunk_size`` is the benchmark rows' (``run_benchmark``'s); the noise
    lever's step-cost split uses it so that its rows add up to those rows.
    """
    batch = preset.sgld_batches[0]
    n_steps = preset.steps_per_call[batch]
    repeats = preset.repeats
    toy = jc.toy_setup(preset.toy_chains, preset.toy_steps)
    groups = [
        ("conv_impl", lambda: conv_impl_levers(preset.lever_batches, preset.steps_per_call, repeats)),
        ("micro_batch", lambda: micro_batch_levers(preset.micro_batch_lever_batches, preset.steps_per_call, repeats)),
        ("chunk_size", lambda: chunk_levers(preset.micro_batch_lever_batches, preset.steps_per_call, repeats,
                                            conv_impl)),
        ("layout", lambda: layout_levers(batch, n_steps, repeats)),
        ("driver", lambda: driver_levers(batch, n_steps, repeats, ("xla", "im2col"))),
        ("unroll", lambda: unroll_levers(batch, n_steps, repeats, conv_impl)),
        ("noise", lambda: [e for b in preset.lever_batches for e in noise_levers(
            b, preset.steps_per_call[b], repeats, conv_impl, chunk_size=chunk_size)]),
        ("donation", lambda: donation_levers(batch, n_steps, repeats, conv_impl, toy)),
        ("toy unroll", lambda: toy_unroll_levers(toy, repeats)),
    ]
    if jax.default_backend() == "cpu" and preset.xla_flag_levers:
        groups.append(("xla flags", lambda: xla_flag_levers(
            batch, n_steps, repeats, conv_impl, log, preset.toy_chains, preset.toy_steps)))
    out = []
    for name, group in groups:
        log(f"  lever: {name}")
        try:
            entries = group()
        except Exception as e:  # noqa: BLE001 - one failing knob must not lose the others
            log(f"  lever {name} failed: {type(e).__name__}: {e}")
            continue
        for entry in entries:
            log(f"    {entry['case']:15s} {entry['what'][:34]:34s} {entry['setting'][:34]:34s} "
                f"{entry['ms_median']:9.3f} ms  x{entry['speedup_median']:.2f} (min x{entry['speedup_min']:.2f}, "
                f"cpu x{entry['cpu_speedup_median']:.2f}) vs {entry['baseline']}")
        out += entries
    return out


# ---------------------------------------------------------------------------
# XLA flags, one child process per setting
# ---------------------------------------------------------------------------


def probe(batch: int, n_steps: int, repeats: int, toy_chains: int, toy_steps: int, conv_impl: str) -> dict:
    """Times the flag-sensitive work under this process's XLA_FLAGS (in a child)."""
    setup = _cnn(batch, conv_impl)
    prepared = {
        f"jebm SGLD chain, conv {conv_impl}": jc.jebm_chain(setup, "sgld", n_steps),
        f"bare grad, conv {conv_impl}": jc.bare_grad(setup),
        "toy iteration": jc.toy_iteration(jc.toy_setup(toy_chains, toy_steps)),
    }
    timings = time_interleaved({k: (p.run, p.units_per_call, p.setup) for k, p in prepared.items()}, repeats=repeats)
    return {k: dataclasses.asdict(t) for k, t in timings.items()}


def xla_flag_levers(batch: int, n_steps: int, repeats: int, conv_impl: str, log: Callable[[str], None] = print,
                    toy_chains: int = 100, toy_steps: int = 500) -> list[dict]:
    """Runs ``probe`` under each of ``XLA_FLAG_SETTINGS`` and compares to the default."""
    results = {}
    for name, flags in XLA_FLAG_SETTINGS.items():
        env = dict(os.environ)
        env["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), flags) if f)
        cmd = [sys.executable, "-m", "benchmarks.levers", "--probe", "--batch", str(batch),
               "--steps", str(n_steps), "--repeats", str(repeats),
               "--toy-chains", str(toy_chains), "--toy-steps", str(toy_steps), "--conv-impl", conv_impl]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        line = next((l for l in proc.stdout.splitlines() if l.startswith(PROBE_MARKER)), None)
        if proc.returncode != 0 or line is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            log(f"    XLA flags {name!r} ({flags}) failed: {tail[0][:200]}")
            continue
        results[name] = json.loads(line[len(PROBE_MARKER):])
    if "default" not in results:
        return []
    out = []
    for name, timings in results.items():
        for what, t in timings.items():
            base = results["default"][what]
            out.append({
                "lever": "XLA CPU flags", "setting": name, "flags": XLA_FLAG_SETTINGS[name],
                "baseline": "default", "case": "toy_iteration" if what == "toy iteration" else f"cnn_sgld_b{batch}",
                "what": what, "ms_median": t["ms_median"], "ms_min": t["ms_min"], "ms_max": t["ms_max"],
                "speedup_median": base["ms_median"] / t["ms_median"], "speedup_min": base["ms_min"] / t["ms_min"],
                "cpu_ms_median": t["cpu_ms_median"], "cpu_speedup_median": base["cpu_ms_median"] / t["cpu_ms_median"],
            })
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="time the flag-sensitive work, print JSON")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--toy-chains", type=int, default=100)
    parser.add_argument("--toy-steps", type=int, default=500)
    parser.add_argument("--conv-impl", choices=networks.CONV_IMPLS, default="im2col")
    args = parser.parse_args(argv)
    if not args.probe:
        parser.error("run the levers through `python -m benchmarks.run`; --probe is for its child processes")
    result = probe(args.batch, args.steps, args.repeats, args.toy_chains, args.toy_steps, args.conv_impl)
    print(PROBE_MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
