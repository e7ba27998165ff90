"""The original's training step, for `benchmarks/train_step.py --reference DIR` (torch only inside).

Timed per step, as the original's `Solver.run` does per iteration (gradient_acc 1): the `AIOEntry`
forward in train mode (the backbone once per size group, decoder + interpreter per task, then
`LossesHolder`: every task's loss, Σ w_t·L_t / Σ w_t), the GradScaler-scaled backward (its YAML
sets fp16, which only scales the loss: it has no autocast, so the maths is fp32), unscale,
`clip_grad_norm_(…, 5)`, AdamW over one param group per parameter (LR multipliers by module name),
zero_grad, the LR schedule step. Not timed, on either side: data loading, logging, checkpoints.
Left out: DDP (one process here: no gradient all-reduce).

From the original's Faceptor-Full YAML: each task's loss class and arguments, the LR multipliers,
optimizer, weight decay, schedule and fp16. From --config, so that both sides do the same work:
the tasks, per-task batch and image sizes, loss weights (the original's re-weighting, computed by
`train.effective_weights`), the model's sizes and the CosFace class count.

Substituted: AlignLoss's target heatmaps come from `p2i`, a CUDA-only op. `reference.HeatmapTargets`
renders them with our `render_heatmaps` (equal to p2i's kernel to rounding) in the untimed warm-up
step and returns the cached maps in the timed ones (the batch is the same every step; the stand-in
checks that the points are equal, and train_step.py that nothing was rendered while timing). The
op writes B·K·128² values with no gradient, next to a step of ~10¹² FLOPs: leaving it out does
not change the timed work materially, and ours renders its targets inside its timed step, so
any bias favours the original. The age label distribution and NCHW images are data-loader work
in the original, made beforehand here too.
"""

import copy
import os
import time
import warnings
from collections.abc import Mapping

import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import reference
from faceptor_jax import losses, tasks
from faceptor_jax.tasks import recognition

YAML = "expreiments/faceptor/stage_1/train_recog_age_biattr_affect_parsing_align_plus.yaml"
CLIP_NORM = 5.0  # hard-coded in the original's Solver.run


def _age_label(batch: Mapping) -> dict[str, np.ndarray]:
    age = np.asarray(batch["age"], np.float32)
    dist = np.asarray(losses.age_target_distribution(jnp.asarray(age)), np.float32)
    return {"distribution": dist, "avg_label": age}  # [B, 101], [B] years


# task type -> the original's `label` for our batch (its data sets' dtypes)
LABELS = {
    "recognition": lambda b: np.asarray(b["label"], np.int64),  # [B]
    "age": _age_label,
    "attributes": lambda b: np.asarray(b["attributes"], np.int64),  # [B, 40], −1 = ignore
    "expression": lambda b: np.asarray(b["label"], np.int64),  # [B]
    "parsing": lambda b: np.asarray(b["mask"], np.int64),  # [B, H, W]
    "landmarks": lambda b: np.asarray(b["landmarks"], np.float32),  # [B, K, 2] pixels (x, y)
}


def original_batch(name: str, batch: Mapping) -> dict:
    """Our pipeline's batch of task `name` -> the original's `{'image': [B,3,H,W], 'label': …}`."""
    image = np.asarray(batch["image"], np.float32)  # [B, H, W, 3]
    label = LABELS[tasks.get(name).type.name](batch)
    return {"image": np.ascontiguousarray(image.transpose(0, 3, 1, 2)), "label": label}


def _check_supported(config: ml_collections.ConfigDict) -> None:
    m = config.model
    if m.kind != "faceptor" or tuple(m.levels) != (11,) or tuple(m.get("new_levels", ())):
        raise SystemExit("--reference: only stage-1 Faceptor configs (levels (11,), no new levels)")
    if config.get("trainable"):
        raise SystemExit("--reference: configs with frozen parameters (`trainable`) unsupported")


def task_order(names, yaml_tasks: Mapping) -> list[str]:
    """Our task names in the YAML's task order (recognition first: the decoder skips it)."""
    order = list(yaml_tasks)
    for n in names:
        if tasks.get(n).original not in order:
            raise SystemExit(f"--reference: {tasks.get(n).original!r} is not a task of {YAML}")
    return sorted(names, key=lambda n: order.index(tasks.get(n).original))


def _task_cfgs(config, names, yaml_tasks: Mapping, sizes: Mapping, weights: Mapping) -> dict:
    """The original's `C.tasks` for our tasks: its loss entries, our batch sizes and weights."""
    out = {}
    for i, name in enumerate(names):
        task = tasks.get(name)
        loss = copy.deepcopy(yaml_tasks[task.original]["loss"])
        kw = loss["kwargs"]
        if task.type.name == "recognition":
            kw.update(in_features=int(config.model.embed_dim))
            kw.update(out_features=recognition.classes(config, name))
        if task.type.name == "landmarks":  # heatmap side and radius scale with the input
            s = sizes[name] / kw["input_size"]
            kw.update(input_size=sizes[name], heatmap_size=round(kw["heatmap_size"] * s))
            kw.update(heatmap_radius=kw["heatmap_radius"] * s)
        out[i] = reference.AttrDict(
            name=task.original,
            loss_weight=weights[name],
            sampler={"batch_size": int(config.tasks[name].batch_size)},
            loss=loss,
        )
    return reference.AttrDict(out)


