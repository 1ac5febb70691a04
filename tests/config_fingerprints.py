"""Fingerprints of the config schema: every shipped config under its presets, and validation's messages.

Written to compare the config code before and after a refactor (issue 28: each field
declared once). Run it on each version of ``src`` and compare the two files::

    PYTHONPATH=<old>/src python tests/config_fingerprints.py --write /tmp/before.json
    PYTHONPATH=src python tests/config_fingerprints.py --check /tmp/before.json

A fingerprint holds, for every config and every preset list below (none, each preset,
each ordered pair, and the lists the tests, docs and experiments use, with and without
``smoke``): its JSON (the fields in their order, as config.json has them), each field's
value, the Python type of the value and the ConfigDict field's declared type
(``config_dict.placeholder(float)`` and the like), and what ``validate`` says of it. For
bad configs (every field set to each of a few bad values, every field removed, and the
multi-field cases of tests/test_bad_inputs.py) it holds the error text.
``--check`` asks for the same values and types, and the same error lines; it counts
apart (and tolerates) lines that come in another order, a crash that became an error
message, and a missing field named once instead of also as ``<field>=None must be ...``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import sys

from ml_collections import config_dict

CONFIGS = ("gmm_sgld", "gmm_sghmc", "mnist_sgld", "mnist_sghmc", "mnist_convergent")
# Preset lists used by tests, docs and experiments (beyond single presets and pairs).
USED = {
    "gmm_sghmc": ["nopcd,cosine,beta", "nopcd,cosine,gamma", "quadratic,cosine,eq20",
                  "quadratic,cosine,lr_0_02,small_out_init"],
    "gmm_sgld": ["nopcd,stable,beta", "nopcd,stable,gamma", "quadratic,stable,eq20"],
    "mnist_sgld": ["cpu,smoke,vanilla", "cpu,vanilla,smoke"],
    "mnist_sghmc": ["cpu_lr5e4,smoke"],
    "mnist_convergent": ["cpu,fashion,smoke", "fashion,cpu", "cpu,box,old_negatives"],
}
BAD_VALUES = ("not_a_valid_choice", 1.5, -1, 0, -0.5, 2.0, None, "twelve", True, (0,), (), (None,), (3, 1))
MULTI = [
    {"chain_init.low": 2.0, "chain_init.high": -2.0},
    {"chain_init.persistent": True, "chain_init.bank_size": 10},
    {"energy.param_init": "torch", "energy.name": "custom_cnn"},
    {"energy.beta_learnable": False, "energy.head": "beta"},
    {"energy.beta_learnable": False, "energy.head": "linear"},
    {"sampler.grad_clip": 1.0, "sampler.name": "mala"},
    {"eval.ais_base": "box_kde", "dataset.name": "rings"},
    {"training.convergence_every": 3, "dataset.name": "gmm8"},
    {"dataset.name": "fashion_mnist", "dataset.source": "npm"},
    {"dataset.name": "fashion_mnist", "dataset.source": "download"},
    {"energy.channels": 8, "energy.name": "lenet"},
    {"energy.conv_impl": "xla", "energy.name": "mlp"},
    {"sampler.step_size": -1.0, "optimizer.name": "lbfgs", "energy.name": "resnet", "chain_init.low": 5.0},
]


def _config(name: str, presets: str | None):
    return importlib.import_module(f"jebm.configs.{name}").get_config(presets)


def _leaves(node: config_dict.ConfigDict, prefix: str = ""):
    for key in node.keys():
        value = node[key]
        if isinstance(value, config_dict.ConfigDict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", node, key, value


def _describe(config: config_dict.ConfigDict) -> list:
    return [[path, repr(value), type(value).__name__, getattr(node.get_type(key), "__name__", repr(node.get_type(key)))]
            for path, node, key, value in _leaves(config)]


def _verdict(config) -> list[str]:
    from jebm import config_validation

    try:
        config_validation.validate(config)
    except config_validation.ConfigError as err:
        return str(err).split("\n")
    except Exception as err:  # a crash is part of the behaviour too
        return [f"CRASH {type(err).__name__}: {err}"]
    return ["ok"]


def _set(config, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for p in parents:
        node = node[p]
    node[leaf] = value


def fingerprints() -> dict:
    out = {"configs": {}, "bad": {}}
    for name in CONFIGS:
        presets = sorted(importlib.import_module(f"jebm.configs.{name}").PRESETS)
        lists = [None, *presets, *(",".join(p) for p in itertools.permutations(presets, 2)), *USED.get(name, [])]
        lists += [f"{p},smoke" for p in USED.get(name, [])]
        for arg in lists:
            config = _config(name, arg)
            out["configs"][f"{name}:{arg}"] = {"fields": _describe(config), "dict": repr(config.to_dict()),
                                               "json": config.to_json(), "validate": _verdict(config)}
    for base in ("gmm_sgld:smoke", "mnist_sgld:smoke"):
        plain = _config(*base.split(":")).to_dict()
        for path, _, _, _ in _leaves(_config(*base.split(":"))):
            for bad in BAD_VALUES:
                config = config_dict.ConfigDict(plain, type_safe=False)
                _set(config, path, bad)
                out["bad"][f"{base} {path}={bad!r}"] = _verdict(config)
            config = config_dict.ConfigDict(plain, type_safe=False)
            *parents, leaf = path.split(".")
            node = config
            for p in parents:
                node = node[p]
            del node[leaf]
            out["bad"][f"{base} without {path}"] = _verdict(config)
        for overrides in MULTI:
            config = config_dict.ConfigDict(plain, type_safe=False)
            for path, value in overrides.items():
                _set(config, path, value)
            out["bad"][f"{base} {overrides}"] = _verdict(config)
    return out


def _kind_of_change(before: list[str], after: list[str]) -> str:
    """How ``after``'s error lines differ from ``before``'s; "" when they are a change of behaviour."""
    if sorted(before) == sorted(after):
        return "reordered"
    if before[0].startswith("CRASH") and after[0] == "invalid config:":
        return "crash became an error"
    if any(line.endswith(" is missing from the config") for line in before) and set(after) <= set(before) \
            and set(after) >= {line for line in before if line.endswith(" is missing from the config")}:
        return "a missing field is named once, without its echoes"
    return ""


def compare(before: dict, after: dict) -> int:
    problems, kinds = [], {}
    for section in ("configs", "bad"):
        if set(before[section]) != set(after[section]):
            problems.append(f"{section}: cases differ: {sorted(set(before[section]) ^ set(after[section]))[:5]}")
        for case in sorted(set(before[section]) & set(after[section])):
            b, a = before[section][case], after[section][case]
            if section == "configs":
                for key in ("fields", "dict", "json"):
                    if b[key] != a[key]:
                        problems.append(f"{case}: {key} differ")
                b, a = b["validate"], a["validate"]
            if b != a:
                kind = _kind_of_change(b, a)
                kinds[kind] = kinds.get(kind, 0) + 1
                if not kind:
                    problems.append(f"{case}: messages differ:\n  before {b}\n  after  {a}")
    total = len(before["configs"]) + len(before["bad"])
    print(f"{len(before['configs'])} config/preset cases, {len(before['bad'])} bad-config cases; "
          f"{len(problems)} differences")
    for kind, n in sorted(kinds.items()):
        if kind:
            print(f"  {n} cases: {kind}")
    for p in problems:
        print(p)
    return 1 if problems or not total else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write")
    group.add_argument("--check")
    args = parser.parse_args()
    now = fingerprints()
    if args.write:
        with open(args.write, "w") as f:
            json.dump(now, f, indent=0, sort_keys=True)
        print(f"{len(now['configs'])} config/preset cases, {len(now['bad'])} bad-config cases written to {args.write}")
        return 0
    with open(args.check) as f:
        return compare(json.load(f), json.loads(json.dumps(now)))


if __name__ == "__main__":
    sys.exit(main())
