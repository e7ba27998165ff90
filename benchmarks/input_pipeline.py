"""Input-pipeline throughput: samples/s per dataset and for the mixed stream, against a demand.

  python -m benchmarks.input_pipeline [--recipe tiny|base] [--step_seconds S] [--workers N]
                                      [--tfds_dir DIR]

Per dataset: one thread, `--samples` train examples (render/decode + the original's transform).
Mixed: the recipe's `{dataset: batch}` stream through grain (threads, optional mp workers), in
steps/s; the demand is one step per `--step_seconds` (the train step's time on this machine).
With `--tfds_dir`, the synthetic faces are first built as TFDS ArrayRecord there (a fixture
dataset read back like a real build) and benchmarked from disk as well.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from absl import flags

from data.synthetic_faces import SyntheticFaces
from faceptor_jax import input_pipeline as ip
from faceptor_jax import tasks

RECIPES = {  # global batch per dataset (the original's per-GPU batch x its GPUs)
    "tiny": {"ms1mv3": 8, "morph2": 4, "celeba": 4, "affectnet": 4, "rafdb": 2,
             "celebamask_hq": 1, "ibug300w": 1},
    "base": {"ms1mv3": 256, "morph2": 64, "celeba": 64, "affectnet": 64, "rafdb": 16,
             "celebamask_hq": 4, "ibug300w": 4},
}  # fmt: skip


# dataset -> the first task that reads it (the transform the benchmark times)
TASK_OF = {t.dataset: name for name, t in reversed(tasks.TASKS.items())}


def per_dataset(sources, names, samples: int, sizes) -> dict[str, float]:
    out = {}
    for name in names:
        src = sources[name]
        rng = np.random.default_rng(0)
        tasks.transform(TASK_OF[name], src[0], rng, True, sizes.get(name))  # warm-up
        t = time.perf_counter()
        for i in range(samples):
            tasks.transform(TASK_OF[name], src[i % len(src)], rng, True, sizes.get(name))
        out[name] = samples / (time.perf_counter() - t)
    return out


def mixed(sources, batches, steps: int, threads: int, workers: int, sizes) -> float:
    streams = {
        TASK_OF[n]: ip.Stream(sources[n], b, sizes.get(n), TASK_OF[n]) for n, b in batches.items()
    }
    ds, _ = ip.mixed_dataset(streams, steps + 2, process_index=0, process_count=1)
    it = ip.make_iterator(ds, num_threads=threads, prefetch=2 * threads, workers=workers)
    next(it)
    t = time.perf_counter()
    for _ in range(steps):
        next(it)
    return steps / (time.perf_counter() - t)


def report(title, sources, batches, args, sizes) -> None:
    print(f"\n== {title}")
    rates = per_dataset(sources, batches, args.samples, sizes)
    demand = {n: b / args.step_seconds for n, b in batches.items()}
    print(f"{'dataset':15s} {'samples/s (1 thread)':>21s} {'demand/s':>9s} {'ratio':>6s}")
    for n, r in rates.items():
        print(f"{n:15s} {r:21.1f} {demand[n]:9.1f} {r / demand[n]:6.2f}x")
    serial = 1 / sum(b / rates[n] for n, b in batches.items())
    print(f"one step, serial: {serial:.2f} steps/s")
    for threads, workers in [(args.threads, 0)] + ([(1, args.workers)] if args.workers else []):
        sps = mixed(sources, batches, args.steps, threads, workers, sizes)
        label = f"mixed stream ({threads} threads, {workers} workers)"
        rate = sps * sum(batches.values())
        ratio = sps * args.step_seconds
        print(f"{label:40s}: {sps:6.2f} steps/s = {rate:8.1f} samples/s -> {ratio:.2f}x demand")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--recipe", choices=list(RECIPES), default="tiny")
    p.add_argument("--step_seconds", type=float, default=1.0, help="train step time to feed")
    p.add_argument("--dense_size", type=int, default=512, help="parsing/landmark image side")
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--tfds_dir", default=None)
    args = p.parse_args()
    flags.FLAGS.mark_as_parsed()  # grain's mp workers read absl flags
    batches = RECIPES[args.recipe]
    sizes = {n: args.dense_size for n in ("celebamask_hq", "ibug300w")}
    raw = None if args.dense_size == 512 else max(args.dense_size * 3 // 2, 64)
    synth = {n: SyntheticFaces(n, "train", length=1000, size=raw if n in sizes else None)
             for n in batches}  # fmt: skip
    report(
        f"synthetic faces, rendered on the fly, recipe {args.recipe}", synth, batches, args, sizes
    )
    if args.tfds_dir:
        from data.__main__ import build

        for n in batches:
            build(f"synthetic_faces/{n}", args.tfds_dir, train_size=64, test_size=1)
        built = {n: ip.open_tfds(args.tfds_dir, f"synthetic_faces/{n}_test_size1_train_size64",
                                 "train") for n in batches}  # fmt: skip
        report(
            f"built TFDS fixture (ArrayRecord), recipe {args.recipe}", built, batches, args, sizes
        )


if __name__ == "__main__":
    main()
