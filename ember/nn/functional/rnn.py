"""The recurrent layers' math: one time step of each cell, and the time loop for one layer and
direction. The input projection of all time steps is computed before the loop (one GEMM), so
the loop does only the hidden GEMM and the gate math. Gate order and formulas are PyTorch's.
"""
from __future__ import annotations

from ...ops.elementwise import relu, tanh
from ...ops.movement import stack
from ...tensor import Tensor

__all__ = []  # building blocks of nn.RNN/LSTM/GRU; PyTorch has no public functional form

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def time_steps(x: Tensor) -> list:
    """Split (T, ...) into T tensors (...). Halving recursively keeps the backward pass at
    O(T log T): slicing all T steps from x directly makes each step's gradient a zero-filled
    array of x's full size, which costs O(T^2) for long sequences."""
    n = x.shape[0]
    if n <= 2:
        return [x[i] for i in range(n)]
    m = n // 2
    return time_steps(x[:m]) + time_steps(x[m:])


def rnn_step(xw: Tensor, h: Tensor, w_hh_t: Tensor, nonlinearity: str) -> Tensor:
    """h' = act(x W_ih^T + b_ih + b_hh + h W_hh^T); ``xw`` holds the first three terms."""
    pre = xw + h @ w_hh_t
    return tanh(pre) if nonlinearity == "tanh" else relu(pre)


def lstm_step(xw: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor) -> tuple:
    """Gates i, f, g, o (PyTorch's order) from one fused (B, 4H) matrix; returns (h', c')."""
    n = h.shape[-1]
    gates = xw + h @ w_hh_t  # (B, 4H)
    s = gates.sigmoid()  # one pass for i, f and o; the g quarter is unused
    i, f, o = s[..., :n], s[..., n:2 * n], s[..., 3 * n:]
    g = tanh(gates[..., 2 * n:3 * n])
    c = f * c + i * g
    return o * tanh(c), c


def gru_step(xw: Tensor, h: Tensor, w_hh_t: Tensor, b_hh: Tensor | None) -> Tensor:
    """Gates r, z, n with PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    n = h.shape[-1]
    gh = h @ w_hh_t  # (B, 3H)
    if b_hh is not None:
        gh = gh + b_hh
    rz = (xw[..., :2 * n] + gh[..., :2 * n]).sigmoid()
    r, z = rz[..., :n], rz[..., n:]
    cand = tanh(xw[..., 2 * n:] + r * gh[..., 2 * n:])
    return cand + z * (h - cand)  # (1 - z) * cand + z * h


def recurrent_layer(mode: str, x: Tensor, h: Tensor, c: Tensor | None, w_ih: Tensor, w_hh: Tensor,
                    b_ih: Tensor | None, b_hh: Tensor | None, reverse: bool = False) -> tuple:
    """Run one layer and direction over x (T, B, I) from state h (B, H) (and c for LSTM).
    Returns (outputs (T, B, H), h_T, c_T); c_T is None except for LSTM."""
    t, b, i = x.shape
    xw = (x.reshape(t * b, i) @ w_ih.T).reshape(t, b, w_ih.shape[0])  # all steps in one GEMM
    if b_ih is not None:
        # The hidden bias is a plain sum for RNN and LSTM, so it joins the projection too.
        xw = xw + (b_ih if mode == "GRU" else b_ih + b_hh)
    steps = time_steps(xw)
    if reverse:
        steps.reverse()
    w_hh_t = w_hh.T
    outs = []
    for xw_t in steps:
        if mode == "LSTM":
            h, c = lstm_step(xw_t, h, c, w_hh_t)
        elif mode == "GRU":
            h = gru_step(xw_t, h, w_hh_t, b_hh)
        else:
            h = rnn_step(xw_t, h, w_hh_t, "tanh" if mode == "RNN_TANH" else "relu")
        outs.append(h)
    if reverse:
        outs.reverse()
    return stack(outs), h, c
