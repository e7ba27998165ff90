"""predict: a tiny random-weight checkpoint on scikit-image's sample photos, bad inputs, videos
(GIF and a real MP4), and the verification threshold that evaluation stores for it."""

import dataclasses
import json
import os

import av
import numpy as np
import pytest
import skimage.data
from flax import nnx
from PIL import Image
from test_predict_tables import ATTRIBUTES, BASE, EXPRESSION, check_tables

from configs import tiny
from data import sources as entry
from faceptor_jax import align, loop, media, predict, tasks
from faceptor_jax.checkpoint import read_verification, save_params
from faceptor_jax.model.faceptor import Faceptor, FaceptorConfig
from faceptor_jax.model.transformer_decoder import DecoderConfig
from faceptor_jax.model.vit import ViTConfig

NAMES = ("recognition_ms1mv3", "age_morph2", "attributes_celeba", "expression_affectnet",
         "parsing_celebamaskhq", "landmarks_300w")  # fmt: skip
# faces.csv's columns for NAMES (recognition adds none)
HEADER = [*BASE, "age", *EXPRESSION, *ATTRIBUTES, "parsing_file", "landmarks_file"]
SIZES = {112: 32, 512: 64}  # tiny crops; the predictor reads them from the checkpoint
ASTRONAUT_BOX = (178, 63, 267, 175)  # yuface's box (x1, y1, x2, y2) on skimage's astronaut


def _save_tiny(path, names, numpy_init) -> str:
    specs = tuple(
        dataclasses.replace(s, input_size=SIZES[s.input_size]) for s in tasks.head_specs(names)
    )
    cfg = FaceptorConfig(
        encoder=ViTConfig(width=32, depth=2, heads=2, mlp_dim=64, pe_grid=4),
        decoder=DecoderConfig(hidden=16, heads=2, ffn=32, layers=2),
        tasks=specs,
        levels=(1,),
        embed_dim=24,
    )
    model = numpy_init(lambda: Faceptor(cfg, rngs=nnx.Rngs(0)))
    save_params(path, "faceptor", cfg, nnx.to_pure_dict(nnx.state(model)))
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, numpy_init):
    return _save_tiny(tmp_path_factory.mktemp("ckpt") / "tiny", NAMES, numpy_init)


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return predict.Predictor(checkpoint)


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


def _inside(points, w, h):
    p = np.asarray(points)
    return bool(np.all((p >= 0) & (p <= [w - 1, h - 1])))


def test_face_found_where_it_is_and_outputs_in_image_coordinates(predictor, astronaut):
    faces, masks = predictor(astronaut)
    assert len(faces) == 1
    f = faces[0]
    np.testing.assert_allclose(f["box"], ASTRONAUT_BOX, atol=3)
    assert 0.5 < f["score"] <= 1
    h, w = astronaut.shape[:2]
    assert _inside(f["points5"], w, h)
    pts = np.asarray(f["landmarks"]["landmarks_300w"])
    assert pts.shape == (68, 2) and _inside(pts, w, h)
    # landmarks lie inside the region the landmark crop covers, around the face
    mat = tasks.get("landmarks_300w").type.crop.align(np.asarray(f["points5"]), 64)
    x1, y1, x2, y2 = align.crop_footprint(mat, 64, (h, w))
    assert np.all((pts >= [x1 - 1, y1 - 1]) & (pts <= [x2, y2]))
    assert x1 < ASTRONAUT_BOX[0] and x2 > ASTRONAUT_BOX[2]
    # parsing: back in image coordinates, labelled pixels only around the face
    mask = masks["parsing_celebamaskhq"]
    assert mask.shape == (h, w) and mask.dtype == np.uint8 and mask.max() < 19
    ys, xs = np.nonzero(mask)
    assert len(ys) and xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
    assert sum(f["parsing"]["parsing_celebamaskhq"].values()) > 0
    # per-face values in user terms
    e = np.asarray(f["embedding"]["recognition_ms1mv3"])
    assert e.shape == (24,) and abs(np.linalg.norm(e) - 1) < 1e-3
    assert 0 <= f["age"]["age_morph2"] <= 100
    attrs = f["attributes"]["attributes_celeba"]
    assert len(attrs) == 40 and "Smiling" in attrs and all(0 <= p <= 1 for p in attrs.values())
    expr = f["expression"]["expression_affectnet"]
    assert abs(sum(expr["probabilities"].values()) - 1) < 1e-3
    assert expr["label"] == max(expr["probabilities"], key=expr["probabilities"].get)


def test_no_face(predictor):
    faces, masks = predictor(np.full((120, 160, 3), 128, np.uint8))
    assert faces == [] and not masks["parsing_celebamaskhq"].any()


