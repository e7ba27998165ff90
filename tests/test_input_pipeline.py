"""Mixed multi-task grain stream: shapes, determinism, resume, process sharding, mesh placement."""

import jax
import numpy as np
import pytest

from data.synthetic_faces import SyntheticFaces
from faceptor_jax import input_pipeline as ip
from faceptor_jax import tasks

SIZES = {"parsing_celebamaskhq": 64, "landmarks_300w": 64}  # small dense images: a fast test
BATCHES = {
    "recognition_ms1mv3": 8,
    "age_morph2": 4,
    "attributes_celeba": 4,
    "expression_affectnet": 4,
    "parsing_celebamaskhq": 2,
    "landmarks_300w": 2,
}


def _sources(names, length=64):
    """{task: synthetic source of its dataset}."""
    return {
        n: SyntheticFaces(
            tasks.get(n).dataset, "train", length=length, size=96 if n in SIZES else None
        )
        for n in names
    }


def _mixed(batch_sizes, num_steps, **kw):
    src = _sources(batch_sizes)
    streams = {n: ip.Stream(src[n], bs, SIZES.get(n), n) for n, bs in batch_sizes.items()}
    return ip.mixed_dataset(streams, num_steps, **kw)


def test_mixed_stream_has_per_task_batch_shapes_and_lands_on_the_mesh():
    ds, layouts = _mixed(BATCHES, 3, data_parallel=8, process_index=0, process_count=1)
    batch = ds[0]
    assert set(batch) == set(BATCHES)
    assert batch["recognition_ms1mv3"]["image"].shape == (8, 112, 112, 3)
    assert batch["recognition_ms1mv3"]["image"].dtype == np.float32
    assert batch["recognition_ms1mv3"]["label"].dtype == np.int32 and batch["recognition_ms1mv3"][
        "label"
    ].shape == (8,)
    assert batch["age_morph2"]["age"].dtype == np.float32 and batch["age_morph2"]["age"].shape == (
        4,
    )
    assert batch["attributes_celeba"]["attributes"].shape == (4, 40)
    assert set(np.unique(batch["attributes_celeba"]["attributes"])) <= {0, 1}
    assert batch["expression_affectnet"]["label"].max() < 7
    assert batch["parsing_celebamaskhq"]["mask"].shape == (2, 64, 64)
    assert batch["parsing_celebamaskhq"]["mask"].dtype == np.int32
    assert batch["landmarks_300w"]["landmarks"].shape == (2, 68, 2)

    mesh = jax.make_mesh((8, 1, 1), ("data", "fsdp", "model"))
    placed = ip.to_global(batch, mesh, layouts)
    assert placed["recognition_ms1mv3"]["image"].shape == (8, 112, 112, 3)
    assert len(placed["recognition_ms1mv3"]["image"].sharding.device_set) == 8
    assert placed["recognition_ms1mv3"]["image"].sharding.spec == jax.sharding.PartitionSpec(
        ip.BATCH_AXES
    )
    assert placed["landmarks_300w"]["landmarks"].shape == (2, 68, 2)  # 2 % 8 != 0: replicated
    np.testing.assert_array_equal(
        np.asarray(placed["age_morph2"]["age"]), batch["age_morph2"]["age"]
    )


def _fingerprint(batch):
    return {n: (b["index"].tolist(), float(np.asarray(b["image"]).sum())) for n, b in batch.items()}


def test_resume_from_state_equals_uninterrupted_stream_for_50_steps():
    batches = {"recognition_ms1mv3": 2, "age_morph2": 1, "landmarks_300w": 1}
    ds, _ = _mixed(batches, 50, process_index=0, process_count=1)
    full = [_fingerprint(b) for b in ip.make_iterator(ds)]
    assert len(full) == 50
    it = ip.make_iterator(ds)
    head = [_fingerprint(next(it)) for _ in range(20)]
    state = it.get_state()
    resumed = ip.make_iterator(_mixed(batches, 50, process_index=0, process_count=1)[0])
    resumed.set_state(state)
    assert head + [_fingerprint(b) for b in resumed] == full
    again = [_fingerprint(b) for b in ip.make_iterator(ds)]  # deterministic given the seed
    assert again == full


def test_two_processes_get_disjoint_shards_of_the_same_global_batch():
    src = _sources(["recognition_ms1mv3"], length=1000)["recognition_ms1mv3"]
    stream = ip.Stream(src, 8, None, "recognition_ms1mv3")
    kw = dict(seed=3, data_parallel=2)
    whole, _ = ip.train_dataset(stream, 5, process_index=0, process_count=1, **kw)
    parts = [ip.train_dataset(stream, 5, process_index=p, process_count=2, **kw) for p in (0, 1)]
    assert all(layout.local_batch == 4 for _, layout in parts)
    for step in range(5):
        a, b = parts[0][0][step], parts[1][0][step]
        assert not set(a["index"].tolist()) & set(b["index"].tolist())
        glob = whole[step]
        np.testing.assert_array_equal(np.concatenate([a["index"], b["index"]]), glob["index"])
        np.testing.assert_array_equal(np.concatenate([a["image"], b["image"]]), glob["image"])


def test_sampler_reproduces_the_original_given_iteration_sampler():
    n, max_iter, b, world = 37, 6, 4, 2
    np.random.seed(2048)  # the original: one global shuffle, contiguous chunk per rank
    all_size = max_iter * b * world
    ref = np.tile(np.arange(n), (all_size - 1) // n + 1)[:all_size]
    np.random.shuffle(ref)
    src = list(range(n))

    class Src:
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"image": np.zeros((112, 112, 3), np.uint8), "label": src[i]}

    stream = ip.Stream(Src(), b * world, None, "recognition_ms1mv3")
    ds, _ = ip.train_dataset(stream, max_iter, world_size=world, process_index=0, process_count=1)
    for step in range(max_iter):
        got = ds[step]["index"]
        for r in range(world):
            chunk = ref[r * max_iter * b : (r + 1) * max_iter * b]
            np.testing.assert_array_equal(
                got[r * b : (r + 1) * b], chunk[step * b : (step + 1) * b]
            )


