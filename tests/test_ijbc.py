"""IJB-C 1:1 protocol (faceptor_jax.ijbc): hand-computed figures and loop-based reference math;
the evaluation loop on a built tiny IJB-C against the protocol on directly computed embeddings."""

import io
import types

import builder_files
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from configs import swinface
from data.__main__ import build
from data.sources import make_sources
from faceptor_jax import evaluate, ijbc, loop, preprocess, report
from faceptor_jax.tasks import crops, ijbc_eval

# 8 pairs, descending scores, one tie at 0.8: worked by hand below.
LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])


def test_roc_by_hand():
    # per distinct score: tps 1,2,3,3,3,4,4 and fps 0,1,1,2,3,3,4; the point (fps 2, tps 3) lies
    # between equal steps (+1, 0) and (+1, 0) in both counts and is dropped; (0, 0) prepended.
    fpr, tpr = ijbc.roc_curve(LABELS, SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.25, 0.75, 0.75, 1])
    np.testing.assert_allclose(tpr, [0, 0.25, 0.5, 0.75, 0.75, 1, 1])


def test_tar_at_far_nearest_point_highest_tar():
    got = ijbc.tar_at_far(LABELS, SCORES, (0.1, 0.25, 0.5, 1e-6))
    # FAR 0.5: no point at 0.5 (dropped); 0.25 and 0.75 are equally near -> the highest TAR, 1.0
    assert got == {0.1: 0.25, 0.25: 0.75, 0.5: 1.0, 1e-6: 0.25}  # 1e-6: (0, 0.25) over (0, 0)


