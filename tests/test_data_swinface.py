"""SwinFace's data builders on tiny fake downloads in each dataset's official layout."""

import numpy as np
import pytest
from builder_files import by_name as _by_name
from builder_files import img as _img
from builder_files import read as _read
from builder_files import write as _write

from data import common, recordio
from data.__main__ import build
from data.adience.adience_dataset_builder import parse_age
from data.imdb_wiki.imdb_wiki_dataset_builder import age_at_photo
from faceptor_jax import ijbc


def _gray(record) -> int:
    return round(common.decode(record["image"]).mean())


def test_ms1mv2_recordio_and_property(tmp_path):
    man = tmp_path / "faces_emore"
    man.mkdir()
    recs = [(0, recordio.pack([3.0, 5.0], b""))]
    recs += [(k, recordio.pack(float(k + 10), _img(40 * k))) for k in (1, 2)]
    recordio.write(str(man / "train.idx"), str(man / "train.rec"), recs)
    _write(str(man / "property"), "85742,112,112\n")
    b = build("ms1mv2", str(tmp_path / "out"), str(man))
    assert sorted((r["label"], _gray(r) // 40) for r in _read(b, "train")) == [(11, 1), (12, 2)]
    _write(str(man / "property"), "93431,112,112\n")  # an MS1MV3 folder passed as MS1MV2
    with pytest.raises(common.ManualDownloadError, match=r"property: 93431 identities, expected"):
        build("ms1mv2", str(tmp_path / "out2"), str(man))


def test_clap2015_mean_and_std(tmp_path):
    rows = {"train": [("image_1.jpg", 20.5, 3.25), ("image_2.jpg", 61.0, 7.5)],
            "val": [("image_3.jpg", 33.0, 4.0)], "test": [("image_4.jpg", 8.0, 1.5)]}  # fmt: skip
    for split, items in rows.items():
        for k, (name, _, _) in enumerate(items):
            _write(str(tmp_path / split / "data" / name), _img(30 * k + 10))
        lines = "".join(f"{n};{m};{s}\r\n" for n, m, s in items)  # CRLF as the ChaLearn CSVs
        _write(
            str(tmp_path / split / "label.csv"),
            ("image;mean;std\n" if split == "val" else "") + lines,
        )
    b = build("clap2015", str(tmp_path / "out"), str(tmp_path))
    for split, items in rows.items():
        got = _by_name(_read(b, split))
        assert sorted(got) == sorted(n for n, _, _ in items)
        for name, mean, std in items:
            assert (got[name]["age"], got[name]["age_std"]) == (mean, std)
    _write(str(tmp_path / "test" / "label.csv"), "image_4.jpg;8.0;1.5\nimage_5.jpg;old;2\n")
    with pytest.raises(common.ManualDownloadError, match=r"test/label\.csv:2: malformed"):
        build("clap2015", str(tmp_path / "out2"), str(tmp_path))


def test_adience_folds_age_groups_and_gender(tmp_path):
    header = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tyaw\tscore\n"
    rows = [("u1", "a.jpg", "3", "(25, 32)", "m"), ("u1", "b.jpg", "4", "(38, 42)", "f"),
            ("u2", "c.jpg", "9", "35", "u"), ("u2", "d.jpg", "1", "None", "")]  # fmt: skip
    for k, (user, orig, face, _, _) in enumerate(rows):
        _write(str(tmp_path / "faces" / user / f"coarse_tilt_aligned_face.{face}.{orig}"), _img(k))
    line = lambda r: "\t".join(r) + "\t1\t2\t3\t4\t0\t0\t70\n"
    _write(str(tmp_path / "fold_0_data.txt"), header + "".join(line(r) for r in rows[:3]))
    _write(str(tmp_path / "fold_1_data.txt"), header + line(rows[3]))
    for k in (2, 3, 4):  # TFDS needs every split non-empty
        _write(str(tmp_path / "faces" / "u3" / f"coarse_tilt_aligned_face.{k}.e.jpg"), _img(k))
        _write(
            str(tmp_path / f"fold_{k}_data.txt"),
            header + line(("u3", "e.jpg", str(k), "(0, 2)", "f")),
        )
    b = build("adience", str(tmp_path / "out"), str(tmp_path))
    got = {
        k: (r["age"], r["age_group"], r["gender"]) for k, r in _by_name(_read(b, "fold_0")).items()
    }
    assert got == {"u1/coarse_tilt_aligned_face.3.a.jpg": (28.5, 4, 1),
                   "u1/coarse_tilt_aligned_face.4.b.jpg": (40.0, -1, 0),
                   "u2/coarse_tilt_aligned_face.9.c.jpg": (35.0, -1, -1)}  # fmt: skip
    (rec,) = _read(b, "fold_1")
    assert (rec["age"], rec["age_group"], rec["gender"]) == (-1.0, -1, -1)
    assert len(_read(b, "fold_0+fold_1")) == 4
    from faceptor_jax import datasets, input_pipeline  # the table's train split: all five folds

    src = input_pipeline.open_tfds(
        str(tmp_path / "out"), "adience", datasets.split("adience", "train")
    )
    assert len(src) == 7
    assert parse_age("(60, 100)") == (80.0, 7) and parse_age("old") is None


def _mat_struct(**fields):
    out = {}
    for k, v in fields.items():
        if k == "full_path":
            cell = np.empty((1, len(v)), dtype=object)
            cell[0, :] = [np.array([p]) for p in v]
            out[k] = cell
        else:
            out[k] = np.asarray(v, np.float64).reshape(1, -1)
    return out


def test_imdb_wiki_age_gender_from_mat(tmp_path):
    import scipy.io

    # datenum 723181 = 1980-01-01 (born before July), 723363 = 1980-07-01 (born from July on)
    paths = ["01/a_1980-01-01_2000.jpg", "02/b_1980-07-01_2000.jpg", "03/c.jpg"]
    for k, p in enumerate(paths):
        _write(str(tmp_path / "wiki_crop" / p), _img(20 * k + 10))
    meta = _mat_struct(full_path=paths, dob=[723181, 723363, 0], photo_taken=[2000, 2000, 2010],
                       gender=[1, 0, np.nan], face_score=[4.5, -np.inf, 2.0],
                       second_face_score=[np.nan, 1.5, np.nan])  # fmt: skip
    scipy.io.savemat(tmp_path / "wiki_crop" / "wiki.mat", {"wiki": meta})
    b = build("imdb_wiki/wiki", str(tmp_path / "out"), str(tmp_path))
    got = _by_name(_read(b, "train"))
    assert [(got[p]["age"], got[p]["gender"]) for p in paths] == [(20, 1), (19, 0), (-1, -1)]
    assert got[paths[1]]["face_score"] == -np.inf and np.isnan(got[paths[0]]["second_face_score"])
    assert age_at_photo(723181.0, 2200) == -1 and age_at_photo(float("nan"), 2000) == -1
    with pytest.raises(common.ManualDownloadError, match=r"imdb_crop/imdb\.mat: missing"):
        build("imdb_wiki/imdb", str(tmp_path / "out2"), str(tmp_path))


def test_fgnet_age_and_subject_from_file_names(tmp_path):
    for k, name in enumerate(("001A02.JPG", "001A43a.JPG", "078A11.JPG")):
        _write(str(tmp_path / "images" / name), _img(10 * k))
    _write(str(tmp_path / "images" / "Thumbs.db"), b"x")  # not an image: ignored
    b = build("fgnet", str(tmp_path / "out"), str(tmp_path))
    got = {k: (r["subject"], r["age"]) for k, r in _by_name(_read(b, "test")).items()}
    assert got == {"001A02.JPG": (1, 2), "001A43a.JPG": (1, 43), "078A11.JPG": (78, 11)}
    _write(str(tmp_path / "images" / "photo.jpg"), _img(1))
    with pytest.raises(common.ManualDownloadError, match=r"images: 1 file\(s\) not named"):
        build("fgnet", str(tmp_path / "out2"), str(tmp_path))


def _ijbc_download(root):
    names = ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    rng = np.random.default_rng(0)
    pts = rng.uniform(10, 90, (4, 5, 2)).round(3)
    scores = [0.9, 0.8, 0.95, 0.5]
    tid_mid = [(1, 10), (1, 11), (2, 20), (3, 30)]
    for k, n in enumerate(names):
        _write(str(root / "loose_crop" / n), _img(40 * k + 20, (16, 16)))
    lines = [" ".join([n, *(f"{v:.3f}" for v in p.ravel()), str(s)])
             for n, p, s in zip(names, pts, scores, strict=True)]  # fmt: skip
    _write(str(root / "meta" / "ijbc_name_5pts_score.txt"), "\n".join(lines) + "\n")
    _write(str(root / "meta" / "ijbc_face_tid_mid.txt"),
           "".join(f"{n} {t} {m}\n" for n, (t, m) in zip(names, tid_mid, strict=True)))  # fmt: skip
    _write(str(root / "meta" / "ijbc_template_pair_label.txt"), "1 2 1\n1 3 0\n2 3 0\n")
    return names, pts, scores, tid_mid


def test_ijbc_faces_and_pairs(tmp_path, monkeypatch):
    from data.ijbc import ijbc_dataset_builder

    names, pts, scores, tid_mid = _ijbc_download(tmp_path)
    faces = _read(build("ijbc/faces", str(tmp_path / "out"), str(tmp_path)), "test")
    assert [r["index"] for r in faces] == [0, 1, 2, 3]  # meta-file order kept
    for k, r in enumerate(faces):
        assert r["filename"].decode() == names[k] and abs(_gray(r) - (40 * k + 20)) <= 2
        np.testing.assert_allclose(r["landmarks"], pts[k], rtol=1e-6)
        assert (r["template"], r["media"]) == tid_mid[k]
        assert r["face_score"] == np.float32(scores[k])
    monkeypatch.setattr(ijbc_dataset_builder, "PAIRS_PER_RECORD", 2)
    chunks = _read(build("ijbc/pairs", str(tmp_path / "out"), str(tmp_path)), "test")
    assert len(chunks) == 2
    a, b, y = ijbc.pairs_from_chunks(chunks)
    np.testing.assert_array_equal(np.stack([a, b, y], 1), [[1, 2, 1], [1, 3, 0], [2, 3, 0]])


def test_ijbc_missing_and_misaligned_meta(tmp_path):
    with pytest.raises(common.ManualDownloadError, match=r"loose_crop: missing; expected"):
        build("ijbc/faces", str(tmp_path / "o1"), str(tmp_path))
    with pytest.raises(common.ManualDownloadError, match=r"ijbc_template_pair_label\.txt: missing"):
        build("ijbc/pairs", str(tmp_path / "o2"), str(tmp_path))
    _ijbc_download(tmp_path)
    _write(
        str(tmp_path / "meta" / "ijbc_face_tid_mid.txt"),
        "1.jpg 1 10\n3.jpg 1 11\n2.jpg 2 20\n4.jpg 3 30\n",
    )
    with pytest.raises(common.ManualDownloadError, match=r"tid_mid\.txt:2: malformed.*'2\.jpg'"):
        build("ijbc/faces", str(tmp_path / "o3"), str(tmp_path))
    _write(str(tmp_path / "meta" / "ijbc_template_pair_label.txt"), "1 2 1\n1 3\n")
    with pytest.raises(common.ManualDownloadError, match=r"pair_label\.txt: malformed"):
        build("ijbc/pairs", str(tmp_path / "o4"), str(tmp_path))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ms1mv2", r"train\.rec: missing; expected the MS1MV2 \(faces_emore\) RecordIO data"),
        ("clap2015", r"train/label\.csv: missing; expected the CLAP2015 train CSV"),
        ("adience", r"faces: missing; expected the Adience faces/ folder"),
        ("imdb_wiki/wiki", r"wiki_crop/wiki\.mat: missing; expected the wiki\.mat file"),
        ("fgnet", r"images: missing; expected the FG-NET images/ folder"),
        ("ijbc/faces", r"loose_crop: missing; expected the IJB-C loose crop folder"),
    ],
)
def test_a_missing_manual_file_is_named_in_one_line(tmp_path, name, message):
    with pytest.raises(common.ManualDownloadError, match=message) as err:
        build(name, str(tmp_path / "out"), str(tmp_path))
    assert "\n" not in str(err.value)
