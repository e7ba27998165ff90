"""The training loop: mesh, state, data, checkpoints, logging, periodic evaluation, preemption.

`train_and_evaluate(config, workdir)` resumes from the newest checkpoint in `workdir` (params,
optimizer, step, RNG and the data iterator's position), so a restarted run continues exactly
where it stopped. SIGTERM saves a checkpoint and exits cleanly. `<workdir>/model.json` describes
the model as a converted model directory's does, so a workdir loads wherever a model directory
does (predict, `--config.init.checkpoint`, `python -m faceptor_jax.export`).
"""

import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from faceptor_jax import checkpoint, evaluate, input_pipeline, sharding, tasks, train
from faceptor_jax.metric_writer import MetricWriter
from faceptor_jax.model import families

SourceFactory = Callable[[str, str, int], Any]  # (dataset, split, image size) -> source


def mesh_from_config(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    shape = list(config.mesh)
    n = jax.device_count()
    if shape.count(-1) > 1:
        raise ValueError(f"config.mesh {tuple(shape)}: at most one -1")
    if -1 in shape:
        rest = int(np.prod([s for s in shape if s != -1]))
        if n % rest:
            raise ValueError(f"config.mesh {tuple(config.mesh)} does not divide {n} devices")
        shape[shape.index(-1)] = n // rest
    return sharding.make_mesh(shape)


def validate(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
    """Config errors a user can fix, raised before any compute."""
    train.model_task_names(config)  # unknown task names
    tasks.crops.check_policy(config.data.get("augment", "original"), "config.data.augment")
    dp = input_pipeline.data_parallel_size(mesh)
    for name, t in config.tasks.items():
        if t.batch_size % jax.process_count():
            raise ValueError(
                f"task {name}: batch {t.batch_size} is not divisible by the "
                f"{jax.process_count()} processes"
            )
        if t.batch_size % dp and t.batch_size >= dp:
            raise ValueError(
                f"task {name}: batch {t.batch_size} is not divisible by the mesh's data axes "
                f"(data×fsdp = {dp}); use a multiple of {dp} or a batch smaller than {dp}"
            )


def check_sources(config: ml_collections.ConfigDict, sources: SourceFactory) -> dict:
    """{task: training stream}: every task's training source opened (a missing dataset fails
    here, before any compute); tasks reading one dataset at one size share one source."""
    opened, out = {}, {}
    for name, t in config.tasks.items():
        size = train.image_size(config, name)
        dataset = tasks.get(name).dataset
        if (dataset, size) not in opened:
            opened[dataset, size] = sources(dataset, "train", size)
        out[name] = input_pipeline.Stream(opened[dataset, size], t.batch_size, size, name)
    return out


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, sources: SourceFactory
) -> dict:
    """Train `config` in `workdir`; returns the last logged metrics (host floats)."""
    mesh = mesh_from_config(config)
    validate(config, mesh)
    train_sources = check_sources(config, sources)
    os.makedirs(workdir, exist_ok=True)
    trainer, abstract_model = train.make_trainer(config, mesh)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, shardings = train.create_state(trainer, abstract_model)
    ds, layouts = input_pipeline.mixed_dataset(
        train_sources,
        int(config.total_steps),
        seed=int(config.seed),
        data_parallel=input_pipeline.data_parallel_size(mesh),
        augment=config.data.get("augment", "original"),
    )
    iterator = input_pipeline.make_iterator(
        ds, num_threads=config.data.threads, prefetch=config.data.prefetch,
        workers=config.data.workers,
    )  # fmt: skip
    ckpts = checkpoint.TrainCheckpoints(workdir, config.keep_checkpoints, config.keep_every)
    start = ckpts.latest_step() or 0
    if start:
        state = ckpts.restore(start, state, shardings, iterator)
        logging.info("resumed from %s at step %d", workdir, start)
    else:
        state = checkpoint.init_from(config.init, state)
    if jax.process_index() == 0:  # after a successful restore: the description fits the weights
        checkpoint.write_meta(workdir, **train.model_description(trainer))

    step_fn = jax.jit(trainer.train_step, donate_argnums=0, out_shardings=(shardings, None))
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    preempted = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: preempted.update(flag=True))
    total = int(config.total_steps)
    pending: list[dict] = []
    last: dict = {}
    t0, s0 = time.perf_counter(), start
    try:
        with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
            for step in range(start, total):
                batch = input_pipeline.to_global(next(iterator), mesh, layouts)
                state, metrics = step_fn(state, batch)
                pending.append(metrics)
                done = step + 1
                if done % config.log_every == 0 or done == total or preempted["flag"]:
                    last = _log(writer, pending, state, done, total, t0, s0)
                    pending, t0, s0 = [], time.perf_counter(), done
                save = done % config.checkpoint_every == 0 or done == total
                if save or preempted["flag"]:
                    ckpts.save(done, state, iterator)
                if preempted["flag"]:
                    logging.warning("SIGTERM: saved step %d, exiting", done)
                    break
                if (config.eval_every and done % config.eval_every == 0) or (
                    done == total and config.eval_at_end
                ):
                    results = evaluate.evaluate(trainer, state, config, sources, workdir, done)
                    writer.write_scalars(done, evaluate.flat_scalars(results))
    finally:
        signal.signal(signal.SIGTERM, previous)
        ckpts.close()
        writer.close()
    return last


