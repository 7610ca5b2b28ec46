"""GPU backend: CuPy arrays. Imported only when a tensor is moved to a CUDA device."""
from __future__ import annotations

from ..errors import DeviceError
from .base import Backend


def _import_cupy():
    try:
        import cupy
    except ImportError:
        raise DeviceError("a 'cuda' device needs CuPy, which is not installed: "
                          "pip install cupy-cuda12x (and an NVIDIA GPU with its driver)") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # driver missing or no GPU
        raise DeviceError(f"CuPy is installed but no CUDA GPU is usable ({e}); use device='cpu'") from None
    if n == 0:
        raise DeviceError("CuPy is installed but no CUDA GPU was found; use device='cpu'")
    return cupy


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        self.xp = _import_cupy()

    def from_host(self, array, dev):
        with self.xp.cuda.Device(dev.index or 0):
            return self.xp.asarray(array)

    def to_host(self, array):
        return self.xp.asnumpy(array)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_device().synchronize()

    def devices(self) -> list[str]:
        return [f"cuda:{i}" for i in range(self.xp.cuda.runtime.getDeviceCount())]
