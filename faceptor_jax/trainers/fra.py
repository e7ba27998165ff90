"""The FRA self-supervised pretraining trainer: two views, online + momentum teacher, LARS.

State `{step, params: {online, predictor, predictor_obj}, teacher: {teacher}, buffers (every
BatchNorm's statistics and both `proto` buffers), opt (LARS), rng}`, placed by the parameters'
logical axes (everything else replicated); the two-view batch is sharded over the data axes.

One step: both views through both networks (`FRA.__call__`; teacher outputs stop-gradient,
decoder dropout keyed by the state's RNG), `fra_losses.fra_loss`, the gradient of the online
network and predictors only, the LARS update with the learning rate of that step (per-iteration
warmup, per-epoch cosine), then the teacher EMA θ_T ← m·θ_T + (1 − m)·θ_O with
m = `lars.teacher_momentum(step, total_steps)`. The data stream is a grain iterator whose
position every checkpoint saves, so a resumed run repeats the uninterrupted one exactly.
Evaluation: the loss terms on a fixed held-out two-view batch (test split, dropout off, the
state's buffers left as they are).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from faceptor_jax import fra_losses, input_pipeline, lars, sharding
from faceptor_jax import two_view_pipeline as tv
from faceptor_jax.model.fra import FRA, TRAINABLE, FRAConfig
from faceptor_jax.model.resnet import ResNetConfig
from faceptor_jax.trainers.spec import Data, Rules, SourceFactory

TEACHER = nnx.All(nnx.Param, nnx.PathContains("teacher"))
LOGGED = ("loss", "base", "inst", "obj", "clu")


def model_config(config: ml_collections.ConfigDict) -> FRAConfig:
    """`config.model` ({kind: "fra", backbone: {...}, dim, …}) as an `FRAConfig`."""
    m = config.model.to_dict()
    m.pop("kind", None)
    backbone = {"dtype": m.get("dtype", "float32"), **m.pop("backbone", {})}
    if "blocks" in backbone:
        backbone["blocks"] = tuple(backbone["blocks"])
    return FRAConfig(backbone=ResNetConfig(**backbone), **m)


def validate(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
    """Config errors a user can fix, each one line naming the value."""
    f = config.fra
    positive = ("batch_size", "image_size", "epochs", "steps_per_epoch", "lr")
    for k in positive:
        if not f[k] > 0:
            raise ValueError(f"config.fra.{k} {f[k]}: expected > 0")
    if not 0 <= f.warmup_epochs < f.epochs:
        raise ValueError(
            f"config.fra.warmup_epochs {f.warmup_epochs}: expected 0 <= it < epochs ({f.epochs})"
        )
    if not 0 <= f.teacher_momentum <= 1:
        raise ValueError(f"config.fra.teacher_momentum {f.teacher_momentum}: expected in [0, 1]")
    for k in ("teacher_temp", "student_temp"):
        if not f[k] > 0:
            raise ValueError(f"config.fra.{k} {f[k]}: expected > 0")
    if int(config.total_steps) != f.epochs * f.steps_per_epoch:
        raise ValueError(
            f"config.total_steps {config.total_steps}: expected fra.epochs × fra.steps_per_epoch "
            f"= {f.epochs * f.steps_per_epoch} (the schedules are per epoch)"
        )
    dp = input_pipeline.data_parallel_size(mesh)
    if f.batch_size % dp or f.batch_size % jax.process_count():
        raise ValueError(
            f"config.fra.batch_size {f.batch_size}: not divisible by the mesh's data axes "
            f"(data×fsdp = {dp}) and the {jax.process_count()} processes"
        )
    if config.model.get("kind", "fra") != "fra":
        raise ValueError(f"config.model.kind {config.model.kind!r}: the fra trainer needs 'fra'")
    init = config.get("init") or {}
    for k in ("checkpoint", "farl"):
        if init.get(k):
            raise ValueError(
                f"config.init.{k} {init[k]!r}: FRA pretraining starts from random weights (a "
                "stopped run resumes from its workdir); leave it empty"
            )
    model_config(config)  # unknown model fields fail here (TypeError names the field)


def _key_name(k) -> str:
    return str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """The static side of one FRA run: its graph, optimiser, schedules and mesh."""

    config: ml_collections.ConfigDict
    cfg: FRAConfig
    graphdef: Any
    tx: optax.GradientTransformation
    schedule: Any
    mesh: jax.sharding.Mesh
    jitted: dict = dataclasses.field(default_factory=dict)  # compiled evaluation, per run

    def init_state(self, seed: int) -> dict:
        model = FRA(self.cfg, rngs=nnx.Rngs(seed))
        _, params, teacher, buffers = nnx.split(model, TRAINABLE, TEACHER, ...)
        params = nnx.to_pure_dict(params)
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "teacher": nnx.to_pure_dict(teacher),
            "buffers": nnx.to_pure_dict(buffers),
            "opt": self.tx.init(params),
            "rng": jax.random.PRNGKey(seed + 1),
        }

    def forward(self, params, teacher, buffers, batch, rng) -> tuple[dict, dict]:
        """(fra_loss terms, the buffers after the forward)."""
        f = self.config.fra
        model = nnx.merge(self.graphdef, params, teacher, buffers)
        out = model(batch["view1"], batch["view2"], rng=rng)
        terms = fra_losses.fra_loss(
            out,
            consistency_weight=f.consistency_weight,
            cluster_weight=f.cluster_weight,
            teacher_temp=f.teacher_temp,
            student_temp=f.student_temp,
        )
        return terms, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))

    def train_step(self, state: Mapping, batch: Mapping) -> tuple[dict, dict]:
        rng, step_rng = jax.random.split(state["rng"])
        dropout_rng = step_rng if self.cfg.dropout > 0 else None

        def loss_fn(params):
            terms, buffers = self.forward(
                params, state["teacher"], state["buffers"], batch, dropout_rng
            )
            return terms["loss"], (terms, buffers)

        (_, (terms, buffers)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        m = lars.teacher_momentum(
            state["step"], int(self.config.total_steps), self.config.fra.teacher_momentum
        )
        teacher = {"teacher": lars.ema_update(state["teacher"]["teacher"], params["online"], m)}
        metrics = {k: terms[k] for k in LOGGED}
        metrics |= {
            "grad_norm": optax.global_norm(grads),
            "lr": self.schedule(state["step"]),
            "teacher_momentum": m,
        }
        new = {"step": state["step"] + 1, "params": params, "teacher": teacher}
        return new | {"buffers": buffers, "opt": opt, "rng": rng}, metrics

    def eval_terms(self, state: Mapping, batch: Mapping) -> dict:
        """The loss terms on `batch`, dropout off; the state is not changed."""
        terms, _ = self.forward(state["params"], state["teacher"], state["buffers"], batch, None)
        return {k: terms[k] for k in LOGGED}


def make_run(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> tuple[Run, Any]:
    """(run, the abstract model)."""
    cfg = model_config(config)
    f = config.fra
    schedule = lars.learning_rate_schedule(
        float(f.lr), int(f.steps_per_epoch), int(f.epochs), int(f.warmup_epochs)
    )
    tx = lars.lars(schedule, momentum=float(f.lars_momentum), weight_decay=float(f.weight_decay))
    abstract = nnx.eval_shape(lambda: FRA(cfg, rngs=nnx.Rngs(0)))
    run = Run(config, cfg, nnx.graphdef(abstract), tx, schedule, mesh)
    return run, abstract


def state_shardings(shapes: Any, abstract: nnx.Module, rules: Rules, mesh) -> Any:
    """Parameters (online, predictors, teacher) and their LARS momenta by the parameters'
    logical axes; step, buffers and RNG replicated."""
    specs = nnx.to_pure_dict(sharding.param_specs(nnx.state(abstract, nnx.Param), rules, mesh))
    flat = {
        tuple(_key_name(k) for k in path): s
        for path, s in jax.tree_util.tree_leaves_with_path(
            specs, is_leaf=lambda x: isinstance(x, P)
        )
    }

    def spec(path, _) -> NamedSharding:
        keys = tuple(_key_name(k) for k in path)
        for i in range(len(keys)):  # the params path below the state's / optimizer's containers
            if keys[i:] in flat:
                return NamedSharding(mesh, flat[keys[i:]])
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(spec, shapes)


class FRATrainer:
    """The `Trainer` (trainers/spec.py) of FRA pretraining; its run is a `Run`, one per config
    and mesh (a run restarted in the same process, e.g. after SIGTERM, reuses its compiled
    step)."""

    def __init__(self):
        self.runs: dict = {}

    def validate(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> None:
        validate(config, mesh)

    def open_sources(self, config: ml_collections.ConfigDict, sources: SourceFactory) -> Any:
        f = config.fra
        return sources(f.dataset, "train", int(f.source_size) or None)

    def create(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, rules: Rules):
        key = (config.to_json(), mesh.shape_tuple, tuple(d.id for d in mesh.devices.flat))
        if key not in self.runs:
            self.runs[key] = make_run(config, mesh)
        run, abstract = self.runs[key]
        init = lambda: run.init_state(int(config.seed))
        with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            shardings = state_shardings(jax.eval_shape(init), abstract, rules, mesh)
            state = jax.jit(init, out_shardings=shardings)()
        return run, state, shardings

    def initialize(self, config: ml_collections.ConfigDict, state: dict) -> dict:
        return state  # random weights (validate refuses config.init)

    def data(self, run: Run, opened: Any, mesh: jax.sharding.Mesh, start: int) -> Data:
        del start  # the grain iterator's saved position says where it resumes
        c, f = run.config, run.config.fra
        ds = tv.two_view_dataset(
            opened, int(f.batch_size), int(f.image_size), int(c.total_steps), seed=int(c.seed)
        )
        iterator = input_pipeline.make_iterator(
            ds, num_threads=c.data.threads, prefetch=c.data.prefetch, workers=c.data.workers
        )
        return Data(iterator=iterator, to_device=lambda host: tv.to_global(host, mesh))

    def nonfinite(self, state: dict, metrics: Sequence[Mapping[str, Any]]) -> str | None:
        for i, m in enumerate(metrics):
            bad = [k for k in LOGGED if not np.isfinite(m[k])]
            if bad:
                return (
                    f"non-finite FRA loss ({', '.join(bad)}) in the log window's step {i + 1} "
                    "(the run stops here — check the data and the learning rate)"
                )
        return None

    def summary(self, mean: Mapping[str, float]) -> str:
        terms = " ".join(f"{k}={mean[k]:.4g}" for k in LOGGED)
        return f"{terms} | lr {mean['lr']:.3g} | m {mean['teacher_momentum']:.5f}"

    def description(self, run: Run) -> dict:
        return {"kind": "fra", "config": run.cfg, "extra": {"trainer": "fra"}}

    def evaluate(
        self, run: Run, state: dict, sources: SourceFactory, workdir: str, step: int,
        model_dir: str | None = None,
    ) -> tuple[dict, dict[str, float]]:  # fmt: skip
        c, f = run.config, run.config.fra
        if not f.eval_batches or sources is None:
            return {}, {}
        source = sources(f.dataset, "test", int(f.source_size) or None)
        ds = tv.two_view_dataset(source, int(f.batch_size), int(f.image_size), int(f.eval_batches),
                                 seed=int(c.seed))  # fmt: skip
        fn = run.jitted.setdefault("eval_terms", jax.jit(run.eval_terms))
        totals: dict[str, float] = {}
        with jax.set_mesh(run.mesh):
            for i in range(int(f.eval_batches)):
                terms = jax.device_get(fn(state, tv.to_global(ds[i], run.mesh)))
                for k, v in terms.items():
                    totals[k] = totals.get(k, 0.0) + float(v) / int(f.eval_batches)
        return totals, {f"eval/{k}": v for k, v in totals.items()}

    def config_for_model(
        self, config: ml_collections.ConfigDict, directory: str
    ) -> ml_collections.ConfigDict:
        return config
