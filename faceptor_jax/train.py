"""The multi-task train step and the state it updates (pure; its seam is trainers/multitask.py).

State: a dict pytree `{step, params: {model, loss}, model_state, opt, rng, nonfinite}` —
`params.model` is the NNX model's Params, `params.loss` the loss-owned weights per task
(`{task: tree}`, e.g. the recognition loss's class matrix sharded over `model`), `model_state`
everything else the model carries (BatchNorm statistics). The step: one forward of every task's
batch (the encoder once per size group), each task's loss from its task file, Σ w_t·L_t / Σ w_t
with the original's weights, one AdamW update. A non-finite loss skips the update (as the
original's GradScaler does) and is recorded with its step and task so the loop stops with a
message naming both.
"""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from faceptor_jax import optim, sharding, tasks
from faceptor_jax.model import families
from faceptor_jax.optim import OptimConfig, make_optimizer

State = dict[str, Any]


def model_task_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Tasks the model has heads for: `model.tasks`, or else the trained ones."""
    names = tuple(config.model.get("tasks", ()) or ()) or tuple(config.tasks.keys())
    for n in config.tasks:
        if n not in names:
            raise ValueError(f"trained task {n!r} is not among the model's tasks {names}")
    for n in names:
        tasks.get(n)  # unknown names -> error listing the valid ones
    return names


def model_family(config: ml_collections.ConfigDict) -> families.Family:
    """The family `config.model.kind` names (the multi-task trainer needs task heads)."""
    return families.with_heads(config.model.kind, "config.model.kind")


def model_config(config: ml_collections.ConfigDict) -> families.Config:
    """`config.model` as its family's config, with the head specs of the model's tasks."""
    m = config.model.to_dict()
    family = model_family(config)
    m.pop("kind")
    m.pop("tasks", None)
    specs = [dataclasses.asdict(s) for s in tasks.head_specs(model_task_names(config))]
    return family.from_dict(m | {"tasks": specs})


def build_model(config: ml_collections.ConfigDict, seed: int) -> nnx.Module:
    return model_family(config).build(model_config(config), nnx.Rngs(seed))


def optimizer_config(config: ml_collections.ConfigDict) -> OptimConfig:
    o = config.optim.to_dict()
    groups = tuple(tuple(g) for g in o.pop("groups"))
    multipliers = tuple((g, float(m)) for g, m in o.pop("multipliers"))
    if config.get("trainable"):
        # Everything not matching `trainable` is frozen (stage 2: only the added levels train).
        groups = ((f"(?!(?:{config.trainable})$).*", "frozen"), *groups)
        multipliers = (("frozen", 0.0), *multipliers)
    return OptimConfig(**o, groups=groups, multipliers=multipliers)


def effective_weights(config: ml_collections.ConfigDict) -> dict[str, float]:
    """w_t = lw_t / Σ_{t' of t's type} lw_t' · task_weight[type] (the original's re-weighting)."""
    by_type: dict[str, float] = {}
    for name, t in config.tasks.items():
        typ = tasks.get(name).type.name
        by_type[typ] = by_type.get(typ, 0.0) + float(t.loss_weight)
    out = {}
    for name, t in config.tasks.items():
        typ = tasks.get(name).type.name
        if typ not in config.task_weights:
            raise ValueError(f"config.task_weights has no weight for task type {typ!r} ({name})")
        out[name] = float(t.loss_weight) / by_type[typ] * float(config.task_weights[typ])
    return out


def stop_frozen(params: Any, trainable: str | None) -> Any:
    """Params with every leaf outside the `trainable` regex behind stop_gradient.

    The optimizer already leaves frozen parameters unchanged; this also keeps autodiff from
    computing their gradients, so stage 2's backward pass skips the frozen encoder.
    """
    if not trainable:
        return params
    rx = re.compile(trainable)
    keep = lambda path, p: p if rx.fullmatch(optim.path_name(path)) else jax.lax.stop_gradient(p)
    return jax.tree_util.tree_map_with_path(keep, params)


def image_size(config: ml_collections.ConfigDict, name: str) -> int:
    """Side of task `name`'s input images: `tasks.<name>.image_size`, or else the task's own."""
    return int(config.tasks[name].get("image_size", 0)) or tasks.get(name).input_size


def loss_param_tasks(config: ml_collections.ConfigDict) -> dict[str, tasks.spec.LossParams]:
    """{task: its type's loss-parameter hooks} for the trained tasks whose loss owns weights."""
    out = {}
    for name in config.tasks:
        hooks = tasks.get(name).type.loss_params
        if hooks is not None:
            out[name] = hooks
    return out


@dataclasses.dataclass(frozen=True)
class Trainer:
    """Everything static about a run: the model graph, optimizer, weights, mesh."""

    config: ml_collections.ConfigDict
    mesh: Mesh
    graphdef: Any
    tx: optax.GradientTransformation
    weights: dict[str, float]
    image_sizes: dict[str, int]

    def init_state(self, model: nnx.Module, seed: int) -> State:
        """Pure: model -> full train state (used under jit with out_shardings)."""
        _, params, rest = nnx.split(model, nnx.Param, ...)
        key = jax.random.PRNGKey(seed + 1)  # one loss-owning task in the recipes: its key
        loss_params = {}
        for i, (name, hooks) in enumerate(loss_param_tasks(self.config).items()):
            k = key if i == 0 else jax.random.fold_in(key, i)
            loss_params[name] = hooks.init(name, self.config, self.mesh, k)
        p = {"model": nnx.to_pure_dict(params), "loss": loss_params}
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": p,
            "model_state": nnx.to_pure_dict(rest),
            "opt": self.tx.init(p),
            "rng": jax.random.PRNGKey(seed + 2),
            "nonfinite": jnp.full((2,), -1, jnp.int32),  # (first bad step, task index)
        }

    def merge(self, params: Mapping, model_state: Mapping) -> nnx.Module:
        return nnx.merge(self.graphdef, params, model_state)

    def task_losses(
        self, params: Mapping, model_state: Mapping, batch: Mapping, rng: jax.Array, step: Any = 0
    ) -> tuple[jax.Array, tuple[dict, Mapping]]:
        params = stop_frozen(params, self.config.get("trainable"))
        model = self.merge(params["model"], model_state)
        images = {t: b["image"] for t, b in batch.items()}
        outputs = model(images, train=True, rng=rng)
        per_task = {}
        for name, b in batch.items():
            task = tasks.get(name)
            ctx = tasks.LossContext(
                task=name,
                image_size=self.image_sizes[name],
                mesh=self.mesh,
                params=params["loss"].get(name, {}),
                config=self.config,
                step=step,
            )
            per_task[name] = task.type.loss(outputs[name], b, ctx)
        total = sum(self.weights[t] * per_task[t] for t in per_task)
        total = total / sum(self.weights[t] for t in per_task)
        new_state = nnx.to_pure_dict(nnx.split(model, nnx.Param, ...)[2])
        return total, (per_task, new_state)

    def train_step(self, state: State, batch: Mapping) -> tuple[State, dict]:
        rng, step_rng = jax.random.split(state["rng"])
        grad_fn = jax.value_and_grad(self.task_losses, has_aux=True)
        (total, (per_task, model_state)), grads = grad_fn(
            state["params"], state["model_state"], batch, step_rng, state["step"]
        )
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        names = sorted(per_task)
        grad_norm = optax.global_norm(grads)
        finite = jnp.stack([jnp.isfinite(per_task[n]) for n in names])
        ok = jnp.all(finite) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        first_bad = jnp.where(
            (state["nonfinite"][0] < 0) & ~ok,
            jnp.stack([state["step"], jnp.argmin(finite).astype(jnp.int32)]),
            state["nonfinite"],
        )
        new_state = {
            "step": state["step"] + 1,
            "params": keep(params, state["params"]),
            "model_state": keep(model_state, state["model_state"]),
            "opt": keep(opt, state["opt"]),
            "rng": rng,
            "nonfinite": first_bad,
        }
        metrics = {f"loss/{n}": per_task[n] for n in names}
        metrics |= {"loss/total": total, "grad_norm": grad_norm}
        return new_state, metrics


