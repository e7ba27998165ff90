"""The run every trainer shares: mesh, state, data, checkpoints, logging, evaluation, preemption.

`train_and_evaluate(config, workdir, sources)` takes its trainer from `config.trainer`
(`faceptor_jax.trainers`): the trainer gives the state, the step, the data and the evaluation;
this loop gives the rest. It resumes from the newest checkpoint in `workdir` (the trainer's whole
state — params, optimizer, step, RNG — and the data iterator's position), so a restarted run
continues exactly where it stopped. SIGTERM saves a checkpoint and exits cleanly. A trainer's
`<workdir>/model.json` describes the model as a converted model directory's does, so a workdir
loads wherever a model directory does (predict, `--config.init.checkpoint`,
`python -m faceptor_jax.export`).
"""

import os
import signal
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from faceptor_jax import checkpoint, config_checks, sharding, trainers
from faceptor_jax.errors import CheckpointError, ConfigError, NotFound
from faceptor_jax.metric_writer import MetricWriter
from faceptor_jax.train_checkpoints import DamagedStep, TrainCheckpoints
from faceptor_jax.trainers.spec import Rules, SourceFactory, Trainer


def mesh_from_config(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    shape = list(config.mesh)
    n = jax.device_count()
    if shape.count(-1) > 1:
        raise ConfigError(f"config.mesh {tuple(shape)}: at most one -1")
    if -1 in shape:
        rest = int(np.prod([s for s in shape if s != -1]))
        if n % rest:
            raise ConfigError(f"config.mesh {tuple(config.mesh)} does not divide {n} devices")
        shape[shape.index(-1)] = n // rest
    return sharding.make_mesh(shape)


def sharding_rules(config: ml_collections.ConfigDict) -> Rules:
    """`config.sharding_rules` (logical axis -> mesh axes), or else `sharding.DEFAULT_RULES`."""
    rules = config.get("sharding_rules")
    return sharding.DEFAULT_RULES if rules is None else sharding.check_rules(rules)


def _trainer(config: ml_collections.ConfigDict) -> Trainer:
    try:
        return trainers.get(config)
    except ValueError as e:  # its message names config.trainer and the valid ones
        raise ConfigError(str(e)) from e


def _validate(trainer: Trainer, config: ml_collections.ConfigDict, mesh) -> None:
    """The trainer's config checks; by the protocol, what they raise is the user's to fix."""
    try:
        trainer.validate(config, mesh)
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e).strip("'\"")) from e


class NonFiniteLoss(FloatingPointError):
    pass


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    sources: SourceFactory,
    trainer: Trainer | None = None,
) -> dict:
    """Train `config` in `workdir` with `trainer` (default: the one `config.trainer` names);
    returns the last logged metrics (host floats)."""
    config_checks.check_run(config)  # steps and intervals, before anything compiles
    trainer = trainer or _trainer(config)
    mesh = mesh_from_config(config)
    rules = sharding_rules(config)
    _validate(trainer, config, mesh)
    opened = trainer.open_sources(config, sources)
    os.makedirs(workdir, exist_ok=True)
    run, state, shardings = trainer.create(config, mesh, rules)
    keep_going = config.get("on_save_error", "stop") == "continue"
    ckpts = TrainCheckpoints(workdir, config.keep_checkpoints, config.keep_every, keep_going)
    while True:  # the newest intact step; a damaged one is moved aside
        start = ckpts.latest_step() or 0
        data = trainer.data(run, opened, mesh, start)
        saved_data = data.iterator if data.checkpointed else None
        if not start:
            state = trainer.initialize(config, state)
            break
        try:
            state = ckpts.restore(start, state, shardings, saved_data)
        except DamagedStep as damaged:
            ckpts.set_aside(damaged)
            continue
        logging.info("resumed from %s at step %d", workdir, start)
        break
    description = trainer.description(run)
    if description is not None and jax.process_index() == 0:
        # After a successful restore: the description fits the weights.
        checkpoint.write_meta(workdir, **description)

    step_fn = jax.jit(run.train_step, donate_argnums=0, out_shardings=(shardings, None))
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0, resume_step=start)
    preempted = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: preempted.update(flag=True))
    total = int(config.total_steps)
    pending: list[dict] = []
    last: dict = {}
    t0, s0 = time.perf_counter(), start
    try:
        with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            for step in range(start, total):
                state, metrics = step_fn(state, data.to_device(next(data.iterator)))
                pending.append(metrics)
                done = step + 1
                if done % config.log_every == 0 or done == total or preempted["flag"]:
                    last = _log(trainer, writer, pending, state, done, total, t0, s0)
                    pending, t0, s0 = [], time.perf_counter(), done
                ckpts.check()  # a failed background save stops the run here, named once
                save = done % config.checkpoint_every == 0 or done == total
                if save or preempted["flag"]:
                    ckpts.save(done, state, saved_data)
                if preempted["flag"]:
                    logging.warning("SIGTERM: saved step %d, exiting", done)
                    break
                if (config.eval_every and done % config.eval_every == 0) or (
                    done == total and config.eval_at_end
                ):
                    _, scalars = trainer.evaluate(run, state, sources, workdir, done)
                    writer.write_scalars(done, scalars)
    finally:
        signal.signal(signal.SIGTERM, previous)
        ckpts.close()
        writer.close()
    return last


