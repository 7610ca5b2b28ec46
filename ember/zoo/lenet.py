"""LeNet-5 (LeCun et al. 1998): two convolution + pooling stages, then three fully connected layers."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from .. import nn
from .mlp import make_activation

__all__ = ["LeNet5"]


class LeNet5(nn.Sequential):
    """LeNet-5 with the classic sizes (6 and 16 channels, 120 and 84 units) for 28x28 inputs;
    ``input_size`` and ``kernel_size`` adapt it to smaller images such as the 8x8 digits.

    >>> LeNet5(input_size=8, kernel_size=3)(ember.randn(4, 1, 8, 8)).shape   # (4, 10)

    conv1 pads to keep the size (28x28 MNIST gets the 32x32 field of the original); conv2 is
    unpadded as in the paper when that leaves at least 4x4, else padded (8x8 digits: 4x4 -> 4x4).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
                 kernel_size: int = 5, channels: Sequence[int] = (6, 16), hidden: Sequence[int] = (120, 84),
                 activation: str = "relu", dropout: float = 0.0):
        c1, c2 = channels
        k = kernel_size
        size = input_size // 2                       # after conv1 (same) and pool1
        pad2 = 0 if size - k + 1 >= 4 else k // 2
        size = (size + 2 * pad2 - k + 1) // 2        # after conv2 and pool2
        if size < 1:
            raise ValueError(f"LeNet5: input_size {input_size} is too small for kernel_size {k}")
        layers = [("conv1", nn.Conv2d(in_channels, c1, k, padding=k // 2)), ("act1", make_activation(activation)),
                  ("pool1", nn.MaxPool2d(2)),
                  ("conv2", nn.Conv2d(c1, c2, k, padding=pad2)), ("act2", make_activation(activation)),
                  ("pool2", nn.MaxPool2d(2)), ("flatten", nn.Flatten())]
        width = c2 * size * size
        for i, h in enumerate(hidden):
            layers += [(f"fc{i + 1}", nn.Linear(width, h)), (f"act{i + 3}", make_activation(activation))]
            if dropout > 0:
                layers.append((f"drop{i + 1}", nn.Dropout(dropout)))
            width = h
        layers.append((f"fc{len(hidden) + 1}", nn.Linear(width, num_classes)))
        super().__init__(OrderedDict(layers))

