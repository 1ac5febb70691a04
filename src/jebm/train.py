"""Maximum-likelihood training of an energy-based model (Algorithm 1).

``train_and_evaluate(config, workdir)`` is the whole job: it builds every part
by name from the config, resumes from the newest checkpoint in ``workdir`` if
there is one, runs the jitted ``train_step`` with a divergence guard,
checkpoints atomically, and finally evaluates the model with *fresh* chains
and writes the workdir contract described in the README.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct
from ml_collections import config_dict

from jebm import checkpoint, config_validation, evaluation, fileio, losses, optim, reporting, sharding
from jebm.evaluation import convergence, diagnostics
from jebm.guard import DivergenceError, check_divergence
from jebm.data import pipeline
from jebm.energies import heads
from jebm.energies import options as energy_options
from jebm.samplers import factory as sampler_factory
from jebm.samplers import init as chain_init


class TrainState(struct.PyTreeNode):
    """Everything a training step reads and writes; checkpointed whole.

    Attributes:
      step: optimizer steps taken (also the data position).
      params: energy parameters θ.
      opt_state: optimizer state (holds the current learning rate).
      bank: the persistent chains (``PersistentBank``) or ``None`` without PCD.
      rng: the run's base PRNG key (raw ``uint32[2]``); step ``s`` uses
        ``fold_in(rng, s)``, so resuming replays the same randomness.
      ema_params: the exponential moving average θ̄ of the parameters
        (``training.ema_decay > 0``), else ``None``.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    bank: Any
    rng: jax.Array
    ema_params: Any = None

    @property
    def eval_params(self):
        """The parameters evaluation samples and scores with: θ̄ when kept, else θ."""
        return self.params if self.ema_params is None else self.ema_params


@dataclasses.dataclass(frozen=True)
class Parts:
    """The pieces a config selects, built once."""

    model: Any
    tx: optax.GradientTransformation
    data: pipeline.TrainData
    noise_fn: Callable[[jax.Array, int], jax.Array]
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array]
    num_chains: int
    lr_multiplier: Callable[[jax.Array], jax.Array]
    total_steps: int  # epochs × steps per epoch, capped by training.max_steps


def build_parts(config: config_dict.ConfigDict, *, energy=None, data=None) -> Parts:
    """Builds model, optimizer, data and chain initialiser from the config.

    ``energy`` (a Flax module ``(batch, *example_shape) -> (batch,)``) takes the
    place of ``energy.name``'s network, under the config's head (none with
    ``energy.head="none"``); ``data`` (an array ``(n, *example_shape)``) takes
    the place of ``dataset.name``'s data (see ``pipeline.array_data``).
    """
    model = energy_options.from_config(config.energy, energy)
    o = config.optimizer
    optim.make_optimizer(o.name, o.learning_rate, o.weight_decay)  # validates the name early
    data = pipeline.make_train_data(config.dataset, config.training.batch_size, config.seed, data)
    total_steps = data.steps_per_epoch * config.training.num_epochs
    if config.training.max_steps:
        total_steps = min(total_steps, config.training.max_steps)
    tx, multiplier = optim.training_optimizer(o, total_steps)
    noise_fn = sampler_factory.make_noise_init(config.chain_init, data.example_shape)
    loss_fn = losses.make_loss(config.loss.name, config.loss.l2_energy)
    num_chains = config.sampler.num_chains or config.training.batch_size
    return Parts(model, tx, data, noise_fn, loss_fn, num_chains, multiplier, total_steps)


def create_train_state(config, parts: Parts) -> TrainState:
    """Fresh parameters, optimizer state, persistent bank and PRNG key."""
    rng = jax.random.PRNGKey(config.seed)
    init_key, bank_key = jax.random.split(jax.random.fold_in(rng, 0x1717))
    params = jax.jit(parts.model.init)(init_key, jnp.zeros((1, *parts.data.example_shape), jnp.float32))
    energy_options.check_energy_shape(parts.model, params, parts.data.example_shape)
    bank = None
    if config.chain_init.persistent:
        bank = chain_init.bank_init(bank_key, parts.noise_fn, config.chain_init.bank_size)
    return TrainState(
        step=jnp.asarray(0, jnp.int32),
        params=params,
        opt_state=parts.tx.init(params),
        bank=bank,
        rng=rng,
        # A copy, not the same buffers: the jitted step donates the state, and XLA
        # refuses to donate one buffer twice.
        ema_params=jax.tree_util.tree_map(jnp.copy, params) if config.training.ema_decay else None,
    )