def _size_groups(model_entry: Mapping, names: list[str]) -> reference.AttrDict:
    """The YAML's size groups without those no task of ours falls in (they would cat nothing)."""
    groups = [g for _, g in sorted(model_entry["kwargs"]["size_group"].items())]
    groups = [g for g in groups if any(t in n for t in g["task_types"] for n in names)]
    entry = copy.deepcopy(dict(model_entry))
    entry["kwargs"] = {"size_group": {f"group_{i}": g for i, g in enumerate(groups)}}
    return reference.AttrDict(entry)


def _multiplier(module_name: str, common: Mapping) -> float:
    """The original's LR multiplier rule on a module's name (Solver.create_optimizer)."""
    m = lambda key: float(common.get(f"{key}_multiplier", 1.0))
    lr = 1.0
    if "backbone" in module_name:
        lr *= m("backbone")
    if "heads" in module_name:
        part = next((p for p in ("interpreters", "decoder") if p in module_name), "heads")
        lr *= m(part)
    if "losses_module" in module_name:
        lr *= m("losses")
    return lr


def param_groups(model, common: Mapping, base_lr: float, weight_decay: float) -> list[dict]:
    """One group per parameter (shared ones once), in `named_modules` order, as the original."""
    groups, seen = [], set()
    for module_name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            lr = base_lr * _multiplier(module_name, common)
            groups.append({"params": [p], "lr": lr, "weight_decay": weight_decay})
    return groups


class OriginalTrainer:
    """The original model, optimizer, scaler and schedule on one fixed batch (CPU, fp32)."""

    def __init__(
        self, root: str, config, sizes: Mapping, weights: Mapping, batches: Mapping, threads=0
    ):
        import yaml

        _check_supported(config)
        for deprecated in ("torch.meshgrid", "size_average and reduce"):  # the original's calls
            warnings.filterwarnings("ignore", message=deprecated, category=UserWarning)
        self.ref = ref = reference.import_reference(root)
        torch = self.torch = ref.torch
        if threads:
            torch.set_num_threads(threads)
        with open(os.path.join(root, "faceptor_project", YAML)) as f:
            y = yaml.safe_load(f)
        common = y["common"]
        yaml_tasks = {t["name"]: t for t in y["tasks"].values()}
        names = task_order(config.tasks, yaml_tasks)
        task_cfgs = _task_cfgs(config, names, yaml_tasks, sizes, weights)
        torch.manual_seed(int(config.seed))
        dims = reference.Dims.from_model_config(config.model)
        reference.patch_dims(ref, dims)
        self.model = ref.model_entry.AIOEntry(
            _size_groups(common["model_entry"], [tasks.get(n).original for n in names]),
            task_cfgs,
            reference.build_backbone(ref, dims),
            reference.build_heads(ref, names, dims, sizes),
            ref.loss.LossesHolder(task_cfgs),
        ).train()
        sched = common["lr_scheduler"]
        base_lr, wd = (
            float(sched["kwargs"]["base_lr"]),
            float(common["optimizer"]["kwargs"]["weight_decay"]),
        )
        if common["optimizer"]["type"] != "AdamW":
            raise SystemExit(f"--reference: {YAML} optimizer {common['optimizer']['type']!r}")
        self.opt = torch.optim.AdamW(param_groups(self.model, common, base_lr, wd), lr=base_lr)
        kwargs = dict(
            sched["kwargs"], optimizer=self.opt, last_iter=-1, max_iter=common["max_iter"]
        )
        self.schedule = ref.lr_scheduler.lr_scheduler_entry(
            {"type": sched["type"], "kwargs": kwargs}
        )
        self.fp16 = bool(common.get("fp16", False))
        self.scaler = torch.amp.GradScaler("cpu", growth_interval=100, enabled=self.fp16)
        self.data = [self._to_torch(original_batch(n, batches[n])) for n in names]
        self.iteration = -1

    def _to_torch(self, tree):
        if isinstance(tree, dict):
            return {k: self._to_torch(v) for k, v in tree.items()}
        return self.torch.from_numpy(np.array(tree))  # a writable copy

    @property
    def renders(self) -> int:
        """Target heatmaps rendered so far (the p2i stand-in); must not grow while timing."""
        return self.ref.heatmap_targets.renders

    def step(self) -> float:
        """One training iteration; returns the total loss."""
        self.iteration += 1
        loss, _ = self.model(self.data, current_step=self.iteration)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        self.torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP_NORM)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad()
        self.schedule.step(self.iteration)
        return float(loss.detach())

    def timed_step(self) -> tuple[float, float]:
        """(seconds, loss) of one step."""
        t0 = time.perf_counter()
        loss = self.step()
        return time.perf_counter() - t0, loss

    def describe(self) -> str:
        t = self.torch
        n = sum(p.numel() for p in self.model.parameters())
        return (
            f"original (PyTorch {t.__version__}, CPU, {t.get_num_threads()} threads, fp32"
            f"{', GradScaler' if self.fp16 else ''}; {n / 1e6:.1f}M parameters, "
            f"{len(self.opt.param_groups)} AdamW param groups)"
        )
