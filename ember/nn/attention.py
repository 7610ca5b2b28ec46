"""MultiheadAttention with PyTorch's parameter names (in_proj_weight, in_proj_bias,
out_proj.weight, out_proj.bias; q/k/v_proj_weight when kdim or vdim differ), initialization,
mask conventions and returned attention weights."""
from __future__ import annotations

from ..creation import empty
from ..errors import EmberError, ShapeError
from ..tensor import Tensor
from . import init
from .functional.attention import multi_head_attention_forward
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of size embed_dim // num_heads. Bool masks are True
    where attention is NOT allowed (key_padding_mask (N, S); attn_mask (L, S) or (N*heads, L, S));
    float masks are added to the scores. Returns ``(output, weights)``; weights are averaged over
    heads unless ``average_attn_weights=False``, and None with ``need_weights=False``.

    >>> out, w = MultiheadAttention(16, 4, batch_first=True)(x, x, x)   # x: (N, L, 16)
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple "
                             f"of num_heads ({num_heads})")
        if add_bias_kv or add_zero_attn:
            raise EmberError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported yet")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, float(dropout)
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        kw = {"dtype": dtype, "device": device}
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **kw))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **kw)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """Xavier-uniform projections, zero biases; out_proj.weight keeps Linear's init (PyTorch)."""
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if w is not None:
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"

    def _check(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask, attn_mask) -> bool:
        batched = query.ndim == 3
        lay = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for name, x, dim in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if x.ndim != query.ndim or x.ndim not in (2, 3) or x.shape[-1] != dim:
                raise ShapeError(f"MultiheadAttention: expected {name} of shape {lay[:-2]}{dim}) or "
                                 f"unbatched (L, {dim}), with query, key and value of one rank; got "
                                 f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ShapeError(f"MultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} "
                             f"must have the same sequence length and batch size")
        b_axis, s_axis = (0, 1) if self.batch_first else (1, 0)
        if batched and query.shape[b_axis] != key.shape[b_axis]:
            raise ShapeError(f"MultiheadAttention: query {tuple(query.shape)} and key {tuple(key.shape)} "
                             f"have different batch sizes")
        src = key.shape[s_axis] if batched else key.shape[0]
        tgt = query.shape[s_axis if batched else 0]
        n = query.shape[b_axis] if batched else 1
        if key_padding_mask is not None:
            want = (n, src) if batched else (src,)
            if tuple(key_padding_mask.shape) != want:
                raise ShapeError(f"MultiheadAttention: expected key_padding_mask of shape {want} "
                                 f"(batch, source length), got {tuple(key_padding_mask.shape)}")
        if attn_mask is not None:
            wants = [(tgt, src), (n * self.num_heads, tgt, src)]
            if tuple(attn_mask.shape) not in wants:
                raise ShapeError(f"MultiheadAttention: expected attn_mask of shape {wants[0]} or "
                                 f"{wants[1]} (batch * num_heads, target, source), got {tuple(attn_mask.shape)}")
        return batched

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None,
                average_attn_weights: bool = True, is_causal: bool = False) -> tuple:
        """``is_causal=True`` without ``attn_mask`` applies a causal mask (PyTorch requires the
        mask itself and treats the flag as a hint)."""
        batched = self._check(query, key, value, key_padding_mask, attn_mask)
        if not batched:  # add a batch dim where forward_batched expects it
            b = 0 if self.batch_first else 1
            same_kv = key is value
            same_qk = query is key
            query = query.unsqueeze(b)
            key = query if same_qk else key.unsqueeze(b)
            value = key if same_kv else value.unsqueeze(b)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        out, w = multi_head_attention_forward(
            query, key, value, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.out_proj.weight, self.out_proj.bias, dropout_p=self.dropout, training=self.training,
            key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, batch_first=self.batch_first)
        if not batched:
            out = out.squeeze(0 if self.batch_first else 1)
            w = None if w is None else w.squeeze(0)
        return out, w
