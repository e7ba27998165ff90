"""Model checkpoints on disk: `<dir>/model.json` (what model, its config) + `<dir>/params` (orbax).

Converted checkpoints (from `python -m convert ...`) use this layout; training checkpoints
(optimizer, step, data iterator state) build on it: a training workdir holds the same
`model.json` (written at train start) beside `checkpoints/<step>/`, and the readers here
(`read_meta`, `load_params`, `load_losses`, `restore_into`) take either, or one step of a
workdir, `<workdir>/checkpoints/<step>` (`locate`). Writes are atomic: orbax
finalises `params` by renaming a temporary directory, and `model.json` is written last via
`os.replace`, so a directory with `model.json` and `params/` is always complete.
"""

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx

from faceptor_jax.errors import CheckpointError

MODEL_FILE = "model.json"
PARAMS_DIR = "params"
LOSSES_DIR = "losses"  # loss parameters per task (a classifier), apart from the model
# The verification protocol's threshold for this model, written by evaluation, read by predict.
VERIFICATION_FILE = "verification.json"
TRAIN_DIR = "checkpoints"  # a training workdir's `TrainCheckpoints`: <workdir>/checkpoints/<step>
LAYOUTS = (
    f"a model directory ({MODEL_FILE} + {PARAMS_DIR}/, from `python -m convert` or "
    f"`python -m faceptor_jax.export`) or a training workdir ({MODEL_FILE} + "
    f"{TRAIN_DIR}/<step>/, from `main.py`; <workdir>/{TRAIN_DIR}/<step> for one step)"
)


def save_params(
    directory: str | os.PathLike,
    kind: str,
    config: Any,
    params: dict,
    extra: dict | None = None,
    losses: dict | None = None,
) -> None:
    """Write a pure-dict param tree (+ optional loss params) and its description to
    `directory` (which must not hold a checkpoint yet)."""
    directory = os.path.abspath(os.fspath(directory))
    if os.path.exists(os.path.join(directory, MODEL_FILE)):
        raise FileExistsError(f"{directory} already holds a checkpoint ({MODEL_FILE} exists)")
    os.makedirs(directory, exist_ok=True)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(directory, PARAMS_DIR), params, force=True)
    if losses:
        ckptr.save(os.path.join(directory, LOSSES_DIR), losses, force=True)
    ckptr.wait_until_finished()
    write_meta(directory, kind, config, {"losses": sorted(losses or {}), **(extra or {})})


def write_meta(directory: str | os.PathLike, kind: str, config: Any, extra: dict) -> None:
    """Write `<directory>/model.json` atomically: {kind, config (a dataclass or dict), **extra}."""
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    path = os.path.join(os.fspath(directory), MODEL_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({"kind": kind, "config": cfg, **extra}, f, indent=2)
    os.replace(path + ".tmp", path)


def step_dir(workdir: str | os.PathLike, step: int) -> str:
    """One training step's directory, `<workdir>/checkpoints/<step>`."""
    return os.path.join(os.fspath(workdir), TRAIN_DIR, str(step))


def locate(path: str | os.PathLike) -> tuple[str, int | None]:
    """Where a model is: (the directory holding its `model.json` and `verification.json`, the
    training step to load or None for a model directory's `params/`).

    A model directory -> (path, None); a training workdir -> (path, its newest finished step);
    `<workdir>/checkpoints/<step>` -> (workdir, step). Anything else raises FileNotFoundError
    naming the path and what was expected (`LAYOUTS`).
    """
    path = os.path.normpath(os.path.abspath(os.fspath(path)))
    parent, name = os.path.split(path)
    if os.path.basename(parent) == TRAIN_DIR and name.isdigit():  # one step of a workdir
        workdir, step = os.path.dirname(parent), int(name)
    else:
        workdir, step = path, None
    has_meta = os.path.isfile(os.path.join(workdir, MODEL_FILE))
    if step is None and has_meta and os.path.isdir(os.path.join(path, PARAMS_DIR)):
        return path, None
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir}: no such directory; expected {LAYOUTS}")
    steps = _steps(workdir)
    if steps is None:
        raise FileNotFoundError(f"{path}: not a faceptor_jax model; expected {LAYOUTS}")
    if not has_meta:
        raise FileNotFoundError(
            f"{workdir}: training checkpoints without {MODEL_FILE}, which training writes at its "
            "start from this version on; run the same `main.py` training command once more (it "
            f"resumes; a finished run only writes {MODEL_FILE})"
        )
    if not steps:
        raise FileNotFoundError(
            f"{workdir}: a training workdir with no finished checkpoint yet (expected "
            f"{TRAIN_DIR}/<step>/, saved every config.checkpoint_every steps)"
        )
    if step is not None and step not in steps:
        raise FileNotFoundError(
            f"{path}: no such training step; {workdir}/{TRAIN_DIR} holds steps "
            + ", ".join(map(str, steps))
        )
    return workdir, steps[-1] if step is None else step


def _steps(workdir: str) -> list[int] | None:
    """Finished steps under `<workdir>/checkpoints` (ascending), None if there is no such folder."""
    folder = os.path.join(workdir, TRAIN_DIR)
    if not os.path.isdir(folder):
        return None
    return sorted(ocp.utils.checkpoint_steps(folder))


