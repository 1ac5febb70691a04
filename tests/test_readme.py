"""The README's commands and library example stay true."""

import re

import numpy as np

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_setup_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert "pip install -e ." in blocks[0] and "python -m jebm.main --config=configs/gmm_sghmc.py" in blocks[0]
    assert "pip install -e '.[test]'" in blocks[1] and "python -m pytest -q -n 2 --dist loadfile tests" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1].strip() in ci  # CI runs exactly the README's test command


def test_readme_library_example_runs():
    code = re.findall(r"```python\n(.*?)\n```", README, re.S)[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    samples = np.asarray(namespace["state"].position)
    assert samples.shape == (1000, 2)
    np.testing.assert_allclose(samples.var(0), 1.0, atol=0.15)  # the example's energy is N(0, I)


def test_readme_conventions_and_schedule_example_runs():
    """The second example: JEM's (λ, σ) in jebm's (η, T), and an annealed step size that still samples N(0, 0.5²)."""
    code = re.findall(r"```python\n(.*?)\n```", README, re.S)[1]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    samples = np.asarray(namespace["state"].position)
    assert samples.shape == (2000, 2)
    # SGLD's variance on curvature λ = 4 is T/(λ(1 − ηλ/2)): within 2% of 0.25 for η ≤ 0.01.
    np.testing.assert_allclose(samples.var(0), 0.25, rtol=0.12)


def test_every_training_command_in_the_readme_names_a_valid_config():
    """Each ``python -m jebm.main --config=configs/X.py[:presets] [--config.f=v ...]`` of the README
    loads and validates as written (the runs themselves are tested through their :smoke variants)."""
    from conftest import load_config

    from jebm import config_validation

    commands = re.findall(r"python -m jebm\.main (--config=configs/[^\s`]+(?: --[^\s`]+)*)", README)
    assert len(commands) >= 5, commands
    for command in commands:
        first, *rest = command.split()
        name, _, presets = first.removeprefix("--config=configs/").partition(":")
        config = load_config(name.removesuffix(".py"), presets or None)
        for arg in rest:
            if arg.startswith("--config."):
                field, value = arg.removeprefix("--config.").split("=", 1)
                *parents, leaf = field.split(".")
                node = config
                for p in parents:
                    node = node[p]
                node[leaf] = type(node[leaf])(value)
        config_validation.validate(config)
