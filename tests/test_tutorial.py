"""docs/tutorial_own_data.md runs as written, and its model learns the ring."""

import re

import numpy as np

from conftest import ROOT


def test_tutorial_code_runs_and_learns(tmp_path):
    page = (ROOT / "docs" / "tutorial_own_data.md").read_text()
    blocks = re.findall(r"```python\n(.*?)\n```", page, re.S)
    assert len(blocks) == 5
    code = "\n".join(blocks).replace('"/tmp/jebm_tutorial"', repr(str(tmp_path / "tutorial")))
    namespace = {}
    exec(compile(code, "docs/tutorial_own_data.md", "exec"), namespace)  # noqa: S102 - our own page
    summary, radius = namespace["summary"], namespace["radius"]
    assert summary["status"] == "ok"
    assert summary["energy_held_out"] < summary["energy_noise"] - 1.0, summary
    assert summary["ks"] < 0.25, summary  # uniform noise on the chains' box scores ~0.4
    assert abs(float(np.median(radius)) - 1.5) < 0.3, float(np.median(radius))
    assert (tmp_path / "tutorial" / "energy_fit.png").exists()
