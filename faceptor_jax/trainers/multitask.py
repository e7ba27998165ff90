"""The supervised multi-task trainer's side of the run loop (its config checks, data, model
architecture from a checkpoint); `train.py` holds its state and step."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections

from faceptor_jax import input_pipeline, task_transforms, train
from faceptor_jax.model import families

SourceFactory = Callable[[str, str, int], Any]  # (dataset, split, image size) -> source


def validate(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
    """Config errors a user can fix, raised before any compute."""
    train.model_task_names(config)  # unknown task names
    task_transforms.check_policy(config.data.get("augment", "original"), "config.data.augment")
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
    """Open every task's training source (a missing dataset fails here, before any compute)."""
    out = {}
    for name, t in config.tasks.items():
        out[t.dataset] = sources(t.dataset, "train", train.image_size(config, name))
    return out


def _to_task_batch(batch: Mapping, datasets: Mapping[str, str]) -> dict:
    """{dataset: batch} from the pipeline -> {task: batch} for the model."""
    return {task: batch[ds] for task, ds in datasets.items()}


def pipeline(config, train_sources, mesh, trainer) -> tuple[Any, Any, dict]:
    """The mixed {dataset: batch} training stream, its iterator and layouts."""
    datasets = {name: t.dataset for name, t in config.tasks.items()}
    ds, layouts = input_pipeline.mixed_dataset(
        train_sources,
        {d: config.tasks[t].batch_size for t, d in datasets.items()},
        int(config.total_steps),
        seed=int(config.seed),
        data_parallel=input_pipeline.data_parallel_size(mesh),
        sizes={d: trainer.image_sizes[t] for t, d in datasets.items()},
        augment=config.data.get("augment", "original"),
    )
    iterator = input_pipeline.make_iterator(
        ds, num_threads=config.data.threads, prefetch=config.data.prefetch,
        workers=config.data.workers,
    )  # fmt: skip
    return iterator, layouts, datasets


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
