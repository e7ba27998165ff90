"""Optimizer recipe: equals torch AdamW + the original's schedule, groups, clipping, freezing."""

import numpy as np
import optax
import pytest
import torch

from faceptor_jax.optim import OptimConfig, make_optimizer, original_schedule, param_groups

CFG = OptimConfig(
    base_lr=1e-3,
    peak_lr=5e-2,
    warmup_steps=2,
    total_steps=6,
    clip_norm=0.5,
    groups=((r"encoder\..*", "backbone"), (r".*", "heads")),
    multipliers=(("backbone", 1.0), ("heads", 10.0)),
)


def _params():
    rng = np.random.default_rng(0)
    return {
        "encoder": {"w": rng.normal(size=(4, 3)).astype(np.float32)},
        "head": {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": np.ones(2, np.float32)},
    }


def _grads(step: int):
    rng = np.random.default_rng(100 + step)
    return {
        "encoder": {"w": rng.normal(size=(4, 3)).astype(np.float32)},
        "head": {
            "w": rng.normal(size=(3, 2)).astype(np.float32),
            "b": rng.normal(size=2).astype(np.float32),
        },
    }


def test_schedule_values():
    s = original_schedule(CFG)
    np.testing.assert_allclose(
        [float(s(t)) for t in range(7)],
        [1e-3, 1e-3 + 0.5 * (5e-2 - 1e-3), 5e-2, 5e-2 * 0.5 * (1 + np.cos(np.pi / 4)),
         2.5e-2, 5e-2 * 0.5 * (1 + np.cos(3 * np.pi / 4)), 0.0],
        rtol=1e-6, atol=1e-9,
    )  # fmt: skip


def test_matches_torch_adamw_with_the_original_schedule():
    params = _params()
    tx = make_optimizer(CFG)
    state = tx.init(params)
    torch_params = {k: torch.tensor(v) for k, v in _flat(params).items()}
    mult = {k: 1.0 if k.startswith("encoder") else 10.0 for k in torch_params}
    opt = torch.optim.AdamW(
        [{"params": [p], "name": k} for k, p in torch_params.items()],
        lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05,
    )  # fmt: skip
    schedule = original_schedule(CFG)
    for step in range(6):
        grads = _grads(step)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for group in opt.param_groups:  # the original: iteration i uses schedule(i - 1)
            group["lr"] = float(schedule(max(step - 1, 0))) * mult[group["name"]]
        for k, g in _flat(grads).items():
            torch_params[k].grad = torch.tensor(np.asarray(g, np.float32))
        torch.nn.utils.clip_grad_norm_(list(torch_params.values()), 0.5)
        opt.step()
    for k, v in _flat(params).items():
        np.testing.assert_allclose(
            np.asarray(v), torch_params[k].detach().numpy(), rtol=1e-4, atol=1e-6
        )


def test_frozen_group_does_not_move():
    cfg = OptimConfig(
        groups=((r"encoder\..*", "frozen"), (r".*", "heads")),
        multipliers=(("frozen", 0.0), ("heads", 1.0)),
        warmup_steps=0,
    )
    params = _params()
    tx = make_optimizer(cfg)
    updates, _ = tx.update(_grads(0), tx.init(params), params)
    assert not np.any(np.asarray(updates["encoder"]["w"]))
    assert np.any(np.asarray(updates["head"]["w"]))


def test_unmatched_parameter_and_missing_multiplier_are_named():
    with pytest.raises(ValueError, match=r"parameter head.b matches no optimizer group"):
        param_groups(_params(), ((r"encoder\..*", "backbone"),))
    with pytest.raises(ValueError, match=r"groups \['heads'\] have no LR multiplier"):
        make_optimizer(OptimConfig(groups=((".*", "heads"),), multipliers=(("x", 1.0),)))


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