def test_batch_padding_does_not_change_a_face(predictor, astronaut):
    """Three faces run as one padded batch of 4 give each face's single-face outputs."""
    det = align.detect_faces(astronaut)[0]
    one = predictor._run(astronaut, [det])[0]
    three = predictor._run(astronaut, [det] * 3)
    assert {1, 4} <= predictor.shapes_seen
    for res in three:
        for name, (value, _) in res.items():
            np.testing.assert_allclose(value, one[name][0], atol=1e-4, err_msg=name)


def test_validate_names_the_bad_field():
    with pytest.raises(ValueError, match=r"\$.faces\[0\]: missing 'score'"):
        doc = {"schema": "x", "input": "a", "kind": "image", "width": 1, "height": 1}
        predict.validate(doc | {"tasks": [], "labels": {}, "faces": [{"box": [], "points5": []}]})


def _frames(n=3):
    """The astronaut moving right by 16 px a frame, 256 px wide, on a 320x256 canvas."""
    base = Image.fromarray(skimage.data.astronaut()).resize((256, 256))
    out = []
    for i in range(n):
        canvas = Image.new("RGB", (320, 256), (40, 40, 40))
        canvas.paste(base, (16 * i, 0))
        out.append(canvas)
    return out


def _video(path, frames=3):
    out = _frames(frames)
    out[0].save(path, save_all=True, append_images=out[1:], duration=100, loop=0)


