"""Safe reading of PyTorch checkpoint files into {key: np.ndarray}.

`torch.load(weights_only=True)` only rebuilds tensors and plain containers; anything else in the
pickle (arbitrary classes, functions) is refused by torch before it runs. torch is imported here
and nowhere in the `faceptor_jax` package.
"""

import os
from collections.abc import Mapping
from typing import Any

from faceptor_jax import errors
from faceptor_jax.checkpoint import flatten_paths


class CheckpointError(errors.CheckpointError):
    """A checkpoint file that cannot be used, with a message naming the file and the problem."""


def load_torch_file(path: str | os.PathLike) -> Any:
    """`torch.load(path, weights_only=True)` with errors that name the file."""
    import torch  # conversion-time dependency only

    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for foreign or hostile files
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint with weights_only=True "
            f"(a torch.save'd dict of tensors was expected): {type(e).__name__}: {e}"
        ) from e


def read_state_dict(path: str | os.PathLike, container_key: str | None = "state_dict") -> dict:
    """Load a checkpoint and return its state dict as {key: float np.ndarray}.

    The file may hold the state dict directly or under `container_key` (FaRL and Faceptor both
    use {'state_dict': ...}). Entries that are not tensors are rejected with their keys named.
    """
    return state_dict_from(load_torch_file(path), path, container_key)


def state_dict_from(obj: Any, path: str | os.PathLike, container_key: str | None = "state_dict"):
    """The state dict of an already loaded checkpoint object (see `read_state_dict`)."""
    import torch

    if isinstance(obj, Mapping) and container_key and container_key in obj:
        obj = obj[container_key]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{os.fspath(path)}: expected a state dict (a mapping of names to tensors"
            f"{f', possibly under {container_key!r}' if container_key else ''}), "
            f"found {type(obj).__name__}"
        )
    flat = flatten_paths(obj)
    not_tensors = [k for k, v in flat.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{os.fspath(path)}: not a state dict: entries that are not tensors: "
            + ", ".join(f"{k} ({type(flat[k]).__name__})" for k in not_tensors[:10])
        )
    return {k: v.detach().cpu().numpy() for k, v in flat.items()}
