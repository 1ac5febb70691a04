"""experiments/mnist_ablations.py: every run's config is valid, and the verdict rules decide as written."""

import ast

import pytest

from jebm import config_validation
from jebm.energies import networks

from experiments import _common
from experiments import mnist_ablations as abl


def _set(config, field, value):
    """``--config.FIELD=VALUE`` as the CLI applies it: parsed to the field's declared type."""
    *parents, leaf = field.split(".")
    node = config
    for p in parents:
        node = node[p]
    typ = node.get_type(leaf)
    if typ is bool:
        parsed = {"True": True, "False": False}[value]
    elif typ in (tuple, list):
        parsed = ast.literal_eval(value)
    else:
        parsed = typ(value)
    setattr(node, leaf, parsed)


def _config_of(group, variant):
    """The recipe with the variant's overrides applied as the CLI would apply them."""
    config = _common.load_config(abl.CONFIG)
    for override in abl.GROUPS[group][variant][1]:
        field, _, value = override.partition("=")
        _set(config, field, value)
    return config


@pytest.mark.parametrize("group,variant", [(g, v) for g, vs in abl.GROUPS.items() for v in vs])
def test_every_variant_is_a_valid_config(group, variant):
    config_validation.validate(_config_of(group, variant))


def _row(group, variant, seed=0, **kw):
    base = dict(group=group, variant=variant, seed=seed, fid=100.0, class_entropy=2.0, share_1_7=0.2,
                diverged=False, diverged_step=None, trajectory=[])
    base.update(kw)
    return base


def test_verdicts_follow_their_rules():
    rows = [
        _row("head", "beta", beta=1.1, fid=90.0),
        _row("head", "gamma", gamma=3.0),
        _row("head", "beta_gamma", beta=0.9, gamma=0.001),
        _row("head", "beta_fixed_1.0", fid=80.0),
        _row("batch_size", "batch_16", class_entropy=2.2),
        _row("batch_size", "batch_64", class_entropy=2.1),
        _row("batch_size", "batch_256", class_entropy=1.5),
        _row("eta", "eta_5e-05", fid=300.0),
        _row("eta", "eta_0.001", fid=None, diverged=True, diverged_step=40),
    ]
    v = {claim.split(".")[0]: verdict for claim, verdict, _ in abl.verdicts(rows)}
    assert v["1"] == "holds"  # 1.1 within [0.75, 1.25]
    assert v["2"] == "does not hold"  # the γ head's γ = 3
    assert v["2b"] == "holds"  # fixed β 80 < 0.9 × learnable 90
    assert v["3"] == "holds"  # 2.2 > 2.1 > 1.5
    assert v["4"] == "not run"
    assert v["5"] == "holds"  # a diverged η run: infinite spread
    rows[0]["beta"] = 0.5
    rows[5]["class_entropy"] = 2.3
    v = {claim.split(".")[0]: verdict for claim, verdict, _ in abl.verdicts(rows)}
    assert v["1"] == "does not hold" and v["3"] == "does not hold"
    # 2b compares on the seeds both ran: a learnable-β seed 1 the fixed heads lack does not count.
    rows.append(_row("head", "beta", seed=1, beta=0.9, fid=400.0))
    rows[3]["fid"] = 85.0
    verdict, evidence = {c.split(".")[0]: (v, e) for c, v, e in abl.verdicts(rows)}["2b"]
    assert verdict == "unclear" and "seeds [0]" in evidence  # 85 is within 10% of 90
    rows[3]["fid"] = 100.0
    assert {c.split(".")[0]: v for c, v, _ in abl.verdicts(rows)}["2b"] == "does not hold"


def test_bad_selection_names_the_valid_values(capsys):
    with pytest.raises(SystemExit):
        abl.main(["--groups=heads"])
    assert "valid: ['architecture', 'batch_size', 'eta', 'head']" in capsys.readouterr().err



def test_variants_that_share_the_recipes_run_are_exactly_the_recipe():
    """A variant read from the recipe's run must change nothing; every variant that does change it runs on its own."""
    recipe = _config_of(*abl.RECIPE).to_json_best_effort()
    for group, variant in abl.SAME_AS_RECIPE:
        config = _config_of(group, variant)
        if group == "architecture":  # the network's default activation, written out
            net, act = variant.rsplit("_", 1)[0], variant.rsplit("_", 1)[1]
            assert (config.energy.name, config.energy.activation) == (net, act)
            config.energy.activation = _common.load_config(abl.CONFIG).energy.activation
            assert networks.CustomCNN.activation == act
        assert config.to_json_best_effort() == recipe, (group, variant)
    others = [(g, v) for g, vs in abl.GROUPS.items() for v in vs
              if (g, v) not in abl.SAME_AS_RECIPE and (g, v) != abl.RECIPE]
    assert all(_config_of(g, v).to_json_best_effort() != recipe for g, v in others)
