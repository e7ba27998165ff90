"""grain pipelines: per-task train/eval streams -> one mixed `{task: batch}` stream -> mesh.

Keyed by task end to end: a `Stream` is one task's source, batch size and crop side; one dataset
may feed two tasks (two streams on one source). Sources are random-access objects (`len`, `[i]`
-> raw record, the layout a data builder writes; each task file's `transform` reads it): a TFDS
ArrayRecord source (`open_tfds`) or the synthetic faces (`data.synthetic_faces`), chosen by the
caller; this module never imports `data/`.

Sampling reproduces the original's `DistributedGivenIterationSampler` (shuffle_strategy 1): one
global shuffle (np.random seed) of the dataset tiled to num_steps·B, virtual rank r of
`world_size` takes the contiguous chunk r, `B/world_size` per step. Every element's augmentation
RNG is keyed by (seed, dataset, step, slot in the global batch), so the global batch at a step does
not depend on how many JAX processes share it (a second task on one dataset: `stream_keys`).
Each process builds only its slice of every global batch; `to_global` assembles the slices into
jax.Arrays sharded over ('data', 'fsdp').
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from faceptor_jax import tasks
from faceptor_jax.errors import DataError

BATCH_AXES = ("data", "fsdp")


@functools.lru_cache(maxsize=32)
def original_permutation(n: int, total: int, seed: int) -> np.ndarray:
    """np.random.seed(seed); shuffle(tile(arange(n))[:total]) — the original sampler's list."""
    reps = (total - 1) // n + 1
    indices = np.tile(np.arange(n, dtype=np.int64 if n >= 2**31 else np.int32), reps)[:total]
    np.random.RandomState(seed).shuffle(indices)
    return indices


@dataclasses.dataclass(frozen=True)
class StreamLayout:
    """Where this process's local batch sits in the global batch of one stream."""

    batch_size: int  # global
    process_index: int
    process_count: int  # 1 when the batch is replicated on every process

    @property
    def local_batch(self) -> int:
        return self.batch_size // self.process_count

    def slot(self, j: int) -> int:
        return self.process_index * self.local_batch + j


