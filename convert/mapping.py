"""Declarative, strict key mapping from a PyTorch state dict onto an NNX parameter skeleton.

A conversion is a table of `Rule`s (source-key regex -> target path + array transform) and a list
of regexes for keys that are deliberately dropped. A rule whose regex has a `(?P<layer>\\d+)` group
fills one slice of a stacked target ([L, ...], layers run with `nnx.scan`). Every problem found —
a source key no rule or drop pattern accounts for, a target left unfilled, a shape mismatch, two
keys for one target — is collected, and all of them are reported in one `ConversionError`.
"""

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from faceptor_jax import errors
from faceptor_jax.checkpoint import flatten_paths, unflatten_paths

__all__ = [
    "ConversionError",
    "Rule",
    "apply_rules",
    "bn_rules",
    "conv_hwio",
    "convt_hwio",
    "flatten_paths",
    "linear_rules",
    "mha_rules",
    "mlp_rules",
    "norm_rules",
    "proj_1x1",
    "t",
    "unflatten_paths",
]

Transform = Callable[[np.ndarray], np.ndarray]


def identity(x: np.ndarray) -> np.ndarray:
    return x


class ConversionError(errors.UserError, ValueError):
    """Every problem of one conversion, one per line."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) converting:\n  {lines}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """`source` regex (full match) -> `target` path ("a.b.c") via `transform`."""

    source: str
    target: str
    transform: Transform = identity

    @property
    def stacked(self) -> bool:
        return "(?P<layer>" in self.source


# ----------------------------------------------------------------------------- shared rules
# PyTorch layouts -> ours, and the rule groups every converter's layers share
# (`layers.MultiHeadAttention`, `LayerNorm`, `BatchNorm`, `Linear`, the fused MLP).
def t(w: np.ndarray) -> np.ndarray:  # Linear [out, in] -> kernel [in, out]
    return w.T


def conv_hwio(w: np.ndarray) -> np.ndarray:  # Conv2d [O, I, kh, kw] -> [kh, kw, I, O]
    return w.transpose(2, 3, 1, 0)


def convt_hwio(w: np.ndarray) -> np.ndarray:  # ConvTranspose2d [I, O, kh, kw] -> [kh, kw, I, O]
    return w.transpose(2, 3, 0, 1)


def proj_1x1(w: np.ndarray) -> np.ndarray:  # Conv2d 1×1 [C, D, 1, 1] -> [D, C]
    return w[:, :, 0, 0].T


def mha_rules(src: str, dst: str, heads: int) -> list[Rule]:
    """PyTorch nn.MultiheadAttention under `src` -> layers.MultiHeadAttention at `dst`."""

    def qkv(w: np.ndarray) -> np.ndarray:  # [3C, C] -> [C, 3, H, K]
        c = w.shape[-1]
        return w.reshape(3, heads, c // heads, c).transpose(3, 0, 1, 2)

    def out(w: np.ndarray) -> np.ndarray:  # [C, C] -> [H, K, C]
        return w.T.reshape(heads, -1, w.shape[0])

    return [
        Rule(src + r"in_proj_weight", dst + ".qkv", qkv),
        Rule(src + r"in_proj_bias", dst + ".qkv_bias", lambda b: b.reshape(3, heads, -1)),
        Rule(src + r"out_proj\.weight", dst + ".out", out),
        Rule(src + r"out_proj\.bias", dst + ".out_bias"),
    ]


def norm_rules(src: str, dst: str) -> list[Rule]:
    return [Rule(src + r"weight", dst + ".scale"), Rule(src + r"bias", dst + ".bias")]


def bn_rules(src: str, dst: str) -> list[Rule]:
    return [
        *norm_rules(src, dst),
        Rule(src + r"running_mean", dst + ".mean"),
        Rule(src + r"running_var", dst + ".var"),
    ]


def linear_rules(src: str, dst: str, bias: bool = True) -> list[Rule]:
    rules = [Rule(src + r"weight", dst + ".kernel", t)]
    return [*rules, Rule(src + r"bias", dst + ".bias")] if bias else rules


def mlp_rules(fc1: str, fc2: str, dst: str) -> list[Rule]:
    """Two PyTorch Linears (`fc1`, `fc2` key prefixes) -> `layers.MLP` at `dst` (fused kernels)."""
    return [
        Rule(fc1 + r"weight", dst + ".fc1", t),
        Rule(fc1 + r"bias", dst + ".fc1_bias"),
        Rule(fc2 + r"weight", dst + ".fc2", t),
        Rule(fc2 + r"bias", dst + ".fc2_bias"),
    ]


def _shape(x: object) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def apply_rules(
    state: Mapping[str, np.ndarray],
    rules: Sequence[Rule],
    dropped: Sequence[str],
    skeleton: Mapping[str, object],
    source_name: str = "checkpoint",
) -> dict[str, np.ndarray]:
    """Fill every path of `skeleton` ({path: array-like with .shape}) from `state`.

    Returns {path: np.ndarray}. Raises ConversionError listing every problem.
    """
    problems: list[str] = []
    compiled = [(re.compile(r.source), r) for r in rules]
    drops = [re.compile(d) for d in dropped]
    filled: dict[str, np.ndarray] = {}
    pieces: dict[str, dict[int, tuple[str, np.ndarray]]] = {}
    origin: dict[str, str] = {}
    failed: dict[str, set[int | None]] = {}  # targets whose source was already reported

    for key in sorted(state):
        value = state[key]
        match = next(((m, r) for rx, r in compiled if (m := rx.fullmatch(key))), None)
        if match is None:
            if not any(d.fullmatch(key) for d in drops):
                problems.append(f"unexpected key {key} {_shape(value)}: no rule maps it")
            continue
        m, rule = match
        if rule.target not in skeleton:
            problems.append(f"{key}: rule target {rule.target} is not a model parameter")
            continue
        expected = _shape(skeleton[rule.target])
        layer = int(m.group("layer")) if rule.stacked else None
        if rule.stacked:
            expected = expected[1:]
        failed.setdefault(rule.target, set()).add(layer)
        try:
            array = np.asarray(rule.transform(np.asarray(value)))
        except ValueError as e:  # e.g. a reshape of a wrongly sized tensor
            problems.append(
                f"{key}: shape {_shape(value)} cannot be mapped to {rule.target} "
                f"(expected {expected}): {e}"
            )
            continue
        if array.shape != expected:
            problems.append(
                f"{key}: found shape {_shape(value)} (-> {array.shape}), expected {expected} "
                f"for {rule.target}"
            )
            continue
        failed[rule.target].discard(layer)
        if layer is not None:
            slot = pieces.setdefault(rule.target, {})
            if layer in slot:
                problems.append(f"{key}: {rule.target}[{layer}] already filled by {slot[layer][0]}")
            slot[layer] = (key, array)
        elif rule.target in filled:
            problems.append(f"{key}: {rule.target} already filled by {origin[rule.target]}")
        else:
            filled[rule.target], origin[rule.target] = array, key

    for target, slot in pieces.items():
        depth = _shape(skeleton[target])[0]
        extra = sorted(i for i in slot if i >= depth)
        if extra:
            problems.append(f"{target}: layers {extra} are beyond the model depth {depth}")
        missing = [i for i in range(depth) if i not in slot]
        if missing:
            continue  # reported below with the other missing targets
        filled[target] = np.stack([slot[i][1] for i in range(depth)])

    for path, like in skeleton.items():
        if path in filled:
            continue
        depth = _shape(like)[0] if path in pieces else None
        absent = {i for i in range(depth) if i not in pieces[path]} if depth else {None}
        if absent <= failed.get(path, set()):
            continue  # every missing part was already reported with its source key
        rule = next((r for r in rules if r.target == path), None)
        hint = f" (from keys matching {rule.source})" if rule else " (no rule fills it)"
        if path in pieces:
            have = sorted(pieces[path])
            hint += f"; layers present: {have}, expected 0..{_shape(like)[0] - 1}"
        problems.append(f"missing parameter {path} {_shape(like)}{hint}")

    if problems:
        raise ConversionError(source_name, problems)
    return filled
