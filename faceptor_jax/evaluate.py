"""Evaluation of every configured task with the paper's protocols; tables + JSON in the workdir.

Each task's test split runs through the model in eval mode (BatchNorm running statistics, no
dropout or DropPath) in batches; its task file turns outputs + labels into a mergeable
accumulator and the accumulator into the paper's numbers. Recognition is evaluated on the
verification sets (image + flipped image embeddings, 10-fold accuracy). Padded rows of the last
batch are dropped before scoring.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from faceptor_jax import accumulators, checkpoint, input_pipeline, report, tasks
from faceptor_jax.verification import VerificationAccumulator

SourceFactory = Callable[[str, str, int], Any]
VERIFICATION_SETS = ("lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "mlfw")


def _host(tree: Any) -> Any:
    """Global arrays -> full numpy arrays on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def _select(tree: Mapping, keep: np.ndarray) -> dict:
    return {k: np.asarray(v)[keep] for k, v in tree.items()}


def _batches(source, dataset: str, batch_size: int, size: int, mesh, limit: int):
    ds, layout = input_pipeline.eval_dataset(
        source, dataset, batch_size,
        data_parallel=input_pipeline.data_parallel_size(mesh), size=size,
    )  # fmt: skip
    n = len(ds) if not limit else min(len(ds), limit)
    for i in range(n):
        yield input_pipeline.to_global({dataset: ds[i]}, mesh, {dataset: layout})[dataset]


def _verification(forward, name, source, vset, batch_size, size, mesh, limit) -> report.Result:
    acc, issame = None, {}
    for batch in _batches(source, vset, batch_size, size, mesh, limit):
        a, b = batch["image_a"], batch["image_b"]
        images = jnp.concatenate([a, b, a[:, :, ::-1], b[:, :, ::-1]])  # + horizontal flips
        emb = _host(forward({name: images})[name]["embedding"])
        host = _host({k: batch[k] for k in ("index", "valid", "issame")})
        keep = np.asarray(host["valid"], bool)
        e = emb.reshape(4, -1, emb.shape[-1])[:, keep]
        pair = np.asarray(host["index"])[keep]
        index = np.concatenate([2 * pair, 2 * pair + 1])
        part = VerificationAccumulator.from_batch(
            index, np.concatenate([e[0], e[1]]), np.concatenate([e[2], e[3]])
        )
        acc = part if acc is None else acc.merge(part)
        issame.update(zip(pair.tolist(), np.asarray(host["issame"])[keep].tolist(), strict=True))
    same = np.array([issame[i] for i in sorted(issame)], bool)
    return report.Result("verification", vset, acc.compute(same))


def evaluate_task(
    forward, name: str, task_cfg: ml_collections.ConfigDict, sources: SourceFactory,
    size: int, mesh, limit: int = 0,
) -> list[report.Result]:  # fmt: skip
    """One task's test split (recognition: every verification set that exists)."""
    task = tasks.get(name)
    if task.type.name == "recognition":
        results = []
        for vset in VERIFICATION_SETS:
            try:
                source = sources(vset, "test", size)
            except (FileNotFoundError, KeyError) as e:
                logging.info("verification set %s skipped: %s", vset, e)
                continue
            bs = task_cfg.eval_batch_size
            results.append(_verification(forward, name, source, vset, bs, size, mesh, limit))
        return results
    dataset = task_cfg.dataset
    source = sources(dataset, "test", size)
    acc = None
    for batch in _batches(source, dataset, task_cfg.eval_batch_size, size, mesh, limit):
        out = _host(forward({name: batch["image"]})[name])
        host = _host(batch)
        keep = np.asarray(host.pop("valid"), bool)
        part = task.type.evaluate(_select(out, keep), _select(host, keep), dataset, size)
        acc = part if acc is None else accumulators.merge_all([acc, part])
    if acc is None:
        raise ValueError(f"{name}: the test split of {dataset} is empty")
    return [task.type.summarize(acc, dataset)]


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
