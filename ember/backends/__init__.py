"""Array storage and raw kernels, one backend per device type. Nothing above this layer imports
numpy-vs-cupy specifics: ops ask ``backend_for(device)`` for the array module and kernels."""
from __future__ import annotations

from ..device import Device
from .base import Backend
from .numpy_backend import NumpyBackend

_backends: dict = {}


def backend_for(dev: Device) -> Backend:
    """The backend that stores tensors on ``dev`` (created on first use)."""
    b = _backends.get(dev.type)
    if b is None:
        if dev.type == "cpu":
            b = NumpyBackend()
        else:
            from .cupy_backend import CupyBackend
            b = CupyBackend()
        _backends[dev.type] = b
    return b



