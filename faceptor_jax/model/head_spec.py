"""What a model needs to know about a task, and the grouping of a forward pass's tasks.

`HeadSpec` is plain data (the task files in `faceptor_jax.tasks` build them); models are built
from a tuple of specs and never import the task files.
"""

import dataclasses
from collections.abc import Mapping, Sequence

import jax

KINDS = ("feature", "value", "map")
OUTPUTS = ("none", "parsing", "landmarks")


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """One dataset-level task as the model sees it.

    name: task name (also the key of its parameters, e.g. its decoder queries);
    type: recognition | age | attributes | expression | parsing | landmarks;
    kind: Faceptor interpreter — feature (no decoder), value (a logit per query), map (dense);
    it also picks Naive Faceptor's head (recognition, SwinFace-style, UPerHead);
    input_size: image side in pixels; queries: decoder queries (0 for feature);
    outputs: logits / classes / landmarks / embedding size; output: output module.
    """

    name: str
    type: str
    kind: str
    input_size: int
    queries: int
    outputs: int
    output: str = "none"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.output not in OUTPUTS:
            raise ValueError(f"task {self.name}: output {self.output!r} is not one of {OUTPUTS}")


def specs_from_dicts(items: Sequence[Mapping]) -> tuple[HeadSpec, ...]:
    return tuple(HeadSpec(**dict(i)) for i in items)


def check_inputs(specs: Sequence[HeadSpec], images: Mapping[str, jax.Array]) -> None:
    """Unknown task names -> ValueError listing the valid ones; images must be [B, H, W, 3]."""
    valid = [s.name for s in specs]
    unknown = [t for t in images if t not in valid]
    if unknown:
        raise ValueError(
            f"unknown task(s) {', '.join(map(str, unknown))}; this model's tasks are: "
            + ", ".join(valid)
        )
    for t, x in images.items():
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"task {t}: expected images [B, H, W, 3], got {tuple(x.shape)}")


def shared_inputs(
    specs: Sequence[HeadSpec], inputs: Mapping[str, jax.Array], reads: Mapping[str, Sequence[str]]
) -> dict[str, jax.ShapeDtypeStruct]:
    """{task: the shape of its images} for a model's `shared` entry (task t's images are the
    concatenation of `inputs[k]` for k in `reads[t]`); checked as `check_inputs` does."""
    missing = sorted({k for ks in reads.values() for k in ks} - set(inputs))
    if missing:
        raise ValueError(f"reads name input(s) {', '.join(missing)} not among the inputs")
    out = {}
    for t, keys in reads.items():
        if not keys or len({tuple(inputs[k].shape[1:]) for k in keys}) != 1:
            raise ValueError(f"task {t}: reads {tuple(keys)}: expected inputs of one image size")
        first = inputs[keys[0]]
        n = sum(inputs[k].shape[0] for k in keys)
        out[t] = jax.ShapeDtypeStruct((n, *first.shape[1:]), first.dtype)
    check_inputs(specs, out)
    return out


def size_groups(
    specs: Sequence[HeadSpec], images: Mapping[str, jax.Array]
) -> list[tuple[tuple[int, int], list[HeadSpec]]]:
    """Tasks present in `images`, grouped by image size, each group ordered so that tasks that
    share a head computation are adjacent: feature first, then by (kind, queries)."""
    groups: dict[tuple[int, int], list[HeadSpec]] = {}
    for s in specs:
        if s.name in images:
            groups.setdefault(tuple(images[s.name].shape[1:3]), []).append(s)
    order = {k: i for i, k in enumerate(KINDS)}
    return [
        (size, sorted(g, key=lambda s: (order[s.kind], s.queries)))  # stable within a key
        for size, g in groups.items()
    ]


def buckets(group: Sequence[HeadSpec]) -> list[list[HeadSpec]]:
    """Adjacent decoder tasks with the same (kind, queries): one decoder call, exactly equivalent
    to one call per task (each image's queries attend only among themselves)."""
    out: list[list[HeadSpec]] = []
    for s in group:
        if s.kind == "feature":
            continue
        if out and (out[-1][0].kind, out[-1][0].queries) == (s.kind, s.queries):
            out[-1].append(s)
        else:
            out.append([s])
    return out
