"""Mergeable metric accumulators (clu.metrics-style, host-side numpy).

An accumulator is a frozen dataclass of numpy arrays whose fields either add up (`SUM`:
counts, confusion matrices) or stack rows (`CAT`: per-sample values such as NMEs or
embeddings). `a.merge(b)` combines two of them (associative; `empty()` is the identity), so
per-batch accumulators fold into one. Evaluation gathers every host's model outputs before
scoring, so each host folds the same batches. `compute()` (per subclass) turns the merged
statistics into the reported numbers.
"""

import dataclasses
import functools
from typing import Self

import numpy as np

_SUM, _CAT = "sum", "cat"
# Field metadata: `x: np.ndarray = dataclasses.field(default=None, metadata=SUM)`; None = no data.
SUM = {"reduce": _SUM}  # combined by addition (counts, confusion matrices)
CAT = {"reduce": _CAT}  # combined by concatenation along axis 0 (one row per sample)


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """Base: `merge` and `empty`. Subclasses add fields and `compute`."""

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
