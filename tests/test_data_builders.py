"""Every TFDS builder on a tiny fake download in the official layout: builds, reads back labels."""

import io
import pickle

import ml_collections
import numpy as np
import pytest
from builder_files import by_name as _by_name
from builder_files import img as _img
from builder_files import read as _read
from builder_files import write as _write
from PIL import Image

from data import common, recordio
from data.__main__ import build
from data.sources import make_sources


def test_ms1mv3_recordio(tmp_path):
    man = tmp_path / "ms1mv3"
    man.mkdir()
    recs = [(0, recordio.pack([5.0, 7.0], b""))]
    recs += [(k, recordio.pack(float(k % 2), _img(40 * k))) for k in range(1, 4)]
    recs += [(4, recordio.pack(1.0, b"not a jpeg"))]  # corrupt: reported and skipped
    recordio.write(str(man / "train.idx"), str(man / "train.rec"), recs)
    records = _read(build("ms1mv3", str(tmp_path / "out"), str(man)), "train")
    assert len(records) == 3
    for r in records:
        k = round(common.decode(r["image"]).mean() / 40)
        assert r["label"] == k % 2


def test_verification_bin(tmp_path):
    bins = [_img(v) for v in (10, 20, 30, 40)]
    with open(tmp_path / "lfw.bin", "wb") as f:
        pickle.dump((bins, [True, False]), f)
    records = _read(build("verification/lfw", str(tmp_path / "out"), str(tmp_path)), "test")
    got = sorted((round(common.decode(r["image_a"]).mean()), r["issame"]) for r in records)
    assert got == [(10, 1), (30, 0)]
    # what evaluation opens: the set by its table name, found where the builder wrote it
    config = ml_collections.ConfigDict(
        {"data": {"source": "tfds", "data_dir": str(tmp_path / "out")}}
    )
    source = make_sources(config)("lfw", "test", 112)
    assert len(source) == 2


def test_morph2_with_a_corrupt_image(tmp_path, capsys):
    # gender from MORPH II's official names (<subject>_<photo><M|F><age>.JPG), −1 otherwise
    a, b2, c = "A/009055_1M23.JPG", "A/000123_02F61.jpg", "B/3.jpg"
    for rel, v in ((a, 10), (b2, 20), (c, 30)):
        _write(str(tmp_path / "data" / rel), _img(v))
    _write(str(tmp_path / "data" / "B/bad.jpg"), b"\xff\xd8garbage")
    label = tmp_path / "label" / "RANDOM_80_20"
    _write(str(label / "train.txt"), f"{a} 23\n{b2} 61\nB/bad.jpg 40\n")
    _write(str(label / "test.txt"), f"{c} 35\n")
    b = build("morph2", str(tmp_path / "out"), str(tmp_path))
    assert {k: (r["age"], r["gender"]) for k, r in _by_name(_read(b, "train")).items()} == {
        a: (23, 1),
        b2: (61, 0),
    }
    test = _by_name(_read(b, "test"))[c]
    assert (test["age"], test["gender"]) == (35, -1)
    assert "skipped 1 corrupt image(s)" in capsys.readouterr().out


def test_utkface(tmp_path):
    for name, v in (("25_0_0_x.jpg", 10), ("70_1_2_y.jpg", 20)):
        _write(str(tmp_path / "data" / name), _img(v))
    _write(str(tmp_path / "label" / "train.csv"), ",file,age\n0,25_0_0_x.jpg,25\n")
    _write(str(tmp_path / "label" / "test.csv"), ",file,age\n0,70_1_2_y.jpg,70\n")
    b = build("utkface", str(tmp_path / "out"), str(tmp_path))
    assert _by_name(_read(b, "test"))["70_1_2_y.jpg"]["age"] == 70


