"""Image transforms for samples of shape (C, H, W) (Normalize also takes batches (N, C, H, W)).

Each transform takes a numpy array or an ember Tensor and returns the same kind. Random
transforms draw from `generator` (default: ember's default generator, read at call time), so
`ember.manual_seed(s)` makes them reproducible.

Example: t = Compose([ToTensor(), RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(m, s)])
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

import ember
from .dataset import DataError

__all__ = ["Compose", "ToTensor", "Normalize", "RandomCrop", "RandomHorizontalFlip"]


def _as_array(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """Return (numpy array, was it an ember Tensor)."""
    if isinstance(x, ember.Tensor):
        return x.detach().cpu().numpy(), True
    if isinstance(x, np.ndarray):
        return x, False
    raise DataError(f"{name}: expected a numpy array or ember Tensor of shape (C, H, W), "
                    f"got {type(x).__name__}; put ToTensor() first")


def _like(arr: np.ndarray, was_tensor: bool) -> Any:
    return ember.from_numpy(np.ascontiguousarray(arr)) if was_tensor else arr


def _chw(arr: np.ndarray, name: str) -> None:
    if arr.ndim != 3:
        raise DataError(f"{name}: expected one image of shape (C, H, W), got shape {arr.shape}; "
                        "give grayscale images a channel axis, e.g. x[None]")


def _generator(gen: "ember.random.Generator | None") -> np.random.Generator:
    return (gen if gen is not None else ember.random.default_generator).np


class Compose:
    """Apply transforms in order. Example: Compose([ToTensor(), Normalize([0.5], [0.5])])"""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToTensor:
    """numpy image -> float32 ember Tensor (C, H, W); integer pixels are divided by `scale`.

    Example: ToTensor()(np.zeros((28, 28), np.uint8)).shape == (1, 28, 28)

    A 2-D (H, W) image gains a channel axis. channels_last=True moves (H, W, C) to (C, H, W).
    """

    def __init__(self, scale: float = 255.0, channels_last: bool = False) -> None:
        self.scale, self.channels_last = scale, channels_last

    def __call__(self, x: Any) -> Any:
        arr, _ = _as_array(x, "ToTensor")
        if arr.ndim == 2:
            arr = arr[None]
        elif self.channels_last and arr.ndim == 3:
            arr = arr.transpose(2, 0, 1)
        _chw(arr, "ToTensor")
        if arr.dtype.kind in "uib":
            arr = arr.astype(np.float32) / np.float32(self.scale)
        return ember.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

    def __repr__(self) -> str:
        return f"ToTensor(scale={self.scale}, channels_last={self.channels_last})"


class Normalize:
    """(x - mean[c]) / std[c] per channel. Example: Normalize([0.1307], [0.3081])(x)"""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or np.any(self.std == 0):
            raise DataError(f"Normalize: mean and std need one non-zero std per channel, got "
                            f"mean {self.mean.tolist()} and std {self.std.tolist()}")

    def __call__(self, x: Any) -> Any:
        arr, was_tensor = _as_array(x, "Normalize")
        if arr.ndim < 3 or arr.shape[-3] != len(self.mean):
            raise DataError(f"Normalize: got shape {arr.shape}, expected (C, H, W) or (N, C, H, W) "
                            f"with C = {len(self.mean)} (one mean/std per channel)")
        if arr.dtype.kind != "f":
            arr = arr.astype(np.float32)
        out = (arr - self.mean[:, None, None].astype(arr.dtype)) / self.std[:, None, None].astype(arr.dtype)
        return _like(out, was_tensor)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad each side by `padding` (with `fill`), then cut a random size x size window.

    Example: RandomCrop(32, padding=4)(image)   # the CIFAR-10 augmentation
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0, fill: float = 0,
                 generator: "ember.random.Generator | None" = None) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if padding < 0:
            raise DataError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding, self.fill, self.generator = padding, fill, generator

    def __call__(self, x: Any) -> Any:
        arr, was_tensor = _as_array(x, "RandomCrop")
        _chw(arr, "RandomCrop")
        p = self.padding
        if p:
            arr = np.pad(arr, ((0, 0), (p, p), (p, p)), constant_values=self.fill)
        (h, w), (th, tw) = arr.shape[1:], self.size
        if th > h or tw > w:
            raise DataError(f"RandomCrop: crop {self.size} is larger than the padded image {(h, w)}")
        rng = _generator(self.generator)
        i, j = int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))
        return _like(arr[:, i:i + th, j:j + tw], was_tensor)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability p. Example: RandomHorizontalFlip(0.5)(image)"""

    def __init__(self, p: float = 0.5, generator: "ember.random.Generator | None" = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise DataError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, x: Any) -> Any:
        arr, was_tensor = _as_array(x, "RandomHorizontalFlip")
        _chw(arr, "RandomHorizontalFlip")
        if _generator(self.generator).random() < self.p:
            return _like(arr[:, :, ::-1], was_tensor)
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"
