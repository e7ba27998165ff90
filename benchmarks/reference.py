"""The original PyTorch Faceptor, imported at run time from a user's checkout (never in this repo).

`import_reference(DIR)` puts DIR/faceptor_project on sys.path, installs CPU stand-ins for what does
not run beside the CPU torch (the CUDA `p2i` op, timm's layers, `.cuda()`) and imports the
modules the benchmarks use.
`patch_dims` makes the original's own construction path (`FaRLVisualFeatures`, `DecoderNewHolder`,
`AIOEntry`) build a model of any width: it wraps the constructors that hard-code ViT-B sizes.
Depth stays 12: the decoder reads level 11. torch is imported only here, only when called.
"""

import dataclasses
import os
import sys
import types

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dims:
    """Sizes of an original Faceptor model (defaults: Faceptor-Base/Full, ViT-B/16 at 512 px)."""

    width: int = 768
    heads: int = 12
    mlp_dim: int = 3072
    depth: int = 12
    patch: int = 16
    pe_grid: int = 32  # the stored positional grid: forced_input_resolution = pe_grid · patch
    drop_path_rate: float = 0.0
    decoder_hidden: int = 256
    decoder_heads: int = 8
    decoder_ffn: int = 2048
    decoder_layers: int = 9
    embed_dim: int = 512

    @classmethod
    def from_model_config(cls, model) -> "Dims":
        """From a config's `model` entry (configs/recipe.py's encoder/decoder dicts)."""
        e, d = model.encoder, model.decoder
        if int(e.depth) != 12:
            raise SystemExit(f"--reference: the original needs depth 12 (got {e.depth})")
        return cls(
            width=int(e.width), heads=int(e.heads), mlp_dim=int(e.mlp_dim), depth=int(e.depth),
            patch=int(e.patch), pe_grid=int(e.pe_grid), drop_path_rate=float(e.drop_path_rate),
            decoder_hidden=int(d.hidden), decoder_heads=int(d.heads), decoder_ffn=int(d.ffn),
            decoder_layers=int(d.layers), embed_dim=int(model.embed_dim),
        )  # fmt: skip


class HeatmapTargets:
    """Stand-in for the CUDA `p2i` op, which only renders AlignLoss's target heatmaps.

    The first call for given points renders them with our `faceptor_jax.heatmaps.render_heatmaps`
    (equal to p2i's 'gaussian_awing'/'max' kernel to float rounding) and caches the result; later
    calls with equal points return the cached tensor. `renders` counts real renders, so a caller
    can check that none happened inside a timed region.
    """

    def __init__(self):
        self.cache: list = []
        self.renders = 0

    def __call__(self, points, colors, batch_inds, background, kernel_radius, kernel_kind_str,
                 reduce):  # fmt: skip
        import torch

        for pts, heatmaps in self.cache:
            if pts.shape == points.shape and torch.equal(pts, points):
                return heatmaps
        n, _, h, w = background.shape
        if (kernel_kind_str, reduce, h) != ("gaussian_awing", "max", w) or n != points.shape[0]:
            raise NotImplementedError(
                f"p2i stand-in: only one point per square map, 'gaussian_awing', 'max' "
                f"(got {kernel_kind_str!r}, {reduce!r}, background {tuple(background.shape)})"
            )
        if not bool(torch.all(colors == 1)):
            raise NotImplementedError("p2i stand-in: point colours other than 1")
        import jax.numpy as jnp

        from faceptor_jax import heatmaps as hm

        # p2i gets heatmap-pixel points q; render_heatmaps takes normalised g = (q + 0.5) / size.
        g = (points.detach().cpu().numpy().astype(np.float32) + 0.5) / w
        rendered = np.array(hm.render_heatmaps(jnp.asarray(g[:, None]), w, float(kernel_radius)))
        out = torch.maximum(background, torch.from_numpy(rendered).to(background))
        self.cache.append((points.detach().clone(), out))
        self.renders += 1
        return out


