"""The parts of the side-by-side train-step benchmark that need no original checkout (nor torch)."""

import numpy as np
import pytest

from benchmarks.reference_train import _multiplier, original_batch, task_order


def test_original_batch_layout_and_labels():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((2, 8, 6, 3)).astype(np.float32)  # H != W: a wrong transpose shows
    out = original_batch("age_morph2", {"image": image, "age": np.array([20.0, 35.5], np.float32)})
    assert out["image"].shape == (2, 3, 8, 6) and out["image"].flags.c_contiguous
    np.testing.assert_array_equal(out["image"][1, 2], image[1, :, :, 2])
    dist = out["label"]["distribution"]
    assert dist.shape == (2, 101) and dist.dtype == np.float32
    np.testing.assert_allclose(dist.sum(-1), 1.0, rtol=1e-5)
    assert list(np.argmax(dist, -1)) in ([20, 35], [20, 36])
    np.testing.assert_array_equal(out["label"]["avg_label"], [20.0, 35.5])

    attrs = np.array([[1, 0, -1]] * 2, np.int32)
    out = original_batch("attributes_celeba", {"image": image, "attributes": attrs})
    assert out["label"].dtype == np.int64 and out["label"][0, 2] == -1  # −1 stays "ignore"
    points = rng.uniform(0, 8, (2, 68, 2)).astype(np.float32)
    out = original_batch("landmarks_300w", {"image": image, "landmarks": points})
    np.testing.assert_array_equal(out["label"], points)  # pixels, (x, y): AlignLoss normalises
    mask = rng.integers(0, 19, (2, 8, 6)).astype(np.int32)
    out = original_batch("parsing_celebamaskhq", {"image": image, "mask": mask})
    assert out["label"].dtype == np.int64 and out["label"].shape == (2, 8, 6)


def test_task_order_and_lr_multipliers_follow_the_original():
    yaml_tasks = {"recog_ms1mv3": {}, "age_morph2": {}, "parsing_celebam": {}}
    names = ["parsing_celebamaskhq", "recognition_ms1mv3", "age_morph2"]
    assert task_order(names, yaml_tasks) == [
        "recognition_ms1mv3", "age_morph2", "parsing_celebamaskhq",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="align_300w"):
        task_order(["landmarks_300w"], yaml_tasks)
    common = dict(backbone_multiplier=1.0, heads_multiplier=10.0, interpreters_multiplier=3.0,
                  decoder_multiplier=2.0, losses_multiplier=4.0)  # fmt: skip
    assert _multiplier("backbone_module.visual.transformer.resblocks.0.attn", common) == 1.0
    assert _multiplier("heads_module.interpreters.map_v2.mask_map.0", common) == 3.0
    assert _multiplier("heads_module.decoder.transformer_ffn_layers.3", common) == 2.0
    assert _multiplier("heads_module.out_modules.align_300w", common) == 10.0
    assert _multiplier("losses_module.losses.recog_ms1mv3", common) == 4.0
