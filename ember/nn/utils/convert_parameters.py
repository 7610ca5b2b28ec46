"""Flatten parameters into one vector and write such a vector back."""
from __future__ import annotations

from typing import Iterable

from ...autograd import no_grad
from ...errors import ShapeError
from ...ops import cat
from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """One 1-D tensor holding every parameter, flattened, in order (differentiable).

    Example: vec = parameters_to_vector(model.parameters())
    """
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place.

    Example: vector_to_parameters(vec, model.parameters())
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected an ember Tensor, got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ShapeError(f"vector_to_parameters: expected a 1-D vector, got shape {tuple(vec.shape)}; "
                         f"flatten it with vec.reshape(-1)")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.shape[0] != total:
        raise ShapeError(f"vector_to_parameters: the vector has {vec.shape[0]} elements but the "
                         f"parameters hold {total}")
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(vec[offset:offset + n].reshape(p.shape))
            offset += n