def _reference_roc(labels, scores):
    """Thresholds from the highest score down, counted directly; then the equal-step rule."""
    pts = [(0.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        pts.append(
            (
                float(np.sum((scores >= t) & (labels == 0))),
                float(np.sum((scores >= t) & (labels == 1))),
            )
        )
    core = pts[1:]
    keep = [core[0]]
    for i in range(1, len(core) - 1):
        before = (core[i][0] - core[i - 1][0], core[i][1] - core[i - 1][1])
        after = (core[i + 1][0] - core[i][0], core[i + 1][1] - core[i][1])
        if before != after:
            keep.append(core[i])
    keep += core[-1:] if len(core) > 1 else []
    fps, tps = np.array([p[0] for p in [pts[0], *keep]]), np.array([p[1] for p in [pts[0], *keep]])
    return fps / fps[-1], tps / tps[-1]


def test_roc_matches_the_reference_on_random_scores_with_ties():
    rng = np.random.default_rng(0)
    for n in (5, 40, 300):
        labels = rng.integers(0, 2, n)
        labels[:2] = (0, 1)
        scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes ties
        fpr, tpr = ijbc.roc_curve(labels, scores)
        ref_fpr, ref_tpr = _reference_roc(labels, scores)
        np.testing.assert_allclose(fpr, ref_fpr)
        np.testing.assert_allclose(tpr, ref_tpr)


def test_template_features_media_mean_then_sum_by_hand():
    emb = np.array([[1, 0], [3, 0], [0, 2], [0, 1], [-1, 0]], np.float64)
    templates, medias = np.array([1, 1, 1, 2, 3]), np.array([10, 10, 11, 20, 30])
    tids, feats = ijbc.template_features(emb, templates, medias)
    # template 1: media 10 -> mean [2, 0], media 11 -> [0, 2]: sum [2, 2] (image mean [4/3, 2/3])
    np.testing.assert_array_equal(tids, [1, 2, 3])
    np.testing.assert_allclose(feats, [[2**-0.5, 2**-0.5], [0, 1], [-1, 0]])
    scores = ijbc.pair_scores(tids, feats, np.array([1, 1, 2]), np.array([2, 3, 3]))
    np.testing.assert_allclose(scores, [2**-0.5, -(2**-0.5), 0], atol=1e-12)


def test_flip_sum_and_face_score_weighting():
    emb = np.array([[1, 0], [3, 0], [0, 2]], np.float64)
    flipped = np.array([[1, 0], [0, 0], [0, 0]], np.float64)  # image 0: [2, 0] after the flip sum
    face = np.array([1.0, 0.5, 1.0])
    feats = ijbc.image_features(emb, flipped, face)
    np.testing.assert_allclose(feats, [[2, 0], [1.5, 0], [0, 2]])
    _, tf = ijbc.template_features(feats, np.array([1, 1, 1]), np.array([10, 10, 11]))
    np.testing.assert_allclose(tf, [np.array([1.75, 2]) / np.hypot(1.75, 2)])


def _reference_templates(feats, templates, medias):
    out = {}
    for t in sorted(set(templates.tolist())):
        total = np.zeros(feats.shape[1])
        for m in sorted(set(medias[templates == t].tolist())):
            total += feats[(templates == t) & (medias == m)].mean(0)
        out[t] = total / np.linalg.norm(total)
    return out


def test_protocol_matches_the_reference_on_a_synthetic_set():
    rng = np.random.default_rng(1)
    ids = rng.normal(size=(12, 16))
    n = 200
    templates = rng.integers(0, 30, n)
    templates[:30] = np.arange(30)  # every template has an image
    person = templates % 12
    medias = templates * 100 + rng.integers(0, 3, n)  # media ids are per template in IJB-C
    emb = ids[person] + 0.7 * rng.normal(size=(n, 16))
    flipped = emb + 0.1 * rng.normal(size=(n, 16))
    face = rng.uniform(0.5, 1.0, n)
    a, b = np.meshgrid(np.arange(30), np.arange(30), indexing="ij")
    a, b = a[a < b], b[a < b]
    y = (a % 12 == b % 12).astype(np.int64)

    got = ijbc.evaluate(emb, flipped, face, templates, medias, (a, b, y))
    ref_t = _reference_templates((emb + flipped) * face[:, None], templates, medias)
    ref_scores = np.array([ref_t[i] @ ref_t[j] for i, j in zip(a, b, strict=True)])
    tids, tf = ijbc.template_features(ijbc.image_features(emb, flipped, face), templates, medias)
    np.testing.assert_allclose(ijbc.pair_scores(tids, tf, a, b), ref_scores, atol=1e-12)
    assert got == ijbc.tar_at_far(y, ref_scores)
    assert set(got) == set(ijbc.FARS) and got[1e-1] >= got[1e-6] > 0.5


def test_errors_name_what_is_wrong(tmp_path):
    feats = np.eye(2)
    tids, tf = ijbc.template_features(feats, np.array([1, 2]), np.array([1, 2]))
    with pytest.raises(KeyError, match=r"1 template id\(s\) in the pairs have no image: \[7\]"):
        ijbc.pair_scores(tids, tf, np.array([1]), np.array([7]))
    with pytest.raises(ValueError, match="both genuine"):
        ijbc.roc_curve(np.ones(3, int), np.arange(3.0))
    with pytest.raises(ValueError, match="one of each per image"):
        ijbc.template_features(feats, np.array([1]), np.array([1, 2]))
    with pytest.raises(ijbc.IJBCFormatError, match=r"nope\.txt: missing; expected lines"):
        ijbc.read_template_pairs(str(tmp_path / "nope.txt"))


def test_readers_and_table(tmp_path):
    (tmp_path / "p.txt").write_text("1 2 1\n3 4 0\n")
    a, b, y = ijbc.read_template_pairs(str(tmp_path / "p.txt"))
    assert (a.tolist(), b.tolist(), y.tolist()) == ([1, 3], [2, 4], [1, 0])
    (tmp_path / "l.txt").write_text("1.jpg " + " ".join(str(v) for v in range(10)) + " 0.75\n")
    names, pts, sc = ijbc.read_landmarks(str(tmp_path / "l.txt"))
    assert names.tolist() == ["1.jpg"] and pts[0, 2].tolist() == [4, 5] and sc[0] == 0.75
    table = ijbc.format_table({"swinface": {1e-6: 0.9082, 1e-1: 0.9908}})
    assert table.splitlines() == ["method | 1e-06 | 1e-01", "swinface | 90.82 | 99.08"]


# ----------------------------------------------------------------------------- the eval loop
def _tiny_ijbc(root, rng) -> None:
    """A tiny `IJBC/` download in insightface's layout: 20 templates of 5 people (3–6 loose
    crops each, in 1–3 medias), every template pair listed."""
    base = rng.integers(0, 256, (5, 48, 48, 3))
    template_pts = crops.ARCFACE_TEMPLATE * (48 / 112) + 2
    meta_pts, meta_tid, k = [], [], 0
    for t in range(20):
        for m in range(int(rng.integers(1, 4))):
            for _ in range(int(rng.integers(1, 3))):
                noise = rng.normal(0, 40, (48, 48, 3))
                image = np.clip(base[t % 5] + noise, 0, 255).astype(np.uint8)
                name = f"img/{k}.jpg"
                builder_files.write(str(root / "loose_crop" / name), _jpeg(image))
                pts = template_pts + rng.normal(0, 1.5, (5, 2))
                score = rng.uniform(0.2, 1.0)
                meta_pts.append(
                    " ".join([name, *(f"{v:.3f}" for v in pts.ravel()), f"{score:.4f}"])
                )
                meta_tid.append(f"{name} {100 + t} {1000 + 10 * t + m}")
                k += 1
    a, b = np.triu_indices(20, 1)
    pairs = [f"{100 + i} {100 + j} {int(i % 5 == j % 5)}" for i, j in zip(a, b, strict=True)]
    for file, lines in (("ijbc_name_5pts_score.txt", meta_pts), ("ijbc_face_tid_mid.txt", meta_tid),
                        ("ijbc_template_pair_label.txt", pairs)):  # fmt: skip
        builder_files.write(str(root / "meta" / file), "\n".join(lines) + "\n")


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


class _TinyEmbedder(nnx.Module):
    """{task: [B, 64, 64, 3]} -> {task: {"embedding": [B, 16]}}: 8×8 mean pool, a linear map."""

    def __init__(self, task: str):
        self.task, self.proj = task, nnx.Linear(8 * 8 * 3, 16, rngs=nnx.Rngs(0))

    def __call__(self, images: dict, train: bool = False) -> dict:
        x = images[self.task]
        x = x.reshape(x.shape[0], 8, 8, 8, 8, 3).mean((2, 4)).reshape(x.shape[0], -1)
        return {self.task: {"embedding": jnp.tanh(self.proj(x))}}


def test_eval_reports_ijbc_like_the_protocol(tmp_path):
    """`evaluate.evaluate` (the multi-task trainer's evaluation) on a built tiny IJB-C equals
    `ijbc.evaluate` on embeddings of the aligned crops and their mirror images computed here;
    a listed test set that is not built (LFW) is skipped."""
    manual, data_dir = tmp_path / "IJBC", str(tmp_path / "data")
    _tiny_ijbc(manual, np.random.default_rng(3))
    build("ijbc/faces", data_dir, str(manual))
    build("ijbc/pairs", data_dir, str(manual))

    task = "recognition_ms1mv2"
    assert "ijbc" in swinface.get_config().tasks[task].test_sets
    entry = dict(batch_size=16, eval_batch_size=16, image_size=64, test_sets=("lfw", "ijbc"))
    config = ml_collections.ConfigDict(
        dict(tasks={task: entry}, data=dict(source="tfds", data_dir=data_dir), mesh=(-1, 1, 1))
    )
    model = _TinyEmbedder(task)
    graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
    mesh = loop.mesh_from_config(config)
    trainer = types.SimpleNamespace(  # what evaluate.evaluate reads of a train.Trainer
        merge=lambda p, s: nnx.merge(graphdef, p, s), image_sizes={task: 64}, mesh=mesh
    )
    state = {"params": {"model": params}, "model_state": model_state}
    with jax.set_mesh(mesh):
        results = evaluate.evaluate(trainer, state, config, make_sources(config), str(tmp_path), 0)

    names, pts, face = ijbc.read_landmarks(str(manual / "meta/ijbc_name_5pts_score.txt"))
    _, templates, medias = ijbc.read_template_media(str(manual / "meta/ijbc_face_tid_mid.txt"))
    pairs = ijbc.read_template_pairs(str(manual / "meta/ijbc_template_pair_label.txt"))
    aligned = []
    for name, p in zip(names, pts, strict=True):
        image = np.asarray(Image.open(manual / "loose_crop" / name).convert("RGB"))
        face64 = preprocess.warp(image, crops.arcface_matrix(p, 64), 64)
        aligned.append(preprocess.normalize(face64, preprocess.HALF_MEAN, preprocess.HALF_STD))
    x = np.stack(aligned)
    emb, flipped = (np.asarray(model({task: jnp.asarray(v)})[task]["embedding"])
                    for v in (x, x[:, :, ::-1]))  # fmt: skip
    want = ijbc.evaluate(emb, flipped, face, templates, medias, pairs)

    (r,) = results  # LFW is not built: skipped
    assert (r.task, r.dataset) == ("verification", "ijbc")
    assert r.metrics["tar_at_far"] == want
    assert (r.metrics["images"], r.metrics["templates"], r.metrics["pairs"]) == (len(x), 20, 190)
    assert len(x) % 16  # the last batch is padded
    # the check sees the flip, the face scores and their order: each one left out changes TAR
    for variant in ((emb, None, face), (emb, flipped, None), (emb, flipped, face[::-1])):
        assert ijbc.evaluate(*variant, templates, medias, pairs) != want
    (table,) = report.build_tables(results)
    assert table.header == ("TAR (%) @ FAR", "1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1")
    assert table.rows == (("IJB-C", *(f"{100 * want[far]:.2f}" for far in ijbc.FARS)),)
    assert table.render() in (tmp_path / "eval_0.txt").read_text()
    assert evaluate.flat_scalars(results)["eval/ijbc/tar_at_far/1e-06"] == want[1e-6]
    assert not (tmp_path / "verification.json").exists()  # no 10-fold threshold from IJB-C


def test_test_sets_a_type_cannot_evaluate_are_named():
    cfg = ml_collections.ConfigDict({"test_sets": ("ijbc", "celeba")})
    with pytest.raises(ValueError, match=r"recognition_ms1mv2\.test_sets: 'celeba' is not a test"):
        evaluate.test_sets("recognition_ms1mv2", cfg)
    assert evaluate.test_sets("recognition_ms1mv2", ml_collections.ConfigDict())[0] == "lfw"


def test_a_limited_run_scores_only_the_pairs_its_templates_allow():
    """`config.eval_max_batches` leaves templates without images: their pairs are left out."""
    feats = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)  # templates 1..4
    templates, medias, order = np.arange(1, 5), np.arange(10, 50, 10), [3, 0, 2, 1]
    part = ijbc_eval.Part(
        index=np.array(order), feature=feats[order], face_score=np.ones(4, np.float32),
        template=templates[order], media=medias[order],
    )  # fmt: skip
    a, b, y = (
        np.array([1, 1, 1, 2, 3, 5]),
        np.array([2, 3, 4, 5, 4, 6]),
        np.array([1, 0, 0, 1, 1, 1]),
    )
    acc = ijbc_eval.TemplateAccumulator(pairs=(a, b, y), images=9)  # 9 images in the split
    m = ijbc_eval.summarize(acc.merge(ijbc_eval.TemplateAccumulator(parts=(part,))), "ijbc").metrics
    assert (m["pairs"], m["templates"], m["images"]) == (4, 4, 4)  # pairs with 5 or 6 left out
    tids, tf = ijbc.template_features(feats, templates, medias)
    keep = [0, 1, 2, 4]
    want = ijbc.tar_at_far(y[keep], ijbc.pair_scores(tids, tf, a[keep], b[keep]))
    assert m["tar_at_far"] == want and set(want) == set(ijbc.FARS)
