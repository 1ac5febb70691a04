"""The evaluator registry and the evaluators' writers, on fake scores and arrays (no training, no chains).

The evaluators' scores themselves are checked end to end by the smoke runs (test_train, test_mnist_train,
test_custom_parts) and against closed forms (test_error_bars); here: that the data picks the right
evaluator, that a bad name is refused with the valid ones, that ``evaluate_and_write`` writes what the
evaluator scored, and that each writer writes its files from its arrays unchanged.
"""

import json
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from jebm.evaluation import evaluators, metrics
from jebm.evaluation.evaluators import images as image_evaluator
from jebm.evaluation.evaluators import likelihood_scores
from jebm.evaluation.evaluators import user_data


def fake_data(**fields):
    return types.SimpleNamespace(**{"name": "fake", "toy": None, "held_out": None, "images": None, **fields})


def test_the_data_picks_its_evaluator_and_a_bad_name_lists_the_valid_ones():
    assert evaluators.NAMES == ("toy", "images", "user_data")
    assert evaluators.name_for(fake_data(toy=object())) == "toy"
    assert evaluators.name_for(fake_data(held_out=np.zeros((3, 2)))) == "user_data"
    assert evaluators.name_for(fake_data(images=object())) == "images"
    with pytest.raises(ValueError, match=r"dataset 'fake' has no evaluator.*\['toy', 'images', 'user_data'\]"):
        evaluators.name_for(fake_data())
    assert evaluators.get("images").evaluate is image_evaluator.evaluate_images
    assert evaluators.get("user_data").write is user_data.write_user_data_outputs
    with pytest.raises(ValueError, match=r"evaluator='points' is not one of \['images', 'toy', 'user_data'\]"):
        evaluators.get("points")


def test_evaluate_and_write_writes_what_the_chosen_evaluator_scored(tmp_path, monkeypatch):
    calls = []

    def evaluate(config, parts, params):
        calls.append(("evaluate", config, params))
        return {"score": params}, {"samples": np.full(3, params)}

    def write(workdir, summary, arrays):
        calls.append(("write", workdir, summary["score"], arrays["samples"].tolist()))

    monkeypatch.setitem(evaluators._evaluators, "user_data", evaluators.Evaluator(evaluate, write))
    parts = types.SimpleNamespace(data=fake_data(held_out=np.zeros((3, 2))))
    summary = evaluators.evaluate_and_write("cfg", parts, 2.5, tmp_path, [])
    assert summary == {"score": 2.5}
    assert calls == [("evaluate", "cfg", 2.5), ("write", tmp_path, 2.5, [2.5, 2.5, 2.5])]
    assert not (tmp_path / "training_curves.png").exists()  # no records, no curves


def test_user_data_writer_writes_the_2d_files_and_the_image_grids(tmp_path):
    rng = np.random.default_rng(0)
    xs = ys = np.linspace(-1, 1, 8)
    energy = rng.normal(size=(8, 8))
    samples = rng.normal(size=(20, 2))
    arrays = {"samples": samples, "samples_long": samples[::-1], "xs": xs, "ys": ys, "energy": energy,
              "held_out": rng.normal(size=(10, 2))}
    rows = [{"num_temps": k, "log_z": 1.0, "log_z_std": 0.1, "ess": 5.0} for k in (2, 4)]
    summary = {"ks": 0.1, "likelihood": {"ais_convergence": rows, "log_z_exact": 1.0, "log_z_upper": 1.1}}
    user_data.write_user_data_outputs(tmp_path, summary, arrays)
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"), samples.astype(np.float32))
    assert np.load(tmp_path / "samples_long.npy").dtype == np.float32
    np.testing.assert_array_equal(np.load(tmp_path / "energy_grid.npz")["energy"], energy)
    assert {p.name for p in tmp_path.iterdir()} == {"samples.npy", "samples_long.npy", "energy_grid.npz",
                                                  "energy_fit.png", "ais_convergence.png"}
    # a non-finite energy keeps its grid but draws no fit; image-shaped examples get grids instead
    out = tmp_path / "nan"
    out.mkdir()
    user_data.write_user_data_outputs(out, summary, {**arrays, "energy": np.full((8, 8), np.nan)})
    assert {p.name for p in out.iterdir()} == {"samples.npy", "samples_long.npy", "energy_grid.npz"}
    out = tmp_path / "images"
    out.mkdir()
    grid = rng.uniform(size=(4, 5, 5))
    user_data.write_user_data_outputs(out, {}, {"samples": grid, "samples_long": grid,
                                                "grids": {"samples": grid, "samples_long": grid}})
    assert {p.name for p in out.iterdir()} == {"samples.npy", "samples_long.npy", "samples.png", "samples_long.png"}


def test_image_writer_writes_samples_and_only_the_parts_it_scored(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.uniform(-1.2, 1.2, size=(6, 28, 28)).astype(np.float32)
    arrays = {"samples": images, "samples_grid": np.clip(images, 0, 1), "data_name": "mnist"}
    image_evaluator.write_image_outputs(tmp_path, {"n_samples": 6}, arrays)
    assert {p.name for p in tmp_path.iterdir()} == {"samples.npy", "samples.png"}
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"), images)
    curve = [{"steps": n, "fraction_outside_range": 0.1} for n in (10, 20)]
    summary = {"long_run": {"curve": curve},
               "ais": {"convergence": [{"num_temps": 2, "log_z": 0.0, "log_z_std": 0.1, "ess": 3.0}]}}
    grids = [(f"{n} steps", np.clip(images[:4], 0, 1)) for n in (10, 20)]
    image_evaluator.write_image_outputs(tmp_path, summary, {**arrays, "samples_long": images[:2],
                                                            "long_run_grids": grids})
    assert {"samples_long.npy", "long_run.png", "ais_convergence.png"} <= {p.name for p in tmp_path.iterdir()}
    np.testing.assert_array_equal(np.load(tmp_path / "samples_long.npy"), images[:2])


def test_ais_runs_score_every_length_of_the_curve_and_return_the_longest():
    config = load_config("gmm_sgld", "smoke")
    config.eval.ais_temps, config.eval.ais_curve, config.eval.ais_chains = 4, (2, 4, 8), 16
    energy = lambda x: 0.5 * jnp.sum(x ** 2, axis=-1)  # noqa: E731
    result, rows = likelihood_scores.ais_runs(config, energy, (2,), 3.0, jax.random.key(0))
    assert [r["num_temps"] for r in rows] == [2, 4]  # the curve's K below ais_temps, then ais_temps
    assert result.num_temps == 4 and result.log_weights.shape == (16,)
    assert rows[-1]["log_z"] == result.log_z
    assert json.dumps(rows)  # plain numbers, ready for summary.json


def test_fraction_outside_counts_finite_values_beyond_the_range():
    out = metrics.fraction_outside(np.array([-2.0, 0.0, 0.5, 3.0, np.nan]), 0.0, 1.0)
    assert out == {"fraction_outside_range": 0.5, "data_range": [0.0, 1.0]}
    assert math.isnan(metrics.fraction_outside(np.full(3, np.inf), 0.0, 1.0)["fraction_outside_range"])
