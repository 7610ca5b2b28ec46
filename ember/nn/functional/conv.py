"""Convolutions (PyTorch's functional names and arguments). ``F.conv2d(x, w, b, stride=2, padding=1)``.

The 2-D forms call the registered primitives in ember/ops/conv.py; the 1-D forms run the 2-D
primitives on a (N, C, 1, L) view."""
from __future__ import annotations

from ...errors import DTypeError, EmberError, ShapeError
from ...ops.conv import _transpose_out, conv2d_, conv_transpose2d_
from ...ops.movement import pad as _pad
from ...tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose2d"]


def _pair(v, name: str, op: str) -> tuple:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or not all(isinstance(i, int) for i in t):
        raise EmberError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(i) for i in t)


def _check(op: str, x: Tensor, w: Tensor, bias, groups: int, transposed: bool = False) -> None:
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise DTypeError(f"{op}: input and weight must be ember Tensors")
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D input (N, C, H, W) or 3-D (C, H, W), got shape "
                         f"{tuple(x.shape)}")
    if w.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D weight, got shape {tuple(w.shape)}")
    if not x.dtype.is_floating_point or x.dtype is not w.dtype:
        raise DTypeError(f"{op}: input and weight must have the same floating dtype, got "
                         f"{x.dtype.name} and {w.dtype.name}; convert with .to(weight.dtype)")
    if not isinstance(groups, int) or groups < 1 or w.shape[0] % groups:
        raise ShapeError(f"{op}: groups={groups} must be a positive int dividing the weight's first "
                         f"dimension {w.shape[0]}")
    want = w.shape[0] if transposed else w.shape[1] * groups
    if x.shape[1] != want:
        layout = "(in_channels, out_channels/groups, kH, kW)" if transposed else \
            "(out_channels, in_channels/groups, kH, kW)"
        raise ShapeError(f"{op}: input has {x.shape[1]} channels (shape {tuple(x.shape)}) but the weight "
                         f"of shape {tuple(w.shape)} {layout} with groups={groups} expects {want}")
    out_c = w.shape[1] * groups if transposed else w.shape[0]
    if bias is not None and tuple(bias.shape) != (out_c,):
        raise ShapeError(f"{op}: bias must have shape ({out_c},), got {tuple(bias.shape)}")
    if bias is not None and bias.dtype is not x.dtype:
        raise DTypeError(f"{op}: bias has dtype {bias.dtype.name} but the input {x.dtype.name}; "
                         f"convert with .to({x.dtype.name})")


def _with_bias(x, w, bias) -> tuple:
    """The primitives' tensor inputs: the bias is the third when there is one."""
    return (x, w) if bias is None else (x, w, bias)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation) over an NCHW (or unbatched CHW) input; ``padding`` is
    an int, a pair, "valid" or "same". ``F.conv2d(x, w, padding="same")``."""
    if isinstance(input, Tensor) and input.ndim == 3:  # unbatched, as PyTorch allows
        return conv2d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    _check("conv2d", input, weight, bias, groups)
    stride, dilation = _pair(stride, "stride", "conv2d"), _pair(dilation, "dilation", "conv2d")
    x = input
    if isinstance(padding, str):
        x, padding = _string_padding(x, padding, tuple(weight.shape[2:]), stride, dilation, "conv2d")
    else:
        padding = _pair(padding, "padding", "conv2d")
    k_eff = [dilation[i] * (weight.shape[2 + i] - 1) + 1 for i in range(2)]
    if any(x.shape[2 + i] + 2 * padding[i] < k_eff[i] for i in range(2)):
        raise ShapeError(f"conv2d: the input of shape {tuple(input.shape)} padded by {padding} is smaller "
                         f"than the (dilated) kernel {tuple(k_eff)}; pad more or use a smaller kernel")
    return conv2d_(*_with_bias(x, weight, bias), stride=stride, padding=padding, dilation=dilation, groups=groups)


def _string_padding(x: Tensor, mode: str, kernel, stride, dilation, op: str):
    """Resolve "valid"/"same" into symmetric padding, padding the input first for the odd
    extra row/column "same" needs with an even kernel (PyTorch puts it at the end)."""
    if mode == "valid":
        return x, (0, 0)
    if mode != "same":
        raise EmberError(f'{op}: padding must be an int, a pair, "valid" or "same", got {mode!r}')
    if stride != (1, 1):
        raise EmberError(f'{op}: padding="same" needs stride 1, got stride={stride}; give the padding as ints')
    total = [dilation[i] * (kernel[i] - 1) for i in range(2)]
    sym = tuple(t // 2 for t in total)
    extra = [t - 2 * s for t, s in zip(total, sym)]
    if any(extra):
        x = _pad(x, (0, extra[1], 0, extra[0]))
    return x, sym


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """1-D convolution over an (N, C, L) (or unbatched (C, L)) input. ``F.conv1d(x, w, padding=1)``."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return conv1d(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    if not isinstance(input, Tensor) or input.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D input (N, C, L), got shape "
                         f"{tuple(getattr(input, 'shape', ()))}; add a batch dimension with .unsqueeze(0)")
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-D weight (out_channels, in_channels/groups, k), got "
                         f"shape {tuple(weight.shape)}")
    one = lambda v, name: v if isinstance(v, str) else (1, _single(v, name, "conv1d"))  # noqa: E731
    pad = padding if isinstance(padding, str) else (0, _single(padding, "padding", "conv1d"))
    out = conv2d(input.unsqueeze(2), weight.unsqueeze(2), bias, one(stride, "stride"), pad,
                 one(dilation, "dilation"), groups)
    return out.squeeze(2)


def _single(v, name: str, op: str) -> int:
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if not isinstance(v, int):
        raise EmberError(f"{op}: {name} must be an int, got {v!r}")
    return int(v)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 2-D convolution (the gradient of conv2d in its input); weight
    (in_channels, out_channels/groups, kH, kW). ``F.conv_transpose2d(x, w, stride=2)``."""
    op = "conv_transpose2d"
    if isinstance(input, Tensor) and input.ndim == 3:
        return conv_transpose2d(input.unsqueeze(0), weight, bias, stride, padding, output_padding, groups,
                                dilation).squeeze(0)
    _check(op, input, weight, bias, groups, transposed=True)
    stride, padding = _pair(stride, "stride", op), _pair(padding, "padding", op)
    output_padding, dilation = _pair(output_padding, "output_padding", op), _pair(dilation, "dilation", op)
    for i in range(2):
        if not 0 <= output_padding[i] < max(stride[i], dilation[i]):
            raise EmberError(f"{op}: output_padding {output_padding} must be smaller than stride "
                             f"{stride} or dilation {dilation}")
    hw = _transpose_out(input.shape, weight.shape, stride, padding, output_padding, dilation)
    if min(hw) <= 0:
        raise ShapeError(f"{op}: padding {padding} leaves an empty output {hw} for input {tuple(input.shape)}")
    return conv_transpose2d_(*_with_bias(input, weight, bias), stride=stride, padding=padding,
                             output_padding=output_padding, dilation=dilation, groups=groups)
