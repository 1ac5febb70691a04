"""The README's and the guides' (docs/*.md) commands and code stay true."""

import re

import numpy as np

from conftest import ROOT

README = (ROOT / "README.md").read_text()
# Every page a reader is sent to: the README and the guides (docs/tutorial_own_data.md's code runs in test_tutorial.py).
PAGES = {"README.md": README, **{f"docs/{p.name}": p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}}
SAMPLERS_PAGE = PAGES["docs/samplers_and_conventions.md"]


def python_blocks(text):
    return re.findall(r"```python\n(.*?)\n```", text, re.S)


def run_block(code, name):
    namespace = {}
    exec(compile(code, name, "exec"), namespace)  # noqa: S102 - our own pages
    return namespace


def test_readme_starts_with_the_two_setup_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert "pip install -e ." in blocks[0] and "python -m jebm.main --config=configs/gmm_sghmc.py" in blocks[0]
    assert "pip install -e '.[test]'" in blocks[1] and "python -m pytest -q -n 2 --dist loadfile tests" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci  # CI runs exactly the README's test command


def test_readme_is_a_front_door():
    """Five minutes' reading: the rest lives in docs/."""
    assert len(README.splitlines()) <= 200, len(README.splitlines())


def test_readme_library_example_runs():
    code = python_blocks(README)[0]
    assert code == python_blocks(SAMPLERS_PAGE)[0]  # the samplers' guide opens with the same example
    samples = np.asarray(run_block(code, "README.md")["state"].position)
    assert samples.shape == (1000, 2)
    np.testing.assert_allclose(samples.var(0), 1.0, atol=0.15)  # the example's energy is N(0, I)


def test_conventions_and_schedule_example_runs():
    """docs/samplers_and_conventions.md: JEM's (λ, σ) in jebm's (η, T), and an annealed step size that still
    samples N(0, 0.5²)."""
    (code,) = [b for b in python_blocks(SAMPLERS_PAGE) if "from_step_and_noise" in b]
    samples = np.asarray(run_block(code, "docs/samplers_and_conventions.md")["state"].position)
    assert samples.shape == (2000, 2)
    # SGLD's variance on curvature λ = 4 is T/(λ(1 − ηλ/2)): within 2% of 0.25 for η ≤ 0.01.
    np.testing.assert_allclose(samples.var(0), 0.25, rtol=0.12)


def test_every_python_block_of_the_pages_is_one_the_tests_run():
    """A block added to a page without a test of its own fails here, rather than going untested."""
    library = python_blocks(README)[0]
    conventions = [b for b in python_blocks(SAMPLERS_PAGE) if "from_step_and_noise" in b]
    for name, text in PAGES.items():
        if name == "docs/tutorial_own_data.md":
            continue
        for block in python_blocks(text):
            assert block == library or block in conventions, f"{name} has a python block no test runs:\n{block}"


def test_every_training_command_of_the_pages_names_a_valid_config():
    """Each ``python -m jebm.main --config=configs/X.py[:presets] [--config.f=v ...]`` of the README and the
    guides loads and validates as written (the runs themselves are tested through their :smoke variants)."""
    from conftest import load_config

    from jebm import config_validation

    found = {name: re.findall(r"python -m jebm\.main (--config=configs/[^\s`]+(?: --[^\s`]+)*)", text)
             for name, text in PAGES.items()}
    assert found["README.md"] and sum(map(len, found.values())) >= 5, found
    for name, commands in found.items():
        for command in commands:
            first, *rest = command.split()
            config_name, _, presets = first.removeprefix("--config=configs/").partition(":")
            config = load_config(config_name.removesuffix(".py"), presets or None)
            for arg in rest:
                if arg.startswith("--config."):
                    field, value = arg.removeprefix("--config.").split("=", 1)
                    *parents, leaf = field.split(".")
                    node = config
                    for p in parents:
                        node = node[p]
                    node[leaf] = type(node[leaf])(value)
            config_validation.validate(config)


def test_every_relative_link_of_the_pages_resolves():
    for name, text in PAGES.items():
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
                continue
            assert (base / target.partition("#")[0]).exists(), f"{name} links to {target}, which does not exist"
