"""A small GPT (nanoGPT's model, after Radford et al. 2019): pre-LayerNorm blocks of causal
self-attention and an MLP, learned position embeddings, output head tied to the token embedding."""
from __future__ import annotations

import math

import ember
from .. import nn
from ..nn import functional as F
from ..tensor import Tensor
from .sampling import generate

__all__ = ["GPT"]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees only positions <= t."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"GPT: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)   # q, k, v in one GEMM
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.dropout = n_head, dropout

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.reshape(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)      # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)                  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    """x + attn(ln(x)), then x + mlp(ln(x)); the MLP is 4x wide with GELU."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd, bias=bias), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd, bias=bias), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """A decoder-only transformer: ids (B, T) with T <= block_size -> logits (B, T, vocab_size).

    >>> GPT(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=64)(ember.randint(0, 65, (4, 32))).shape
    (4, 32, 65)
    """

    def __init__(self, vocab_size: int, block_size: int = 64, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: fewer weights, and it trains better
        self._init_weights(n_layer)

    def _init_weights(self, n_layer: int) -> None:
        # GPT-2: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2 * n_layer) so the
        # residual stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("c_proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: Tensor) -> Tensor:
        B, T = idx.shape
        if T > self.block_size:
            raise ember.ShapeError(f"GPT: sequence length {T} exceeds block_size {self.block_size}; "
                                   "crop the input or build the model with a larger block_size")
        pos = ember.arange(T, device=idx.device)                # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))            # (B, T, n_embd)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))                       # (B, T, vocab)

    def generate(self, idx: Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator=None) -> Tensor:
        """Extend ids (B, T) by sampling ``max_new_tokens`` tokens. See ``sampling.generate``."""
        return generate(self, idx, max_new_tokens, self.block_size, temperature, top_k, generator)
