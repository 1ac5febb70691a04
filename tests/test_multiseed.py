"""jebm.multiseed: seeds vmapped into one program train exactly as separate runs would."""

import jax
import numpy as np
import pytest

from conftest import load_config
from jebm import multiseed, train


pytestmark = pytest.mark.usefixtures("fast_compiles")  # conftest: compiles dominate here


def test_vmapped_seeds_match_separate_runs():
    """Each seed's parameters after the smoke run equal those of its own single-seed loop.

    The vmapped program batches the seeds' matrix products, so sums may be
    reassociated: equality is up to float32 rounding, amplified a little by
    the 6 sampler-and-SGD steps (observed differences ~1e-6 relative).
    """
    config = load_config("gmm_sghmc", "smoke,pcd")  # PCD: the bank is per seed too
    seeds = [0, 3]
    configs, parts, params, info = multiseed.train_seeds(config, seeds)
    assert [c.seed for c in configs] == seeds
    assert info["steps"] == config.training.max_steps and info["diverged"] == [False, False]
    for seed, got in zip(seeds, params):
        c = configs[seeds.index(seed)]
        own_parts = train.build_parts(c)
        state = train.create_train_state(c, own_parts)
        step = jax.jit(train.make_train_step(c, own_parts))
        for i in range(own_parts.total_steps):
            state, _ = step(state, own_parts.data.batch(i))
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(state.params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    # The seeds really differ (a broadcast of seed 0 would pass the loop above only for seed 0).
    first = jax.tree_util.tree_leaves(params[0])[0]
    assert not np.allclose(first, jax.tree_util.tree_leaves(params[1])[0])

