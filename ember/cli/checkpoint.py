"""Reading model weights from what `ember train` writes: a training checkpoint or a plain state dict."""
from __future__ import annotations

from pathlib import Path

import ember
from ..serialization import CheckpointError

__all__ = ["read_weights"]


def read_weights(path: str | Path) -> tuple[dict, dict]:
    """(model state dict, the whole file) of a checkpoint of `ember train` or an `ember.save`d state dict.

    Example: state, ckpt = read_weights("runs/digits_cnn/last.safetensors"); model.load_state_dict(state)
    """
    obj = ember.load(path)
    if isinstance(obj, dict) and "rng" in obj and isinstance(obj.get("model"), dict):
        return obj["model"], obj
    if isinstance(obj, dict) and obj and all(isinstance(v, ember.Tensor) for v in obj.values()):
        return obj, {}
    raise CheckpointError(f"{path} holds neither a training checkpoint nor a model state dict "
                          "(expected a file written by `ember train` or ember.save(model.state_dict(), ...))")
