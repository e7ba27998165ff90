"""Evaluation report: one text table per dataset in the paper's layout, plus the same as JSON.

Input is a list of `Result(task, dataset, metrics)` where `metrics` is the `compute()` output of
the task's accumulator and `task` a task type's `report` name; each task type lays out its own
tables (`TaskType.tables`: verification sets share one, as the paper; every other dataset gets its
own) with `fmt` and `display`. Percent values are printed with 2 decimals.
"""

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from faceptor_jax import datasets


@dataclasses.dataclass(frozen=True)
class Result:
    task: str  # a task type's `report` name: verification, age, expression, ...
    dataset: str  # e.g. "lfw", "lapa", a landmark protocol "300w", or "aflw_frontal"
    metrics: Mapping


@dataclasses.dataclass(frozen=True)
class Table:
    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def render(self) -> str:
        cols = list(zip(self.header, *self.rows, strict=True))
        widths = [max(len(c) for c in col) for col in cols]

        def line(cells):
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([self.title, line(self.header), sep, *(line(r) for r in self.rows)])


def display(dataset: str) -> str:
    """'lfw' -> 'LFW'; 'aflw_frontal' -> 'AFLW-19 (frontal)'; unknown names pass through."""
    name = datasets.display(dataset)
    base, _, suffix = dataset.partition("_")
    if name == dataset and suffix and datasets.display(base) != base:
        return f"{datasets.display(base)} ({suffix})"
    return name


def fmt(x: float, scale: float = 1.0, digits: int = 2) -> str:
    """A metric scaled and rounded for a table; '—' for a missing or NaN value."""
    return (
        "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * scale:.{digits}f}"
    )


def build_tables(results: Sequence[Result]) -> list[Table]:
    """Tables in the task types' order (`tasks.TASK_TYPES`), each type's from its `tables`."""
    from faceptor_jax import tasks  # the task files build their tables with this module

    by_report = {t.report: t for t in tasks.TASK_TYPES}
    for r in results:
        if r.task not in by_report:
            valid = tuple(by_report)
            raise ValueError(f"report: unknown task '{r.task}' for {r.dataset}; valid: {valid}")
    tables = []
    for name, t in by_report.items():
        mine = [r for r in results if r.task == name]
        if mine:
            tables += t.tables(mine)
    return tables


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def render(results: Sequence[Result]) -> str:
    return "\n\n".join(t.render() for t in build_tables(results)) + "\n"


def to_json(results: Sequence[Result]) -> dict:
    """{'tables': [{title, header, rows}], 'results': [{task, dataset, metrics}]}."""
    return {
        "tables": [dataclasses.asdict(t) for t in build_tables(results)],
        "results": [_jsonable(dataclasses.asdict(r)) for r in results],
    }


def write(results: Sequence[Result], path_prefix: str | os.PathLike) -> tuple[str, str]:
    """Write `<prefix>.txt` (the tables) and `<prefix>.json`; returns both paths."""
    prefix = os.fspath(path_prefix)
    txt, js = prefix + ".txt", prefix + ".json"
    with open(txt, "w") as f:
        f.write(render(results))
    with open(js, "w") as f:
        json.dump(to_json(results), f, indent=1, allow_nan=False)
    return txt, js
