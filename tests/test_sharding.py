"""Data-parallel training over 8 simulated CPU devices gives the one-device result."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, "tests")
    from conftest import load_config
    from jebm import train
    assert jax.device_count() == 8, jax.devices()
    out = {}
    for preset in ("smoke", "smoke,pcd"):
        params = {}
        for enabled in (False, True):
            config = load_config("gmm_sghmc", preset)
            config.sharding.enabled = enabled
            config.training.max_steps = 8
            state, parts, _ = train.train(config, f"{sys.argv[1]}/{preset}_{enabled}")
            params[enabled] = [np.asarray(x) for x in jax.tree_util.tree_leaves(state.params)]
            if enabled:
                leaf = jax.tree_util.tree_leaves(state.params)[0]
                out[preset + "_devices"] = len(leaf.sharding.device_set)
        out[preset] = max(float(np.max(np.abs(a - b))) for a, b in zip(params[False], params[True]))
        out[preset + "_scale"] = max(float(np.max(np.abs(a))) for a in params[False])
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_sharded_training_matches_single_device(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    for preset in ("smoke", "smoke,pcd"):
        assert result[preset + "_devices"] == 8  # parameters replicated on all 8 devices
        # Same randomness, same data; only the order of float additions differs.
        assert result[preset] <= 1e-4 * max(1.0, result[preset + "_scale"]), result


CPU_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, "tests")
    from conftest import load_config
    from jebm import sharding, train
    config = load_config("gmm_sghmc", "smoke")
    config.sharding.num_cpu_devices = 2
    config.sharding.enabled = True
    config.training.max_steps = 4
    state, _, _ = train.train(config, sys.argv[1])  # sets the device count before JAX starts
    leaf = jax.tree_util.tree_leaves(state.params)[0]
    out = {"devices": jax.device_count(), "params_on": len(leaf.sharding.device_set)}
    try:
        sharding.use_cpu_devices(3)
    except ValueError as e:
        out["late_error"] = str(e)
    sharding.use_cpu_devices(2)  # what JAX already has: nothing to do, no error
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_num_cpu_devices_splits_the_cpu_before_jax_starts(tmp_path):
    # No XLA_FLAGS: sharding.num_cpu_devices alone makes the two devices the training uses.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", CPU_DEVICES_SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["devices"] == 2 and result["params_on"] == 2
    # Too late to change: a clear error naming the field and what JAX has.
    assert "sharding.num_cpu_devices=3" in result["late_error"] and "2 CPU device" in result["late_error"]