def _mp4(path, frames=4, fps=10):
    """A real H.264 MP4 (what phones and cameras write), encoded with PyAV."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(media.VIDEO_CODEC, rate=fps)
        s.width, s.height, s.pix_fmt = 320, 256, "yuv420p"
        for img in _frames(frames):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")))
        c.mux(s.encode(None))


def _check_moving_face(video, n):
    predict.validate(video)
    assert video["kind"] == "video" and [f["index"] for f in video["frames"]] == list(range(n))
    assert all(len(fr["faces"]) == 1 for fr in video["frames"])
    xs = [fr["faces"][0]["box"][0] for fr in video["frames"]]
    np.testing.assert_allclose(np.diff(xs), 16, atol=4)  # the face moves with the frames
    for fr in video["frames"]:
        assert _inside(fr["faces"][0]["landmarks"]["landmarks_300w"], 320, 256)


def test_cli_photos_bad_inputs_video_and_compare(checkpoint, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(src / "astronaut.jpg", quality=95)
    Image.fromarray(skimage.data.checkerboard()).save(src / "checkerboard.png")  # no face
    (src / "notes.txt").write_text("not an image")
    data = (src / "astronaut.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 2])
    _video(src / "clip.gif")
    out = tmp_path / "out"
    argv = ["--checkpoint", checkpoint, "--input", str(src), "--output", str(out)]
    a = str(src / "astronaut.jpg")
    assert predict.main([*argv, "--compare", a, a]) == 0
    captured = capsys.readouterr()
    assert "same person" in captured.out and "faces/s" in captured.out
    assert "squared L2 distance 0.0000" in captured.out  # the same photo twice
    assert "threshold: fallback" in captured.out  # no evaluation stored one for this model
    assert "notes.txt" in captured.err and "truncated.jpg" in captured.err
    assert "checkerboard.png: no face found" in captured.err
    assert "3 inputs processed, 2 skipped" in captured.out

    doc = json.loads((out / "astronaut.jpg.json").read_text())
    predict.validate(doc)
    assert len(doc["faces"]) == 1 and doc["kind"] == "image"
    assert doc["labels"]["expression_affectnet"][1] == "happy"
    overlay = Image.open(out / doc["overlay"])
    assert overlay.size == (512, 512)
    mask = np.asarray(Image.open(out / doc["masks"]["parsing_celebamaskhq"]))
    assert mask.shape == (512, 512) and mask.any()
    assert json.loads((out / "checkerboard.png.json").read_text())["faces"] == []
    assert not (out / "notes.txt.json").exists() and not (out / "truncated.jpg.json").exists()

    _check_moving_face(json.loads((out / "clip.gif.json").read_text()), 3)
    assert Image.open(out / "clip.gif.overlay.gif").n_frames == 3
    rows = check_tables(out, HEADER)  # a row per face: the photo's and the 3 frames'
    assert [(r["file"], r["frame"]) for r in rows] == [
        ("../in/astronaut.jpg", ""),
        *(("../in/clip.gif", str(i)) for i in range(3)),
    ]  # checkerboard.png: no face, no row
    assert rows[0]["parsing_file"] == "astronaut.jpg.parsing_celebamaskhq.png"
    assert rows[0]["landmarks_file"] == "astronaut.jpg.json#/faces/0/landmarks/landmarks_300w"


def test_cli_on_a_generated_mp4(checkpoint, tmp_path, capsys):
    """Frame by frame through PyAV: per-frame faces in one JSON, an MP4 overlay with every
    analysed frame; an undecodable video is named and skipped."""
    _mp4(tmp_path / "clip.mp4")
    (tmp_path / "broken.mp4").write_bytes((tmp_path / "clip.mp4").read_bytes()[:600])
    out = tmp_path / "out"
    argv = ["--checkpoint", checkpoint, "--output", str(out), "--input"]
    assert predict.main([*argv, str(tmp_path / "clip.mp4"), str(tmp_path / "broken.mp4")]) == 0
    captured = capsys.readouterr()
    assert "1 inputs processed, 1 skipped" in captured.out
    assert "clip.mp4: [####################] frame 4/4, 4 faces" in captured.err
    assert "skipped " + str(tmp_path / "broken.mp4") in captured.err
    video = json.loads((out / "clip.mp4.json").read_text())
    _check_moving_face(video, 4)
    assert video["fps"] == 10 and video["overlay"] == "clip.mp4.overlay.mp4"
    overlay = list(media.read_frames(str(out / video["overlay"])))
    assert len(overlay) == 4 and overlay[0].shape == (256, 320, 3)
    assert sorted(os.listdir(out)) == [
        "clip.mp4.json", "clip.mp4.overlay.mp4", "faces.csv", "faces.jsonl"
    ]  # fmt: skip
    assert [r["frame"] for r in check_tables(out, HEADER)] == ["0", "1", "2", "3"]


def test_cli_exits_nonzero_only_when_nothing_processed(checkpoint, tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (300, 300)).save(huge)
    monkeypatch.setattr(media, "MAX_PIXELS", 300 * 299)  # "huge" for this test
    argv = ["--checkpoint", checkpoint, "--output", str(tmp_path / "o"), "--input"]
    assert predict.main([*argv, str(bad), str(huge), str(tmp_path / "missing.png")]) == 1
    err = capsys.readouterr().err
    assert "bad.jpg" in err and "huge.png: 300x300 is larger" in err and "missing.png" in err
    assert os.listdir(tmp_path / "o") == []


def test_eval_stores_the_protocol_threshold_and_predictor_uses_it(tmp_path, numpy_init):
    """`--mode=eval` of a model checkpoint: the 10-fold LFW threshold (mean of the folds' best)
    goes to the workdir and beside the model, where Predictor reads it and says so."""
    model = _save_tiny(tmp_path / "model", ["recognition_ms1mv3"], numpy_init)
    c = tiny.get_config()
    for name in list(c.tasks):
        if name != "recognition_ms1mv3":
            del c.tasks[name]
    c.tasks.recognition_ms1mv3.image_size = 32
    c.tasks.recognition_ms1mv3.eval_batch_size = 16
    c.data.synthetic_test_length = 16  # 16 pairs per verification set: 10 folds of 1-2 pairs
    c.init.checkpoint, c.eval_max_batches = model, 1
    workdir = str(tmp_path / "eval")
    synthetic = entry.make_sources(c)

    def sources(dataset, split, size):  # LFW and CPLFW built, the other sets not
        if dataset not in ("lfw", "cplfw"):
            raise FileNotFoundError(f"{dataset} is not built")
        return synthetic(dataset, split, size)

    results = loop.evaluate_only(c, workdir, sources)
    assert [r.dataset for r in results] == ["lfw", "cplfw"]
    lfw = next(r.metrics for r in results if r.dataset == "lfw")
    assert lfw["threshold"] == pytest.approx(np.mean(lfw["fold_thresholds"]))
    record = read_verification(model)
    assert record == read_verification(workdir)
    assert record["dataset"] == "lfw" and record["pairs"] == 16 and record["step"] == 0
    assert record["threshold"] == pytest.approx(lfw["threshold"])
    assert record["eval"] == os.path.join(workdir, "eval_0.json")
    p = predict.Predictor(model)
    assert p.threshold == record["threshold"]
    assert p.threshold_source.startswith("protocol:") and model in p.threshold_source
    assert predict.Predictor(model, threshold=0.5).threshold_source == "given (--threshold)"


def test_unknown_task_is_one_line(checkpoint, tmp_path, capsys):
    argv = ["--checkpoint", checkpoint, "--input", str(tmp_path), "--output", str(tmp_path / "o")]
    assert predict.main([*argv, "--tasks", "age_morph2", "agee"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("predict: error: --tasks: "), err
    assert "has no task(s) agee; its tasks: recognition_ms1mv3" in err