def _log(
    trainer: Trainer, writer: MetricWriter, pending: list, state, step: int, total: int, t0, s0
):
    """One host sync per log interval: mean of the window's metrics (rate over the window since
    `t0`/step `s0`), the trainer's non-finite check."""
    host = jax.device_get(pending)
    problem = trainer.nonfinite(state, host)
    if problem:
        raise NonFiniteLoss(problem)
    mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
    eta = (total - step) / max(rate, 1e-9)
    mean["steps_per_sec"] = rate
    writer.write_scalars(step, mean)
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta))
    writer.print(
        f"step {step}/{total} | {rate:.2f} steps/s | ETA {eta_text} | {trainer.summary(mean)}"
    )
    return mean


def evaluate_only(
    config: ml_collections.ConfigDict,
    workdir: str,
    sources: SourceFactory,
    trainer: Trainer | None = None,
) -> list:
    """Evaluate the newest training checkpoint in `workdir`, or else `config.init.checkpoint`
    (a converted released model, or another run's workdir), with the trainer's evaluation (the
    multi-task one prints the tables, writes them to `workdir` and, for a model checkpoint,
    stores the verification threshold beside it, where predict reads it)."""
    trainer = trainer or _trainer(config)
    mesh = mesh_from_config(config)
    rules = sharding_rules(config)
    if not config.init.checkpoint and not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise NotFound(
            f"{workdir}: no training checkpoints ({checkpoint.TRAIN_DIR}/ is absent) and "
            "config.init.checkpoint is empty: nothing to evaluate"
        )
    ckpts = TrainCheckpoints(workdir, config.keep_checkpoints)
    step = ckpts.latest_step()
    if not step and not config.init.checkpoint:
        ckpts.close()
        raise NotFound(
            f"{workdir} holds no training checkpoint and config.init.checkpoint is empty: "
            "nothing to evaluate"
        )
    if not step:
        config = trainer.config_for_model(config, config.init.checkpoint)
    _validate(trainer, config, mesh)
    run, state, shardings = trainer.create(config, mesh, rules)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        if step:
            try:
                state = ckpts.restore(step, state, shardings)
            except DamagedStep as damaged:
                ckpts.close()
                raise CheckpointError(
                    f"{damaged}; {checkpoint.intact_note(workdir, exclude=step)}"
                ) from damaged
        else:
            state, step = trainer.initialize(config, state), 0
        ckpts.close()
        model_dir = None if step else config.init.checkpoint
        results, _ = trainer.evaluate(run, state, sources, workdir, step, model_dir)
    return results
