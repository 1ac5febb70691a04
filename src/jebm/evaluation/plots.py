"""Figures for the experiments; the only jebm module that imports matplotlib.

Every ``plot_*``/``save_*`` function takes NumPy arrays (jax arrays work too)
and an output path, writes a PNG atomically (rendered to a temporary file in
the same directory, then moved into place with ``os.replace``, so readers
never see a half-written image), closes its figure and returns the path.

Grid conventions follow :mod:`jebm.evaluation.metrics`: ``xs``/``ys`` are cell centres
and ``values[i, j]`` belongs to the point ``(xs[j], ys[i])``, drawn with
``origin="lower"``.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Mapping, Sequence

import matplotlib

# Headless rendering by default, but only when nobody has imported pyplot
# yet: switching the backend under an interactive session would break it.
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.image  # noqa: E402  (must follow the backend choice)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special  # noqa: E402

from jebm import fileio  # noqa: E402

__all__ = [
    "image_grid",
    "plot_ais_convergence",
    "plot_energy_fit",
    "plot_energy_landscapes",
    "plot_grids_side_by_side",
    "plot_long_run",
    "plot_samples_over_density",
    "plot_toy_fit",
    "plot_training_curves",
    "read_png_rgb",
    "save_image_grid",
]

DPI = 120
_PANEL_INCHES = 4.0
_MARKER_SIZE = 2.0


# ---------------------------------------------------------------------------
# Writing files
# ---------------------------------------------------------------------------


def _save_figure(fig: matplotlib.figure.Figure, path: str | os.PathLike) -> str:
    """Saves ``fig`` as a PNG atomically and always closes it."""
    try:
        return str(fileio.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI)))
    finally:
        plt.close(fig)


def _subplots(ncols: int, nrows: int = 1, width: float = _PANEL_INCHES, height: float = _PANEL_INCHES):
    """A figure with an ``nrows x ncols`` grid of axes, always as a 2D array."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


# ---------------------------------------------------------------------------
# 2D densities and energies
# ---------------------------------------------------------------------------


def _extent(xs: Any, ys: Any) -> tuple[float, float, float, float]:
    """imshow extent (cell edges) of a grid given by its cell centres."""
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    dx = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else 1.0
    dy = (ys[-1] - ys[0]) / (len(ys) - 1) if len(ys) > 1 else 1.0
    return xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dy / 2, ys[-1] + dy / 2


def _grid_density(log_values: Any, xs: Any, ys: Any) -> np.ndarray:
    """Turns unnormalised log-values on a grid into a density.

    Normalised so that ``sum(density) * cell_area == 1``, which puts the true
    and the learned density in the same units.
    """
    log_values = np.asarray(log_values, dtype=np.float64)
    x0, x1, y0, y1 = _extent(xs, ys)
    cell_area = (x1 - x0) * (y1 - y0) / log_values.size
    return np.exp(log_values - scipy.special.logsumexp(log_values)) / cell_area


def _show_field(fig, ax, values: np.ndarray, extent, title: str | None, colorbar: bool = True, **kwargs):
    """Draws a grid of values with ``origin="lower"`` and an optional colorbar."""
    image = ax.imshow(values, origin="lower", extent=extent, aspect="equal", **kwargs)
    if title:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(image, ax=ax, shrink=0.8)
    return image


def _scatter(ax, samples: Any, extent) -> None:
    """Small-marker scatter of ``(n, 2)`` samples clipped to the plot extent."""
    samples = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    ax.scatter(samples[:, 0], samples[:, 1], s=_MARKER_SIZE, c="tab:red", alpha=0.6, linewidths=0)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")


