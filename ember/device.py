"""Device names: ``cpu``, ``cuda``, ``cuda:1``. Device objects are interned, so ``is`` compares."""
from __future__ import annotations


class Device:
    """A place where tensors live, e.g. ``ember.device("cuda:0")``."""

    __slots__ = ("type", "index")

    def __init__(self, type: str, index: int | None):
        self.type = type
        self.index = index

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + (f", index={self.index})" if self.index is not None else ")")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and other.type == self.type and other.index == self.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):  # copy/deepcopy/pickle give back the interned object
        return (device, (str(self),))


_interned: dict = {}
KNOWN_TYPES = ("cpu", "cuda")


def device(spec) -> Device:
    """Parse ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a Device into an interned Device."""
    if isinstance(spec, Device):
        return spec
    d = _interned.get(spec)
    if d is not None:
        return d
    s = str(spec)
    kind, _, idx = s.partition(":")
    if kind not in KNOWN_TYPES or (idx and not idx.isdigit()) or (kind == "cpu" and idx):
        from .errors import DeviceError
        raise DeviceError(f"unknown device {spec!r}: use 'cpu', 'cuda' or 'cuda:N'")
    index = int(idx) if idx else (0 if kind == "cuda" else None)
    key = (kind, index)
    d = _interned.get(key)
    if d is None:
        d = _interned[key] = Device(kind, index)
    _interned[spec] = d
    return d


cpu = device("cpu")
