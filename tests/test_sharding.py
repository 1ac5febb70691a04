"""Data-parallel training over 8 simulated CPU devices gives the one-device result."""

import json
import os
import subprocess
import sys
import textwrap

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
    from jebm.evaluation import protocol
    config = load_config("gmm_sghmc", "smoke")
    config.sharding.num_cpu_devices = 2
    state, parts, _ = train.train(config, sys.argv[1])  # sets the device count before JAX starts
    out = {"devices": jax.device_count()}
    key = jax.random.key(3)
    samples, long_runs, devices = {}, {}, {}
    for enabled in (False, True):
        config.sharding.enabled = enabled
        samples[enabled] = protocol.fresh_samples(config, parts, state.params, key, 64, 30)
        snaps, _, _ = protocol.long_chains(config, parts, state.params, [10, 30], 64, key)
        long_runs[enabled] = snaps[30]
        sh = sharding.chain_sharding(enabled, 64, "eval.num_samples")
        program = protocol._sampler_program(parts, config.sampler.to_json(), 64, 30, sh)
        devices[enabled] = len(program(state.params, key).sharding.device_set)
    out["devices_used"] = devices[True]
    out["devices_unsharded"] = devices[False]
    out["fresh_diff"] = float(np.max(np.abs(samples[False] - samples[True])))
    out["long_diff"] = float(np.max(np.abs(long_runs[False] - long_runs[True])))
    out["uneven"] = sharding.chain_sharding(True, 63, "eval.num_samples") is None
    try:
        sharding.use_cpu_devices(3)
    except ValueError as e:
        out["late_error"] = str(e)
    print("RESULT" + json.dumps(out))
    """
)


def test_num_cpu_devices_splits_the_cpu_and_shards_evaluation_chains(tmp_path):
    # No XLA_FLAGS: sharding.num_cpu_devices alone makes the two devices.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", CPU_DEVICES_SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["devices"] == 2
    assert result["devices_used"] == 2 and result["devices_unsharded"] == 1
    # Each chain's randomness does not depend on where it runs.
    assert result["fresh_diff"] <= 1e-5 and result["long_diff"] <= 1e-5, result
    assert result["uneven"]  # 63 chains do not split over 2 devices: one device, not an error
    assert "sharding.num_cpu_devices=3" in result["late_error"] and "2 CPU device" in result["late_error"]
