"""The original PyTorch SwinFace, imported at run time from a user's checkout (never in this repo).

`import_swinface(DIR)` puts DIR/swinface_project on sys.path with CPU stand-ins for what does not
import beside the CPU torch (timm's package import pulls in a CUDA-linked torchvision; the
`analysis` package's `__init__` imports mxnet and the dataset code) and returns the modules that
build the model. `build(ref)` builds the full model exactly as the original's `model.build_model`
with its `SwinFaceCfg`. torch is imported only here, only when called.
"""

import os
import sys
import types

from benchmarks.reference import AttrDict, _timm_layers


def import_swinface(root: str) -> types.SimpleNamespace:
    import torch

    project = os.path.join(os.path.abspath(root), "swinface_project")
    if not os.path.isfile(os.path.join(project, "backbones", "swin.py")):
        raise SystemExit(f"--reference {root}: no swinface_project/backbones/swin.py in it")
    if project not in sys.path:
        sys.path.insert(0, project)
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        for name in ("timm", "timm.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        layers = _timm_layers(torch)
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, list | tuple) else (x, x)
        sys.modules["timm.models.layers"] = layers
    if "analysis" not in sys.modules:
        package = types.ModuleType("analysis")
        package.__path__ = [os.path.join(project, "analysis")]
        sys.modules["analysis"] = package
    import model as model_entry  # swinface_project/model.py

    return types.SimpleNamespace(torch=torch, model_entry=model_entry)


def build(ref: types.SimpleNamespace):
    """The full SwinFace (`ModelBox`) with the original's own random init, eval mode."""
    cfg = AttrDict(
        network="swin_t", embedding_size=512, fam_in_chans=2112, fam_kernel_size=3,
        fam_conv_shared=False, fam_conv_mode="split", fam_channel_attention="CBAM",
        fam_spatial_attention=None, fam_pooling="max", fam_la_num_list=[2] * 11,
        fam_feature="all",
    )  # fmt: skip
    return ref.model_entry.build_model(cfg).eval()


def container(model) -> dict:
    """The released checkpoint's layout: four sub-module state dicts, no `module.` prefix."""
    return {
        f"state_dict_{p}": getattr(model, p).state_dict() for p in ("backbone", "fam", "tss", "om")
    }
