"""Tests for jebm.evaluation.plots."""

import os

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from jebm.evaluation import metrics, plots
from jebm.data import toy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path, directory):
    """Asserts a valid PNG exists and nothing else (no temp files) is left."""
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    assert sorted(os.listdir(directory)) == [os.path.basename(path)]
    return matplotlib.image.imread(path)


def _toy_grid(n=40):
    xs, ys = metrics.grid(n=n)
    dataset = toy.gmm8()
    return dataset, xs, ys, metrics.evaluate_on_grid(dataset.log_density, xs, ys)


def test_plot_samples_over_density(tmp_path):
    dataset, xs, ys, log_p = _toy_grid()
    rng = np.random.default_rng(0)
    samples = {"sgld": rng.standard_normal((200, 2)), "sghmc": dataset.means}
    path = str(tmp_path / "samplers.png")
    assert plots.plot_samples_over_density(path, xs, ys, log_p, samples, title="demo") == path
    image = _check_png(path, tmp_path)
    # Two square panels side by side: wider than tall.
    assert image.ndim == 3 and image.shape[1] > 1.5 * image.shape[0]


def test_plot_toy_fit(tmp_path):
    dataset, xs, ys, log_p = _toy_grid()
    path = tmp_path / "fit.png"
    assert plots.plot_toy_fit(path, xs, ys, log_p, -0.8 * log_p, np.zeros((10, 2))) == str(path)
    image = _check_png(path, tmp_path)
    assert image.shape[1] > 2.5 * image.shape[0]


def test_plot_energy_landscapes(tmp_path):
    _, xs, ys, log_p = _toy_grid()
    panels = [(f"eta={eta}", xs, ys, -log_p / eta) for eta in (0.01, 0.1, 1.0)]
    path = str(tmp_path / "landscapes.png")
    plots.plot_energy_landscapes(path, panels)
    image = _check_png(path, tmp_path)
    assert image.shape[1] > 2.5 * image.shape[0]


@pytest.mark.parametrize(
    "records",
    [
        [
            {"step": s, "loss": 1.0 / (s + 1), "energy_pos": -s, "energy_neg": s, "grad_norm": 10.0 / (s + 1)}
            for s in range(0, 100, 10)
        ],
        [{"step": 0, "loss": 1.0}, {"step": 1, "loss": float("nan")}, {"step": 2, "grad_norm": -1.0}],
        [],
    ],
    ids=["full", "partial", "empty"],
)
def test_plot_training_curves(tmp_path, records):
    path = str(tmp_path / "curves.png")
    plots.plot_training_curves(path, records)
    _check_png(path, tmp_path)


def _colour_pixels(image, colour):
    """How many pixels have exactly the matplotlib colour ``colour`` (a line's centre does)."""
    rgb = np.round(np.asarray(matplotlib.colors.to_rgb(colour)) * 255)
    return int(np.all(np.round(image[..., :3] * 255) == rgb, axis=-1).sum())


def convergence_history():
    """Two checks of the convergence watch, each from noise and from data at two chain lengths; the 4-step
    rows from data have no FID (unscored)."""
    def rows(step):
        return [{"start": start, "steps": steps, "fid": None if (start, steps) == ("data", 4) else 100.0 / step,
                 "class_entropy": 2.0, "distance": 0.1 * steps, "energy_drift_nats": -step,
                 "decorrelation": 0.1 * steps + (0.3 if start == "data" else 0.0)}
                for start in ("noise", "data") for steps in (2, 4)]
    return [(10, rows(10)), (20, rows(20))]


def test_plot_convergence(tmp_path):
    """Five panels of 4.2 x 3.6 inches at plots.DPI; the four series (data/noise x 2/4 steps) in C0..C3."""
    path = tmp_path / "convergence.png"
    assert plots.plot_convergence(path, convergence_history()) == str(path)
    image = _check_png(path, tmp_path)
    assert image.shape == (round(3.6 * plots.DPI), round(5 * 4.2 * plots.DPI), 4)
    assert all(_colour_pixels(image, f"C{i}") > 0 for i in range(4))
    assert _colour_pixels(image, "C4") == 0
    # the decorrelation panel (the last) draws every series, from its own rows
    last = image[:, round(4 * 4.2 * plots.DPI):]
    assert all(_colour_pixels(last, f"C{i}") > 0 for i in range(4))
    without = [(step, [{k: v for k, v in row.items() if k != "decorrelation"} for row in rows])
               for step, rows in convergence_history()]
    plots.plot_convergence(path, without)
    assert all(_colour_pixels(_check_png(path, tmp_path)[:, round(4 * 4.2 * plots.DPI):], f"C{i}") == 0
               for i in range(4))