def make_train_step(config, parts: Parts, chain_sharding=None):
    """Returns the pure ``train_step(state, batch) -> (state, metrics)`` (not jitted).

    ``chain_sharding`` (a ``NamedSharding``) splits the chains over devices.
    """
    scfg = config.sampler
    persistent = config.chain_init.persistent
    reinit = config.chain_init.reinit_fraction
    model, n = parts.model, parts.num_chains
    ema_decay = config.training.ema_decay
    drift_noise = diagnostics.sampler_drift_noise_ratio(scfg, parts.data.example_shape)

    def train_step(state: TrainState, batch: jax.Array):
        keys = sampler_factory.chain_keys(jax.random.fold_in(state.rng, state.step))
        if persistent:
            x0, idx, _ = chain_init.bank_draw(keys.start, state.bank, n, parts.noise_fn, reinit)
        else:
            x0 = parts.noise_fn(keys.start, n)
        if chain_sharding is not None:
            x0 = jax.lax.with_sharding_constraint(x0, chain_sharding)
        sampler_state, summary = sampler_factory.fresh_chains(
            scfg, lambda x: model.apply(state.params, x), x0, keys, scfg.num_steps)
        x_neg = jax.lax.stop_gradient(sampler_state.position)

        def loss_of(params):
            e_pos = model.apply(params, batch)
            e_neg = model.apply(params, x_neg)
            return parts.loss_fn(e_pos, e_neg), (e_pos, e_neg)

        (loss, (e_pos, e_neg)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
        updates, opt_state = parts.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        bank = chain_init.bank_write(state.bank, idx, x_neg) if persistent else state.bank
        ema_params = state.ema_params
        if ema_decay:
            ema_params = optax.incremental_update(params, ema_params, 1.0 - ema_decay)
        param_grad_norm = optax.tree.norm(grads)
        metrics = {
            "loss": loss,
            "energy_pos": jnp.mean(e_pos),
            "energy_neg": jnp.mean(e_neg),
            "grad_norm": jnp.mean(summary.final.grad_norm),
            "grad_norm_run_mean": jnp.mean(summary.mean.grad_norm),
            "drift_noise_ratio": drift_noise(jnp.mean(summary.mean.grad_norm)),
            "param_grad_norm": param_grad_norm,
            "learning_rate": optim.learning_rate(state.opt_state, parts.lr_multiplier),
            # Guard inputs: the largest magnitudes seen, NaN-propagating.
            "max_abs_energy": jnp.maximum(jnp.max(jnp.abs(e_pos)), jnp.max(jnp.abs(e_neg))),
            "chains_finite": jnp.all(jnp.isfinite(x_neg)),
        }
        if hasattr(summary.mean, "acceptance_rate"):  # MALA: mean MH acceptance probability over the L steps
            metrics["acceptance_rate"] = jnp.mean(summary.mean.acceptance_rate)
        head = params["params"].get("energy_head", {})
        metrics.update({name: head[name] for name in ("beta", "gamma") if name in head})  # learnable head scalars
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, bank=bank,
                                  ema_params=ema_params)
        return new_state, metrics

    return train_step


@dataclasses.dataclass(frozen=True)
class Every:
    """A periodic hook of the training loop: ``fn(step, state, metrics)`` after every ``every``-th step.

    ``every = 0`` never runs it; ``at_end`` also runs it after the last step.
    The loop runs its hooks in list order after each healthy step.
    """

    every: int
    fn: Callable
    at_end: bool = False

    def due(self, step: int, total: int) -> bool:
        return bool(self.every and step % self.every == 0) or (self.at_end and step == total)


