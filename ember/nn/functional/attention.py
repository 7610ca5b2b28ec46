"""Attention: scaled dot-product attention, and the multi-head attention forward that
nn.MultiheadAttention calls. Masks follow PyTorch: for ``scaled_dot_product_attention`` a bool
mask is True where attention is ALLOWED; for ``multi_head_attention_forward`` (as for
nn.MultiheadAttention) bool masks are True where attention is NOT allowed. Float masks are added
to the scores in both.

Rows whose every key is masked give zero attention weights (and zero output and gradients), as
PyTorch's scaled_dot_product_attention does. (nn.MultiheadAttention in PyTorch returns NaN for
such rows when need_weights=True and zeros when need_weights=False; ember gives zeros in both.)
"""
from __future__ import annotations

import math

import numpy as np

from ... import dtypes as D
from ...errors import DTypeError, EmberError, ShapeError
from ...ops.composite import softmax
from ...ops.elementwise import logical_not, where
from ...ops.reduce import amax
from ...tensor import Tensor
from .linear import dropout, linear

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

_NEG_INF = float("-inf")


def _masked_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim that gives 0 (not NaN) for rows that are all -inf."""
    m = amax(scores.detach(), dim=-1, keepdim=True)
    m = where(m == _NEG_INF, 0.0, m)
    e = (scores - m).exp()
    s = e.sum(dim=-1, keepdim=True)
    return e / where(s == 0.0, 1.0, s)


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, scale: float) -> tuple:
    """softmax(q k^T * scale + mask) v; ``mask`` is additive (float, -inf = blocked) or None.
    Returns (output, weights)."""
    scores = (q * scale) @ k.transpose(-2, -1)  # (..., L, S)
    if mask is None:
        w = softmax(scores, dim=-1)
    else:
        w = _masked_softmax(scores + mask)
    if dropout_p > 0.0:
        w = dropout(w, dropout_p)
    return w @ v, w


def _additive(mask: Tensor, true_means_blocked: bool, dtype) -> Tensor:
    """A bool or float mask -> an additive float mask (-inf where blocked)."""
    if mask.dtype.is_floating_point:
        return mask.to(dtype)
    if mask.dtype.name != "bool":
        raise DTypeError(f"attention: masks must be bool or floating point, got {mask.dtype.name}")
    blocked = mask if true_means_blocked else logical_not(mask)
    return where(blocked, _NEG_INF, 0.0).to(dtype)


def _causal(n: int, s: int, dev) -> Tensor:
    """Bool (n, s), True on and below the diagonal: the positions a query may attend to."""
    return Tensor._const(np.tri(n, s, 0, dtype=bool), D.bool_, dev)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(q k^T / sqrt(E) + mask) v over the last two dims, batch dims broadcast.
    ``attn_mask``: bool (True = may attend) or float (added). ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``."""
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(f"scaled_dot_product_attention: query, key and value need at least 2 dims "
                         f"(..., seq, features), got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: query {tuple(query.shape)} and key "
                         f"{tuple(key.shape)} must share the last dim, and key and value "
                         f"{tuple(value.shape)} the sequence dim (-2)")
    if is_causal and attn_mask is not None:
        raise EmberError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    n, s = query.shape[-2], key.shape[-2]
    if is_causal:
        attn_mask = _causal(n, s, query.device)
    mask = None if attn_mask is None else _additive(attn_mask, False, query.dtype)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return _attend(query, key, value, mask, dropout_p, scale)[0]


def multi_head_attention_forward(query: Tensor, key: Tensor, value: Tensor, num_heads: int,
                                 in_proj_weight: Tensor | None, in_proj_bias: Tensor | None,
                                 out_proj_weight: Tensor, out_proj_bias: Tensor | None,
                                 dropout_p: float = 0.0, training: bool = True,
                                 key_padding_mask: Tensor | None = None, need_weights: bool = True,
                                 attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                                 is_causal: bool = False, q_proj_weight: Tensor | None = None,
                                 k_proj_weight: Tensor | None = None, v_proj_weight: Tensor | None = None,
                                 batch_first: bool = False) -> tuple:
    """Multi-head attention on batched 3-D inputs ((L, N, E), or (N, L, E) with batch_first).
    Bool masks are True where attention is NOT allowed. Returns (output, weights or None)."""
    if batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    tgt, bsz, e = query.shape
    src = key.shape[0]
    hd = e // num_heads
    if in_proj_weight is not None:
        if query is key and key is value:  # self-attention: one GEMM for q, k and v
            q, k, v = linear(query, in_proj_weight, in_proj_bias).chunk(3, dim=-1)
        else:
            ws = in_proj_weight.chunk(3)
            bs = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
            q, k, v = (linear(x, w, b) for x, w, b in zip((query, key, value), ws, bs))
    else:
        bs = (None,) * 3 if in_proj_bias is None else in_proj_bias.chunk(3)
        q, k, v = (linear(x, w, b) for x, w, b in
                   zip((query, key, value), (q_proj_weight, k_proj_weight, v_proj_weight), bs))

    def heads(x, n):  # (n, N, E) -> (N, heads, n, hd)
        return x.reshape(n, bsz, num_heads, hd).permute(1, 2, 0, 3)

    mask = None
    if is_causal and attn_mask is None:
        attn_mask = logical_not(_causal(tgt, src, query.device))
    if attn_mask is not None:
        mask = _additive(attn_mask, True, q.dtype)
        if mask.ndim == 3:  # (N * heads, L, S)
            mask = mask.reshape(bsz, num_heads, tgt, src)
    if key_padding_mask is not None:
        kpm = _additive(key_padding_mask, True, q.dtype).reshape(bsz, 1, 1, src)
        mask = kpm if mask is None else mask + kpm
    out, w = _attend(heads(q, tgt), heads(k, src), heads(v, src), mask,
                     dropout_p if training else 0.0, 1.0 / math.sqrt(hd))
    out = out.permute(2, 0, 1, 3).reshape(tgt, bsz, e)  # (L, N, E)
    out = linear(out, out_proj_weight, out_proj_bias)
    if batch_first:
        out = out.transpose(0, 1)
    if not need_weights:
        return out, None
    return out, (w.mean(dim=1) if average_attn_weights else w)
