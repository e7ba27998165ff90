"""Train-step speed: steps/s, images/s, achieved FLOP/s and MFU for a config's recipe; optionally
the original PyTorch training step on the same batches, side by side.

    python benchmarks/train_step.py --config=configs/tiny.py
    python benchmarks/train_step.py --config=configs/faceptor_full.py --steps 5 --scale 0.25
    python benchmarks/train_step.py --config=configs/tiny.py --reference /path/to/Faceptor

One real batch comes from the config's input pipeline (synthetic faces unless the config names a
`data.data_dir`) and is reused, so the figure is the step alone (`benchmarks/input_pipeline.py`
measures the data side). FLOPs are counted on the step's jaxpr (matmuls and convolutions, forward
and backward); MFU divides the achieved rate by `--peak_tflops` (default: the device's dense bf16
peak where known).

`--reference DIR` (a checkout of lxq1000/Faceptor; never part of this repo) builds the original's
model, losses, optimizer and schedule from DIR at run time at the config's sizes, feeds it the same
per-task batches and times its step (CPU, fp32), interleaved with ours, medians over `--steps`.
What its step contains and what is substituted (its CUDA-only heatmap-target op) is documented
in `benchmarks/reference_train.py`. The original computes in fp32; on a CPU compare at the same
precision (XLA:CPU has no fast bf16 matmuls) and expect minutes per full-size step:

    python benchmarks/train_step.py --config=configs/faceptor_base.py --scale 0.125 --steps 1 \
        --config.model.encoder.dtype=float32 --config.model.decoder.dtype=float32 --reference DIR
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
from faceptor_jax import input_pipeline, loop, train
from faceptor_jax.trainers import multitask

_CONFIG = config_flags.DEFINE_config_file("config", "configs/tiny.py", "Config to benchmark.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after one compile step).")
_SCALE = flags.DEFINE_float("scale", 1.0, "Multiply every task's batch size (min 1).")
_PEAK = flags.DEFINE_float("peak_tflops", 0.0, "Device peak TFLOP/s for MFU (0: known default).")
_REFERENCE = flags.DEFINE_string(
    "reference", None, "Checkout of the original Faceptor: time its training step too."
)
_REF_THREADS = flags.DEFINE_integer(
    "ref_threads", 0, "torch intra-op threads for the original (0: torch's default)."
)

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "TPU v5p": 459.0, "TPU v4": 275.0}


def _peak(kind: str) -> float:
    if _PEAK.value:
        return _PEAK.value
    return next((v for k, v in PEAK_TFLOPS.items() if k in kind), 0.0)


def scaled_batch_sizes(config, scale: float) -> None:
    """Multiply every task's batch size by `scale` in place, at least 1."""
    for t in config.tasks.values():
        t.batch_size = max(1, round(t.batch_size * scale))


def _host_batch(config, trainer, mesh) -> tuple[dict, dict]:
    """({task: one batch} on the host, the arrays' layouts), from the config's pipeline."""
    if config.data.source == "tfds" and not config.data.data_dir:
        print("no --config.data.data_dir: synthetic faces")
        config.data.source = "synthetic"
    streams = multitask.check_sources(config, entry.make_sources(config))
    ds, layouts = input_pipeline.mixed_dataset(
        streams, 1, data_parallel=input_pipeline.data_parallel_size(mesh)
    )
    return ds[0], layouts


def _timed_step(step, state, batch) -> tuple[float, object, object]:
    """One step of ours, finished: (seconds, state, metrics)."""
    t0 = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m)
    return time.perf_counter() - t0, state, m


def _time_ours(step, state, batch, steps: int) -> tuple[float, float, object]:
    """(compile+first step s, mean s per step over a run of `steps`, metrics) — no reference."""
    compile_s, state, m = _timed_step(step, state, batch)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch)
    jax.block_until_ready(m)
    return compile_s, (time.perf_counter() - t0) / steps, m


def _time_both(step, state, batch, original, steps: int):
    """Ours and the original one step each in turn (fair while the machine's load drifts), after
    a compile / warm-up step each: (compile s, ours median s, original median s, m, its loss)."""
    compile_s, state, m = _timed_step(step, state, batch)
    original.step()  # warm-up; renders the landmark targets once
    renders = original.renders
    ours, theirs = [], []
    for _ in range(steps):
        sec, state, m = _timed_step(step, state, batch)
        ours.append(sec)
        sec, loss = original.timed_step()
        theirs.append(sec)
    if original.renders != renders:
        raise RuntimeError("the original rendered heatmap targets inside the timed steps")
    return compile_s, float(np.median(ours)), float(np.median(theirs)), m, loss


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    scaled_batch_sizes(config, _SCALE.value)
    mesh = loop.mesh_from_config(config)
    multitask.validate(config, mesh)
    trainer, abstract = train.make_trainer(config, mesh)
    host, layouts = _host_batch(config, trainer, mesh)
    images = sum(t.batch_size for t in config.tasks.values())
    original = None
    if _REFERENCE.value:
        from benchmarks.reference_train import OriginalTrainer

        batches = dict(host)
        original = OriginalTrainer(
            _REFERENCE.value, config, trainer.image_sizes, trainer.weights, batches,
            threads=_REF_THREADS.value,
        )  # fmt: skip
    rules = loop.sharding_rules(config)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        state, shardings = train.create_state(trainer, abstract, rules)
        n_params = sum(x.size for x in jax.tree.leaves(state["params"]))
        batch = input_pipeline.to_global(host, mesh, layouts)
        flops = flops_lib.count(trainer.train_step, state, batch)
        step = jax.jit(trainer.train_step, donate_argnums=0, out_shardings=(shardings, None))
        if original is None:
            compile_s, sec, m = _time_ours(step, state, batch, _STEPS.value)
        else:
            compile_s, sec, ref_sec, m, ref_loss = _time_both(
                step, state, batch, original, _STEPS.value
            )
    kind = jax.devices()[0].device_kind
    achieved = flops / sec
    peak = _peak(kind) * 1e12 * jax.device_count()
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (pass --peak_tflops)"
    sizes = {n: (t.batch_size, trainer.image_sizes[n]) for n, t in config.tasks.items()}
    print(
        f"device: {kind} x{jax.device_count()}, mesh {dict(mesh.shape)}, {images} images/step, "
        f"{n_params / 1e6:.1f}M parameters"
    )
    print("per task (batch, image side):", sizes)
    dtype = config.model.encoder.dtype
    print(
        f"faceptor_jax ({dtype}): step {sec * 1e3:.1f} ms | {1 / sec:.2f} steps/s | "
        f"{images / sec:.1f} images/s | {flops / 1e12:.3f} TFLOP/step | "
        f"{achieved / 1e9:.1f} GFLOP/s | MFU {mfu} | "
        f"first step (compile) {compile_s:.1f} s | loss {float(np.asarray(m['loss/total'])):.4f}"
    )
    if original is None:
        return
    print(original.describe())
    print(
        f"original step {ref_sec * 1e3:.1f} ms | {images / ref_sec:.1f} images/s | "
        f"loss {ref_loss:.4f}"
    )
    print(f"ours/original images/s: {ref_sec / sec:.2f}x (medians of {_STEPS.value} steps each)")


if __name__ == "__main__":
    sys.exit(app.run(main))
