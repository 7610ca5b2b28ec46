"""ember's exceptions. Every error a user can cause is an EmberError subclass with a message
that names the op, the shapes/dtypes involved and, where there is one, the fix."""


class EmberError(Exception):
    """Base class of every error ember raises on purpose."""


class ShapeError(EmberError, ValueError):
    """Operand shapes do not fit the op (matmul, broadcasting, reshape...)."""


class DTypeError(EmberError, TypeError):
    """An operand's dtype is not allowed for the op."""


class DeviceError(EmberError, RuntimeError):
    """Operands live on different devices, or a device is not available."""


class IndexRangeError(EmberError, IndexError):
    """An index (class target, embedding id) outside the valid range."""


class AutogradError(EmberError, RuntimeError):
    """A gradient cannot be computed as asked (non-scalar backward, freed graph, in-place...)."""


def shape_str(*shapes) -> str:
    """Format shapes the way messages show them: (2, 3) and (4,)."""
    return " and ".join(str(tuple(s)) for s in shapes)