def read_meta(directory: str | os.PathLike) -> dict:
    """`model.json` of a model directory or training workdir (see `locate`)."""
    where, _ = locate(directory)
    with open(os.path.join(where, MODEL_FILE)) as f:
        return json.load(f)


def write_verification(directory: str | os.PathLike, record: dict) -> str:
    """Write `record` (`evaluate.protocol_threshold`'s) as `<directory>/verification.json`,
    atomically (a reader never sees half a file); returns the path."""
    path = os.path.join(os.fspath(directory), VERIFICATION_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def read_verification(directory: str | os.PathLike) -> dict | None:
    """`<directory>/verification.json` as written by `write_verification`, or None if absent.
    ValueError names the file when it is not such a record."""
    path = os.path.join(os.fspath(directory), VERIFICATION_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        float(record["threshold"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected a JSON object with a numeric 'threshold' ({e})") from e
    return record


def load_params(directory: str | os.PathLike, target: dict | None = None) -> dict:
    """Restore the param tree (for a training step: the model's params and state, e.g. BatchNorm
    statistics, merged; no optimizer); with `target` (pure dict of arrays/ShapeDtypeStructs)
    shapes are checked and shardings applied."""
    where, step = locate(directory)
    if step is not None:
        state = _restore_trained(where, step, ("params", "model"), ("model_state",))
        values = _merge(state["params"]["model"], state["model_state"])
        return values if target is None else _onto(target, values, step_dir(where, step))
    path = os.path.join(where, PARAMS_DIR)
    ckptr = ocp.StandardCheckpointer()
    if target is None:
        return ckptr.restore(path)
    return ckptr.restore(path, target)


def _restore_trained(workdir: str, step: int, *parts: tuple[str, ...]) -> dict:
    """The `parts` (key paths) of a training step's state, as numpy arrays: the rest of the state
    (optimizer moments, twice the params) is not read."""
    path = os.path.join(step_dir(workdir, step), "state")
    try:
        tree = ocp.PyTreeCheckpointHandler().metadata(epath.Path(path)).tree
        item: dict = {}
        for keys in parts:
            node, src = item, tree
            for k in keys[:-1]:
                node, src = node.setdefault(k, {}), src[k]
            node[keys[-1]] = src[keys[-1]]
        args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
        restore = ocp.args.PyTreeRestore(item=item, restore_args=args, partial_restore=True)
        return ocp.PyTreeCheckpointer().restore(path, args=restore)
    except Exception as e:  # a damaged step: name it and the intact ones
        from faceptor_jax.train_checkpoints import reason_of

        raise CheckpointError(
            f"{step_dir(workdir, step)}: training step {step} is unreadable ({reason_of(e)}); "
            + intact_note(workdir, exclude=step)
        ) from e


def intact_note(workdir: str, exclude: int | None = None) -> str:
    """'intact steps: 3 (<workdir>/checkpoints/3)' — the steps whose metadata reads — or what
    to do when there is none."""
    from faceptor_jax.train_checkpoints import stored_shapes

    intact = []
    for step in reversed(_steps(workdir) or []):
        if step != exclude:
            try:
                stored_shapes(step_dir(workdir, step))
                intact.append(step)
            except Exception:
                continue
    if not intact:
        return "no other step is intact; retrain (main.py resumes from the newest intact step)"
    return (
        "intact steps: "
        + ", ".join(map(str, intact))
        + f" (load one as {step_dir(workdir, intact[0])})"
    )


def _merge(a: Mapping, b: Mapping) -> dict:
    """Two pure dicts with disjoint leaves -> one (NNX's Param / non-Param split undone)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and k in out else v
    return out


def _onto(target: dict, values: dict, where: str) -> dict:
    """`values` in `target`'s structure, dtypes and shardings; every missing, unexpected or
    misshapen path named in one error."""
    have = flatten_paths(values)
    want = {}
    for path, t in jax.tree_util.tree_flatten_with_path(target)[0]:
        want[".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = t
    bad = [f"{k}: missing" for k in want if k not in have]
    bad += [f"{k}: not in the model" for k in have if k not in want]
    bad += [
        f"{k}: {tuple(have[k].shape)}, model {tuple(t.shape)}"
        for k, t in want.items()
        if k in have and tuple(have[k].shape) != tuple(t.shape)
    ]
    if bad:
        raise ValueError(f"{where}: does not fit the model in {MODEL_FILE}:\n  " + "\n  ".join(bad))

    def put(k, t):
        v = np.asarray(have[k], t.dtype)
        sharding = getattr(t, "sharding", None)
        return v if sharding is None else jax.device_put(v, sharding)

    leaves = [put(k, t) for k, t in want.items()]
    return jax.tree.unflatten(jax.tree.structure(target), leaves)


def load_losses(directory: str | os.PathLike) -> dict:
    """The loss parameters stored beside the model, {task: tree} ({} if none), e.g.
    {"recognition_ms1mv3": {"classifier": [classes, 512]}}. A training step's are exported by
    their task type's hooks (`LossParams.export`: padding cut to what model.json states)."""
    where, step = locate(directory)
    if step is not None:
        meta = read_meta(where)
        if not meta.get("losses"):
            return {}
        from faceptor_jax import tasks  # lazy: tasks sit above this module's readers

        trained = _restore_trained(where, step, ("params", "loss"))["params"]["loss"]
        return {
            name: tasks.get(name).type.loss_params.export(tree, name, meta)
            for name, tree in trained.items()
        }
    path = os.path.join(where, LOSSES_DIR)
    if not os.path.isdir(path):
        return {}
    return ocp.StandardCheckpointer().restore(path)


def restore_into(model: nnx.Module, directory: str | os.PathLike) -> nnx.Module:
    """`model` (e.g. an `nnx.eval_shape` skeleton) with the weights in `directory`: every
    missing, unexpected or misshapen parameter named in one error. Models are built by
    `faceptor_jax.model.families`, which knows the model classes; this module does not."""
    state = nnx.state(model)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, load_params(directory, target))
    nnx.update(model, state)
    return model


def flatten_paths(tree: Mapping, prefix: str = "") -> dict[str, object]:
    """{'a': {'b': x}} -> {'a.b': x} (for NNX pure dicts)."""
    out: dict[str, object] = {}
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_paths(v, path + "."))
        else:
            out[path] = v
    return out


def unflatten_paths(flat: Mapping[str, object]) -> dict:
    """{'a.b': x} -> {'a': {'b': x}}."""
    out: dict = {}
    for path, v in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def _fill(target: dict, source: dict, what: str) -> tuple[dict, list[str]]:
    """Copy `source` arrays into `target` (same paths under `prefix`), keeping target shardings.

    Shape mismatches stop with every offending path named; target paths the source lacks keep
    their initial values and are returned (e.g. stage-2 levels absent from stage-1 weights)."""
    flat_t, flat_s = flatten_paths(target), flatten_paths(source)
    missing, bad = [], []
    filled = {}
    for path, leaf in flat_t.items():
        if path not in flat_s:
            missing.append(path)
            filled[path] = leaf
            continue
        value = flat_s[path]
        if tuple(value.shape) != tuple(leaf.shape):
            bad.append(f"{path}: checkpoint {tuple(value.shape)}, model {tuple(leaf.shape)}")
            continue
        filled[path] = jax.device_put(value.astype(leaf.dtype), leaf.sharding)
    if bad:
        raise ValueError(f"{what}: shape mismatches:\n  " + "\n  ".join(bad))
    return _like(target, filled), missing


def _like(target: Mapping, flat: Mapping[str, object], prefix: str = "") -> dict:
    """`flat` ({'a.b': x}) nested as `target` is, keeping its keys' types: an `nnx.List`'s
    integer keys must stay integers, or the tree's leaf order (sorted keys) puts "10" before
    "2" and the model merges weights into the wrong layers."""
    return {
        k: _like(v, flat, f"{prefix}{k}.") if isinstance(v, Mapping) else flat[f"{prefix}{k}"]
        for k, v in target.items()
    }


def init_from(init: Any, state: dict) -> dict:
    """Initialise a fresh train state from converted/trained weights (`config.init`):
    `init.checkpoint` — a Faceptor / Naive Faceptor checkpoint directory (all model weights,
    BatchNorm statistics and, per task of the same name, the loss parameters it stores, filled
    by the task type's `LossParams.load`); `init.farl` — a FaRL
    encoder checkpoint (the encoder only). Parameters the source lacks keep their random init
    and are logged (as the original's strict=False load)."""
    from absl import logging

    state = dict(state)
    for key in ("farl", "checkpoint"):
        directory = init.get(key, "")
        if not directory:
            continue
        meta = read_meta(directory)
        source = load_params(directory)
        if key == "farl":
            source = {"encoder": source}
            if meta.get("kind") != "farl_vit":
                raise ValueError(f"{directory}: init.farl expects a 'farl_vit' checkpoint")
        model = {"params": state["params"]["model"], "model_state": state["model_state"]}
        merged = {}
        for part, tree in model.items():
            merged[part], missing = _fill(tree, source, directory)
            if missing and key == "checkpoint":
                logging.warning("%s: %d %s entries not in the checkpoint keep their init: %s",
                                directory, len(missing), part, ", ".join(missing[:8]))  # fmt: skip
        params = {"model": merged["params"], "loss": dict(state["params"]["loss"])}
        stored = load_losses(directory)
        if params["loss"] and stored:
            from faceptor_jax import tasks  # lazy: tasks sit above this module's readers

            for name, tree in params["loss"].items():
                if name in stored:
                    hooks = tasks.get(name).type.loss_params
                    params["loss"][name] = hooks.load(stored[name], tree, directory)
        state |= {"params": params, "model_state": merged["model_state"]}
        logging.info("initialised from %s (%s)", directory, meta.get("kind"))
    return state


def __getattr__(name: str):
    if name == "TrainCheckpoints":  # lives in its own module; this name kept for callers
        from faceptor_jax.train_checkpoints import TrainCheckpoints

        return TrainCheckpoints
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