def make_trainer(config: ml_collections.ConfigDict, mesh: Mesh) -> tuple[Trainer, Any]:
    """The static trainer and an abstract model (for shapes/shardings)."""
    abstract = nnx.eval_shape(lambda: build_model(config, config.seed))
    graphdef = nnx.graphdef(abstract)
    sizes = {name: image_size(config, name) for name in config.tasks}
    trainer = Trainer(
        config=config,
        mesh=mesh,
        graphdef=graphdef,
        tx=make_optimizer(optimizer_config(config)),
        weights=effective_weights(config),
        image_sizes=sizes,
    )
    return trainer, abstract


def model_description(trainer: Trainer) -> dict:
    """`checkpoint.write_meta`'s arguments describing this run's model, written into the workdir
    so predict, eval and export rebuild it from a training checkpoint: the kind, its config with
    each trained task's image size, and what the tasks' loss parameters describe of themselves
    (`LossParams.describe`: the recognition classifier's real class count)."""
    cfg = model_config(trainer.config)
    sizes = trainer.image_sizes
    specs = tuple(
        dataclasses.replace(s, input_size=sizes.get(s.name, s.input_size)) for s in cfg.tasks
    )
    hooks = loss_param_tasks(trainer.config)
    extra: dict = {"losses": sorted(hooks)}
    for name, h in hooks.items():
        for k, v in h.describe(name, trainer.config).items():
            extra[k] = extra.get(k, {}) | v
    return {
        "kind": trainer.config.model.kind,
        "config": dataclasses.replace(cfg, tasks=specs),
        "extra": extra,
    }


