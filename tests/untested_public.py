"""Lists the public functions of the jebm package that no test names.

Usage: ``python tests/untested_public.py`` prints one ``module:line name`` per uncovered function
and nothing when every one is covered (tests/test_public_functions.py asserts that it prints nothing).

What it checks, honestly: a *static* search. A public function is a top-level ``def`` whose name does
not start with ``_``, in any module of ``src/jebm`` (config presets in ``jebm/configs`` are reached by
name through ``get_config("a,b")``; test_public_functions applies every one of them, so they are left
out). It counts as tested when its name appears as a whole word in a ``tests/test_*.py`` file. That
finds functions no test mentions; it cannot prove that a test which mentions a name calls it, nor
that the call is checked against anything.

``INDIRECT`` lists the functions that are still exercised only through their callers, each with the
test that reaches it; it may only shrink. ``--all`` prints them too.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "jebm"

# name: the test that reaches it through a caller (not a direct test yet).
INDIRECT = {
    "import_user_modules": "test_custom_parts (the CLI's --module flag, in a subprocess)",
    "distributed_options": "test_multiprocess (the CLI's distributed flags, in subprocesses)",
    "wait_for_coordinator": "test_multiprocess (two processes on one machine)",
    "initialize_distributed": "test_multiprocess (two processes on one machine)",
    "run_or_exit": "test_train::test_cli_overrides_and_presets (the CLI's error handling)",
    "evaluate_seeds": "test_multiseed (multiseed.train_seeds, which calls it)",
    "write_tensorboard_summary": "test_train::test_learnable_beta_and_gamma_are_logged_and_reported",
    "write_ais_convergence": "test_train::test_smoke_run_writes_the_workdir_contract (ais_convergence.png)",
    "write_toy_outputs": "test_train::test_smoke_run_writes_the_workdir_contract",
    "image_likelihood": "test_mnist_train (the MNIST smoke run's evaluation)",
    "long_chains": "test_mnist_train and test_train (the long-run diagnostics)",
    "chain_diagnostics": "test_train::test_smoke_run_reports_likelihood_and_chain_diagnostics",
    "evaluate_long_run": "test_mnist_train (the MNIST smoke run's long run)",
    "quality_scores": "test_mnist_train (the MNIST smoke run's sample quality)",
    "write_training_snapshot": "test_mnist_train (training.sample_every)",
    "evaluate_user_data": "test_custom_parts (train_and_evaluate(data=...))",
    "plot_energy_fit": "test_plots (through plot_toy_fit's panels)",
}


def public_functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "configs" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield path.relative_to(PACKAGE.parent), node.lineno, node.name


def untested(show_indirect: bool = False):
    text = "\n".join(p.read_text() for p in sorted((ROOT / "tests").glob("test_*.py")))
    names = {name for _, _, name in public_functions()}
    for name in sorted(INDIRECT):  # the list only shrinks: an entry that is now tested, or gone, is reported
        if name not in names:
            yield f"INDIRECT lists {name}, which is no public function of jebm: remove the entry"
        elif re.search(rf"\b{re.escape(name)}\b", text):
            yield f"INDIRECT lists {name}, which a test now names: remove the entry"
    for path, line, name in public_functions():
        if re.search(rf"\b{re.escape(name)}\b", text):
            continue
        if name in INDIRECT and not show_indirect:
            continue
        yield f"{path}:{line} {name}" + (f"  (indirect: {INDIRECT[name]})" if name in INDIRECT else "")


if __name__ == "__main__":
    for row in untested(show_indirect="--all" in sys.argv[1:]):
        print(row)
