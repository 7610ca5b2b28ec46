"""`ember export CHECKPOINT`: write a trained model in another format.

Formats: ``--safetensors OUT`` (the model's weights alone, without optimizer state) always works;
``--onnx OUT`` needs the onnx package (``pip install ember[onnx]``) and the run's ``--config`` to
rebuild the model; the file takes any batch size.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import ember
from ..errors import EmberError
from .checkpoint import read_weights

__all__ = ["FORMATS", "available_formats", "export"]

# format -> (module it needs, or None; what it writes)
FORMATS = {"safetensors": (None, "the model's weights alone (a state dict, loads with ember.load)"),
           "onnx": ("onnx", "an ONNX model with a dynamic batch dimension (ember.onnx.export; needs --config)")}


def available_formats() -> dict[str, bool]:
    """Which export formats this installation has. ``available_formats()["safetensors"] is True``."""
    return {name: mod is None or importlib.util.find_spec(mod) is not None for name, (mod, _) in FORMATS.items()}


def describe_formats() -> str:
    have = available_formats()
    return "\n".join(f"  --{name:<12} {'available' if have[name] else 'unavailable (pip install ' + FORMATS[name][0] + ')'}"
                     f": {FORMATS[name][1]}" for name in FORMATS)


def export(checkpoint: str, outputs: dict[str, str], config: str | None = None, overrides=()) -> list[str]:
    """Write ``checkpoint``'s model in each requested format; returns what was written.

    Example: export("runs/digits_cnn/last.safetensors", {"safetensors": "model.safetensors"})
    """
    have = available_formats()
    missing = [f for f in outputs if not have[f]]
    if missing:
        raise EmberError(f"export: format {', '.join(missing)} is not available: "
                         f"it needs the package(s) {', '.join(FORMATS[f][0] for f in missing)} "
                         f"(pip install {' '.join(FORMATS[f][0] for f in missing)}). "
                         f"Formats:\n{describe_formats()}")
    state, _ = read_weights(checkpoint)
    written = []
    if "safetensors" in outputs:
        ember.save(state, outputs["safetensors"])
        written.append(outputs["safetensors"])
    if "onnx" in outputs:
        if config is None:
            raise EmberError("export --onnx: give the run's --config CONFIG.toml so the model can be rebuilt")
        from .build import build_model
        from .config import load_config
        from .data import build_data
        cfg = load_config(config, list(overrides))
        data = build_data(cfg)
        model = build_model(cfg, data, flat_logits=False)
        model.load_state_dict(state)
        model.eval()
        x = data.test.__getitems__([0, 1][:len(data.test)])[0]
        importlib.import_module("ember.onnx").export(model, (x,), outputs["onnx"],
                                                     dynamic_axes={"input": {0: "batch"}})
        written.append(outputs["onnx"])
    return [str(Path(p)) for p in written]