def test_celeba_label_pkl(tmp_path):
    names = ["000001.jpg", "000002.jpg", "000003.jpg"]
    attr = np.random.default_rng(0).integers(0, 2, (3, 40))
    for i, n in enumerate(names):
        _write(str(tmp_path / "data" / n), _img(10 * i))
    info = {"image_name": names, "attr": attr, "attr_name": [f"a{i}" for i in range(40)]}
    info["partition"] = {"trainval": [0, 2], "test": [1]}
    with open(tmp_path / "label.pkl", "wb") as f:
        pickle.dump(info, f)
    b = build("celeba", str(tmp_path / "out"), str(tmp_path))
    train = _by_name(_read(b, "train"))
    assert sorted(train) == ["000001.jpg", "000003.jpg"]
    np.testing.assert_array_equal(train["000003.jpg"]["attributes"], attr[2])


def test_expression_sets_map_to_affectnet_ids(tmp_path):
    aff = tmp_path / "affectnet"
    for i in range(3):
        _write(str(aff / "data" / f"{i}.jpg"), _img(10 * i))
    _write(str(aff / "label" / "train.txt"), "0.jpg 6\n1.jpg 7\n")  # contempt (7) dropped
    _write(str(aff / "label" / "test.txt"), "2.jpg 1\n")
    b = build("affectnet", str(tmp_path / "o1"), str(aff))
    assert {k: r["label"] for k, r in _by_name(_read(b, "train")).items()} == {"0.jpg": 6}

    raf = tmp_path / "rafdb"
    for n in ("train_00001.jpg", "train_00002.jpg", "test_0001.jpg"):
        _write(str(raf / "data" / n), _img(50))
    _write(str(raf / "label.txt"), "train_00001.jpg 1\ntrain_00002.jpg 7\ntest_0001.jpg 4\n")
    b = build("rafdb", str(tmp_path / "o2"), str(raf))
    train = {k: r["label"] for k, r in _by_name(_read(b, "train")).items()}
    assert train == {"train_00001.jpg": 3, "train_00002.jpg": 0}  # Surprise, Neutral
    assert _by_name(_read(b, "test"))["test_0001.jpg"]["label"] == 1  # Happy

    fer = tmp_path / "ferplus"
    for n in ("a.png", "b.png", "c.png", "d.png"):
        _write(str(fer / "data" / n), _img(70, fmt="PNG"))
    _write(str(fer / "label" / "train.txt"), "a.png 2\nd.png 7\n")
    _write(str(fer / "label" / "val.txt"), "b.png 4\n")
    _write(str(fer / "label" / "test.txt"), "c.png 6\n")
    b = build("ferplus", str(tmp_path / "o3"), str(fer))
    train = {k: r["label"] for k, r in _by_name(_read(b, "train")).items()}
    assert train == {"a.png": 3, "b.png": 6}  # surprise -> 3, anger -> 6; contempt dropped
    assert _by_name(_read(b, "test"))["c.png"]["label"] == 4  # fear


def test_celebamask_hq(tmp_path):
    img = np.zeros((1024, 1024, 3), np.uint8)
    img[:, 512:] = 200
    _write(str(tmp_path / "CelebA-HQ-img" / "0.jpg"), _img(90, (1024, 1024)))
    _write(str(tmp_path / "CelebA-HQ-img" / "1.jpg"), _img(30, (1024, 1024)))
    skin = np.zeros((512, 512), np.uint8)
    skin[100:300, 100:300] = 255
    hair = np.zeros((512, 512), np.uint8)
    hair[:150] = 255
    anno = tmp_path / "CelebAMask-HQ-mask-anno" / "0"
    _write(str(anno / "00000_skin.png"), _png(skin))
    _write(str(anno / "00000_hair.png"), _png(hair))
    _write(str(tmp_path / "CelebA-HQ-to-CelebA-mapping.txt"),
           "idx orig_idx orig_file\n0 119613 119614.jpg\n1 99094 099095.jpg\n")  # fmt: skip
    _write(str(tmp_path / "list_eval_partition.txt"), "119614.jpg 0\n099095.jpg 2\n000001.jpg 0\n")
    b = build("celebamask_hq", str(tmp_path / "out"), str(tmp_path))
    (rec,) = _read(b, "train")
    image, mask = common.decode(rec["image"]), common.decode(rec["mask"], "L")
    assert image.shape == (512, 512, 3) and abs(int(image.mean()) - 90) <= 2
    assert mask[200, 200] == 2 and mask[120, 120] == 14 and mask[400, 400] == 0  # hair over skin
    assert len(_read(b, "test")) == 1


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_lapa(tmp_path):
    pts = np.arange(212, dtype=np.float32).reshape(106, 2)
    for sub, name in (("train", "a"), ("val", "b"), ("test", "c")):
        _write(str(tmp_path / sub / "images" / f"{name}.jpg"), _img(40))
        _write(str(tmp_path / sub / "labels" / f"{name}.png"), _png(np.full((8, 8), 10, np.uint8)))
        _write(str(tmp_path / sub / "landmarks" / f"{name}.txt"),
               "106\n" + "\n".join(f"{x} {y}" for x, y in pts))  # fmt: skip
    b = build("lapa", str(tmp_path / "out"), str(tmp_path))
    train = _by_name(_read(b, "train"))
    assert sorted(train) == ["train.a", "val.b"]
    np.testing.assert_array_equal(train["val.b"]["landmarks"], pts)
    assert common.decode(train["val.b"]["mask"], "L").max() == 10
    test = _by_name(_read(b, "test"))
    np.testing.assert_array_equal(test["test.c"]["landmarks"], pts)  # 106 points in both splits


