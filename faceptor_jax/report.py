"""Evaluation report: one text table per dataset in the paper's layout, plus the same as JSON.

Input is a list of `Result(task, dataset, metrics)` where `metrics` is the `compute()` output of
the task's accumulator (`metrics.py`, `landmark_metrics.py`, `verification.py`). Verification sets
share one table (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, MLFW, as the paper); every other dataset gets
its own. Percent values are printed with 2 decimals (NME and FR in %, AUC as a fraction).
"""

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from faceptor_jax import landmark_metrics

TASKS = ("verification", "age", "expression", "attributes", "parsing", "landmarks")
DISPLAY_NAMES = {
    "lfw": "LFW", "cfp_fp": "CFP-FP", "agedb_30": "AgeDB-30", "calfw": "CALFW", "cplfw": "CPLFW",
    "mlfw": "MLFW", "300w": "300W", "cofw": "COFW", "wflw": "WFLW", "aflw": "AFLW-19",
    "celebamask_hq": "CelebAMask-HQ", "lapa": "LaPa", "morph2": "MORPH II", "utkface": "UTKFace",
    "celeba": "CelebA", "rafdb": "RAF-DB", "affectnet": "AffectNet", "ferplus": "FERPlus",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Result:
    task: str  # one of TASKS
    dataset: (
        str  # e.g. "lfw", "300w", "lapa"; a landmark dataset may carry a suffix: "aflw_frontal"
    )
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


def _name(dataset: str) -> str:
    """'lfw' -> 'LFW'; 'aflw_frontal' -> 'AFLW-19 (frontal)'; unknown names pass through."""
    if dataset in DISPLAY_NAMES:
        return DISPLAY_NAMES[dataset]
    base, _, suffix = dataset.partition("_")
    return f"{DISPLAY_NAMES[base]} ({suffix})" if base in DISPLAY_NAMES and suffix else dataset


def _f(x: float, scale: float = 1.0, digits: int = 2) -> str:
    return (
        "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * scale:.{digits}f}"
    )


def _verification(results: Sequence[Result]) -> Table:
    order = {d: i for i, d in enumerate(DISPLAY_NAMES)}
    rs = sorted(results, key=lambda r: order.get(r.dataset, len(order)))
    header = ("Metric", *(_name(r.dataset) for r in rs))
    acc = ("Accuracy (%)", *(_f(r.metrics["accuracy"], 100) for r in rs))
    std = ("± std (%)", *(_f(r.metrics["accuracy_std"], 100) for r in rs))
    thr = ("Threshold (sq. L2)", *(_f(r.metrics.get("threshold"), 1.0, 2) for r in rs))
    rows = [acc, std, thr]
    fars = sorted({f for r in rs for f in r.metrics.get("tar_at_far", {})}, reverse=True)
    for far in fars:
        rows.append(
            (f"TAR@FAR={far:g} (%)", *(_f(r.metrics["tar_at_far"].get(far), 100) for r in rs))
        )
    return Table("Face verification (10-fold, flip)", header, tuple(rows))


def _landmarks(r: Result) -> Table:
    proto = landmark_metrics.get_protocol(r.dataset.split("_")[0])
    groups = [g for g in (*proto.subsets, "full") if g in r.metrics]
    keys = list(proto.norms)
    if proto.auc_fr is not None:
        norm, thr = proto.auc_fr
        tag = f"{norm}_{round(thr * 100)}"
        keys += [f"fr_{tag}", f"auc_{tag}"]
    rows = []
    for k in keys:
        if k in proto.norms:
            label, scale, digits = f"NME {k} (%)", 100.0, 2
        elif k.startswith("fr_"):
            label, scale, digits = f"FR@{proto.auc_fr[1]:g} (%)", 100.0, 2
        else:
            label, scale, digits = f"AUC@{proto.auc_fr[1]:g}", 1.0, 4
        rows.append((label, *(_f(r.metrics[g][k], scale, digits) for g in groups)))
    header = ("Metric", *(g.capitalize() for g in groups))
    return Table(f"Face alignment — {_name(r.dataset)}", header, tuple(rows))


def _parsing(r: Result) -> Table:
    per = r.metrics["per_class"]
    names = [n for n in per if n != "background"]
    header = ("Metric", *names, "Mean")
    row = ("F1 (%)", *(_f(per[n], 100) for n in names), _f(r.metrics["fg_mean"], 100))
    return Table(f"Face parsing — {_name(r.dataset)}", header, (row,))


def _age(r: Result) -> Table:
    m = r.metrics
    row = (_f(m["mae"]), _f(m["cs5"]), _f(m["eps_error"], 1.0, 4))
    return Table(f"Age estimation — {_name(r.dataset)}", ("MAE", "CS@5 (%)", "ε-error"), (row,))


def _expression(r: Result) -> Table:
    m = r.metrics
    row = (_f(m["accuracy"]), _f(m["mean_class_accuracy"]))
    header = ("Accuracy (%)", "Mean class accuracy (%)")
    return Table(f"Expression recognition — {_name(r.dataset)}", header, (row,))


def _attributes(r: Result) -> Table:
    m = r.metrics
    row = (_f(m["mean_accuracy"]), _f(m["mA"]))
    header = ("Mean accuracy (%)", "mA (%)")
    return Table(f"Attribute recognition — {_name(r.dataset)}", header, (row,))


_PER_DATASET: dict[str, Callable[[Result], Table]] = {
    "landmarks": _landmarks,
    "parsing": _parsing,
    "age": _age,
    "expression": _expression,
    "attributes": _attributes,
}


def build_tables(results: Sequence[Result]) -> list[Table]:
    """Tables in a fixed task order; all verification results in one table."""
    for r in results:
        if r.task not in TASKS:
            raise ValueError(f"report: unknown task '{r.task}' for {r.dataset}; valid: {TASKS}")
    tables = []
    ver = [r for r in results if r.task == "verification"]
    if ver:
        tables.append(_verification(ver))
    for task in TASKS[1:]:
        tables += [_PER_DATASET[task](r) for r in results if r.task == task]
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
