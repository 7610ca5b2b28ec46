"""CIFAR-style ResNet (He et al. 2016, section 4.2): 6n+2 layers in three stages of 16, 32, 64 channels."""
from __future__ import annotations

from .. import nn
from ..ops.movement import pad
from ..tensor import Tensor

__all__ = ["BasicBlock", "ResNet", "resnet20"]


class BasicBlock(nn.Module):
    """Two 3x3 conv + BatchNorm layers with an identity shortcut. Where the shape changes, the
    shortcut subsamples and zero-pads the channels (the paper's option A: no extra weights)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.stride, self.extra = stride, planes - in_planes

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride == 1 and self.extra == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]                 # (N, C, H/s, W/s)
        half = self.extra // 2
        return pad(x, (0, 0, 0, 0, half, self.extra - half))     # zero channels on both sides

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """conv 3x3 -> three stages of ``n`` BasicBlocks (16, 32, 64 channels; stride 2 between
    stages) -> global average pool -> Linear. depth = 6n + 2.

    >>> ResNet(depth=20)(ember.randn(2, 3, 32, 32)).shape   # (2, 10)
    """

    def __init__(self, depth: int = 20, in_channels: int = 3, num_classes: int = 10, width: int = 16):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"ResNet: depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        stages, planes = [], width
        for i, w in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(planes, w, stride=2 if i > 0 and j == 0 else 1))
                planes = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))                  # (N, 16, H, W)
        x = self.layer3(self.layer2(self.layer1(x)))            # (N, 64, H/4, W/4)
        return self.fc(x.mean(dim=(2, 3)))                      # (N, classes)


def resnet20(in_channels: int = 3, num_classes: int = 10, width: int = 16) -> ResNet:
    """ResNet-20 for 32x32 images: 0.27M parameters. ``resnet20(num_classes=10)``."""
    return ResNet(20, in_channels, num_classes, width)