def _hrnet_csv(rows, k):
    header = "image_name,scale,center_w,center_h," + ",".join(f"p{i}" for i in range(2 * k))
    return header + "\n" + "\n".join(rows) + "\n"


def test_ibug300w_offsets_box_and_path_fix(tmp_path):
    pts = np.arange(136, dtype=np.float32)
    row = lambda name: f"{name},1.5,100.0,120.0," + ",".join(str(v) for v in pts)
    _write(str(tmp_path / "data" / "ibug" / "image_092 _01.jpg"), _img(10, (300, 300)))
    _write(str(tmp_path / "data" / "lfpw" / "x.png"), _img(10, (300, 300), "PNG"))
    for s in ("train", "valid", "valid_common", "valid_challenge", "test"):
        rows = [row("ibug/image_092_01.jpg")] if s == "train" else [row("lfpw/x.png")]
        _write(str(tmp_path / f"face_landmarks_300w_{s}.csv"), _hrnet_csv(rows, 68))
    b = build("ibug300w", str(tmp_path / "out"), str(tmp_path))
    (rec,) = _read(b, "train")
    assert rec["filename"] == b"ibug/image_092 _01.jpg"
    np.testing.assert_allclose(rec["landmarks"], pts.reshape(68, 2) - 2.0)
    np.testing.assert_allclose(rec["box"], [118 - 150, 98 - 150, 118 + 150, 98 + 150])


def test_wflw(tmp_path):
    pts = np.linspace(0, 50, 196, dtype=np.float32)
    row = "wflw_images/a.jpg,0.5,30.0,40.0," + ",".join(str(v) for v in pts)
    _write(str(tmp_path / "data" / "wflw_images" / "a.jpg"), _img(20, (64, 64)))
    subsets = ("blur", "expression", "illumination", "largepose", "makeup", "occlusion")
    for s in ("train", "test", *(f"test_{x}" for x in subsets)):
        _write(str(tmp_path / f"face_landmarks_wflw_{s}.csv"), _hrnet_csv([row], 98))
    b = build("wflw", str(tmp_path / "out"), str(tmp_path))
    (rec,) = _read(b, "test_blur")
    np.testing.assert_allclose(rec["landmarks"], pts.reshape(98, 2), rtol=1e-6)
    np.testing.assert_allclose(rec["box"], [-10, -20, 90, 80])