def _layout(batch_size, data_parallel, process_index, process_count) -> StreamLayout:
    """Shard over processes when the batch divides both the processes and the data axes.
    process_index/count default (None) to this JAX process's."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if batch_size % process_count == 0 and batch_size % data_parallel == 0:
        return StreamLayout(batch_size, process_index, process_count)
    return StreamLayout(batch_size, 0, 1)  # small batches (e.g. parsing 2) are replicated


def _stable_id(name: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % 1_000_003


@dataclasses.dataclass(frozen=True)
class Stream:
    """One task's data: a random-access `source` of raw records of `dataset` (default: the
    task's), the GLOBAL batch size, the crop side (None: the task's own) and the task whose
    transform makes the examples (`tasks.transform`)."""

    source: Any
    batch_size: int
    size: int | None
    task: str
    dataset: str | None = None

    @property
    def reads(self) -> str:
        return self.dataset or tasks.get(self.task).dataset


class _TrainElements:
    """k-th local element -> transformed example of its global (step, slot) (picklable).

    `key` names the stream in the per-element RNG key (seed, _stable_id(key), step, slot) and,
    unless it is the dataset's name, in the shuffle's seed (see `mixed_dataset`)."""

    def __init__(self, stream, key, layout, num_steps, seed, world_size, policy):
        if layout.batch_size % world_size:
            raise ValueError(
                f"{stream.task}: batch {layout.batch_size} not divisible by {world_size}"
            )
        self.stream, self.layout, self.num_steps, self.world_size = (
            stream,
            layout,
            num_steps,
            world_size,
        )
        self.seed, self.policy = seed, policy
        self.rank_batch = layout.batch_size // world_size
        self.task_id = _stable_id(key)
        self.shuffle_seed = seed if key == stream.reads else seed + self.task_id

    def index(self, k: int) -> tuple[int, int, int]:
        step, slot = divmod(k, self.layout.local_batch)
        slot = self.layout.slot(slot)
        rank, j = divmod(slot, self.rank_batch)
        perm = original_permutation(
            len(self.stream.source), self.num_steps * self.layout.batch_size, self.shuffle_seed
        )
        return step, slot, int(perm[(rank * self.num_steps + step) * self.rank_batch + j])

    def __call__(self, k: int) -> dict:
        step, slot, idx = self.index(k)
        rng = np.random.default_rng([self.seed, self.task_id, step, slot])
        s = self.stream
        ex = tasks.transform(s.task, s.source[idx], rng, True, s.size, self.policy, s.dataset)
        return ex | {"index": np.int32(idx)}


def train_dataset(
    stream: Stream,
    num_steps: int,
    *,
    seed: int = 2048,
    world_size: int = 1,
    data_parallel: int = 1,
    process_index: int | None = None,
    process_count: int | None = None,
    augment: str = "original",
    key: str | None = None,
) -> tuple[grain.MapDataset, StreamLayout]:
    """MapDataset of this process's local train batches of one stream, one per step; `augment`
    is the transforms' policy (`tasks.crops.POLICIES`); `key` (default: the dataset's name)
    names the stream in its RNG keys."""
    layout = _layout(stream.batch_size, data_parallel, process_index, process_count)
    fn = _TrainElements(stream, key or stream.reads, layout, num_steps, seed, world_size, augment)
    ds = grain.MapDataset.range(num_steps * layout.local_batch).map(fn)
    return ds.batch(layout.local_batch, drop_remainder=True), layout


class _EvalElements:
    def __init__(self, stream, layout):
        self.stream, self.layout = stream, layout

    def __call__(self, k: int) -> dict:
        step, j = divmod(k, self.layout.local_batch)
        g = step * self.layout.batch_size + self.layout.slot(j)
        s = self.stream
        valid = g < len(s.source)
        idx = g if valid else 0
        rng = np.random.default_rng(0)  # test transforms are deterministic
        ex = tasks.transform(s.task, s.source[idx], rng, False, s.size, dataset=s.dataset)
        return ex | {"index": np.int32(idx), "valid": np.bool_(valid)}


def eval_dataset(
    stream: Stream,
    *,
    data_parallel: int = 1,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tuple[grain.MapDataset, StreamLayout]:
    """Every record once, in order; the last global batch is padded (`valid` False)."""
    layout = _layout(stream.batch_size, data_parallel, process_index, process_count)
    steps = -(-len(stream.source) // stream.batch_size)
    ds = grain.MapDataset.range(steps * layout.local_batch).map(_EvalElements(stream, layout))
    return ds.batch(layout.local_batch, drop_remainder=True), layout


class _Zip:
    def __init__(self, streams: Mapping[str, grain.MapDataset]):
        self.streams = dict(streams)

    def __call__(self, step: int) -> dict:
        return {name: ds[step] for name, ds in self.streams.items()}


def stream_keys(streams: Mapping[str, Stream]) -> dict[str, str]:
    """{task: RNG key}: the dataset's name for the dataset's first task in `tasks.TASKS` (every
    task of the published recipes: their batches stay as they were), the task's name for any
    other task on that dataset (its own shuffle and augmentation, as if it read a second copy)."""
    first: dict[str, str] = {}
    for name, t in tasks.TASKS.items():
        first.setdefault(t.dataset, name)
    return {task: s.reads if first.get(s.reads) == task else task for task, s in streams.items()}


def mixed_dataset(
    streams: Mapping[str, Stream],
    num_steps: int,
    *,
    seed: int = 2048,
    world_size: int = 1,
    data_parallel: int = 1,
    process_index: int | None = None,
    process_count: int | None = None,
    augment: str = "original",
) -> tuple[grain.MapDataset, dict[str, StreamLayout]]:
    """MapDataset over steps; element `step` = {task: local batch} for every stream."""
    per_task, layouts = {}, {}
    for (name, s), key in zip(streams.items(), stream_keys(streams).values(), strict=True):
        per_task[name], layouts[name] = train_dataset(
            s, num_steps, seed=seed, world_size=world_size, data_parallel=data_parallel,
            process_index=process_index, process_count=process_count, augment=augment, key=key,
        )  # fmt: skip
    return grain.MapDataset.range(num_steps).map(_Zip(per_task)), layouts


def make_iterator(
    ds: grain.MapDataset, *, num_threads: int = 2, prefetch: int = 4, workers: int = 0
) -> grain.DatasetIterator:
    """Checkpointable iterator (`get_state`/`set_state`); `workers` > 0 adds mp_prefetch."""
    it_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    )
    if workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(it_ds)


def data_parallel_size(mesh: jax.sharding.Mesh) -> int:
    return int(np.prod([mesh.shape[a] for a in BATCH_AXES if a in mesh.shape]))


def to_global(batch: Mapping, mesh: jax.sharding.Mesh, layouts: Mapping[str, StreamLayout]):
    """{task: local numpy batch} -> {task: global jax.Arrays}; batch dim over BATCH_AXES
    (replicated for a task whose layout is not process-sharded)."""
    out = {}
    for name, tree in batch.items():
        layout, dp = layouts[name], data_parallel_size(mesh)
        divisible = layout.batch_size % dp == 0
        if layout.process_count > 1 and not divisible:
            raise ValueError(
                f"{name}: batch {layout.batch_size} is split over {layout.process_count} "
                f"processes but not divisible by the mesh's data axes ({dp}); build the stream "
                "with data_parallel=data_parallel_size(mesh)"
            )
        sharded = divisible and layout.process_count == jax.process_count()
        spec = PartitionSpec(BATCH_AXES) if sharded else PartitionSpec()
        sharding = NamedSharding(mesh, spec)
        out[name] = jax.tree.map(
            lambda x, s=sharding: jax.make_array_from_process_local_data(s, np.asarray(x)), tree
        )
    return out


def open_tfds(data_dir: str, name: str, split: str):
    """A built TFDS dataset (ArrayRecord) as a random-access source; images stay encoded bytes
    (decoded in the grain map). Needs no builder code and no TensorFlow."""
    import tensorflow_datasets as tfds

    root = os.path.join(data_dir, name)
    if not os.path.isdir(root):
        raise DataError(f"{root}: no built dataset (expected <data_dir>/{name}/<version>)")
    versions = sorted(d for d in os.listdir(root) if d[:1].isdigit())
    if not versions:
        raise DataError(f"{root}: no version directory with dataset_info.json")
    version = os.path.join(root, versions[-1])
    if not os.path.isfile(os.path.join(version, "dataset_info.json")):
        raise DataError(
            f"{version}: no dataset_info.json (an unfinished or emptied build; rebuild it with "
            "`python -m data build`)"
        )
    builder = tfds.builder_from_directory(version)
    decoders = {
        k: tfds.decode.SkipDecoding()
        for k, f in builder.info.features.items()
        if isinstance(f, tfds.features.Image)
    }
    return builder.as_data_source(split=split, decoders=decoders)
