"""Evaluation of every configured task with the paper's protocols; tables + JSON in the workdir.

Generic over task types: each task's test sets (its dataset's test split, the type's `test_sets`,
e.g. recognition's verification sets, or those `config.tasks.<task>.test_sets` lists, e.g. IJB-C,
a test set with its own protocol in the type's `protocols`) run through the model in eval mode
(BatchNorm running statistics, no dropout or DropPath) in batches of the type's `eval_images`; its
task file turns outputs + labels into a mergeable accumulator and the accumulator into the paper's
numbers. Padded rows of the last batch are dropped before scoring.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from faceptor_jax import accumulators, checkpoint, input_pipeline, report, tasks
from faceptor_jax.errors import ConfigError

SourceFactory = Callable[[str, str, int], Any]


def _host(tree: Any) -> Any:
    """Global arrays -> full numpy arrays on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def _select(tree: Mapping, keep: np.ndarray) -> dict:
    return {k: np.asarray(v)[keep] for k, v in tree.items()}


def _batches(source, task: str, dataset: str, batch_size: int, size: int, mesh, limit: int):
    ds, layout = input_pipeline.eval_dataset(
        input_pipeline.Stream(source, batch_size, size, task, dataset),
        data_parallel=input_pipeline.data_parallel_size(mesh),
    )
    n = len(ds) if not limit else min(len(ds), limit)
    for i in range(n):
        yield input_pipeline.to_global({task: ds[i]}, mesh, {task: layout})[task]


def _score(forward, name: str, source, dataset: str, task_cfg, size: int, mesh, limit, acc=None):
    """One test set through the model -> the merged accumulator of the task type (or of its
    protocol for `dataset`), folded onto `acc` (None: the first batch's)."""
    kind = tasks.get(name).type
    scorer = kind.protocols.get(dataset, kind)  # the protocol's steps, else the type's
    batch_size = task_cfg.eval_batch_size
    for batch in _batches(source, name, dataset, batch_size, size, mesh, limit):
        out = scorer.eval_rows(_host(forward({name: scorer.eval_images(batch)})[name]))
        host = _host(batch)
        keep = np.asarray(host.pop("valid"), bool)
        part = scorer.evaluate(_select(out, keep), _select(host, keep), dataset, size)
        acc = part if acc is None else accumulators.merge_all([acc, part])
    return acc


def test_sets(name: str, task_cfg: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Task `name`'s test sets: `config.tasks.<name>.test_sets` when set (each one of the type's
    `test_sets` or `protocols`), else the type's `test_sets`, else its dataset's test split."""
    task = tasks.get(name)
    default = task.type.test_sets(task) if task.type.test_sets is not None else (task.dataset,)
    chosen = tuple(task_cfg.get("test_sets") or ())
    valid = (*default, *(d for d in task.type.protocols if d not in default))
    unknown = [d for d in chosen if d not in valid]
    if unknown:
        raise ConfigError(
            f"config.tasks.{name}.test_sets: {', '.join(map(repr, unknown))} is not a test set "
            f"of {task.type.name}; valid: {', '.join(valid)}"
        )
    return chosen or default


def evaluate_task(
    forward, name: str, task_cfg: ml_collections.ConfigDict, sources: SourceFactory,
    size: int, mesh, limit: int = 0,
) -> list[report.Result]:  # fmt: skip
    """One task's test sets (`test_sets`); with a type's `test_sets` (recognition: the
    verification sets, IJB-C where listed) those whose data is missing are skipped, logged."""
    task = tasks.get(name)
    optional = task.type.test_sets is not None
    results = []
    for dataset in test_sets(name, task_cfg):
        protocol = task.type.protocols.get(dataset)
        try:
            source = sources(dataset, "test", size)
            acc = protocol.start(dataset, source, sources, size) if protocol else None
        except (FileNotFoundError, KeyError) as e:
            if not optional:
                raise
            logging.info("%s: test set %s skipped: %s", name, dataset, e)
            continue
        if not len(source):
            raise ValueError(f"{name}: the test split of {dataset} is empty")
        acc = _score(forward, name, source, dataset, task_cfg, size, mesh, limit, acc)
        results.append((protocol or task.type).summarize(acc, dataset))
    return results


def evaluate(
    trainer, state: Mapping, config: ml_collections.ConfigDict, sources: SourceFactory,
    workdir: str, step: int,
) -> list[report.Result]:  # fmt: skip
    """Every configured task; writes `<workdir>/eval_<step>.{txt,json}` on process 0, and with
    verification results `<workdir>/verification.json` (`protocol_threshold`)."""
    graphdef_forward = jax.jit(
        lambda params, model_state, images: trainer.merge(params, model_state)(images, train=False)
    )
    params, model_state = state["params"]["model"], state["model_state"]
    forward = lambda images: graphdef_forward(params, model_state, images)
    results = []
    for name, t in config.tasks.items():
        if not t.get("evaluate", True):  # e.g. all but one stream of a task's training mix
            continue
        size = trainer.image_sizes[name]
        limit = int(config.get("eval_max_batches", 0))
        results += evaluate_task(forward, name, t, sources, size, trainer.mesh, limit)
    if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        txt, js = report.write(results, os.path.join(workdir, f"eval_{step}"))
        with open(txt) as f:
            print(f.read(), flush=True)
        record = protocol_threshold(results, step, js)
        if record:
            checkpoint.write_verification(workdir, record)
    return results


def protocol_threshold(results: list[report.Result], step: int, eval_file: str) -> dict | None:
    """The threshold predict's same/different verdict uses: the mean of the 10 folds' best
    thresholds on LFW, else on the first verification set evaluated (None without any)."""
    ver = {r.dataset: r.metrics for r in results if r.task == "verification"}
    ver = {d: m for d, m in ver.items() if "fold_thresholds" in m}  # not IJB-C's templates
    if not ver:
        return None
    name = "lfw" if "lfw" in ver else next(iter(ver))
    m = ver[name]
    return {
        "threshold": float(m["threshold"]),
        "dataset": name,
        "fold_thresholds": [float(t) for t in m["fold_thresholds"]],
        "accuracy": float(m["accuracy"]),
        "pairs": int(m["pairs"]),
        "distance": "squared L2 between L2-normalised flip-summed embeddings; same iff < threshold",
        "step": int(step),
        "eval": os.path.abspath(eval_file),
    }


def flat_scalars(results: list[report.Result]) -> dict[str, float]:
    """Every scalar metric as `eval/<dataset>/<name>` (nested dicts joined with '/')."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}/{k}", v)
        elif isinstance(value, int | float | np.floating | np.integer) and np.isfinite(value):
            out[prefix] = float(value)

    for r in results:
        walk(f"eval/{r.dataset}", r.metrics)
    return out
