"""Config checks that run before anything compiles: every field's type and range, unknown keys,
unknown task names, the data folders. Each failure is a `ConfigError` (or `DataError`) naming
the key and what was expected, in one line.

`check_run`: the fields the run loop reads (every trainer). `check_multitask`: the multi-task
trainer's tasks, data and keys.
"""

import numbers
import os
from collections.abc import Mapping

import ml_collections

from faceptor_jax.errors import ConfigError, DataError

# Keys the multi-task trainer reads (configs/recipe.py's base_config and the recipes).
MULTITASK_KEYS = frozenset(
    {
        "trainer", "seed", "total_steps", "mesh", "sharding_rules", "init", "data",
        "recognition_classes", "trainable", "log_every", "eval_every", "eval_at_end",
        "eval_max_batches", "checkpoint_every", "keep_checkpoints", "keep_every", "model",
        "optim", "tasks", "task_weights", "on_save_error",
    }
)  # fmt: skip
DATA_KEYS = frozenset(
    {
        "source", "data_dir", "workers", "threads", "prefetch", "augment",
        "synthetic_identities", "synthetic_length", "synthetic_test_length", "synthetic_cache",
    }
)  # fmt: skip
# evaluate: False leaves a task out of evaluation (e.g. all but one stream of a training mix);
# test_sets: the datasets it evaluates on (empty: its type's), e.g. SwinFace's with IJB-C;
# partial_fc: a recognition task's PartialFC class sample rate in (0, 1] (1: every class)
TASK_KEYS = frozenset(
    {
        "batch_size",
        "loss_weight",
        "eval_batch_size",
        "image_size",
        "evaluate",
        "test_sets",
        "partial_fc",
    }
)
INIT_KEYS = frozenset({"farl", "checkpoint"})


def _is_dict(v) -> bool:  # a dict or ConfigDict (which is not a Mapping)
    return isinstance(v, Mapping | ml_collections.ConfigDict)


def _kind(v) -> str:
    return f"{type(v).__name__} {v!r}"


def integer(config: Mapping, key: str, minimum: int, where: str = "config") -> int:
    """`config[key]` as an int ≥ `minimum`, or ConfigError naming `where.key`."""
    if key not in config:
        raise ConfigError(f"{where}.{key} is missing: expected an integer ≥ {minimum}")
    v = config[key]
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ConfigError(f"{where}.{key} = {_kind(v)}: expected an integer ≥ {minimum}")
    if v < minimum:
        raise ConfigError(f"{where}.{key} = {v}: expected an integer ≥ {minimum}")
    return int(v)


def number(config: Mapping, key: str, minimum: float, where: str = "config") -> float:
    v = config.get(key)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < minimum:
        raise ConfigError(f"{where}.{key} = {_kind(v)}: expected a number ≥ {minimum}")
    return float(v)


def string(config: Mapping, key: str, where: str = "config") -> str:
    v = config.get(key, "")
    if not isinstance(v, str):
        raise ConfigError(f"{where}.{key} = {_kind(v)}: expected a string")
    return v


def known_keys(config: Mapping, known: frozenset, where: str = "config") -> None:
    unknown = sorted(set(config.keys()) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"expected keys: {', '.join(sorted(known))}"
        )


def check_run(config: ml_collections.ConfigDict) -> None:
    """The run loop's fields: steps, intervals, checkpoint retention, seed, mesh."""
    integer(config, "total_steps", 1)
    integer(config, "log_every", 1)
    integer(config, "checkpoint_every", 1)
    integer(config, "eval_every", 0)
    integer(config, "keep_checkpoints", 1)
    integer(config, "keep_every", 0)
    integer(config, "seed", 0)
    if config.get("on_save_error", "stop") not in ("stop", "continue"):
        raise ConfigError(
            f"config.on_save_error = {config.on_save_error!r}: expected 'stop' (a failed "
            "checkpoint save stops training) or 'continue' (log it, keep the previous checkpoint)"
        )
    mesh = config.get("mesh")
    if not isinstance(mesh, tuple | list) or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and (s >= 1 or s == -1)
        for s in mesh
    ):
        raise ConfigError(
            f"config.mesh = {mesh!r}: expected (data, fsdp, model) sizes, each ≥ 1 or -1"
        )


def check_multitask(config: ml_collections.ConfigDict) -> None:
    """The multi-task trainer's config: keys, tasks, batch sizes, data source and folders."""
    known_keys(config, MULTITASK_KEYS)
    if not _is_dict(config.get("tasks")) or not config.tasks:
        raise ConfigError("config.tasks: expected at least one task ({task: {batch_size: …}})")
    for name, t in config.tasks.items():
        where = f"config.tasks.{name}"
        if not _is_dict(t):
            raise ConfigError(f"{where} = {_kind(t)}: expected a dict with batch_size")
        known_keys(t, TASK_KEYS, where)
        integer(t, "batch_size", 1, where)
        if "eval_batch_size" in t:
            integer(t, "eval_batch_size", 1, where)
        if "image_size" in t:
            integer(t, "image_size", 0, where)
        if "loss_weight" in t:
            number(t, "loss_weight", 0.0, where)
        if not isinstance(t.get("evaluate", True), bool):
            raise ConfigError(f"{where}.evaluate = {_kind(t['evaluate'])}: expected True or False")
        rate = t.get("partial_fc", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate <= 1:
            raise ConfigError(
                f"{where}.partial_fc = {_kind(rate)}: expected a class sample rate in (0, 1] "
                "(1: every class, PartialFC off)"
            )
        test_sets = t.get("test_sets", ())
        if not isinstance(test_sets, tuple | list) or not all(
            isinstance(d, str) for d in test_sets
        ):
            raise ConfigError(
                f"{where}.test_sets = {_kind(test_sets)}: expected a tuple of dataset names"
            )
    weights = config.get("task_weights", {})
    if not _is_dict(weights):
        raise ConfigError(f"config.task_weights = {_kind(weights)}: expected {{task type: weight}}")
    for key in weights:
        number(weights, key, 0.0, "config.task_weights")
    init = config.get("init", {})
    known_keys(init, INIT_KEYS, "config.init")
    for key in INIT_KEYS:
        string(init, key, "config.init")
    if "eval_max_batches" in config:
        integer(config, "eval_max_batches", 0)
    check_data(config.data)


def check_data(data: Mapping) -> None:
    """config.data: its keys, the source, the worker counts and, for TFDS, the data folder."""
    known_keys(data, DATA_KEYS, "config.data")
    for key in ("workers", "threads", "prefetch"):
        if key in data:
            integer(data, key, 0, "config.data")
    source = data.get("source")
    if source == "synthetic":
        for key in ("synthetic_identities", "synthetic_length", "synthetic_test_length"):
            if key in data:
                integer(data, key, 1, "config.data")
    elif source == "tfds":
        data_dir = string(data, "data_dir", "config.data")
        if not data_dir:
            raise ConfigError(
                "config.data.source='tfds' needs --config.data.data_dir (the folder "
                "`python -m data build` wrote)"
            )
        if not os.path.isdir(data_dir):
            raise DataError(f"config.data.data_dir {data_dir}: no such folder")
        if not os.listdir(data_dir):
            raise DataError(
                f"config.data.data_dir {data_dir}: the folder is empty (expected the datasets "
                "`python -m data build` wrote, <data_dir>/<dataset>/<version>/)"
            )
    else:
        raise ConfigError(f"config.data.source = {source!r}: expected 'synthetic' or 'tfds'")