def _param_path_specs(
    tree: Any, abstract_model: nnx.Module, rules, mesh: Mesh, loss_axes: Mapping[str, Any]
) -> Any:
    """PartitionSpecs for the state dict: model params by their logical names, loss params by
    their task's logical axes (`loss_axes`: {task: tree of axis names}), optimizer moments like
    their params, everything else replicated."""
    model_specs = nnx.to_pure_dict(
        sharding.param_specs(nnx.state(abstract_model, nnx.Param), rules)
    )
    rest_specs = nnx.to_pure_dict(
        sharding.param_specs(nnx.split(abstract_model, nnx.Param, ...)[2], rules)
    )
    loss_specs = {
        name: jax.tree.map(
            lambda axes: sharding.logical_to_spec(axes, rules),
            axes,
            is_leaf=lambda x: isinstance(x, tuple),
        )
        for name, axes in loss_axes.items()
    }
    param_specs = {"model": model_specs, "loss": loss_specs}

    def spec_for(path, leaf) -> jax.P:
        keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
        node: Any = None
        if keys[0] == "params":
            node, rest = param_specs, keys[1:]
        elif keys[0] == "model_state":
            node, rest = rest_specs, keys[1:]
        elif keys[0] == "opt":
            # Moments mirror the params tree somewhere below the optimizer's own containers.
            for i, k in enumerate(keys):
                if k in ("model", "loss") and i + 1 < len(keys):
                    node, rest = param_specs, keys[i:]
                    break
        if node is None:
            return jax.P()
        for k in rest:
            if not isinstance(node, Mapping) or k not in node:
                return jax.P()
            node = node[k]
        if isinstance(node, jax.P) and len(node) <= getattr(leaf, "ndim", 0):
            return sharding.fit_spec(node, leaf.shape, mesh)  # undivisible dims: replicated
        return jax.P()

    return jax.tree_util.tree_map_with_path(spec_for, tree)


def create_state(
    trainer: Trainer, abstract_model: nnx.Module, rules=sharding.DEFAULT_RULES
) -> tuple[State, Any]:
    """The initial state, every array created in its sharded place; and its shardings."""
    seed = int(trainer.config.seed)
    init = lambda: trainer.init_state(build_model(trainer.config, seed), seed)
    shapes = jax.eval_shape(init)
    loss_axes = {n: h.axes for n, h in loss_param_tasks(trainer.config).items()}
    specs = _param_path_specs(shapes, abstract_model, rules, trainer.mesh, loss_axes)
    shardings = jax.tree.map(lambda s: NamedSharding(trainer.mesh, s), specs)
    state = jax.jit(init, out_shardings=shardings)()
    return state, shardings
