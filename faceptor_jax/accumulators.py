"""Mergeable metric accumulators (clu.metrics-style, host-side numpy).

An accumulator is a frozen dataclass of numpy arrays whose fields either add up (`SUM`:
counts, confusion matrices) or stack rows (`CAT`: per-sample values such as NMEs or
embeddings). `a.merge(b)` combines two of them (associative; `empty()` is the identity), so
per-batch accumulators fold into one per host, and `merge_across_processes` folds the hosts'.
`compute()` (per subclass) turns the merged statistics into the reported numbers.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Self

import numpy as np

_SUM, _CAT = "sum", "cat"
# Field metadata: `x: np.ndarray = dataclasses.field(default=None, metadata=SUM)`; None = no data.
SUM = {"reduce": _SUM}  # combined by addition (counts, confusion matrices)
CAT = {"reduce": _CAT}  # combined by concatenation along axis 0 (one row per sample)


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """Base: `merge`, `empty`, and the cross-process fold. Subclasses add fields and `compute`."""

    @classmethod
    def empty(cls) -> Self:
        return cls()

    def merge(self, other: Self) -> Self:
        if type(other) is not type(self):
            raise ValueError(f"cannot merge {type(self).__name__} with {type(other).__name__}")
        vals = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a is None or b is None:
                vals[f.name] = b if a is None else a
            elif f.metadata["reduce"] == _SUM:
                if np.shape(a) != np.shape(b):
                    raise ValueError(
                        f"{type(self).__name__}.{f.name}: {np.shape(a)} vs {np.shape(b)}"
                    )
                vals[f.name] = a + b
            else:
                vals[f.name] = np.concatenate([a, b], axis=0)
        return type(self)(**vals)

    def _require(self, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{type(self).__name__}: no data accumulated ({', '.join(missing)})")


def merge_all(accs) -> Accumulator:
    """Fold a non-empty iterable of accumulators with `merge`."""
    return functools.reduce(lambda a, b: a.merge(b), accs)


def _process_allgather(x: np.ndarray) -> np.ndarray:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=False))


def merge_across_processes(
    acc: Accumulator, allgather: Callable[[np.ndarray], np.ndarray] | None = None
) -> Accumulator:
    """Merge this host's accumulator with every other JAX process's; all processes get the result.

    Every process must call it (collective). Fields must be non-empty on every host. `cat`
    fields may differ in length per host: they are padded to the longest before the all-gather
    and cut back after. `allgather(x) -> [n_processes, *x.shape]` defaults to
    `multihost_utils.process_allgather(tiled=False)`; with one process it is the identity.
    """
    import jax

    if allgather is None:
        if jax.process_count() == 1:
            return acc
        allgather = _process_allgather
    vals: dict[str, list[np.ndarray]] = {}
    n_proc = None
    for f in dataclasses.fields(acc):
        x = getattr(acc, f.name)
        if x is None:
            raise ValueError(f"{type(acc).__name__}.{f.name} is empty on this process")
        x = np.asarray(x)
        if f.metadata["reduce"] == _CAT:
            lengths = np.asarray(allgather(np.asarray([x.shape[0]], np.int64)))[:, 0]
            pad = np.zeros((int(lengths.max()) - x.shape[0], *x.shape[1:]), x.dtype)
            g = np.asarray(allgather(np.concatenate([x, pad], axis=0)))
            vals[f.name] = [g[p, : lengths[p]] for p in range(g.shape[0])]
        else:
            g = np.asarray(allgather(x))
            vals[f.name] = list(g)
        n_proc = len(vals[f.name])
    parts = [type(acc)(**{k: v[p] for k, v in vals.items()}) for p in range(n_proc)]
    return merge_all(parts)