class NonFiniteLoss(FloatingPointError):
    pass


def _log(writer: MetricWriter, pending: list, state: Mapping, step: int, total: int, t0, s0):
    """One host sync per log interval: mean of the window's metrics (rate over the window since
    `t0`/step `s0`), non-finite check."""
    host = jax.device_get(pending)
    bad_step, bad_task = (int(v) for v in jax.device_get(state["nonfinite"]))
    if bad_step >= 0:
        names = sorted(k.removeprefix("loss/") for k in host[0] if k.startswith("loss/"))
        names.remove("total")
        raise NonFiniteLoss(
            f"non-finite loss at step {bad_step + 1} in task {names[bad_task]} "
            "(the update was skipped; the run stops here — check the data and the learning rate)"
        )
    mean = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
    eta = (total - step) / max(rate, 1e-9)
    mean["steps_per_sec"] = rate
    writer.write_scalars(step, mean)
    tasks = " ".join(
        f"{k.removeprefix('loss/')}={v:.4g}" for k, v in mean.items() if k.startswith("loss/")
    )
    eta_text = time.strftime("%H:%M:%S", time.gmtime(eta))
    writer.print(
        f"step {step}/{total} | {rate:.2f} steps/s | ETA {eta_text}"
        f" | grad_norm {mean['grad_norm']:.3g} | {tasks}"
    )
    return mean


def checkpoint_architecture(
    config: ml_collections.ConfigDict, directory: str
) -> ml_collections.ConfigDict:
    """`config` with the model architecture of a converted/saved model checkpoint (its dims,
    levels and task heads), keeping the config's compute choices (dtype, attention) — so a
    released model evaluates without restating its dimensions."""
    enc = config.model.encoder
    compute = {"dtype": enc.dtype, "attention_impl": enc.attention_impl, "remat": enc.remat}
    kind, family, cfg = families.architecture(directory, task_heads=True, **compute)
    model = family.to_dict(cfg) | {"tasks": tuple(s.name for s in cfg.tasks)}
    config = ml_collections.ConfigDict(config.to_dict())
    config.model = ml_collections.ConfigDict({"kind": kind, **model})
    return config


def evaluate_only(config: ml_collections.ConfigDict, workdir: str, sources: SourceFactory) -> list:
    """Evaluate the newest training checkpoint in `workdir`, or else `config.init.checkpoint`
    (a converted released model, or another run's workdir); prints the tables and writes them
    to `workdir`. For a model checkpoint, the verification threshold is also stored beside it,
    where predict reads it (`checkpoint.VERIFICATION_FILE`)."""
    mesh = mesh_from_config(config)
    ckpts = checkpoint.TrainCheckpoints(workdir, config.keep_checkpoints)
    step = ckpts.latest_step()
    if not step and not config.init.checkpoint:
        ckpts.close()
        raise FileNotFoundError(
            f"{workdir} holds no training checkpoint and config.init.checkpoint is empty: "
            "nothing to evaluate"
        )
    if not step:
        config = checkpoint_architecture(config, config.init.checkpoint)
    validate(config, mesh)
    trainer, abstract_model = train.make_trainer(config, mesh)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, shardings = train.create_state(trainer, abstract_model)
        if step:
            state = ckpts.restore(step, state, shardings)
        else:
            state, step = checkpoint.init_from(config.init, state), 0
        ckpts.close()
        results = evaluate.evaluate(trainer, state, config, sources, workdir, step)
    record = evaluate.protocol_threshold(results, step, os.path.join(workdir, f"eval_{step}.json"))
    if not step and record and jax.process_index() == 0:
        where, trained = checkpoint.locate(config.init.checkpoint)  # a workdir's: its step
        record = record if trained is None else record | {"step": trained}
        try:
            path = checkpoint.write_verification(where, record)
            logging.info("verification threshold %.4f -> %s", record["threshold"], path)
        except OSError as e:  # e.g. a read-only model directory: predict falls back, says so
            logging.warning("cannot store the verification threshold beside the model: %s", e)
    return results
