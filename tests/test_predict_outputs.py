"""predict's output folder is checked before anything is analysed (a file where the folder should
be, a folder that cannot be created or written: one line, exit 2), and inputs with the same file
name in different folders get distinct outputs under --output, keeping their folders."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from faceptor_jax import media, predict


class _Stub:
    """What `predict.run` needs of a Predictor: no model, no faces."""

    weights, tasks, labels = "/stub", {}, {}

    def __call__(self, rgb):
        return [], {}


@pytest.mark.parametrize("kind", ["file", "under a file", "read-only"])
def test_unusable_output_is_one_line_before_any_analysis(tmp_path, capsys, kind, monkeypatch):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    out = {"file": blocker, "under a file": blocker / "sub", "read-only": tmp_path / "ro"}[kind]
    if kind == "read-only":
        out.mkdir()
        out.chmod(0o555)
        if os.access(out, os.W_OK):  # root writes anyway: the OS is made to refuse instead
            real = open

            def refuse(path, *a, **k):
                if str(path).startswith(str(out)):
                    raise PermissionError(13, "Permission denied", str(path))
                return real(path, *a, **k)

            monkeypatch.setattr("builtins.open", refuse)
    loaded = []
    monkeypatch.setattr(predict, "Predictor", lambda *a, **k: loaded.append(1))
    argv = ["--checkpoint", "/nowhere", "--input", str(tmp_path), "--output", str(out)]
    assert predict.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"predict: error: --output {out}: "), err
    assert ("a file, not a folder" in err) == (kind == "file") and not loaded


def test_same_named_inputs_keep_their_folders(tmp_path, capsys):
    for sub in ("a", "b/c"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / sub / "x.png")
    inputs = [str(tmp_path / "in" / "a"), str(tmp_path / "in" / "b" / "c" / "x.png")]
    out = tmp_path / "out"
    summary = predict.run(_Stub(), inputs, str(out))
    assert len(summary["processed"]) == 2
    for sub in ("a", "b/c"):
        doc = json.loads((out / sub / "x.png.json").read_text())
        assert doc["input"] == str(tmp_path / "in" / sub / "x.png")
        assert (out / sub / doc["overlay"]).is_file()
    assert media.output_names(["p/x.png", "q/y.png"]) == {"p/x.png": "x.png", "q/y.png": "y.png"}


def test_an_empty_input_folder_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert predict.run(_Stub(), [str(tmp_path / "empty")], str(tmp_path / "o"))["processed"] == []
    assert f"{tmp_path / 'empty'}: an empty folder (no files to analyse)" in capsys.readouterr().err


def test_a_truncated_video_is_processed_with_a_warning(tmp_path, capsys):
    import av

    path = tmp_path / "clip.avi"
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            a = np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)
            out.mux(s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")))
        out.mux(s.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    predict.process_video(_Stub(), str(path), str(tmp_path))
    err = capsys.readouterr().err
    assert re.search(r"clip.avi: only \d+ of the 20 frames it states could be decoded", err), err
