"""Reload a finished (or stopped) run, draw new samples from it, or evaluate it again.

>>> restored = jebm.restore("/tmp/jebm_gmm_sghmc")          # the newest checkpoint
>>> x = jebm.sample(restored, jax.random.key(0), 1000)     # (1000, 2) NumPy array

``restore`` reads the run's ``config.json`` (laid over today's config schema, so
fields added since the run take their defaults) and its newest checkpoint (or
``step``). ``sample`` runs fresh chains exactly as the run's evaluation does:
chains drawn from the config's ``chain_init`` noise, the config's sampler,
``eval.sampler_steps`` steps (``sampler.num_steps`` where unset) unless told otherwise, the evaluation parameters
(the EMA where the run kept one). ``evaluate_workdir`` re-runs a run's whole
evaluation (``--mode=eval``). ``restore`` is the one place a workdir is read
back: ``--mode=eval``, ``--mode=sample`` and the experiments all go through it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
from ml_collections import config_dict

from jebm import checkpoint, config_lib, config_validation, fileio


@dataclasses.dataclass(frozen=True)
class Restored:
    """A run brought back: what :func:`sample` needs, and what a user may want to inspect.

    Attributes:
      config: the run's config (from ``workdir/config.json``).
      model: the Flax energy module, ``model.apply(params, x) -> (batch,)`` energies.
      params: the parameters used for evaluation: the EMA where the run kept one
        (``training.ema_decay > 0``), else the trained parameters.
      step: the training step of the checkpoint.
      workdir: where the run lives.
      parts: the run's built parts (``train.build_parts``): data, noise, optimiser.
    """

    config: config_dict.ConfigDict
    model: Any
    params: Any
    step: int
    workdir: Path
    parts: Any = dataclasses.field(repr=False)


def restore(workdir: str | os.PathLike, *, step: int | None = None, config: config_dict.ConfigDict | None = None,
            energy=None, data=None) -> Restored:
    """The run in ``workdir`` at its newest checkpoint, or at ``step``.

    A run trained on a user's own ``energy`` module or ``data`` array
    (``train_and_evaluate(config, workdir, energy=..., data=...)``) is restored
    with the same ones: the workdir holds their parameters, not their code.
    ``config`` (the one the run was trained with) takes the place of the
    workdir's ``config.json``.

    Raises:
      FileNotFoundError: ``workdir`` has no ``config.json`` (not a jebm run), no
        checkpoint, or no checkpoint at ``step`` (the error lists those it has).
    """
    from jebm import train  # train imports the whole evaluation stack: only when asked

    workdir = Path(workdir)
    if config is None:
        if not (workdir / "config.json").is_file():
            raise FileNotFoundError(f"workdir={str(workdir)!r} has no config.json: is it a jebm run?")
        config = config_lib.config_from_json(workdir / "config.json")
    config_validation.validate(config)
    # sharding.num_cpu_devices is left alone: a restored run is used on one device, and the
    # checkpoint of a sharded run is read whole.
    parts = train.build_parts(config, energy=energy, data=data)
    template = train.create_train_state(config, parts)
    directory = checkpoint.checkpoint_dir(workdir)
    steps = checkpoint.available_steps(directory)
    if not steps:
        raise FileNotFoundError(f"workdir={str(workdir)!r} has no checkpoint in {directory}")
    if step is None:
        state, step = checkpoint.restore_latest(directory, template)
    elif step not in steps:
        raise FileNotFoundError(f"step={step} has no checkpoint in {directory}; it has steps {steps}")
    else:
        state = checkpoint.restore(directory / f"ckpt_{step}.msgpack", template)
    return Restored(config=config, model=parts.model, params=state.eval_params, step=int(step),
                    workdir=workdir, parts=parts)


def sample(
    restored: Restored,
    rng_key: jax.Array,
    num_samples: int,
    *,
    num_steps: int | None = None,
    sampler: str | Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """``num_samples`` draws from fresh chains on the restored energy.

    Args:
      restored: from :func:`restore`.
      rng_key: the chains' randomness (the same key gives the same samples).
      num_samples: number of chains (≥ 1).
      num_steps: sampler steps; ``None`` = the run's ``eval.sampler_steps`` (or ``sampler.num_steps``).
      sampler: ``None`` (the run's sampler), a sampler name (``"sgld"``,
        ``"sghmc"``, ``"mala"`` or a registered one) with the run's other
        sampler settings, or a mapping of ``config.sampler`` fields to change
        (e.g. ``{"name": "mala", "step_size": 1e-3}``).
      progress: report the chains' progress as training does (a bar on a
        terminal, else a log line every ``training.progress_every_s``
        seconds); ``None`` = the run's ``training.progress``. The samples are
        the same with and without it, bit for bit.

    Returns:
      A NumPy array ``(num_samples, *example_shape)`` in the data's scale, as the
      chains left it (no clipping).

    Raises:
      ValueError: for a bad ``num_samples`` / ``num_steps`` or sampler field,
        naming the field and what is allowed.
    """
    from jebm.evaluation import chains

    for name, value in (("num_samples", num_samples), ("num_steps", num_steps)):
        if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    config = restored.config
    if sampler is not None:
        config = config_dict.ConfigDict(config.to_dict())
        changes = {"name": sampler} if isinstance(sampler, str) else dict(sampler)
        unknown = sorted(set(changes) - set(config.sampler.keys()))
        if unknown:
            raise ValueError(f"sampler fields {unknown} do not exist; config.sampler has {sorted(config.sampler.keys())}")
        for field, value in changes.items():
            config.sampler[field] = value
        config_validation.validate(config)
    steps = int(num_steps or chains.eval_sampler_steps(config))
    if progress is None:
        progress = bool(config.training.progress)
    return chains.fresh_samples(config, restored.parts, restored.params, rng_key, int(num_samples), steps,
                                progress=bool(progress))


def evaluate_workdir(workdir: str | os.PathLike, config: config_dict.ConfigDict | None = None, *,
                     energy=None, data=None) -> dict:
    """Re-runs the whole evaluation of a finished (or stopped) run's newest checkpoint with today's code.

    The run is read back by :func:`restore` (``config``, ``energy`` and ``data``
    as there). Writes the evaluation files into ``workdir`` as a run's end does,
    and the summary to ``eval_<step>.json`` (``summary.json`` is left as the run
    wrote it).

    Raises:
      FileNotFoundError: when the workdir has no config.json or no checkpoint.
    """
    from jebm import evaluation, reporting
    from jebm.evaluation import diagnostics

    restored = restore(workdir, config=config, energy=energy, data=data)
    config, parts, workdir, step = restored.config, restored.parts, restored.workdir, restored.step
    t0 = time.time()
    records = reporting.read_metrics(workdir / "metrics.jsonl", step)
    drift_noise = diagnostics.sampler_drift_noise_ratio(config.sampler, parts.data.example_shape)
    for r in records:  # runs logged before the ratio existed: derive it from their gradient norms
        if "drift_noise_ratio" not in r and "grad_norm_run_mean" in r:
            r["drift_noise_ratio"] = float(drift_noise(r["grad_norm_run_mean"]))
    summary = evaluation.evaluate_and_write(config, parts, restored.params, workdir, records)
    summary.update(checkpoint_step=step, eval_time_s=time.time() - t0, data=parts.data.description,
                   drift_noise=diagnostics.drift_noise_summary(records, config.sampler.num_steps))
    fileio.write_json(workdir / f"eval_{step}.json", summary)
    return summary
