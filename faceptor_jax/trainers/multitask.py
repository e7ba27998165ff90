"""The supervised multi-task trainer (Faceptor, Naive Faceptor): its side of the run loop.

`train.py` holds its state `{step, params: {model, loss}, model_state, opt, rng, nonfinite}` and
its step; here are its config checks, its data (the mixed `{task: batch}` stream, whose grain
iterator position is saved with every checkpoint), its non-finite stop (the step and task the
state recorded), its progress line (grad norm, every task's loss), `model.json` (the model's
kind and config, so a workdir loads like a model directory), and its evaluation (every task's
test protocol; the verification threshold stored beside an evaluated model directory).
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
from absl import logging
from flax import nnx

from faceptor_jax import checkpoint, config_checks, evaluate, input_pipeline, tasks, train
from faceptor_jax.errors import ConfigError
from faceptor_jax.model import families
from faceptor_jax.trainers.spec import Data, Rules, SourceFactory


def validate(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
    """Config errors a user can fix, raised before any compute."""
    config_checks.check_multitask(config)  # keys, types and ranges
    try:
        train.model_task_names(config)  # unknown task names
        tasks.crops.check_policy(config.data.get("augment", "original"), "config.data.augment")
        train.model_family(config)  # unknown model kind
        for name, t in config.tasks.items():
            evaluate.test_sets(name, t)  # test sets its type cannot evaluate
        train.effective_weights(config)  # a trained task's type without a task weight
    except (ValueError, KeyError) as e:  # their messages name the key and the valid values
        raise ConfigError(str(e).strip("'\"")) from e
    dp = input_pipeline.data_parallel_size(mesh)
    for name, t in config.tasks.items():
        if "partial_fc" in t and tasks.get(name).type is not tasks.recognition.TYPE:
            raise ConfigError(
                f"config.tasks.{name}.partial_fc: only recognition tasks sample classes"
            )
        if t.batch_size % jax.process_count():
            raise ConfigError(
                f"task {name}: batch {t.batch_size} is not divisible by the "
                f"{jax.process_count()} processes"
            )
        if t.batch_size % dp and t.batch_size >= dp:
            raise ConfigError(
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


def pipeline(config, streams, mesh) -> tuple[Any, Any]:
    """The mixed {task: batch} training stream's iterator and layouts."""
    ds, layouts = input_pipeline.mixed_dataset(
        streams,
        int(config.total_steps),
        seed=int(config.seed),
        data_parallel=input_pipeline.data_parallel_size(mesh),
        augment=config.data.get("augment", "original"),
    )
    iterator = input_pipeline.make_iterator(
        ds, num_threads=config.data.threads, prefetch=config.data.prefetch,
        workers=config.data.workers,
    )  # fmt: skip
    return iterator, layouts


def checkpoint_architecture(
    config: ml_collections.ConfigDict, directory: str
) -> ml_collections.ConfigDict:
    """`config` with the model architecture of a converted/saved model checkpoint (its dims,
    levels and task heads), keeping the config's compute choices (dtype, attention) — so a
    released model evaluates without restating its dimensions."""
    enc = config.model.encoder
    compute = {k: enc[k] for k in families.COMPUTE if k in enc}  # a Swin trunk has no impl
    kind, family, cfg = families.architecture(directory, task_heads=True, **compute)
    served = tuple(s.name for s in cfg.tasks)
    model = family.to_dict(cfg) | {"tasks": served}
    config = ml_collections.ConfigDict(config.to_dict())
    config.model = ml_collections.ConfigDict({"kind": kind, **model})
    # A recipe trains more streams than a release serves (SwinFace: 8 streams, 4 heads):
    # the model's own tasks are the ones evaluated.
    kept = {n: t for n, t in config.tasks.items() if n in served}
    if not kept:
        raise ConfigError(
            f"{directory}: the model's tasks {', '.join(served)} are none of the config's "
            f"tasks ({', '.join(config.tasks)}); use the config of the model's family"
        )
    if len(kept) < len(config.tasks):
        dropped = sorted(set(config.tasks) - set(kept))
        logging.info("evaluating the model's tasks; not served by it: %s", ", ".join(dropped))
    config.tasks = ml_collections.ConfigDict(kept)
    return config


class MultiTask:
    """The `Trainer` (trainers/spec.py) of the multi-task recipes; its run is a `train.Trainer`."""

    def validate(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
        validate(config, mesh)

    def open_sources(self, config: ml_collections.ConfigDict, sources: SourceFactory) -> dict:
        return check_sources(config, sources)

    def create(
        self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, rules: Rules
    ) -> tuple[train.Trainer, train.State, Any]:
        trainer, abstract_model = train.make_trainer(config, mesh)
        with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            state, shardings = train.create_state(trainer, abstract_model, rules)
        return trainer, state, shardings

    def initialize(self, config: ml_collections.ConfigDict, state: train.State) -> train.State:
        return checkpoint.init_from(config.init, state)

    def data(self, run: train.Trainer, opened: dict, mesh: jax.sharding.Mesh, start: int) -> Data:
        del start  # the grain iterator's saved position says where it resumes
        iterator, layouts = pipeline(run.config, opened, mesh)
        # `input_pipeline.to_global` looked up per call: tests stand in for it (a preemption).
        to_device = lambda host: input_pipeline.to_global(host, mesh, layouts)
        return Data(iterator=iterator, to_device=to_device)

    def nonfinite(self, state: train.State, metrics: Sequence[Mapping[str, Any]]) -> str | None:
        bad_step, bad_task = (int(v) for v in jax.device_get(state["nonfinite"]))
        if bad_step < 0:
            return None
        names = sorted(k.removeprefix("loss/") for k in metrics[0] if k.startswith("loss/"))
        names.remove("total")
        return (
            f"non-finite loss at step {bad_step + 1} in task {names[bad_task]} "
            "(the update was skipped; the run stops here — check the data and the learning rate)"
        )

    def summary(self, mean: Mapping[str, float]) -> str:
        tasks = " ".join(
            f"{k.removeprefix('loss/')}={v:.4g}" for k, v in mean.items() if k.startswith("loss/")
        )
        return f"grad_norm {mean['grad_norm']:.3g} | {tasks}"

    def description(self, run: train.Trainer) -> dict:
        return train.model_description(run)

    def evaluate(
        self, run: train.Trainer, state: train.State, sources: SourceFactory, workdir: str,
        step: int, model_dir: str | None = None,
    ) -> tuple[list, dict[str, float]]:  # fmt: skip
        results = evaluate.evaluate(run, state, run.config, sources, workdir, step)
        if model_dir:
            _store_threshold(results, step, workdir, model_dir)
        return results, evaluate.flat_scalars(results)

    def config_for_model(
        self, config: ml_collections.ConfigDict, directory: str
    ) -> ml_collections.ConfigDict:
        return checkpoint_architecture(config, directory)


def _store_threshold(results: list, step: int, workdir: str, model_dir: str) -> None:
    """The verification threshold beside the evaluated model (`checkpoint.VERIFICATION_FILE`),
    where predict reads it."""
    record = evaluate.protocol_threshold(results, step, os.path.join(workdir, f"eval_{step}.json"))
    if record and jax.process_index() == 0:
        where, trained = checkpoint.locate(model_dir)  # a workdir's: its step
        record = record if trained is None else record | {"step": trained}
        try:
            path = checkpoint.write_verification(where, record)
            logging.info("verification threshold %.4f -> %s", record["threshold"], path)
        except OSError as e:  # e.g. a read-only model directory: predict falls back, says so
            logging.warning("cannot store the verification threshold beside the model: %s", e)
