"""Train-step speed: steps/s, images/s, achieved FLOP/s and MFU for a config's recipe.

    python benchmarks/train_step.py --config=configs/tiny.py
    python benchmarks/train_step.py --config=configs/faceptor_full.py --steps 5 --scale 0.25

One real batch comes from the config's input pipeline (synthetic faces by default) and is reused,
so the figure is the step alone (`benchmarks/input_pipeline.py` measures the data side). FLOPs
are counted on the step's jaxpr (matmuls and convolutions, forward and backward); MFU divides
the achieved rate by `--peak_tflops` (default: the device's dense bf16 peak where known).
"""

import sys
import time

import jax
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from benchmarks import flops as flops_lib
from data import sources as entry
from faceptor_jax import input_pipeline, loop, sharding, train

_CONFIG = config_flags.DEFINE_config_file("config", "configs/tiny.py", "Config to benchmark.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after one compile step).")
_SCALE = flags.DEFINE_float("scale", 1.0, "Multiply every task's batch size (min 1).")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "Device peak TFLOP/s for MFU (0: known default).")

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "TPU v5p": 459.0, "TPU v4": 275.0}


def _peak(kind: str) -> float:
    if _PEAK.value:
        return _PEAK.value
    return next((v for k, v in PEAK_TFLOPS.items() if k in kind), 0.0)


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    for t in config.tasks.values():
        t.batch_size = max(1, round(t.batch_size * _SCALE.value))
    mesh = loop.mesh_from_config(config)
    loop.validate(config, mesh)
    sources = loop.check_sources(config, entry.make_sources(config))
    trainer, abstract = train.make_trainer(config, mesh)
    datasets = {n: t.dataset for n, t in config.tasks.items()}
    ds, layouts = input_pipeline.mixed_dataset(
        sources, {d: config.tasks[t].batch_size for t, d in datasets.items()}, 1,
        data_parallel=input_pipeline.data_parallel_size(mesh),
        sizes={d: trainer.image_sizes[t] for t, d in datasets.items()},
    )  # fmt: skip
    images = sum(t.batch_size for t in config.tasks.values())
    with jax.set_mesh(mesh), nnx.logical_axis_rules(sharding.DEFAULT_RULES):
        state, shardings = train.create_state(trainer, abstract)
        batch = loop._to_task_batch(input_pipeline.to_global(ds[0], mesh, layouts), datasets)
        flops = flops_lib.count(trainer.train_step, state, batch)
        step = jax.jit(trainer.train_step, donate_argnums=0, out_shardings=(shardings, None))
        t0 = time.perf_counter()
        state, m = step(state, batch)
        jax.block_until_ready(m)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(_STEPS.value):
            state, m = step(state, batch)
        jax.block_until_ready(m)
        sec = (time.perf_counter() - t0) / _STEPS.value
    kind = jax.devices()[0].device_kind
    achieved = flops / sec
    peak = _peak(kind) * 1e12 * jax.device_count()
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (pass --peak_tflops)"
    print(f"device: {kind} x{jax.device_count()}, mesh {dict(mesh.shape)}, {images} images/step")
    print(
        f"step {sec * 1e3:.1f} ms | {1 / sec:.2f} steps/s | {images / sec:.1f} images/s | "
        f"{flops / 1e12:.3f} TFLOP/step | {achieved / 1e9:.1f} GFLOP/s | MFU {mfu} | "
        f"first step (compile) {compile_s:.1f} s | loss {float(np.asarray(m['loss/total'])):.4f}"
    )


if __name__ == "__main__":
    sys.exit(app.run(main))