def test_eval_dataset_covers_every_record_once_with_padding():
    src = SyntheticFaces("rafdb", "test", length=11)
    ds, _ = ip.eval_dataset(
        ip.Stream(src, 4, None, "expression_rafdb"), process_index=0, process_count=1
    )
    batches = [ds[i] for i in range(len(ds))]
    idx = np.concatenate([b["index"] for b in batches])
    valid = np.concatenate([b["valid"] for b in batches])
    assert len(idx) == 12 and valid.sum() == 11
    np.testing.assert_array_equal(idx[valid], np.arange(11))


@pytest.mark.slow
def test_multiprocess_workers_give_the_same_stream():
    batches = {"recognition_ms1mv3": 2, "attributes_celeba": 2}
    ds, _ = _mixed(batches, 6, process_index=0, process_count=1)
    ref = [_fingerprint(b) for b in ip.make_iterator(ds)]
    assert [_fingerprint(b) for b in ip.make_iterator(ds, workers=2)] == ref


_WORKER = """
import json, sys
import jax
from jax.experimental import multihost_utils
jax.distributed.initialize("127.0.0.1:{port}", num_processes=2, process_id=int(sys.argv[1]))
from data.synthetic_faces import SyntheticFaces
from faceptor_jax import input_pipeline as ip
mesh = jax.make_mesh((2, 4, 1), ("data", "fsdp", "model"))
per_task = {{"recognition_ms1mv3": ("ms1mv3", 8), "expression_rafdb": ("rafdb", 2)}}
streams = {{t: ip.Stream(SyntheticFaces(d, "train", length=64), b, None, t)
           for t, (d, b) in per_task.items()}}
ds, layouts = ip.mixed_dataset(streams, 2, data_parallel=8)
out = []
for step in range(2):
    local = ds[step]
    glob = ip.to_global(local, mesh, layouts)
    gathered = {{n: multihost_utils.process_allgather(b["index"], tiled=True).tolist()
                for n, b in glob.items()}}
    shape = list(glob["recognition_ms1mv3"]["image"].shape)
    out.append({{"local": local["recognition_ms1mv3"]["index"].tolist(), "global": gathered,
                "shape": shape}})
print("RESULT" + json.dumps(out))
jax.distributed.shutdown()
"""


@pytest.mark.slow
def test_two_jax_processes_assemble_the_global_batch(tmp_path):
    import json
    import os
    import subprocess
    import sys

    import portpicker

    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(port=portpicker.pick_unused_port()))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=root)  # fmt: skip
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env, cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]  # fmt: skip
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.split("RESULT", 1)[1]))
    whole, _ = _mixed(
        {"recognition_ms1mv3": 8, "expression_rafdb": 2},
        2,
        data_parallel=8,
        process_index=0,
        process_count=1,
    )
    for step in range(2):
        a, b = results[0][step], results[1][step]
        assert not set(a["local"]) & set(b["local"]) and len(a["local"]) == 4
        assert a["shape"] == [8, 112, 112, 3]
        for r in (a, b):
            for n in ("recognition_ms1mv3", "expression_rafdb"):
                assert r["global"][n] == whole[step][n]["index"].tolist()


def test_light_policy_keeps_flips_and_drops_randaugment_and_erasing():
    """'light' = resize + flip for the 112-px tasks (values stay in [-1, 1]: no N(0,1) erasing),
    no colour/occlusion for landmarks; 'original' reaches outside [-1, 1]; typos are refused."""
    src = SyntheticFaces("affectnet", "train", length=40, num_identities=8, size=64)
    test = [
        tasks.transform("expression_affectnet", src[i], np.random.default_rng(0), False, 64)
        for i in range(40)
    ]
    flips = 0
    for i in range(40):
        light = tasks.transform(
            "expression_affectnet", src[i], np.random.default_rng(i), True, 64, "light"
        )
        assert np.abs(light["image"]).max() <= 1.0 + 1e-6 and light["label"] == src[i]["label"]
        same = np.allclose(light["image"], test[i]["image"], atol=0.05)
        mirrored = np.allclose(light["image"], test[i]["image"][:, ::-1], atol=0.05)
        assert same or mirrored, i  # nothing but a flip (and the bicubic-vs-bilinear resize)
        flips += mirrored and not same
    assert 5 < flips < 35
    heavy = [
        tasks.transform("expression_affectnet", src[i], np.random.default_rng(i), True, 64)["image"]
        for i in range(40)
    ]
    assert max(np.abs(x).max() for x in heavy) > 1.5  # RandomErasing's N(0,1) pixels
    lm = SyntheticFaces("ibug300w", "train", length=1, size=128)[0]
    a = tasks.transform("landmarks_300w", lm, np.random.default_rng(3), True, 128, "light")
    b = tasks.transform("landmarks_300w", lm, np.random.default_rng(3), True, 128)
    np.testing.assert_allclose(a["landmarks"], b["landmarks"])  # same geometric jitter
    assert not np.allclose(a["image"], b["image"])  # colour/occlusion only in 'original'
    with pytest.raises(ValueError, match="augmentation policy 'lite'"):
        tasks.transform("expression_affectnet", src[0], np.random.default_rng(0), True, 64, "lite")
