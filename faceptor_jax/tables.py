"""predict's tables: `faces.csv` and `faces.jsonl` in the output folder, one row per face over
every input and video frame, for `pandas.read_csv` / `pandas.read_json(path, lines=True)`.

Columns of `faces.csv`, in this order (UTF-8, a header row, the csv module's quoting):

    file            the input, relative to the table's folder (every path in a row is)
    frame           a video's frame index (the JSON's `frames[].index`); empty for photos
    face            the face's index in its photo or frame (the JSON's `faces[i]`)
    x1, y1, x2, y2  its box, image pixels
    score           the detector's confidence in [0, 1]

then each task's columns (its type's `PredictOutput.columns`), the tasks in the order the
evaluation report lists their types (`tasks.TASK_TYPES`), a type's tasks in the model's order:

    age                         years
    expression,                 the most probable class (the dataset's name) and its
      expression_probability      probability
    gender, <40 attributes>     P(male) (CelebA's Male: Faceptor's and SwinFace's gender), then
                                each attribute's probability, named as CelebA does
                                (5_o_Clock_Shadow … Young)
    parsing_file                the photo's palette PNG (pixel = class id, all its faces);
                                empty for video frames (none is written)
    landmarks_file              the input's JSON and a JSON pointer to the points in it
                                (`x.jpg.json#/faces/0/landmarks/landmarks_300w`)

Recognition adds no column (the embedding is too wide). The first task of an output kind takes
these names; a model's further ones (Faceptor-Full's three expression tasks) prefix theirs with
the task name and a dot (`expression_rafdb.expression`). Values are the per-input JSON's.

`faces.jsonl`: one JSON object per face with the same fields (null where the CSV is empty) and
what is too wide for a CSV (`PredictOutput.extras`): embedding, expression_probabilities
{class: p}, landmarks [[x, y]] (image pixels), parsing_pixels {class: pixel count}.
Both are rewritten by each run, created at its first processed input (a face-less photo gives
no row) and appended to as each input is done.
"""

import csv
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from faceptor_jax import tasks
from faceptor_jax.tasks.spec import FaceRef, Task

CSV, JSONL = "faces.csv", "faces.jsonl"
BASE = ("file", "frame", "face", "x1", "y1", "x2", "y2", "score")


def parts(model_tasks: Mapping[str, Task]) -> list[tuple[Task, str]]:
    """(task, its column prefix) in table order: "" for the first task of an output key."""
    keys = [t.predict.key for t in tasks.TASK_TYPES]
    rank = {k: i for i, k in enumerate(keys)}
    ordered = sorted(model_tasks.values(), key=lambda t: rank.get(t.type.predict.key, len(keys)))
    seen, out = set(), []
    for t in ordered:
        key = t.type.predict.key
        out.append((t, f"{t.name}." if key in seen else ""))
        seen.add(key)
    return out


def header(model_tasks: Mapping[str, Task]) -> list[str]:
    """The CSV's columns for a model's (or `--tasks`') tasks."""
    cols = [p + c for t, p in parts(model_tasks) for c in t.type.predict.columns(t)]
    return [*BASE, *cols]


def _faces(doc: Mapping) -> Iterator[tuple[int | None, int, dict, str]]:
    """(frame index or None, face index, face, its JSON pointer) of a photo's or video's JSON."""
    if "frames" in doc:
        for j, fr in enumerate(doc["frames"]):
            for i, face in enumerate(fr["faces"]):
                yield fr["index"], i, face, f"/frames/{j}/faces/{i}"
    else:
        for i, face in enumerate(doc["faces"]):
            yield None, i, face, f"/faces/{i}"


def _relative(path: str, start: str) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive (Windows): no relative path exists
        return os.path.abspath(path)


class FaceTables:
    """Appends one row per face of each input's JSON to `<out_dir>/faces.csv` and `.jsonl`."""

    def __init__(self, out_dir: str, model_tasks: Mapping[str, Task]):
        self.out_dir = out_dir
        self.parts = parts(model_tasks)
        self.columns = header(model_tasks)
        self.rows, self.inputs = 0, 0

    def records(self, doc: Mapping, name: str, path: str) -> Iterator[dict[str, Any]]:
        """One dict per face (columns, then extras) of `doc`, the JSON of input `path` written
        as `<out_dir>/<name>.json`."""
        folder = os.path.dirname(name)
        masks = {t: os.path.join(folder, png) for t, png in doc.get("masks", {}).items()}
        file = _relative(path, self.out_dir)
        for frame, i, face, pointer in _faces(doc):
            ref = FaceRef(json=f"{name}.json", pointer=pointer, masks=masks)
            row = dict(zip(BASE, (file, frame, i, *face["box"], face["score"]), strict=True))
            extras = {}
            for t, prefix in self.parts:
                out = t.type.predict
                entry = face[out.key][t.name]
                row |= {prefix + k: v for k, v in out.cells(entry, t, ref).items()}
                extras |= {prefix + k: v for k, v in out.extras(entry, t).items()}
            if unknown := set(row) - set(self.columns):  # a task's cells and columns disagree
                raise ValueError(f"{name}: cells {sorted(unknown)} are in no column of the table")
            yield {c: row.get(c) for c in self.columns} | extras

    def add(self, doc: Mapping, name: str, path: str) -> int:
        """Append `records(doc, name, path)` (the first input of a run rewrites the files, with
        the CSV's header); returns the number of faces."""
        mode = "a" if self.inputs else "w"
        csv_path, jsonl_path = (os.path.join(self.out_dir, f) for f in (CSV, JSONL))
        n = 0
        with (
            open(csv_path, mode, encoding="utf-8", newline="") as c,
            open(jsonl_path, mode, encoding="utf-8") as j,
        ):
            writer = csv.DictWriter(c, self.columns)
            if not self.inputs:
                writer.writeheader()
            for record in self.records(doc, name, path):
                writer.writerow({col: record[col] for col in self.columns})
                j.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
        self.rows, self.inputs = self.rows + n, self.inputs + 1
        return n