def test_plot_chain_length_curves(tmp_path):
    """10 x 3.8 inches at plots.DPI; a colour per run (C0, C1), both starts in it; a curve point without an FID
    is left out, and a run with none draws no line (no C2). Over 10 runs, tab20's colours keep each run's own."""
    def curve(scale, data_scored=True):
        return [{"steps": steps, "start": start, "fid": (None if start == "data" and not data_scored else
                                                         scale * 100.0 / steps), "class_entropy": 2.0}
                for start in ("noise", "data") for steps in (10, 100, 1000)]
    runs = [{"name": "a", "curve": curve(1.0)}, {"name": "b", "curve": curve(2.0)},
            {"name": "c", "curve": curve(3.0, data_scored=False)[3:]}]
    path = tmp_path / "curves.png"
    assert plots.plot_chain_length_curves(path, runs) == str(path)
    image = _check_png(path, tmp_path)
    assert image.shape == (round(3.8 * plots.DPI), round(10 * plots.DPI), 4)
    assert _colour_pixels(image, "C0") > 0 and _colour_pixels(image, "C1") > 0
    assert _colour_pixels(image, "C2") == 0

    many = [{"name": str(i), "curve": curve(1.0 + i)} for i in range(12)]
    (tmp_path / "many").mkdir()
    image = _check_png(plots.plot_chain_length_curves(tmp_path / "many" / "curves.png", many), tmp_path / "many")
    tab20 = matplotlib.colormaps["tab20"].colors
    assert all(_colour_pixels(image, tab20[i]) > 0 for i in range(12))
    assert _colour_pixels(image, tab20[12]) == 0


def test_image_grid_layout_exact():
    # Three constant 2x3 images with values 0.0, 0.5, 1.0, two per row.
    images = np.stack([np.full((2, 3), v) for v in (0.0, 0.5, 1.0)])
    grid = plots.image_grid(images, nrow=2, pad=1, pad_value=0.25)
    expected = np.array(
        [
            [0.0, 0.0, 0.0, 0.25, 0.5, 0.5, 0.5],
            [0.0, 0.0, 0.0, 0.25, 0.5, 0.5, 0.5],
            [0.25] * 7,
            [1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.25],
            [1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.25],
        ]
    )
    np.testing.assert_array_equal(grid, expected)


def test_image_grid_range_channels_and_defaults():
    images = np.array([[[-1.0, 0.0], [1.0, 3.0]]] * 4)[..., None]  # (4, 2, 2, 1)
    grid = plots.image_grid(images, value_range=(-1.0, 1.0))
    # Default nrow = ceil(sqrt(4)) = 2, pad 1, white gaps.
    assert grid.shape == (5, 5)
    np.testing.assert_array_equal(grid[:2, :2], [[0.0, 0.5], [1.0, 1.0]])
    np.testing.assert_array_equal(grid[2], np.ones(5))
    # nrow larger than n is capped.
    assert plots.image_grid(np.zeros((2, 3, 3)), nrow=10).shape == (3, 7)
    with pytest.raises(ValueError):
        plots.image_grid(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        plots.image_grid(np.zeros((1, 3, 3)), value_range=(1.0, 1.0))


def test_save_image_grid_pixels(tmp_path):
    images = np.stack([np.full((4, 4), v) for v in (0.0, 0.5, 1.0, 2.0)])
    path = str(tmp_path / "grid.png")
    plots.save_image_grid(path, images, nrow=4, scale=2)
    pixels = _check_png(path, tmp_path)
    # One PNG pixel per grid value, times the scale: (4, 4*4 + 3) * 2.
    assert pixels.shape[:2] == (8, 38)
    gray = pixels[..., 0]
    expected = np.kron(plots.image_grid(images, nrow=4), np.ones((2, 2)))
    np.testing.assert_allclose(gray, expected, atol=1 / 255 + 1e-6)
    assert gray[0, 0] == 0.0 and gray[0, 8] == 1.0 and gray[0, -1] == 1.0


def test_plot_grids_side_by_side(tmp_path):
    rng = np.random.default_rng(0)
    panels = [(name, rng.uniform(size=(16, 28, 28))) for name in ("SGLD", "SGHMC", "MALA")]
    path = str(tmp_path / "sub" / "grids.png")
    plots.plot_grids_side_by_side(path, panels, nrow=4)
    image = _check_png(path, tmp_path / "sub")
    assert image.shape[1] > 2.5 * image.shape[0]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots.matplotlib.image, "imsave", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_image_grid(str(tmp_path / "grid.png"), np.zeros((1, 2, 2)))
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_existing_file(tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"old")
    plots.save_image_grid(path, np.zeros((1, 2, 2)))
    _check_png(path, tmp_path)


def test_long_run_plot_with_and_without_scores(tmp_path):
    grids = [("10 steps", np.zeros((4, 28, 28))), ("20 steps", np.ones((4, 28, 28)))]
    scored = [{"steps": 10, "fid": 50.0, "class_entropy": 2.0, "fraction_outside_range": 0.1},
              {"steps": 20, "fid": 40.0, "class_entropy": 2.1, "fraction_outside_range": 0.0}]
    unscored = [{"steps": 10, "fraction_outside_range": 0.0}, {"steps": 20, "fraction_outside_range": 0.0}]
    for name, curve in (("scored.png", scored), ("unscored.png", unscored)):
        path = plots.plot_long_run(tmp_path / name, curve, grids)
        assert matplotlib.image.imread(path).shape[2] in (3, 4)
