"""The API reference builds from the docstrings (``docs/build_api.sh``, pdoc).

Skipped where pdoc is not installed (``pip install 'pdoc>=15,<17'``).
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("pdoc", reason="pdoc is not installed: pip install 'pdoc>=15,<17' to build the API reference")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "build_api.sh"


def _build(script: pathlib.Path, out: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), str(out)], env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=600)


def test_api_reference_builds(tmp_path):
    out = tmp_path / "site"
    proc = _build(SCRIPT, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-8000:]
    for page in ["index.html", "jebm.html", "jebm/samplers.html", "jebm/evaluation.html", "jebm/energies.html",
                 "jebm/samplers/sgld.html", "jebm/evaluation/likelihood.html", "jebm/train.html"]:
        assert (out / page).is_file(), page
    assert "run_chain" in (out / "jebm" / "samplers.html").read_text(encoding="utf-8")
    top = (out / "jebm.html").read_text(encoding="utf-8")
    # The lazy top-level exports are documented, and the submodules listed.
    for name in ["train_and_evaluate", "restore", "sample", "Restored"]:
        assert f'id="{name}"' in top, name
    assert 'href="jebm/samplers.html"' in top
    # The guides (docs/*.md) are pages of the site, listed on the jebm page; links between them point at the HTML.
    guides = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    assert {"samplers_and_conventions", "training", "evaluation", "workdir", "multiprocess", "reproductions",
            "tutorial_own_data"} <= set(guides)
    for guide in guides:
        assert f'href="docs/{guide}.html"' in top, guide
        assert (out / "docs" / f"{guide}.html").is_file(), guide
    reproductions = (out / "docs" / "reproductions.html").read_text(encoding="utf-8")
    assert 'href="evaluation.html#mnist-sample-quality"' in reproductions
    assert 'src="assets/docs/gmm_sghmc_toy_fit.png"' in reproductions and (out / "docs" / "assets" / "docs" / "gmm_sghmc_toy_fit.png").is_file()


def test_api_reference_fails_on_a_broken_reference(tmp_path):
    # A scratch copy of the tree (src/ and the script) with one dead :func: role, and a guide with dead links.
    shutil.copytree(ROOT / "src" / "jebm", tmp_path / "src" / "jebm", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    shutil.copy2(SCRIPT, tmp_path / "docs" / "build_api.sh")
    chain = tmp_path / "src" / "jebm" / "samplers" / "chain.py"
    text = chain.read_text(encoding="utf-8")
    assert ":func:`jebm.samplers.schedulable`" in text
    chain.write_text(text.replace(":func:`jebm.samplers.schedulable`", ":func:`jebm.samplers.no_such_function`"),
                     encoding="utf-8")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A heading\n", encoding="utf-8")
    (tmp_path / "docs" / "guide.md").write_text(
        "# Guide\n\nSee [the data](../no_such_dir/data.md), [other](other.md#a-heading) and [there](other.md#nowhere).\n",
        encoding="utf-8")
    proc = _build(tmp_path / "docs" / "build_api.sh", tmp_path / "site")
    assert proc.returncode != 0
    assert "jebm.samplers.no_such_function" in proc.stderr
    assert "docs/guide.md: the link '../no_such_dir/data.md' names a file that does not exist" in proc.stderr
    assert "docs/guide.md: the link to other.md#nowhere names no heading of that page" in proc.stderr
    assert "a-heading" not in proc.stderr.split("problem(s)")[-1]  # the anchor that exists is no problem
