"""A small VGG (Simonyan & Zisserman 2014): stacks of 3x3 convolutions with max pooling."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from .. import nn

__all__ = ["VGG"]


class VGG(nn.Sequential):
    """3x3 conv (+ BatchNorm) + ReLU blocks; ``"M"`` in ``config`` is a 2x2 max pool; then a
    Linear classifier with dropout. The default suits 32x32 CIFAR images (VGG-8-ish, 0.3M weights).

    >>> VGG(input_size=32)(ember.randn(2, 3, 32, 32)).shape   # (2, 10)
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
                 config: Sequence[int | str] = (32, 32, "M", 64, 64, "M", 128, 128, "M"),
                 batch_norm: bool = True, hidden: int = 256, dropout: float = 0.5):
        layers: list[tuple[str, nn.Module]] = []
        c, size, n = in_channels, input_size, 0
        for v in config:
            if v == "M":
                layers.append((f"pool{len(layers)}", nn.MaxPool2d(2)))
                size //= 2
                continue
            n += 1
            layers.append((f"conv{n}", nn.Conv2d(c, int(v), 3, padding=1, bias=not batch_norm)))
            if batch_norm:
                layers.append((f"bn{n}", nn.BatchNorm2d(int(v))))
            layers.append((f"relu{n}", nn.ReLU()))
            c = int(v)
        if size < 1:
            raise ValueError(f"VGG: input_size {input_size} is too small for the {list(config).count('M')} "
                             "pooling layers in config")
        layers += [("flatten", nn.Flatten()), ("fc1", nn.Linear(c * size * size, hidden)),
                   ("relu_fc", nn.ReLU()), ("drop", nn.Dropout(dropout)), ("fc2", nn.Linear(hidden, num_classes))]
        super().__init__(OrderedDict(layers))
