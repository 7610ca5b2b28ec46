"""CPU backend: NumPy arrays; matrix products go through NumPy's BLAS."""
from __future__ import annotations

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def from_host(self, array, dev):
        return array

    def to_host(self, array):
        return array

    def devices(self) -> list[str]:
        return ["cpu"]