def test_cofw_v73_mat(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (20, 24), np.uint8), rng.integers(0, 255, (20, 24, 3), np.uint8)]
    pts = np.concatenate([rng.uniform(2, 18, (2, 58)), np.ones((2, 29))], axis=1)  # [N,87]
    files = (("COFW_train_color.mat", "IsTr", "phisTr"), ("COFW_test_color.mat", "IsT", "phisT"))
    for file, ikey, pkey in files:
        with h5py.File(tmp_path / file, "w") as f:  # MATLAB v7.3 layout: transposed, cell refs
            refs = [f.create_dataset(f"#refs#/{i}", data=im.T).ref for i, im in enumerate(images)]
            f.create_dataset(ikey, data=np.array(refs, dtype=h5py.ref_dtype).reshape(1, -1))
            f.create_dataset(pkey, data=pts.T)
    b = build("cofw", str(tmp_path / "out"), str(tmp_path))
    recs = {r["filename"].decode(): r for r in _read(b, "train")}
    np.testing.assert_allclose(
        recs["train_1"]["landmarks"], pts[1, :58].reshape(2, 29).T, rtol=1e-6
    )
    np.testing.assert_array_equal(common.decode(recs["train_1"]["image"]), images[1])
    gray = common.decode(recs["train_0"]["image"])
    np.testing.assert_array_equal(gray, np.repeat(images[0][..., None], 3, axis=2))
    assert len(_read(b, "test")) == 2


def test_aflw19_splits(tmp_path, monkeypatch):
    import scipy.io

    from data.aflw19 import aflw19_dataset_builder as aflw

    monkeypatch.setattr(aflw, "TRAIN_COUNT", 2)
    n = 4
    names = np.empty((n, 1), dtype=object)
    for i in range(n):
        names[i, 0] = f"0/img{i}.jpg"
        _write(str(tmp_path / "data" / "flickr" / "0" / f"img{i}.jpg"), _img(10 * i))
    data = np.arange(n * 38, dtype=np.float64).reshape(n, 38)
    mask = np.ones((n, 19))
    mask[3, 5] = 0
    scipy.io.savemat(tmp_path / "AFLWinfo_release.mat", {
        "bbox": np.tile([1.0, 9.0, 2.0, 8.0], (n, 1)), "data": data, "mask_new": mask,
        "nameList": names, "ra": np.array([[3, 1, 4, 2]]),
    })  # fmt: skip
    b = build("aflw19", str(tmp_path / "out"), str(tmp_path))
    assert sorted(_by_name(_read(b, "train"))) == ["0/img0.jpg", "0/img2.jpg"]
    assert sorted(_by_name(_read(b, "test_full"))) == ["0/img1.jpg", "0/img3.jpg"]
    (front,) = _read(b, "test_frontal")
    assert front["filename"] == b"0/img1.jpg"
    np.testing.assert_allclose(front["landmarks"], data[1].reshape(2, 19).T)
    np.testing.assert_allclose(front["box"], [2, 1, 8, 9])


def test_synthetic_faces_build_reads_back_through_the_pipeline(tmp_path):
    from faceptor_jax import input_pipeline, tasks

    build("synthetic_faces/celeba", str(tmp_path), train_size=3, test_size=2)
    name = "synthetic_faces/celeba_test_size2_train_size3"
    src = input_pipeline.open_tfds(str(tmp_path), name, "train")
    from data.synthetic_faces import SyntheticFaces

    ref = SyntheticFaces("celeba", "train", length=3)
    got = {int(src[i]["filename"]): src[i] for i in range(len(src))}
    for i in range(3):
        np.testing.assert_array_equal(got[i]["attributes"], ref[i]["attributes"])
        np.testing.assert_array_equal(common.decode(got[i]["image"]), ref[i]["image"])
    ex = tasks.transform("attributes_celeba", got[0], np.random.default_rng(0), True)
    assert ex["image"].shape == (112, 112, 3)


def test_missing_and_malformed_files_name_the_path(tmp_path):
    with pytest.raises(common.ManualDownloadError, match=r"RANDOM_80_20/train\.txt: missing"):
        build("morph2", str(tmp_path / "out"), str(tmp_path))
    _write(str(tmp_path / "label" / "RANDOM_80_20" / "train.txt"), "A/1.jpg 23\nA/2.jpg\n")
    _write(str(tmp_path / "label" / "RANDOM_80_20" / "test.txt"), "")
    with pytest.raises(common.ManualDownloadError, match=r"train\.txt:2: malformed"):
        build("morph2", str(tmp_path / "out2"), str(tmp_path))
    with pytest.raises(common.ManualDownloadError, match=r"train\.rec: missing"):
        build("ms1mv3", str(tmp_path / "out3"), str(tmp_path))