def train(config, workdir: str | os.PathLike, *, energy=None, data=None) -> tuple[TrainState, Parts, dict]:
    """The training loop; returns the final state, the parts and run info (``energy``, ``data``: see ``build_parts``).

    Raises:
      ValueError: ``sharding.num_cpu_devices`` asks for a CPU device count JAX can no
        longer take in this process (see ``sharding.use_cpu_devices``); nothing is written.
    """
    sharding.use_cpu_devices(config.sharding.num_cpu_devices)
    # One probe name per process: they may share the workdir.
    workdir = fileio.writable_workdir(str(workdir), probe_name=f".write_test.{jax.process_index()}")
    parts = build_parts(config, energy=energy, data=data)
    if jax.process_index() == 0:
        fileio.write_json(workdir / "config.json", json.loads(config.to_json_best_effort()))
    state = create_train_state(config, parts)
    ckpt_dir = checkpoint.checkpoint_dir(workdir)
    state_sh = sharding.train_state_shardings(config, parts.num_chains, state)
    restored, restored_step = checkpoint.restore_latest(ckpt_dir, state, shardings=state_sh,
                                                        num_processes=jax.process_count())
    if restored is not None:
        state = restored
        logging.info("Resumed from checkpoint at step %d in %s", restored_step, ckpt_dir)
    start = int(state.step)
    total = parts.total_steps

    step_fn, batch_fn, state = _compile_step(config, parts, state, state_sh)
    log = reporting.MetricsLog(workdir, start)
    tc = config.training
    rollbacks = 0
    t0 = time.time()
    first_step_s = None
    last_saved = [restored_step if restored is not None else None]
    bar = reporting.progress(total, start, tc.progress, tc.get("progress_every_s", 30.0))

    def write_metrics(step, state, metrics):
        record = {k: float(v) for k, v in metrics.items() if k not in ("chains_finite",)}
        record.update(step=step, wall_time=time.time() - t0)
        log.write(record)

    def show_progress(step, state, metrics):
        bar.update(1)
        bar.set_postfix(E_pos=f"{float(metrics['energy_pos']):.3g}", E_neg=f"{float(metrics['energy_neg']):.3g}",
                        grad=f"{float(metrics['grad_norm']):.3g}", refresh=False)

    def save(step, state, metrics):
        checkpoint.save(ckpt_dir, step, state, tc.keep_checkpoints)
        last_saved[0] = step

    def snapshot(step, state, metrics):
        # Host copies of the replicated parameters: process 0 samples alone, on its own device.
        params = sharding.host_local(state.eval_params)
        log.snapshot(*evaluation.write_training_snapshot(config, parts, params, workdir, step), step)

    def watch_convergence(step, state, metrics):
        convergence.log_check(config, parts, sharding.host_local(state.eval_params), step, workdir, log)

    process_0 = jax.process_index() == 0
    hooks = [Every(tc.log_every, write_metrics, at_end=True), Every(1 if bar is not None else 0, show_progress),
             Every(tc.checkpoint_every, save, at_end=True),
             Every(tc.sample_every if process_0 else 0, snapshot),
             Every(tc.convergence_every if process_0 else 0, watch_convergence)]
    steps_run = 0  # steps executed by this call (rolled-back ones included): total - start on a clean run
    try:
        step = start
        while step < total:
            ts = time.time()
            new_state, metrics = step_fn(state, batch_fn(jnp.asarray(step, jnp.int32)))
            steps_run += 1
            metrics = jax.device_get(metrics)
            if first_step_s is None:
                first_step_s = time.time() - ts  # includes compilation
            problem = check_divergence(metrics, step + 1, config.guard)
            if problem:
                if config.guard.on_divergence != "rollback" or rollbacks >= config.guard.max_rollbacks or last_saved[0] is None:
                    kept = f" The last good checkpoint (step {last_saved[0]}) is intact in {ckpt_dir}." if last_saved[0] is not None else ""
                    raise DivergenceError(problem + kept, step=step + 1)
                rollbacks += 1
                state = _rollback(ckpt_dir, create_train_state(config, parts), config.guard.lr_factor, rollbacks,
                                  state_sh)
                step = int(state.step)
                logging.warning("%s Rolled back to step %d (rollback %d/%d) with a new seed and learning rate %.3g.",
                                problem, step, rollbacks, config.guard.max_rollbacks,
                                float(optim.learning_rate(state.opt_state, parts.lr_multiplier)))
                log.write({"step": step, "rollback": rollbacks, "reason": problem})
                continue
            state = new_state
            step += 1
            for hook in hooks:
                if hook.due(step, total):
                    hook.fn(step, state, metrics)
    finally:
        if bar is not None:
            bar.close()
        log.close()
    info = {
        "train_time_s": time.time() - t0,
        "steps": total,
        "resumed_from": restored_step,
        "steps_run": steps_run,
        "first_step_s_incl_compile": first_step_s,
        "rollbacks": rollbacks,
        "records": log.records,
    }
    return state, parts, info


def _compile_step(config, parts: Parts, state: TrainState, state_sh=None):
    """The jitted step and batch functions, sharded as ``state_sh`` (``sharding.train_state_shardings``) says, and the state placed so."""
    if state_sh is None:
        return (jax.jit(make_train_step(config, parts), donate_argnums=(0,)), jax.jit(parts.data.batch), state)
    mesh = state_sh.step.mesh
    batch_sh = sharding.batch_sharded(mesh)
    step_fn = jax.jit(
        make_train_step(config, parts, chain_sharding=batch_sh),
        in_shardings=(state_sh, batch_sh),
        out_shardings=(state_sh, sharding.replicated(mesh)),
        donate_argnums=(0,),
    )
    batch_fn = jax.jit(parts.data.batch, out_shardings=batch_sh)
    logging.info("Sharding chains and batches over %d devices", mesh.devices.size)
    return step_fn, batch_fn, sharding.place(state, state_sh)