def _timm_layers(torch) -> types.ModuleType:
    """timm needs torchvision, whose wheel does not load beside the CPU torch: the two names the
    backbone imports, with timm's semantics."""
    layers = types.ModuleType("timm.models.layers")

    class DropPath(torch.nn.Module):
        """timm's DropPath: in training, drop the residual branch per index of dim 0 with
        probability p and scale the kept ones by 1/(1−p). FaRL's blocks run sequence-first, so
        dim 0 is the token position (one mask shared over the batch), as our drop_path 'token'."""

        def __init__(self, drop_prob: float = 0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1.0 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            return x * mask.div_(keep)

    layers.DropPath, layers.trunc_normal_ = DropPath, torch.nn.init.trunc_normal_
    return layers


class AttrDict(dict):
    """A dict with attribute access, nested (what the original's configs are, via easydict)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for k, v in self.items():
            if isinstance(v, dict) and not isinstance(v, AttrDict):
                self[k] = AttrDict(v)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    __setattr__ = dict.__setitem__


def _stand_in(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def import_reference(root: str) -> types.SimpleNamespace:
    """Import the original's model, loss, model-entry and LR-schedule modules from a checkout."""
    import torch

    project = os.path.join(os.path.abspath(root), "faceptor_project")
    if not os.path.isdir(os.path.join(project, "core")):
        raise SystemExit(f"--reference {root}: no faceptor_project/core in it")
    if project not in sys.path:
        sys.path.insert(0, project)
    targets = HeatmapTargets()
    _stand_in("core.model.ext.p2i_ops", p2i=targets)  # JIT-compiles a CUDA extension on import
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        for name in ("timm", "timm.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["timm.models.layers"] = _timm_layers(torch)
    try:
        import audtorch  # noqa: F401  (imported, never used, by several loss files)
    except ImportError:
        _stand_in("audtorch")
    try:
        import easydict  # noqa: F401  (imported, unused, by the LR schedulers)
    except ImportError:
        _stand_in("easydict", EasyDict=AttrDict)
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self  # called unconditionally by the decoder
    import core.lr_scheduler as lr_scheduler
    import core.model.backbone.farl_vit as farl_vit
    import core.model.heads.decoder as decoder
    import core.model.heads.task_specific_heads as task_heads
    import core.model.loss as loss
    import core.model.model_entry as model_entry

    return types.SimpleNamespace(
        root=root, torch=torch, farl_vit=farl_vit, decoder=decoder, task_heads=task_heads,
        loss=loss, model_entry=model_entry, lr_scheduler=lr_scheduler, heatmap_targets=targets,
        originals={},
    )  # fmt: skip


def patch_dims(ref: types.SimpleNamespace, dims: Dims) -> None:
    """Make the original's constructors build `dims` (random init: no FaRL file is read)."""
    torch, fv, dec = ref.torch, ref.farl_vit, ref.decoder
    for name in ("TransformerDecoderLevel", "TransformerDecoderLevelAddLevel"):
        ref.originals.setdefault(name, getattr(dec, name))
    ref.originals.setdefault("FeatureInterpreter_v2", dec.FeatureInterpreter_v2)

    def load_farl(model_type, model_file, drop_path_rate):
        vt = fv.VisualTransformer(
            input_resolution=224, patch_size=dims.patch, width=dims.width, layers=dims.depth,
            heads=dims.heads, output_dim=512, drop_path_rate=drop_path_rate,
        )  # fmt: skip
        if dims.mlp_dim != 4 * dims.width:  # the original hard-codes 4·width
            for blk in vt.transformer.resblocks:
                blk.mlp.c_fc = torch.nn.Linear(dims.width, dims.mlp_dim)
                blk.mlp.c_proj = torch.nn.Linear(dims.mlp_dim, dims.width)
        return vt

    def decoder_of(cls):
        return lambda **kw: cls(
            in_channels=dims.width, hidden_dim=dims.decoder_hidden, nheads=dims.decoder_heads,
            dim_feedforward=dims.decoder_ffn, num_layers=dims.decoder_layers, **kw,
        )  # fmt: skip

    fv.load_farl = load_farl
    for name in ("TransformerDecoderLevel", "TransformerDecoderLevelAddLevel"):
        setattr(dec, name, decoder_of(ref.originals[name]))
    fi2 = ref.originals["FeatureInterpreter_v2"]
    dec.FeatureInterpreter_v2 = lambda: fi2(in_features=dims.width, out_features=dims.embed_dim)


def build_backbone(ref: types.SimpleNamespace, dims: Dims):
    """The original's `FaRLVisualFeatures` at `dims` (call `patch_dims` first)."""
    return ref.farl_vit.FaRLVisualFeatures(
        "base", None, dims.drop_path_rate, forced_input_resolution=dims.pe_grid * dims.patch
    )


def build_heads(ref: types.SimpleNamespace, names, dims: Dims, image_sizes=None):
    """The original's `DecoderNewHolder` (stage 1: `TransformerDecoderLevel` on level 11) for our
    tasks `names`; parsing outputs are resized to `image_sizes[name]` (default: the task's own)."""
    from faceptor_jax import tasks

    specs = [tasks.get(n) for n in names]
    kinds = {"feature": "feature_v2", "value": "value", "map": "map_v2"}
    outs = {"none": "None", "parsing": "ParsingOutput", "landmarks": "AlignOutput"}
    heads = ref.decoder.DecoderNewHolder(
        task_names=[t.original for t in specs],
        query_nums=[t.queries or 2 for t in specs],
        interpreter_types=[kinds[t.type.kind] for t in specs],
        out_types=[outs[t.type.output] for t in specs],
        hidden_dim=dims.decoder_hidden,
        decoder_type="TransformerDecoderLevel",
        levels=[11],
    )
    for t in specs:
        if t.type.output == "parsing":  # ParsingOutput hard-codes 512×512
            size = (image_sizes or {}).get(t.name, t.input_size)
            heads.out_modules[t.original].out_size = [size, size]
    return heads