def plot_samples_over_density(
    path: str | os.PathLike,
    xs: Any,
    ys: Any,
    log_density: Any,
    samples_by_name: Mapping[str, Any],
    title: str | None = None,
) -> str:
    """One panel per sampler: its samples scattered over the target density.

    Args:
      path: Output PNG path.
      xs: ``(nx,)`` grid cell centres along x.
      ys: ``(ny,)`` grid cell centres along y.
      log_density: ``(ny, nx)`` target log-density (unnormalised is fine).
      samples_by_name: Panel title -> ``(n, 2)`` samples, in display order.
      title: Optional figure title.

    Returns:
      ``path`` as a string.
    """
    extent = _extent(xs, ys)
    density = _grid_density(log_density, xs, ys)
    fig, axes = _subplots(max(1, len(samples_by_name)))
    if not samples_by_name:
        _show_field(fig, axes[0, 0], density, extent, "target density", cmap="viridis")
    for ax, (name, samples) in zip(axes[0], samples_by_name.items()):
        _show_field(fig, ax, density, extent, name, colorbar=False, cmap="Greys")
        _scatter(ax, samples, extent)
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_toy_fit(
    path: str | os.PathLike,
    xs: Any,
    ys: Any,
    true_log_density: Any,
    energy: Any,
    samples: Any,
    title: str | None = None,
) -> str:
    """The paper's Figure 2: true density, learned density and samples.

    Both densities are normalised over the grid (the learned one is
    ``exp(-E) / Z``) and share one colour scale so they compare directly.

    Args:
      path: Output PNG path.
      xs: ``(nx,)`` grid cell centres along x.
      ys: ``(ny,)`` grid cell centres along y.
      true_log_density: ``(ny, nx)`` true log-density.
      energy: ``(ny, nx)`` learned energy.
      samples: ``(n, 2)`` model samples.
      title: Optional figure title.

    Returns:
      ``path`` as a string.
    """
    extent = _extent(xs, ys)
    p_true = _grid_density(true_log_density, xs, ys)
    p_model = _grid_density(-np.asarray(energy, dtype=np.float64), xs, ys)
    vmax = float(max(p_true.max(), p_model.max()))
    fig, axes = _subplots(3)
    _show_field(fig, axes[0, 0], p_true, extent, "true density", cmap="viridis", vmin=0.0, vmax=vmax)
    _show_field(fig, axes[0, 1], p_model, extent, r"learned density $e^{-E}/Z$", cmap="viridis", vmin=0.0, vmax=vmax)
    _scatter(axes[0, 2], samples, extent)
    axes[0, 2].set_title("samples")
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_energy_fit(
    path: str | os.PathLike,
    xs: Any,
    ys: Any,
    energy: Any,
    samples: Any,
    held_out: Any,
    title: str | None = None,
) -> str:
    """A learned 2D energy without a known true density: density, landscape, samples.

    Panels: the learned density ``exp(-E)/Z`` (normalised over the grid) with the
    held-out points over it, the energy landscape ``E`` itself, and the model's
    samples.

    Args:
      path: Output PNG path.
      xs: ``(nx,)`` grid cell centres along x.
      ys: ``(ny,)`` grid cell centres along y.
      energy: ``(ny, nx)`` learned energy.
      samples: ``(n, 2)`` model samples.
      held_out: ``(m, 2)`` data points (held-out or true samples) shown over the density.
      title: Optional figure title.

    Returns:
      ``path`` as a string.
    """
    extent = _extent(xs, ys)
    energy = np.asarray(energy, dtype=np.float64)
    fig, axes = _subplots(3)
    _show_field(fig, axes[0, 0], _grid_density(-energy, xs, ys), extent, r"learned density $e^{-E}/Z$ and data points",
                cmap="viridis")
    _scatter(axes[0, 0], held_out, extent)
    _show_field(fig, axes[0, 1], energy, extent, "energy E", cmap="magma")
    _scatter(axes[0, 2], samples, extent)
    axes[0, 2].set_title("samples")
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_energy_landscapes(
    path: str | os.PathLike,
    panels: Sequence[tuple[str, Any, Any, Any]],
    title: str | None = None,
) -> str:
    """The paper's Figure 3: energy landscapes side by side.

    Each panel has its own colour scale and colorbar, because the point of
    the figure is that the scale of the energy changes (e.g. with eta).

    Args:
      path: Output PNG path.
      panels: ``(label, xs, ys, energy)`` tuples with ``energy`` of shape
        ``(len(ys), len(xs))``.
      title: Optional figure title.

    Returns:
      ``path`` as a string.
    """
    fig, axes = _subplots(max(1, len(panels)))
    for ax, (label, xs, ys, energy) in zip(axes[0], panels):
        _show_field(fig, ax, np.asarray(energy, dtype=np.float64), _extent(xs, ys), label, cmap="magma")
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of ``key`` over the records that have a finite value.

    Records without a ``step`` use their position in the list.
    """
    steps, values = [], []
    for index, record in enumerate(records):
        value = record.get(key)
        if value is None:
            continue
        value = float(np.asarray(value))
        if math.isfinite(value):
            steps.append(float(np.asarray(record.get("step", index))))
            values.append(value)
    return np.asarray(steps), np.asarray(values)


def plot_training_curves(path: str | os.PathLike, records: Sequence[Mapping[str, Any]]) -> str:
    """Energies of real and generated samples, loss and gradient norm vs step.

    Panels (each drawn only if some record has its keys): energies
    ``energy_pos`` (E(x+), real) and ``energy_neg`` (E(x-), generated);
    ``loss``; ``grad_norm`` (the norm of grad_x E at the negatives), on a log
    axis when all its values are positive. Missing or non-finite values are
    skipped, so a diverged run still plots up to the divergence.

    Args:
      path: Output PNG path.
      records: Per-logged-step dicts with any of the keys ``step``, ``loss``,
        ``energy_pos``, ``energy_neg``, ``grad_norm``.

    Returns:
      ``path`` as a string.
    """
    # (title, [(record key, legend label)], log scale allowed)
    panel_specs = [
        ("energies", [("energy_pos", r"$E(x^+)$ real"), ("energy_neg", r"$E(x^-)$ generated")], False),
        ("loss", [("loss", "loss")], False),
        (r"$\|\nabla_x E\|$ at negatives", [("grad_norm", "grad norm")], True),
    ]
    panels = []
    for title, keys, log_ok in panel_specs:
        lines = [(label, *_series(records, key)) for key, label in keys]
        lines = [line for line in lines if line[1].size]
        if lines:
            panels.append((title, lines, log_ok))

    fig, axes = _subplots(max(1, len(panels)), width=5.0, height=3.5)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0, 0].transAxes)
    for ax, (title, lines, log_ok) in zip(axes[0], panels):
        for label, steps, values in lines:
            ax.plot(steps, values, label=label, linewidth=1.0)
        if log_ok and all(np.all(v > 0) for _, _, v in lines):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(lines) > 1:
            ax.legend()
    return _save_figure(fig, path)


# ---------------------------------------------------------------------------
# Image grids
# ---------------------------------------------------------------------------


def image_grid(
    images: Any,
    nrow: int | None = None,
    pad: int = 1,
    value_range: tuple[float, float] = (0.0, 1.0),
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tiles grayscale images into one array with gaps between them.

    Values are clipped to ``value_range`` and rescaled to ``[0, 1]``. Images
    fill the grid row by row; gaps (``pad`` pixels, between tiles only, no
    outer border) and unused trailing cells get ``pad_value``. The default
    white gap stands out against MNIST's black background.

    Args:
      images: ``(n, h, w)`` or ``(n, h, w, 1)`` images, ``n >= 1``.
      nrow: Images per row (the torchvision convention); default
        ``ceil(sqrt(n))``. Capped at ``n``.
      pad: Gap width in pixels.
      value_range: ``(low, high)`` mapped to 0 and 1.
      pad_value: Value in ``[0, 1]`` of gaps and empty cells.

    Returns:
      A float64 array of shape ``(rows*h + (rows-1)*pad, cols*w + (cols-1)*pad)``
      with ``cols = min(nrow, n)`` and ``rows = ceil(n / cols)``.

    Raises:
      ValueError: On a bad shape, an empty batch or an empty value range.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, 1) with n >= 1, got {images.shape}")
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"value_range must satisfy low < high, got {value_range}")
    n, h, w = images.shape
    cols = min(nrow or math.ceil(math.sqrt(n)), n)
    if cols < 1 or pad < 0:
        raise ValueError(f"need nrow >= 1 and pad >= 0, got nrow={nrow}, pad={pad}")
    rows = math.ceil(n / cols)
    scaled = (np.clip(images, low, high) - low) / (high - low)
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad), float(pad_value))
    for index in range(n):
        top = (index // cols) * (h + pad)
        left = (index % cols) * (w + pad)
        out[top : top + h, left : left + w] = scaled[index]
    return out


def read_png_rgb(path: str | os.PathLike) -> np.ndarray:
    """A PNG file as an ``(h, w, 3)`` float array in [0, 1] (alpha dropped, grey repeated), e.g. for TensorBoard."""
    pixels = matplotlib.image.imread(str(path))
    if pixels.dtype == np.uint8:
        pixels = pixels.astype(np.float32) / 255.0
    return pixels[..., :3] if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1)


def save_image_grid(
    path: str | os.PathLike,
    images: Any,
    nrow: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    pad: int = 1,
    scale: int = 1,
) -> str:
    """Writes :func:`image_grid` as a grayscale PNG, one pixel per grid value.

    No axes or resampling: the PNG is the array itself (8-bit quantised),
    optionally enlarged by an integer nearest-neighbour ``scale``.

    Args:
      path: Output PNG path.
      images: ``(n, h, w)`` or ``(n, h, w, 1)`` images.
      nrow: Images per row; see :func:`image_grid`.
      value_range: ``(low, high)`` shown as black and white; values are
        clipped to it.
      pad: Gap width in pixels (before scaling).
      scale: Integer enlargement factor.

    Returns:
      ``path`` as a string.
    """
    pixels = image_grid(images, nrow=nrow, pad=pad, value_range=value_range)
    if scale != 1:
        pixels = np.kron(pixels, np.ones((int(scale), int(scale))))
    return str(fileio.atomic_write(
        path, lambda f: matplotlib.image.imsave(f, pixels, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    ))


def plot_long_run(
    path: str | os.PathLike,
    curve: Sequence[Mapping[str, Any]],
    panels: Sequence[tuple[str, Any]],
) -> str:
    """Scores of fresh chains against chain length, above their sample grids (Figure 5).

    Args:
      path: Output PNG path.
      curve: one dict per length with ``steps`` and, where scored, ``fid``,
        ``class_entropy`` and ``fraction_outside_range``.
      panels: ``(title, images in [0, 1])`` grids, one per length.

    Returns:
      ``path`` as a string.
    """
    n = max(3, len(panels))
    fig = plt.figure(figsize=(3.2 * n, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.1])
    score_axes = top.subplots(1, 3)
    steps = np.asarray([r["steps"] for r in curve], float)
    for ax, (key, label) in zip(score_axes, [("fid", "FID (lower is better)"),
                                             ("class_entropy", "class entropy (max log 10)"),
                                             ("fraction_outside_range", "pixels outside data range")]):
        values = np.asarray([r.get(key, np.nan) if r.get(key) is not None else np.nan for r in curve], float)
        ax.set_title(label)
        if not np.any(np.isfinite(values)):  # e.g. eval.quality off: nothing scored
            ax.text(0.5, 0.5, "not scored", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.plot(steps, values, "o-")
        if key == "class_entropy":
            ax.axhline(math.log(10), color="0.6", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("chain length (steps)")
    grid_axes = bottom.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (title, images) in zip(grid_axes, panels):
        ax.imshow(image_grid(images, nrow=8), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title)
    for ax in grid_axes:
        ax.set_axis_off()
    return _save_figure(fig, path)


def plot_grids_side_by_side(
    path: str | os.PathLike,
    panels: Sequence[tuple[str, Any]],
    nrow: int | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = None,
) -> str:
    """The paper's Figure 5 style: several titled sample grids side by side.

    Args:
      path: Output PNG path.
      panels: ``(title, images)`` tuples; images as in :func:`image_grid`.
      nrow: Images per row in every grid.
      value_range: ``(low, high)`` shown as black and white.
      title: Optional figure title.

    Returns:
      ``path`` as a string.
    """
    fig, axes = _subplots(max(1, len(panels)))
    for ax, (panel_title, images) in zip(axes[0], panels):
        pixels = image_grid(images, nrow=nrow, value_range=value_range)
        ax.imshow(pixels, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(panel_title)
    for ax in axes[0]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_ais_convergence(
    path: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    *,
    exact: float | None = None,
    upper: float | None = None,
    title: str = "",
) -> str:
    """AIS's log Ẑ ± its standard error against the number of temperatures.

    Args:
      path: Output PNG path.
      rows: ``[{"num_temps": K, "log_z": ..., "log_z_std": ...}, ...]`` as
        :func:`jebm.evaluation.likelihood.ais_convergence` returns.
      exact: The exact log Z (e.g. from quadrature), drawn as a horizontal line.
      upper: A reverse-AIS upper bound, drawn as a dashed horizontal line.
      title: Axes title.

    Returns:
      ``path`` as a string.
    """
    temps = np.asarray([r["num_temps"] for r in rows], dtype=np.float64)
    log_z = np.asarray([r["log_z"] for r in rows], dtype=np.float64)
    std = np.asarray([r["log_z_std"] for r in rows], dtype=np.float64)
    fig, axes = _subplots(1, width=5.0, height=3.5)
    ax = axes[0, 0]
    ax.errorbar(temps, log_z, yerr=std, marker="o", capsize=3, label="AIS log Ẑ ± std")
    if exact is not None:
        ax.axhline(exact, color="black", linewidth=1.0, label="exact log Z")
    if upper is not None:
        ax.axhline(upper, color="tab:red", linestyle="--", linewidth=1.0, label="reverse-AIS upper bound")
    ax.set_xscale("log")
    ax.set_xlabel("number of temperatures K")
    ax.set_ylabel("log Z (nats)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return _save_figure(fig, path)


def plot_convergence(path: str | os.PathLike, history: Sequence[tuple[int, Sequence[Mapping[str, Any]]]]) -> str:
    """The convergence watch against the training step (jebm.evaluation.convergence).

    Args:
      path: Output PNG path.
      history: ``(training step, rows)`` per check; each row has ``start``
        (``"noise"`` or ``"data"``), ``steps`` (chain length) and, where scored,
        ``fid``, ``class_entropy``, ``distance``, ``energy_drift_nats`` and ``decorrelation``.

    Returns:
      ``path`` as a string.
    """
    panels = [("fid", "FID of the chains' ends (lower is better)"),
              ("class_entropy", "class entropy (max log 10)"),
              ("distance", "RMS pixel distance from the start"),
              ("energy_drift_nats", "mean energy drift from the start (nats)"),
              ("decorrelation", "moved since the previous length ÷ between chains\n(0: at rest, 1: independent)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), layout="constrained")
    series = sorted({(row["start"], row["steps"]) for _, rows in history for row in rows})
    for ax, (key, title) in zip(axes, panels):
        for start, length in series:
            points = [(step, row.get(key)) for step, rows in history for row in rows
                      if row["start"] == start and row["steps"] == length and row.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, "o-" if start == "noise" else "s--", label=f"from {start}, {length:,} steps")
        if key == "class_entropy":
            ax.axhline(math.log(10), color="0.6", linestyle="--", linewidth=0.8)
        if key == "energy_drift_nats":
            ax.set_yscale("symlog")
        if key == "decorrelation":
            ax.axhline(1.0, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step")
    axes[0].legend(fontsize=7)
    return _save_figure(fig, path)


def plot_chain_length_curves(path: str | os.PathLike, runs: Sequence[Mapping[str, Any]]) -> str:
    """FID and class entropy against chain length, from noise and from data, one line per run and start.

    Args:
      path: Output PNG path.
      runs: dicts with ``name`` and ``curve``, a list of ``{"steps", "start", "fid", "class_entropy"}``.

    Returns:
      ``path`` as a string.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    # One colour per run (tab20 has 20; the default cycle's 10 repeat with 5 runs of two starts), one style per start.
    colours = plt.get_cmap("tab20" if len(runs) > 10 else "tab10").colors
    for i, run in enumerate(runs):
        for start, style in (("noise", "o-"), ("data", "s--")):
            pts = [c for c in run["curve"] if c["start"] == start and c.get("fid") is not None]
            if not pts:
                continue
            steps = [c["steps"] for c in pts]
            kw = dict(color=colours[i % len(colours)], label=f"{run['name']}, from {start}")
            axes[0].plot(steps, [c["fid"] for c in pts], style, **kw)
            axes[1].plot(steps, [c["class_entropy"] for c in pts], style, **kw)
    axes[0].set_title("FID (lower is better)")
    axes[0].set_yscale("log")
    axes[1].set_title("class entropy (max log 10)")
    axes[1].axhline(math.log(10), color="0.6", linestyle="--", linewidth=0.8)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("chain length (steps)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)  # off the curves
    return _save_figure(fig, path)
