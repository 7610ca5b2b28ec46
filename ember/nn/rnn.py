"""Recurrent layers: RNN, LSTM, GRU with PyTorch's parameter names, shapes, gate order,
initialization and input/state layouts (batch_first, bidirectional, unbatched input)."""
from __future__ import annotations

import math

from ..creation import empty, zeros
from ..errors import ShapeError, shape_str
from ..ops.movement import cat, stack
from ..tensor import Tensor
from . import init
from .functional.linear import dropout
from .functional.rnn import GATES, recurrent_layer
from .module import Module
from .parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU"]


class RNNBase(Module):
    """Shared code of RNN, LSTM and GRU; ``mode`` is "RNN_TANH", "RNN_RELU", "LSTM" or "GRU"."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{type(self).__name__}: hidden_size and num_layers must be positive, "
                             f"got {hidden_size} and {num_layers}")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        gate_size = GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else hidden_size * dirs
            for suffix in ("", "_reverse")[:dirs]:
                shapes = {"weight_ih": (gate_size, layer_in), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{suffix}", Parameter(empty(*shape, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s

    def _check_input(self, x: Tensor) -> bool:
        name = type(self).__name__
        layout = "(batch, seq_len, features)" if self.batch_first else "(seq_len, batch, features)"
        if not isinstance(x, Tensor) or x.ndim not in (2, 3):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"{name}: expected a 3-D input {layout} or a 2-D unbatched input "
                             f"(seq_len, features), got {got}")
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input with input_size={self.input_size} features in "
                             f"its last dimension, got shape {tuple(x.shape)}; the layout is {layout}, "
                             f"so check input_size or transpose the input (batch_first={self.batch_first})")
        if x.shape[0 if x.ndim == 2 or not self.batch_first else 1] == 0:
            raise ShapeError(f"{name}: the input has no time steps (shape {tuple(x.shape)})")
        return x.ndim == 3

    def _initial(self, hx: Tensor | None, batch: int, batched: bool, x: Tensor, what: str) -> Tensor:
        dirs = 2 if self.bidirectional else 1
        want = (self.num_layers * dirs, batch, self.hidden_size)
        if hx is None:
            return zeros(*want, dtype=x.dtype, device=x.device)
        shown = want if batched else (want[0], want[2])
        if tuple(hx.shape) != shown:
            raise ShapeError(f"{type(self).__name__}: expected {what} of shape {shown} "
                             f"(num_layers * num_directions, {'batch, ' if batched else ''}hidden_size), "
                             f"got {shape_str(hx.shape)}")
        return hx if batched else hx.unsqueeze(1)

    def _run(self, x: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """x (T, B, I) -> output (T, B, D*H), h_n (L*D, B, H), c_n (or None)."""
        dirs = 2 if self.bidirectional else 1
        hs, cs = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:dirs]):
                k = layer * dirs + d
                p = [getattr(self, f"{n}_l{layer}{suffix}") if self.bias or n.startswith("w") else None
                     for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                out, h, c = recurrent_layer(self.mode, x, h0[k], None if c0 is None else c0[k], *p,
                                            reverse=d == 1)
                outs.append(out)
                hs.append(h)
                cs.append(c)
            x = outs[0] if dirs == 1 else cat(outs, dim=-1)
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                x = dropout(x, self.dropout)
        return x, stack(hs), (stack(cs) if c0 is not None else None)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple:
        batched = self._check_input(input)
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        h0 = self._initial(hx, x.shape[1], batched, x, "hx")
        out, h_n, _ = self._run(x, h0, None)
        return _layout(out, batched, self.batch_first), (h_n if batched else h_n.squeeze(1))


def _layout(out: Tensor, batched: bool, batch_first: bool) -> Tensor:
    if not batched:
        return out.squeeze(1)
    return out.transpose(0, 1) if batch_first else out


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu).

    >>> out, h_n = RNN(10, 20, num_layers=2)(ember.randn(5, 3, 10))   # (5, 3, 20), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o as PyTorch. ``forward(x, (h0, c0))`` returns
    ``output, (h_n, c_n)``.

    >>> out, (h, c) = LSTM(10, 20, batch_first=True)(ember.randn(3, 5, 10))   # (3, 5, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        batched = self._check_input(input)
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ShapeError("LSTM: hx must be a tuple (h_0, c_0) of two tensors")
        h0 = self._initial(None if hx is None else hx[0], x.shape[1], batched, x, "h_0")
        c0 = self._initial(None if hx is None else hx[1], x.shape[1], batched, x, "c_0")
        out, h_n, c_n = self._run(x, h0, c0)
        if not batched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return _layout(out, batched, self.batch_first), (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n as PyTorch (n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).

    >>> out, h_n = GRU(10, 20, bidirectional=True)(ember.randn(5, 3, 10))   # (5, 3, 40), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)
