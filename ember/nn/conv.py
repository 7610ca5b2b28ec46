"""Convolution layers: Conv1d, Conv2d, ConvTranspose2d (PyTorch names, shapes, init, repr)."""
from __future__ import annotations


from ..creation import empty
from ..errors import EmberError, ShapeError
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]

_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(v, n: int, name: str, layer: str) -> tuple:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
    if len(t) != n or not all(isinstance(i, int) and i >= 0 for i in t):
        raise EmberError(f"{layer}: {name} must be a non-negative int or a {n}-tuple of them, got {v!r}")
    return t


class _ConvNd(Module):
    """Shared state of the conv layers: PyTorch's attribute names, init and extra_repr."""

    _nd = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation,
                 groups: int, bias: bool, padding_mode: str, output_padding=0, device=None, dtype=None):
        super().__init__()
        name, n = type(self).__name__, self._nd
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise EmberError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                             f"both be divisible by groups ({groups})")
        if padding_mode not in _MODES:
            raise EmberError(f"{name}: padding_mode must be one of {_MODES}, got {padding_mode!r}")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise EmberError(f'{name}: padding must be an int, a tuple, "same" or "valid", got {padding!r}')
            if padding == "same" and any(s != 1 for s in _tuple(stride, n, "stride", name)):
                raise EmberError(f'{name}: padding="same" needs stride 1; give the padding as ints')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _tuple(kernel_size, n, "kernel_size", name)
        self.stride = _tuple(stride, n, "stride", name)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n, "padding", name)
        self.dilation = _tuple(dilation, n, "dilation", name)
        self.output_padding = _tuple(output_padding, n, "output_padding", name)
        self.groups, self.padding_mode = groups, padding_mode
        shape = ((in_channels, out_channels // groups) if self.transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(empty(*shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.layer_default_(self.weight, self.bias)

    def _check_input(self, x: Tensor) -> None:
        n = self._nd
        spatial = ("H", "W") if n == 2 else ("L",)
        if not isinstance(x, Tensor) or x.ndim not in (n + 1, n + 2) or x.shape[-n - 1] != self.in_channels:
            want = ", ".join(("N", str(self.in_channels)) + spatial)
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ShapeError(f"{type(self).__name__}({self.extra_repr()}): expected input of shape "
                             f"({want}) (or without N), got {got}; the channel dimension must equal "
                             f"in_channels={self.in_channels}")

    def _mode_pad(self, x: Tensor):
        """For padding_mode != "zeros": pad explicitly (as PyTorch does) and convolve unpadded."""
        if self.padding_mode == "zeros":
            return x, self.padding
        if isinstance(self.padding, str):
            k = [d * (s - 1) for d, s in zip(self.dilation, self.kernel_size)]
            pairs = [(0, 0)] * self._nd if self.padding == "valid" else [(t // 2, t - t // 2) for t in k]
        else:
            pairs = [(p, p) for p in self.padding]
        flat = [v for pr in reversed(pairs) for v in pr]  # last dim first, as F.pad wants
        return F.pad(x, flat, mode=self.padding_mode), 0

    def extra_repr(self) -> str:
        n = self._nd
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W); padding an int, a pair, "same" or "valid".
    ``Conv2d(1, 32, 3, padding=1)(x)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        x, padding = self._mode_pad(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L). ``Conv1d(16, 32, 5, padding="same")(x)``."""

    _nd = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        x, padding = self._mode_pad(input)
        pad = padding if isinstance(padding, (str, int)) else padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride[0], pad, self.dilation[0], self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d in its input); weight of shape
    (in_channels, out_channels/groups, kH, kW). ``ConvTranspose2d(16, 8, 2, stride=2)(x)``."""

    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None):
        if padding_mode != "zeros" or isinstance(padding, str):
            raise EmberError('ConvTranspose2d: only padding_mode="zeros" and integer padding are supported '
                             '(as in PyTorch)')
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device=device, dtype=dtype)

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        self._check_input(input)
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)

    def _output_padding_for(self, x: Tensor, output_size) -> tuple:
        """The output_padding that gives ``output_size`` (its last two entries are H, W)."""
        size = tuple(output_size)[-2:]
        extra = []
        for i in range(2):
            base = ((x.shape[-2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                    + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra.append(size[i] - base)
            if not 0 <= extra[i] < max(self.stride[i], self.dilation[i]):
                raise ShapeError(f"ConvTranspose2d: output_size {size} is not reachable from input "
                                 f"{tuple(x.shape)}; sizes from {base} to "
                                 f"{base + max(self.stride[i], self.dilation[i]) - 1} are possible in dim {i}")
        return tuple(extra)
