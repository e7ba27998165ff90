"""predict's faces.csv / faces.jsonl: columns from the model's tasks (a type's second task
prefixed), quoting of odd file names, and `check_tables`, which test_predict's CLI runs and
test_swinface_tasks' converted release call: one row per face of the per-input JSONs, equal to
their values, the JSONL carrying the embedding."""

import csv
import importlib.util
import json
import os

from faceptor_jax import datasets, tables, tasks

BASE = ["file", "frame", "face", "x1", "y1", "x2", "y2", "score"]
EXPRESSION = ["expression", "expression_probability"]
ATTRIBUTES = ["gender", *datasets.CELEBA_ATTRIBUTES]


def _resolve(out, link: str):
    """`x.jpg.json#/faces/0/landmarks/t` -> that value of the JSON beside the table."""
    path, pointer = link.split("#")
    value = json.loads((out / path).read_text())
    for key in pointer.strip("/").split("/"):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


def check_tables(out, header: list[str]) -> list[dict]:
    """faces.csv has `header` and one row per face of every `*.json` in `out` (in their files'
    order), each value the JSON's; faces.jsonl the same rows plus the embedding. Returns the
    CSV's rows."""
    with open(out / tables.CSV, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == header
        rows = list(reader)
    lines = (out / tables.JSONL).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(rows)
    faces = []
    for json_path in sorted(out.rglob("*.json")):
        doc = json.loads(json_path.read_text())
        frames = doc.get("frames") or [{"index": None, "faces": doc["faces"]}]
        for fr in frames:
            faces += [(doc, json_path, fr["index"], i, f) for i, f in enumerate(fr["faces"])]
    assert len(rows) == len(faces) > 0
    by_key = {
        (r["file"], r["frame"], r["face"]): (r, rec) for r, rec in zip(rows, records, strict=True)
    }
    for doc, json_path, frame, i, face in faces:
        file = os.path.relpath(doc["input"], out)
        row, rec = by_key[(file, "" if frame is None else str(frame), str(i))]
        assert rec["file"] == file and rec["frame"] == frame and rec["face"] == i
        assert [float(row[c]) for c in ("x1", "y1", "x2", "y2")] == face["box"]
        assert float(row["score"]) == rec["score"] == face["score"]
        for name in doc["tasks"]:  # one task per output kind: no prefixed columns
            if name in face.get("embedding", {}):
                assert rec["embedding"] == face["embedding"][name]
            if name in face.get("age", {}):
                assert float(row["age"]) == rec["age"] == face["age"][name]
            if name in face.get("expression", {}):
                e = face["expression"][name]
                assert row["expression"] == rec["expression"] == e["label"]
                assert float(row["expression_probability"]) == e["probabilities"][e["label"]]
                assert rec["expression_probabilities"] == e["probabilities"]
            if name in face.get("attributes", {}):
                a = face["attributes"][name]
                assert float(row["gender"]) == rec["gender"] == a["Male"]
                assert {k: float(row[k]) for k in a} == {k: rec[k] for k in a} == a
            if name in face.get("landmarks", {}):
                assert _resolve(out, row["landmarks_file"]) == face["landmarks"][name]
                assert rec["landmarks"] == face["landmarks"][name]
            if name in face.get("parsing", {}):
                mask = doc.get("masks", {}).get(name)
                want = os.path.relpath(json_path.parent / mask, out) if mask else ""
                assert row["parsing_file"] == want and (not want or (out / want).is_file())
                assert rec["parsing_pixels"] == face["parsing"][name]
    if importlib.util.find_spec("pandas"):  # what py-feat users do; not a dependency
        import pandas

        assert pandas.read_csv(out / tables.CSV).shape == (len(rows), len(header))
    return rows


def test_columns_come_from_the_tasks_in_the_report_order():
    model = {n: tasks.get(n) for n in ("landmarks_300w", "expression_affectnet", "age_morph2",
             "recognition_ms1mv3", "expression_rafdb", "attributes_celeba")}  # fmt: skip
    assert tables.header(model) == [
        *BASE, "age", *EXPRESSION, *("expression_rafdb." + c for c in EXPRESSION), *ATTRIBUTES,
        "landmarks_file",
    ]  # fmt: skip


def test_odd_file_names_are_quoted_and_a_faceless_photo_gives_no_row(tmp_path):
    age = tasks.get("age_morph2")
    face = {"box": [1.5, 2.0, 30.25, 40.0], "score": 0.9, "points5": [], "age": {age.name: 31.5}}
    path = str(tmp_path / 'in/a, "b" ü.jpg')
    table = tables.FaceTables(str(tmp_path / "out"), {age.name: age})
    os.makedirs(tmp_path / "out")
    assert table.add({"faces": [], "tasks": [age.name]}, "empty.png", "empty.png") == 0
    assert table.add({"faces": [face, face], "tasks": [age.name]}, "x.jpg", path) == 2
    with open(tmp_path / "out" / tables.CSV, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [*BASE, "age"] and len(rows) == 3
    assert rows[1] == [os.path.join("..", "in", 'a, "b" ü.jpg'), "", "0", "1.5", "2.0",
                       "30.25", "40.0", "0.9", "31.5"]  # fmt: skip
    assert rows[2][2] == "1"


def test_a_second_task_of_a_kind_gets_prefixed_cells_and_extras(tmp_path):
    a, r = tasks.get("expression_affectnet"), tasks.get("expression_rafdb")

    def expr(labels, top):
        return {"label": top, "probabilities": {k: 0.7 if k == top else 0.05 for k in labels}}

    face = {"box": [0, 0, 9, 9], "score": 0.8, "points5": []}
    face["expression"] = {a.name: expr(a.labels, "happy"), r.name: expr(r.labels, "sad")}
    table = tables.FaceTables(str(tmp_path), {a.name: a, r.name: r})
    (record,) = table.records({"faces": [face], "tasks": [a.name, r.name]}, "x.jpg", "x.jpg")
    assert record["expression"] == "happy" and record["expression_rafdb.expression"] == "sad"
    assert record["expression_rafdb.expression_probability"] == 0.7
    assert record["expression_rafdb.expression_probabilities"]["sad"] == 0.7