def _rollback(ckpt_dir: Path, template: TrainState, lr_factor: float, count: int, state_sh=None) -> TrainState:
    """The newest checkpoint with the learning rate times ``lr_factor`` and a new seed, placed as ``state_sh``."""
    state, _ = checkpoint.restore_latest(ckpt_dir, template, shardings=state_sh, num_processes=jax.process_count())
    state = state.replace(opt_state=optim.scale_learning_rate(state.opt_state, lr_factor),
                          rng=jax.random.fold_in(state.rng, 7919 + count))
    return sharding.place(state, state_sh)


def train_and_evaluate(config: config_dict.ConfigDict, workdir: str | os.PathLike, *, energy=None, data=None) -> dict:
    """Trains (or resumes), evaluates with fresh chains, writes the workdir contract.

    Args:
      config: the run's config (``jebm.config_lib.base_config()`` and a file of
        ``configs/``, or a user's own).
      workdir: where checkpoints, metrics, samples and figures go; a workdir
        with checkpoints resumes from the newest.
      energy: a user's Flax module mapping ``(batch, *example_shape)`` to
        ``(batch,)``, in place of ``energy.name``'s network; the config's head
        is put on top unless ``energy.head="none"``. ``None``: the config's.
      data: a user's array ``(n, *example_shape)`` of training examples, in
        place of ``dataset.name``'s; jebm shuffles it, holds out
        ``dataset.held_out_fraction`` for evaluation and batches the rest.
        2D points are evaluated like the toy (KS against held-out points, an
        energy landscape, held-out NLL), other shapes by their samples (image
        grids for ``(h, w, c)`` examples). ``None``: the config's.

    Returns:
      The summary written to ``summary.json``.

    Raises:
      config_validation.ConfigError: listing every invalid field (before anything is written).
      DivergenceError: training diverged (and no rollback was left); ``summary.json`` then
        holds ``status: "diverged"``, the ``step`` and the ``reason``.
    """
    config_validation.validate(config)
    t0 = time.time()
    try:
        state, parts, info = train(config, workdir, energy=energy, data=data)
    except DivergenceError as e:
        # The curves in metrics.jsonl are kept and drawn; summary.json says what stopped the run.
        workdir = Path(workdir)
        if jax.process_index() == 0:
            records = reporting.read_metrics(workdir / "metrics.jsonl", e.step or 0)
            if records:
                evaluation.plots.plot_training_curves(workdir / "training_curves.png", records)
            fileio.write_json(workdir / "summary.json", {
                "status": "diverged", "step": e.step, "reason": str(e), "wall_time_s": time.time() - t0})
        raise
    workdir = Path(workdir)
    summary = _evaluate_on_every_process(config, parts, sharding.host_local(state.eval_params), workdir,
                                         info["records"])
    summary.update({k: v for k, v in info.items() if k != "records"})
    summary["drift_noise"] = diagnostics.drift_noise_summary(info["records"], config.sampler.num_steps)
    summary["head"] = heads.head_values(state.eval_params)  # final β / γ, {} for heads without them
    summary["wall_time_s"] = time.time() - t0
    summary["data"] = parts.data.description
    summary["energy"] = energy_options.describe(config.energy, energy)
    summary["status"] = "ok"
    if jax.process_index() == 0:
        fileio.write_json(workdir / "summary.json", summary)
        reporting.write_tensorboard_summary(config, workdir, summary, int(state.step))
    return summary


def _evaluate_on_every_process(config, parts: Parts, params, workdir: Path, records) -> dict:
    """``evaluation.evaluate_and_write`` into ``workdir`` on process 0, into a scratch directory (then removed) on the others.

    ``params`` are host arrays, so each process evaluates alone on its own
    devices, with the same keys: the same numbers everywhere, and one copy of
    each file. The other processes evaluate too rather than exit early, so that
    every process reaches JAX's shutdown barrier together, however long the
    evaluation takes.
    """
    if jax.process_index() == 0:
        return evaluation.evaluate_and_write(config, parts, params, workdir, records)
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"jebm_eval_process{jax.process_index()}_",
                                     ignore_cleanup_errors=True) as scratch:
        return evaluation.evaluate_and_write(config, parts, params, Path(scratch), records)
