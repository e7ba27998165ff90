"""Report: tables in the paper's layout from real accumulator outputs, and the JSON twin."""

import json
import pathlib

import numpy as np
import pytest

from faceptor_jax import datasets, metrics, report, verification
from faceptor_jax import landmark_metrics as lm

FN = np.load(pathlib.Path(__file__).parent / "fixtures" / "losses_metrics" / "metrics_np.npz")


@pytest.fixture(scope="module")
def results():
    ver = verification.VerificationAccumulator.from_batch(
        np.arange(800), FN["ver_emb"], FN["ver_emb_flip"]
    ).compute(FN["ver_issame"])
    rs = [report.Result("verification", d, ver) for d in ("cplfw", "lfw", "cfp_fp")]
    for name, key in (("300w", "300w"), ("wflw", "wflw"), ("aflw_frontal", "aflw")):
        acc = lm.LandmarkAccumulator.from_batch(
            key,
            FN[f"lm_{key}_pred"],
            FN[f"lm_{key}_gt"],
            FN[f"lm_{key}_box"],
            FN[f"lm_{key}_subset"],
        )
        rs.append(report.Result("landmarks", name, acc.compute(key)))
    parse = metrics.ParsingAccumulator.from_batch(FN["parse_pred"], FN["parse_gt"], 11)
    rs.append(report.Result("parsing", "lapa", parse.compute(datasets.LAPA_LABELS)))
    age = metrics.AgeAccumulator.from_batch(np.array([20.0, 30.0]), np.array([22.0, 37.0]))
    rs.append(report.Result("age", "morph2", age.compute()))
    expr = metrics.ClassificationAccumulator.from_batch(np.eye(7)[[0, 1]], np.array([0, 2]))
    rs.append(report.Result("expression", "rafdb", expr.compute()))
    attr = metrics.AttributeAccumulator.from_batch(np.ones((2, 40)), np.ones((2, 40), int))
    rs.append(report.Result("attributes", "celeba", attr.compute()))
    return rs


def test_tables_layout(results):
    tables = report.build_tables(results)
    titles = [t.title for t in tables]
    assert titles[0] == "Face verification (10-fold, flip)"
    assert len(tables) == 1 + 3 + 1 + 1 + 1 + 1  # verification sets share one table
    ver = tables[0]
    assert ver.header == ("Metric", "LFW", "CFP-FP", "CPLFW")  # the paper's column order
    assert ver.rows[0][1] == f"{100 * FN['ver_acc_mean']:.2f}"
    w300 = next(t for t in tables if t.title.endswith("300W"))
    assert w300.header == ("Metric", "Common", "Challenging", "Full")
    aflw = next(t for t in tables if "AFLW-19 (frontal)" in t.title)
    assert [r[0] for r in aflw.rows][-2:] == ["FR@0.07 (%)", "AUC@0.07"]
    lapa = next(t for t in tables if "LaPa" in t.title)
    assert lapa.header[-1] == "Mean" and len(lapa.header) == 1 + 10 + 1  # no background column
    assert lapa.rows[0][-1] == f"{100 * FN['parse_fg_mean']:.2f}"
    text = report.render(results)
    assert "| Accuracy (%)" in text and "MORPH II" in text and "RAF-DB" in text


def test_write_text_and_json(results, tmp_path):
    txt, js = report.write(results, tmp_path / "eval")
    assert pathlib.Path(txt).read_text() == report.render(results)
    data = json.loads(pathlib.Path(js).read_text())
    assert [t["title"] for t in data["tables"]] == [t.title for t in report.build_tables(results)]
    lfw = next(r for r in data["results"] if r["dataset"] == "lfw")
    assert lfw["metrics"]["accuracy"] == pytest.approx(float(FN["ver_acc_mean"]))
    assert len(lfw["metrics"]["fold_accuracies"]) == 10


def test_unknown_task_is_rejected():
    with pytest.raises(ValueError, match="unknown task 'pose'"):
        report.build_tables([report.Result("pose", "biwi", {})])
