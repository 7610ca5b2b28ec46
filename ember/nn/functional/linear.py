"""Functional forms of the layers in ``nn/linear.py``: linear, embedding, dropout."""
from __future__ import annotations

from ...creation import rand
from ...errors import DTypeError, ShapeError
from ...ops import elementwise as E
from ...ops.nnops import check_index_range
from ...tensor import Tensor

__all__ = ["linear", "embedding", "dropout"]


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, with weight of shape (out_features, in_features). ``F.linear(x, w, b)``."""
    if input.ndim == 0 or weight.ndim != 2 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input of shape {tuple(input.shape)} does not fit weight of shape "
                         f"{tuple(weight.shape)}: the input's last dimension must be in_features="
                         f"{weight.shape[1] if weight.ndim == 2 else '?'}")
    if input.ndim > 2:  # one 2-D GEMM (and 2-D GEMMs in backward) instead of a batched matmul
        out = input.reshape(-1, input.shape[-1]) @ weight.T
        out = out.reshape(input.shape[:-1] + (weight.shape[0],))
    else:
        out = input @ weight.T
    return out if bias is None else out + bias


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input``; the row ``padding_idx`` gets no
    gradient. ``F.embedding(ids, table)``."""
    n = weight.shape[0]
    check_index_range(input, n, "embedding: index", "embeddings (num_embeddings)")
    out = weight[input]
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += n
        keep = (input != padding_idx).unsqueeze(-1)
        out = E.where(keep, out, out.detach())  # same values; no gradient flows to the padding row
    return out


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only).
    Draws from ember's seeded generator. ``F.dropout(x, 0.1, training=True)``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if not input.dtype.is_floating_point:
        raise DTypeError(f"dropout: expected a floating-point input, got {input.dtype.name}")
    if p == 1.0:
        return input * 0.0
    keep = rand(*input.shape, dtype=input.dtype, device=input.device) >= p
    return input * keep * (1.0 / (1.0 - p))
