"""A second, minimal trainer for the run loop: one linear layer fitted to y = x·w* + b* by SGD.

It has nothing of the multi-task trainer (no model module, no tasks, no model.json), so a test
running it through `loop.train_and_evaluate` shows what the seam asks of a trainer.
"""

import dataclasses
import itertools
import signal
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from flax.core import spmd
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from faceptor_jax.trainers import Data

DIM, BATCH = 4, 16
W_TRUE = np.arange(1, DIM + 1, dtype=np.float32)[:, None] / DIM  # [D, 1]
B_TRUE = 0.5


def batch_at(seed: int, step: int) -> dict[str, np.ndarray]:
    """Step `step`'s batch: x [B, D] ~ N(0, 1), y [B, 1] = x·w* + b* + N(0, 0.01²)."""
    rng = np.random.default_rng([seed, step])
    x = rng.normal(size=(BATCH, DIM)).astype(np.float32)
    noise = 0.01 * rng.normal(size=(BATCH, 1)).astype(np.float32)
    return {"x": x, "y": x @ W_TRUE + B_TRUE + noise}


def _loss(params: Mapping, batch: Mapping) -> jax.Array:
    pred = batch["x"] @ params["w"] + params["b"]  # [B, 1]
    return jnp.mean((pred - batch["y"]) ** 2)


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    tx: optax.GradientTransformation
    seen_rules: list  # the logical-axis rules active when the step was traced

    def train_step(self, state: Mapping, batch: Mapping) -> tuple[dict, dict]:
        self.seen_rules.append(tuple(spmd.get_logical_axis_rules()))
        loss, grads = jax.value_and_grad(_loss)(state["params"], batch)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, {"loss": loss}


class RegressionTrainer:
    """The `Trainer` protocol for `Run`. `grain_data`: a grain iterator whose position the
    checkpoints save; else a stream indexed by step (no data item). `preempt_at`: the host batch
    fetch on which SIGTERM arrives (what a scheduler's preemption sends)."""

    def __init__(self, grain_data: bool = True, preempt_at: int = 0):
        self.grain_data, self.preempt_at = grain_data, preempt_at
        self.fetched = 0
        self.created_with: list = []
        self.evaluated: list[tuple[int, dict]] = []  # (step, host params)

    def validate(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
        if config.lr <= 0:
            raise ValueError(f"config.lr {config.lr}: expected > 0")

    def open_sources(self, config: ml_collections.ConfigDict, sources: Any) -> int:
        return int(config.seed)  # synthetic: the data is a function of (seed, step)

    def create(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, rules) -> tuple:
        self.created_with.append(tuple(rules))
        run = self.run = Run(tx=optax.sgd(float(config.lr)), seen_rules=[])

        def init() -> dict:
            params = {"w": jnp.zeros((DIM, 1)), "b": jnp.zeros((1,))}
            return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": run.tx.init(params)}

        shapes = jax.eval_shape(init)
        shardings = jax.tree.map(lambda _: NamedSharding(mesh, P()), shapes)
        with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            state = jax.jit(init, out_shardings=shardings)()
        return run, state, shardings

    def initialize(self, config: ml_collections.ConfigDict, state: dict) -> dict:
        return state

    def data(self, run: Run, opened: int, mesh: jax.sharding.Mesh, start: int) -> Data:
        seed = opened
        if self.grain_data:  # the position comes back from the checkpoint
            ds = grain.MapDataset.range(10**6).map(lambda step: batch_at(seed, step))
            iterator: Iterator = iter(ds.to_iter_dataset())
        else:
            iterator = (batch_at(seed, step) for step in itertools.count(start))
        rows = NamedSharding(mesh, P(("data", "fsdp")))

        def to_device(host: Mapping) -> dict:
            self.fetched += 1
            if self.fetched == self.preempt_at:
                signal.raise_signal(signal.SIGTERM)
            return {k: jax.make_array_from_process_local_data(rows, v) for k, v in host.items()}

        return Data(iterator=iterator, to_device=to_device, checkpointed=self.grain_data)

    def nonfinite(self, state: dict, metrics: Sequence[Mapping[str, Any]]) -> str | None:
        bad = [i for i, m in enumerate(metrics) if not np.isfinite(m["loss"])]
        return f"non-finite regression loss in the log window's step {bad[0] + 1}" if bad else None

    def summary(self, mean: Mapping[str, float]) -> str:
        return f"mse {mean['loss']:.4g}"

    def description(self, run: Run) -> None:
        return None  # no model directory layout: the workdir has no model.json

    def evaluate(self, run, state, sources, workdir, step, model_dir=None) -> tuple:
        params = jax.device_get(state["params"])
        self.evaluated.append((step, params))
        error = float(np.abs(params["w"] - W_TRUE).max())
        return {"w_error": error}, {"eval/w_error": error}

    def config_for_model(self, config: ml_collections.ConfigDict, directory: str):
        return config


def config(total_steps: int = 8) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            seed=0, lr=0.1, total_steps=total_steps, mesh=(-1, 1, 1), sharding_rules=None,
            log_every=1, checkpoint_every=3, keep_checkpoints=2, keep_every=0,
            eval_every=4, eval_at_end=True, init=dict(checkpoint=""),
        )
    )  # fmt: skip
