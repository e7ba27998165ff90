"""Logical axis names -> the (data, fsdp, model) mesh.

Layers name their parameter and activation axes logically (`batch`, `embed`, `mlp`, `heads`, ...);
one rules table maps those names to mesh axes. Changing how a model is sharded means changing the
table, never the layers. Parameters are created unsharded (`eager_sharding=False`) and placed with
`jit(init, out_shardings=...)` so a full model is never materialised on one device.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx
from flax.core import spmd
from jax.sharding import AxisType, Mesh
from jax.sharding import PartitionSpec as P

from faceptor_jax.errors import ConfigError

MESH_AXES = ("data", "fsdp", "model")

# Logical axis -> mesh axis (or tuple of mesh axes, or None = replicated).
# Params: the large `embed` dimension is split over fsdp (ZeRO-3 style), the wide
# dimensions (mlp, heads, classes) over the tensor-parallel `model` axis.
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv", None),
    ("qkv", None),
    ("layers", None),
    ("tokens", None),
    ("queries", None),
    ("classes", "model"),
    ("patch", None),
    ("height", None),
    ("width", None),
    ("channels", None),
)


def check_rules(rules: Any, where: str = "config.sharding_rules") -> tuple[tuple[str, Any], ...]:
    """`rules` as a rules table like `DEFAULT_RULES`, or one error naming the bad entry: each
    entry is (logical axis, mesh axis | tuple of mesh axes | None), each logical axis once."""
    known = tuple(name for name, _ in DEFAULT_RULES)
    out: list[tuple[str, Any]] = []
    for entry in rules:
        if not (isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise ConfigError(f"{where}: {entry!r} is not a (logical axis, mesh axes) pair")
        name, target = entry
        if name not in known:
            raise ConfigError(f"{where}: unknown logical axis {name!r}; valid: {', '.join(known)}")
        if name in dict(out):
            raise ConfigError(f"{where}: logical axis {name!r} is mapped twice")
        if target is not None and not isinstance(target, str | tuple | list):
            raise ConfigError(f"{where}: {name!r} -> {target!r}: expected a mesh axis or None")
        members = (target,) if isinstance(target, str) else tuple(target or ())
        for m in members:
            if m not in MESH_AXES:
                raise ConfigError(
                    f"{where}: {name!r} -> {target!r}: {m!r} is not a mesh axis; valid: "
                    f"{', '.join(MESH_AXES)}"
                )
        if len(set(members)) < len(members):
            raise ConfigError(f"{where}: {name!r} -> {target!r} names a mesh axis twice")
        out.append((name, target if target is None or isinstance(target, str) else members))
    return tuple(out)


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, model) mesh with Auto axes (GSPMD style; jax 0.10 defaults to Explicit)."""
    if len(shape) != 3:
        raise ConfigError(
            f"Mesh shape must have 3 entries (data, fsdp, model), got {tuple(shape)}."
        )
    n = int(np.prod(shape))
    devices = list(devices if devices is not None else jax.devices())
    if n != len(devices):
        raise ConfigError(
            f"Mesh shape {tuple(shape)} needs {n} devices, but {len(devices)} are available."
        )
    return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def logical_to_spec(axes: Sequence[str | None], rules: Sequence[tuple[str, Any]]) -> P:
    """Map logical axis names to a PartitionSpec; a mesh axis is used at most once."""
    table = dict(rules)
    used: set[str] = set()
    out = []
    for name in axes:
        target = table.get(name) if name is not None else None
        members = (target,) if isinstance(target, str) else tuple(target or ())
        if any(m in used for m in members):
            target = None  # e.g. two dims both mapped to `model`: shard only the first
        else:
            used.update(members)
        out.append(target)
    return P(*out)


def fit_spec(spec: P, shape: Sequence[int], mesh: Mesh) -> P:
    """`spec` with every dimension that its mesh axes do not divide left unsharded (e.g. a
    2-head decoder on a 4-way `model` axis is replicated rather than failing)."""
    out = []
    for i, axes in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
        members = (axes,) if isinstance(axes, str) else tuple(axes or ())
        n = int(np.prod([mesh.shape[a] for a in members])) if members else 1
        out.append(axes if shape[i] % n == 0 else None)
    return P(*out[: len(shape)])


def constrain(x: jax.Array, axes: Sequence[str | None]) -> jax.Array:
    """Sharding constraint by logical names; a no-op outside a mesh or without active rules."""
    rules = spmd.get_logical_axis_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if not rules or mesh is None or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_spec(axes, rules))


def param_specs(
    state: nnx.State, rules: Sequence[tuple[str, Any]], mesh: Mesh | None = None
) -> Any:
    """PartitionSpecs for every variable of `state` from its `out_sharding` logical names;
    with `mesh`, dimensions its axes do not divide stay unsharded (`fit_spec`)."""

    def spec(v: Any) -> P:
        names = v.get_metadata().get("out_sharding") if isinstance(v, nnx.Variable) else None
        if not names:
            return P()
        s = logical_to_spec(names, rules)
        return fit_spec(s, v.shape, mesh) if mesh is not None else s

    return jax.tree.map(spec, state, is_leaf=lambda v: isinstance(v, nnx.Variable))
