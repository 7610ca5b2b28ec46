"""The Backend interface: what a device type must provide to run ember's ops."""
from __future__ import annotations

from typing import Any, Callable


class Backend:
    """Storage and kernels for one device type.

    ``xp`` is an array module with NumPy's API (numpy, cupy). An op's ``impl`` is either the name
    of an ``xp`` function ("exp") or a factory ``impl(xp) -> kernel``; ``kernel`` resolves it once.
    """

    name = "base"
    xp: Any = None

    def kernel(self, impl) -> Callable:
        return getattr(self.xp, impl) if isinstance(impl, str) else impl(self.xp)

    def from_host(self, array, dev):
        """Copy a NumPy array onto this backend's device."""
        raise NotImplementedError

    def to_host(self, array):
        """Copy an array of this backend to a NumPy array."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued work (a no-op on CPU)."""

    def devices(self) -> list[str]:
        raise NotImplementedError
