"""A multilayer perceptron: Flatten, then Linear + activation (+ dropout) per hidden layer."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from .. import nn

__all__ = ["MLP", "make_activation"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "sigmoid": nn.Sigmoid}


def make_activation(name: str) -> nn.Module:
    """An activation layer by name. ``make_activation("relu")``."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """Flatten -> [Linear -> activation -> Dropout] per hidden width -> Linear to the classes.

    >>> MLP(in_features=64, hidden=(128, 64), num_classes=10)(ember.randn(8, 1, 8, 8)).shape   # (8, 10)
    """

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (128,), num_classes: int = 10,
                 activation: str = "relu", dropout: float = 0.0):
        layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        width = in_features
        for i, h in enumerate(hidden):
            layers += [(f"fc{i + 1}", nn.Linear(width, h)), (f"act{i + 1}", make_activation(activation))]
            if dropout > 0:
                layers.append((f"drop{i + 1}", nn.Dropout(dropout)))
            width = h
        layers.append(("out", nn.Linear(width, num_classes)))
        super().__init__(OrderedDict(layers))

