"""Convolution and pooling primitives (NCHW, 2-D). The public forms with argument checks live in
``ember.nn.functional``; these take normalized, keyword-only, static parameters: pairs of ints
for ``stride``/``padding``/``dilation`` (symmetric padding), an int ``groups``.

Why primitives: convolution is one im2col copy plus one GEMM; as a composite of slices and
matmuls it would be ~kh*kw ops and their vjps. Every vjp is written in ember ops over the three
conv primitives (conv2d, conv_transpose2d, conv2d_weight_grad — each one's vjp uses the others),
so double backward works. Pooling is a pair of kernels per kind (forward, backward) that loop
over the kh*kw kernel offsets with strided slices: no np.add.at, no loop over batch or channels.

Kernels are factories over the array module ``xp`` (NumPy or CuPy).
"""
from __future__ import annotations

import threading

import numpy as np

from .. import dtypes as D
from . import native
from .registry import Op

# -- geometry --------------------------------------------------------------------------------


def conv_out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    """Output length of a convolution along one dim (PyTorch's formula)."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length of a pooling window along one dim; in ceil mode the last window must
    start inside the input or its left padding (PyTorch's rule)."""
    num = n + 2 * p - d * (k - 1) - 1
    o = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _conv_shape(xs, ws, bs=None, *, stride, padding, dilation, groups):
    return (xs[0], ws[0]) + tuple(conv_out_size(xs[2 + i], ws[2 + i], stride[i], padding[i], dilation[i])
                                  for i in range(2))


def _transpose_out(ys, ws, stride, padding, output_padding, dilation):
    return tuple((ys[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (ws[2 + i] - 1)
                 + output_padding[i] + 1 for i in range(2))


def _convt_shape(ys, ws, bs=None, *, stride, padding, output_padding, dilation, groups):
    return (ys[0], ws[1] * groups) + _transpose_out(ys, ws, stride, padding, output_padding, dilation)


# -- the im2col workspace ----------------------------------------------------------------------
# im2col's column matrix is a temporary consumed by the GEMM right away. Allocating it fresh
# each call costs page faults that measured ~as much as the copy itself (75 MB for a ResNet
# block: 15 ms fresh vs 8 ms into a reused buffer), so each thread keeps one grow-only buffer
# per (array module, dtype). It holds the largest column matrix seen; outputs never alias it.
_ws = threading.local()


def _workspace(xp, n: int, dtype):
    cache = _ws.__dict__.setdefault("bufs", {})
    key = (xp.__name__, np.dtype(dtype).str)
    buf = cache.get(key)
    if buf is None or buf.size < n:
        buf = cache[key] = xp.empty(n, dtype)
    return buf[:n]


def _pad2(xp, x, top, bottom, left, right, value=0.0):
    """Pad the last two dims (asymmetric widths >= 0) with a constant."""
    if not (top or bottom or left or right):
        return x
    N, C, H, W = x.shape
    out = xp.empty((N, C, H + top + bottom, W + left + right), x.dtype)
    out[...] = value  # one fill pass, then one copy: cheaper than xp.pad
    out[:, :, top:top + H, left:left + W] = x
    return out


def _im2col(xp, xp_, kh, kw, Ho, Wo, stride, dilation):
    """Columns of a padded input as a (C*kh*kw, N*Ho*Wo) matrix in the workspace: one strided copy."""
    N, C = xp_.shape[:2]
    sn, sc, sh, sw = xp_.strides
    view = xp.lib.stride_tricks.as_strided(
        xp_, (C, kh, kw, N, Ho, Wo),
        (sc, sh * dilation[0], sw * dilation[1], sn, sh * stride[0], sw * stride[1]))
    cols = _workspace(xp, C * kh * kw * N * Ho * Wo, xp_.dtype).reshape(C, kh, kw, N, Ho, Wo)
    cols[...] = view
    return cols.reshape(C * kh * kw, N * Ho * Wo)


def _grouped(a, groups):
    """(rows, cols) -> (groups, rows // groups, cols): the batch axis of a grouped GEMM."""
    return a.reshape(groups, a.shape[0] // groups, a.shape[1]) if groups > 1 else a


# -- stride-1 col2im over flat images ---------------------------------------------------------------
# In NCHW at LeNet sizes a row is short (11 floats), so col2im's strided slice-adds run in pieces
# of Wy floats and NumPy's per-piece overhead dominates. For stride 1 the transposed conv's
# columns are instead computed over the flat padded image: column p = h*Wb + w of image n is added
# at flat offset p + (i*Wb + j)*dilation, so each kernel offset's add is one run of
# L = (Hy-1)*Wb + Wy floats per (channel, image). The gradient fed to the GEMM is spread to row
# stride Wb with zeros in the Wb - Wy gap columns, which then add nothing; L stops at the last real
# column, so no add leaves the image. Measured at LeNet-2: 4.0 -> 3.6 ms (the GEMM grows 16%).
# (The same layout for conv2d's im2col saved copy time but lost it to the larger GEMM.)

def _flat_len(Ho: int, Wo: int, W: int) -> int:
    return (Ho - 1) * W + Wo


def _flat_spread(xp, g, W):
    """(N, R, Ho, Wo) -> (R, N*L): rows at stride W, zeros in the gap columns."""
    N, R, Ho, Wo = g.shape
    L = _flat_len(Ho, Wo, W)
    out = xp.empty((R, N * L), g.dtype)
    it = out.itemsize
    xp.lib.stride_tricks.as_strided(out, (N, R, Ho, Wo), (L * it, N * L * it, W * it, it))[...] = g
    if W > Wo and Ho > 1:
        gap = xp.lib.stride_tricks.as_strided(out[:, Wo:], (R, N, Ho - 1, W - Wo), (N * L * it, L * it, W * it, it))
        gap[...] = 0
    return out


# -- im2col per image ----------------------------------------------------------------------------
# With few rows per column (Cg*kh*kw small: LeNet's first layer has 9) the GEMM is memory-bound
# and the (O, N, ...) <-> NCHW transposing copies around one big GEMM cost more than it does. Per
# image columns (N, K, Ho*Wo) make the output NCHW directly, as a batch of N GEMMs. Measured
# (LeNet-1, K=9): forward 0.73 -> 0.37 ms, weight grad 1.15 -> 0.43 ms; at K=288 (LeNet-2) the one
# big GEMM wins (1.5 vs 1.9 ms).
_BATCHED_K = 64


def _im2col_batched(xp, xp_, kh, kw, Ho, Wo, stride, dilation):
    """Columns of a padded input as (N, C*kh*kw, Ho*Wo) in the workspace: one strided copy."""
    N, C = xp_.shape[:2]
    sn, sc, sh, sw = xp_.strides
    view = xp.lib.stride_tricks.as_strided(
        xp_, (N, C, kh, kw, Ho, Wo),
        (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]))
    cols = _workspace(xp, N * C * kh * kw * Ho * Wo, xp_.dtype).reshape(view.shape)
    cols[...] = view
    return cols.reshape(N, C * kh * kw, Ho * Wo)


# -- native kernels (ember/ops/native/conv2d.c) ---------------------------------------------------
# Stride-1 float32 convolutions on the CPU run as direct C kernels that read the input in place
# (measured at LeNet/ResNet sizes: 1.5-2x the im2col + OpenBLAS GEMM path, about torch's speed).
# The NumPy path stays for other strides and dtypes, CuPy, and machines without a C compiler.

def _native(xp, *arrays, kernel=None):
    """The native conv module when it applies to these arrays (None entries: no bias) and a
    kernel of ``kernel`` = (kh, kw) (the weight's, when not given), else None."""
    if xp is not np or any(a is not None and a.dtype != np.float32 for a in arrays):
        return None
    kh, kw = kernel if kernel is not None else arrays[1].shape[2:]
    mod = native.module("conv2d")
    return mod if mod is not None and kh * kw <= mod.MAX_K else None


_FWD, _WGRAD, _DGRAD = 0, 1, 2  # the kernel kinds of mod.workspace()


def _native_run(mod, fn, a, b, bias, out, geometry, kind: int):
    ws = _workspace(np, mod.workspace(kind, geometry), np.float32)
    fn(np.ascontiguousarray(a), np.ascontiguousarray(b), None if bias is None else np.ascontiguousarray(bias),
       out, ws, geometry)
    return out


def _native_conv(mod, x, w, bias, pads, dilation, groups):
    """conv2d with stride 1, (top, bottom, left, right) zero padding and an optional bias."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = H + pads[0] + pads[1] - dilation[0] * (kh - 1), W + pads[2] + pads[3] - dilation[1] * (kw - 1)
    out = np.empty((N, O, Ho, Wo), np.float32)
    return _native_run(mod, mod.conv2d, x, w, bias, out, (N, C, H, W, O, kh, kw, *pads, *dilation, groups), _FWD)


def _scatter_pays(Hy, Wy, H, W, top, left, reach, padding) -> bool:
    """Whether the scatter form of a stride-1 transposed conv (conv2d_dgrad) computes clearly
    fewer positions than the flipped-kernel conv over the gradient padded by ``top``/``left``:
    true for convs with little padding (LeNet's 13x13 -> 11x11: 141 vs 193 flat positions)."""
    gather = (H - 1) * (Wy + 2 * left) + W
    scatter = (Hy - 1) * max(Wy + reach[1], padding[1] + W) + Wy
    return scatter < 0.85 * gather


def _plus_bias(out, b):
    """The NumPy/CuPy kernels add the bias in place to their fresh output (one pass, no copy)."""
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


# -- conv kernels --------------------------------------------------------------------------------

def _conv2d_kernel(xp):
    def conv2d(x, w, b=None, *, stride, padding, dilation, groups):
        N = x.shape[0]
        O, Cg, kh, kw = w.shape
        Ho, Wo = _conv_shape(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                             groups=groups)[2:]
        ph, pw = padding
        mod = _native(xp, x, w, b) if stride == (1, 1) else None
        if mod is not None:
            return _native_conv(mod, x, w, b, (ph, ph, pw, pw), dilation, groups)
        xp_ = _pad2(xp, x, ph, ph, pw, pw)
        if groups == 1 and Cg * kh * kw < _BATCHED_K:
            cols = _im2col_batched(xp, xp_, kh, kw, Ho, Wo, stride, dilation)
            return _plus_bias(xp.matmul(w.reshape(O, Cg * kh * kw), cols).reshape(N, O, Ho, Wo), b)
        cols = _im2col(xp, xp_, kh, kw, Ho, Wo, stride, dilation)
        out = xp.matmul(_grouped(w.reshape(O, Cg * kh * kw), groups), _grouped(cols, groups))
        # (O, N, Ho, Wo) -> NCHW: one transposing copy of the output, cheaper than N small GEMMs
        return _plus_bias(xp.ascontiguousarray(out.reshape(O, N, Ho, Wo).transpose(1, 0, 2, 3)), b)
    return conv2d


def _conv2d_weight_grad_kernel(xp):
    def conv2d_weight_grad(x, g, *, kernel, stride, padding, dilation, groups):
        N, O, Ho, Wo = g.shape
        C = x.shape[1]
        kh, kw = kernel
        ph, pw = padding
        mod = _native(xp, x, g, kernel=kernel) if stride == (1, 1) else None
        if mod is not None:
            out = np.empty((O, C // groups, kh, kw), np.float32)
            # bottom/right padding that gives g's size (less than ph/pw when g is smaller than the
            # conv's output: the weight gradient of a transposed conv with output_padding)
            H, W = x.shape[2:]
            pb, pr = Ho + dilation[0] * (kh - 1) - H - ph, Wo + dilation[1] * (kw - 1) - W - pw
            geometry = (N, C, H, W, O, kh, kw, ph, pb, pw, pr, *dilation, groups)
            return _native_run(mod, mod.conv2d_wgrad, x, g, None, out, geometry, _WGRAD)
        xp_ = _pad2(xp, x, ph, ph, pw, pw)
        if groups == 1 and C * kh * kw < _BATCHED_K:
            cols = _im2col_batched(xp, xp_, kh, kw, Ho, Wo, stride, dilation)
            gw = xp.matmul(g.reshape(N, O, Ho * Wo), cols.swapaxes(-1, -2)).sum(axis=0)
            return gw.reshape(O, C, kh, kw)
        cols = _im2col(xp, xp_, kh, kw, Ho, Wo, stride, dilation)
        gr = xp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(O, N * Ho * Wo)
        gw = xp.matmul(_grouped(gr, groups), _grouped(cols, groups).swapaxes(-1, -2))
        return gw.reshape(O, C // groups, kh, kw)
    return conv2d_weight_grad


def _conv_transpose2d_kernel(xp):
    conv2d = _conv2d_kernel(xp)

    def conv_transpose2d(y, w, b=None, *, stride, padding, output_padding, dilation, groups):
        N, Cin, Hy, Wy = y.shape
        _, Coutg, kh, kw = w.shape
        Cout = Coutg * groups
        H, W = _transpose_out(y.shape, w.shape, stride, padding, output_padding, dilation)
        reach = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
        direct = stride == (1, 1) and padding[0] <= reach[0] and padding[1] <= reach[1]
        mod = _native(xp, y, w, b) if direct else None
        top, left = reach[0] - padding[0], reach[1] - padding[1]
        if mod is not None and _scatter_pays(Hy, Wy, H, W, top, left, reach, padding):
            out = np.empty((N, Cout, H, W), np.float32)
            geometry = (N, Cout, H, W, Cin, kh, kw, padding[0], padding[0] - output_padding[0],
                        padding[1], padding[1] - output_padding[1], *dilation, groups)
            return _native_run(mod, mod.conv2d_dgrad, y, w, b, out, geometry, _DGRAD)
        if mod is not None:  # the same flipped-kernel convolution, padding done by the kernel
            wf = w.reshape(groups, Cin // groups, Coutg, kh, kw).swapaxes(1, 2)[..., ::-1, ::-1]
            return _native_conv(mod, y, wf.reshape(Cout, Cin // groups, kh, kw), b,
                                (top, top + output_padding[0], left, left + output_padding[1]), dilation, groups)
        if direct and Cin * H * W <= 2 * Cout * Hy * Wy:
            # Stride 1: a plain convolution of the padded input with the flipped, channel-swapped
            # kernel: one im2col + GEMM instead of a GEMM plus kh*kw scatter passes. Its columns
            # scale with Cin*H*W, the scatter's traffic with ~2*Cout*Hy*Wy; measured: faster for
            # a ResNet block (64->64, pad 1), slower for LeNet's 32->64 unpadded layer.
            top, left = reach[0] - padding[0], reach[1] - padding[1]
            yp = _pad2(xp, y, top, top + output_padding[0], left, left + output_padding[1])
            wf = w.reshape(groups, Cin // groups, Coutg, kh, kw).swapaxes(1, 2)[..., ::-1, ::-1]
            return conv2d(yp, xp.ascontiguousarray(wf).reshape(Cout, Cin // groups, kh, kw), b,
                          stride=(1, 1), padding=(0, 0), dilation=dilation, groups=groups)
        # General: columns = W^T y (one GEMM), then col2im as kh*kw shifted adds.
        wr = _grouped(w.reshape(Cin, Coutg * kh * kw), groups).swapaxes(-1, -2)
        Hb = (Hy - 1) * stride[0] + reach[0] + 1 + output_padding[0]
        Wb = (Wy - 1) * stride[1] + reach[1] + 1 + output_padding[1]
        ph, pw = padding
        if stride == (1, 1) and Coutg * kh * kw >= Cin // groups:
            # Flat layout (see _flat_spread): each kernel offset's add is one run of L floats per
            # (channel, image) instead of Hy runs of Wy. Worth it when the adds outweigh the
            # spread copy of y (LeNet-1's 32->1 gradient: 1.1 ms strided vs 1.5 ms flat).
            L = _flat_len(Hy, Wy, Wb)
            cols = _workspace(xp, Cout * kh * kw * N * L, y.dtype)
            cols = cols.reshape(groups, Coutg * kh * kw, N * L) if groups > 1 else cols.reshape(Cout * kh * kw, N * L)
            xp.matmul(wr, _grouped(_flat_spread(xp, y, Wb), groups), out=cols)
            cols = cols.reshape(Cout, kh, kw, N, L)
            big = xp.zeros((Cout, N, Hb * Wb), y.dtype)
            for i in range(kh):
                for j in range(kw):
                    off = i * dilation[0] * Wb + j * dilation[1]
                    big[:, :, off:off + L] += cols[:, i, j]
            big = big.reshape(Cout, N, Hb, Wb)
            return _plus_bias(xp.ascontiguousarray(big[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)), b)
        yr = xp.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(Cin, N * Hy * Wy)
        cols = _workspace(xp, Cout * kh * kw * N * Hy * Wy, y.dtype)
        cols = cols.reshape(groups, Coutg * kh * kw, N * Hy * Wy) if groups > 1 else \
            cols.reshape(Cout * kh * kw, N * Hy * Wy)
        xp.matmul(wr, _grouped(yr, groups), out=cols)
        cols = cols.reshape(Cout, kh, kw, N, Hy, Wy)
        big = xp.zeros((Cout, N, Hb, Wb), y.dtype)
        for i in range(kh):
            for j in range(kw):
                big[:, :, i * dilation[0]:i * dilation[0] + (Hy - 1) * stride[0] + 1:stride[0],
                    j * dilation[1]:j * dilation[1] + (Wy - 1) * stride[1] + 1:stride[1]] += cols[:, i, j]
        return _plus_bias(xp.ascontiguousarray(big[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3)), b)
    return conv_transpose2d


# -- conv vjps (ember ops only) --------------------------------------------------------------------

def _output_padding(in_hw, out_hw, kernel, stride, padding, dilation):
    """The rows/cols a strided conv dropped at the end: what conv_transpose must add back."""
    return tuple(in_hw[i] + 2 * padding[i] - ((out_hw[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1)
                 for i in range(2))


def _bias_grad(g, b):
    return g.sum((0, 2, 3)) if b is not None and b.requires_grad else None


def _conv2d_vjp(g, out, x, w, b=None, *, stride, padding, dilation, groups):
    kernel = tuple(w.shape[2:])
    gx = gw = None
    if x.requires_grad and w.requires_grad:
        g = g.contiguous()  # both kernels need it dense: one copy of a broadcast gradient, not two
    if x.requires_grad:
        op = _output_padding(x.shape[2:], g.shape[2:], kernel, stride, padding, dilation)
        gx = conv_transpose2d_(g, w, stride=stride, padding=padding, output_padding=op,
                               dilation=dilation, groups=groups)
    if w.requires_grad:
        gw = conv2d_weight_grad_(x, g, kernel=kernel, stride=stride, padding=padding,
                                 dilation=dilation, groups=groups)
    return (gx, gw) if b is None else (gx, gw, _bias_grad(g, b))


def _conv_transpose2d_vjp(g, out, y, w, b=None, *, stride, padding, output_padding, dilation, groups):
    gy = gw = None
    if y.requires_grad:
        gy = conv2d_(g, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if tuple(gy.shape) != tuple(y.shape):  # output_padding >= stride (allowed when dilation > stride)
            gy = gy[:, :, :y.shape[2], :y.shape[3]]
    if w.requires_grad:
        gw = conv2d_weight_grad_(g, y, kernel=tuple(w.shape[2:]), stride=stride, padding=padding,
                                 dilation=dilation, groups=groups)
    return (gy, gw) if b is None else (gy, gw, _bias_grad(g, b))


def _conv2d_weight_grad_vjp(v, out, x, g, *, kernel, stride, padding, dilation, groups):
    # <weight_grad(x, g), V> = <conv2d(x, V), g>: bilinear, so each input's gradient is a conv.
    gx = gg = None
    if x.requires_grad:
        op = _output_padding(x.shape[2:], g.shape[2:], kernel, stride, padding, dilation)
        gx = conv_transpose2d_(g, v, stride=stride, padding=padding, output_padding=op,
                               dilation=dilation, groups=groups)
    if g.requires_grad:
        gg = conv2d_(x, v, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return gx, gg


def _same_dtype(da, db, dc=None, **params):
    return da


conv2d_ = Op("conv2d", _conv2d_kernel, vjp=_conv2d_vjp, shape=_conv_shape, dtype=_same_dtype,
             onnx="Conv", doc="2-D cross-correlation, NCHW input, (O, C/groups, kh, kw) weight, optional (O,) bias.")
conv_transpose2d_ = Op("conv_transpose2d", _conv_transpose2d_kernel, vjp=_conv_transpose2d_vjp,
                       shape=_convt_shape, dtype=_same_dtype, onnx="ConvTranspose",
                       doc="The adjoint of conv2d in its input; weight (Cin, Cout/groups, kh, kw), optional bias.")
conv2d_weight_grad_ = Op(
    "conv2d_weight_grad", _conv2d_weight_grad_kernel, vjp=_conv2d_weight_grad_vjp, dtype=_same_dtype,
    shape=lambda xs, gs, *, kernel, groups, **p: (gs[1], xs[1] // groups) + tuple(kernel),
    doc="The adjoint of conv2d in its weight: (x, grad_out) -> grad_weight.")


# -- pooling kernels -----------------------------------------------------------------------------

def _pool_plan(H, W, kernel, stride, padding, dilation, ceil_mode):
    """Output size and the (top, bottom, left, right) padding that makes every window fit."""
    Ho = pool_out_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    Wo = pool_out_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    need_h = (Ho - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (Wo - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    return Ho, Wo, (padding[0], max(0, need_h - H - padding[0]), padding[1], max(0, need_w - W - padding[1]))


def _windows(kernel, stride, dilation, Ho, Wo):
    """(k, slice-index) for each kernel offset: the strided slice of the padded input it reads."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield i * kernel[1] + j, (slice(None), slice(None),
                                      slice(i * dilation[0], i * dilation[0] + (Ho - 1) * stride[0] + 1, stride[0]),
                                      slice(j * dilation[1], j * dilation[1] + (Wo - 1) * stride[1] + 1, stride[1]))


def _argmax_offsets(xp, x, kernel, stride, padding, dilation, ceil_mode):
    """Which kernel offset holds each window's max (the first one on ties, NaN wins: PyTorch's
    rule), plus the plan."""
    H, W = x.shape[2:]
    Ho, Wo, pads = _pool_plan(H, W, kernel, stride, padding, dilation, ceil_mode)
    xp_ = _pad2(xp, x, *pads, value=-np.inf)
    best = arg = None
    dt = np.int8 if kernel[0] * kernel[1] <= 127 else np.int32
    for k, sl in _windows(kernel, stride, dilation, Ho, Wo):
        v = xp_[sl]
        if best is None:
            best, arg = v.copy(), xp.zeros(v.shape, dt)
            continue
        upd = (v > best) | xp.isnan(v)
        xp.maximum(best, v, out=best)
        # k only grows, so "arg = k where upd" is a max (masked copyto measured ~10x slower)
        xp.maximum(arg, upd * dt(k), out=arg)
    return arg, Ho, Wo, pads


def _native_pool(xp, x):
    """The native max-pool module (ember/ops/native/pool2d.c) when it applies, else None."""
    if xp is not np or x.dtype not in (np.float32, np.float64):
        return None
    return native.module("pool2d")


def _pool_geometry(x, Ho, Wo, kernel, stride, padding, dilation) -> tuple:
    N, C, H, W = x.shape
    return (N * C, H, W, Ho, Wo, *kernel, *stride, *padding, *dilation)


def _max_pool2d_kernel(xp):
    def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
        H, W = x.shape[2:]
        Ho, Wo, pads = _pool_plan(H, W, kernel, stride, padding, dilation, ceil_mode)
        mod = _native_pool(xp, x)
        if mod is not None:  # one pass instead of one per window offset
            out = np.empty(x.shape[:2] + (Ho, Wo), x.dtype)
            mod.max_pool2d(np.ascontiguousarray(x), out, _pool_geometry(x, Ho, Wo, kernel, stride, padding, dilation))
            return out
        xp_ = _pad2(xp, x, *pads, value=-np.inf)
        out = None
        for _, sl in _windows(kernel, stride, dilation, Ho, Wo):
            if out is None:
                out = xp_[sl].copy()
            else:
                xp.maximum(out, xp_[sl], out=out)  # propagates NaN, like PyTorch
        return out
    return max_pool2d


def _max_pool2d_backward_kernel(xp):
    def max_pool2d_backward(g, x, kernel, stride, padding, dilation, ceil_mode):
        mod = _native_pool(xp, x) if g.dtype == x.dtype else None
        if mod is not None:  # one pass: each window's argmax gets its gradient
            dx = np.empty(x.shape, x.dtype)
            geometry = _pool_geometry(x, *g.shape[2:], kernel, stride, padding, dilation)
            mod.max_pool2d_backward(np.ascontiguousarray(g), np.ascontiguousarray(x), dx, geometry)
            return dx
        arg, Ho, Wo, (t, b, l, r) = _argmax_offsets(xp, x, kernel, stride, padding, dilation, ceil_mode)
        N, C, H, W = x.shape
        big = xp.zeros((N, C, H + t + b, W + l + r), g.dtype)
        for k, sl in _windows(kernel, stride, dilation, Ho, Wo):
            big[sl] += g * (arg == k)
        return xp.ascontiguousarray(big[:, :, t:t + H, l:l + W])
    return max_pool2d_backward


def _max_pool2d_indices_kernel(xp):
    def max_pool2d_indices(x, kernel, stride, padding, dilation, ceil_mode):
        arg, Ho, Wo, _ = _argmax_offsets(xp, x, kernel, stride, padding, dilation, ceil_mode)
        i, j = arg // kernel[1], arg % kernel[1]
        rows = (xp.arange(Ho) * stride[0] - padding[0])[:, None] + i * dilation[0]
        cols = (xp.arange(Wo) * stride[1] - padding[1])[None, :] + j * dilation[1]
        return (rows * x.shape[3] + cols).astype(np.int64)  # flat index into H*W, as PyTorch
    return max_pool2d_indices


def _max_pool2d_vjp(g, out, x, **params):
    return (max_pool2d_backward_(g, x, **params),)


def _max_pool2d_backward_vjp(v, out, g, x, **params):
    # Linear in g: the cotangent read back at each window's argmax. Zero almost everywhere in x.
    idx = max_pool2d_indices_(x, **params)
    gg = v.flatten(2).gather(2, idx.flatten(2)).reshape(g.shape)
    return gg, None


def _pool_shape(xs, *, kernel, stride, padding, dilation=(1, 1), ceil_mode=False, **params):
    return tuple(xs[:2]) + _pool_plan(xs[2], xs[3], kernel, stride, padding, dilation, ceil_mode)[:2]


max_pool2d_ = Op("max_pool2d", _max_pool2d_kernel, vjp=_max_pool2d_vjp, shape=_pool_shape,
                 dtype=lambda d, **p: d, onnx="MaxPool", doc="Max over each window (padding is -inf).")
max_pool2d_backward_ = Op("max_pool2d_backward", _max_pool2d_backward_kernel, vjp=_max_pool2d_backward_vjp,
                          shape=lambda gs, xs, **p: xs, dtype=lambda dg, dx, **p: dg,
                          doc="Route each window's gradient to its argmax (PyTorch's tie rule).")
max_pool2d_indices_ = Op("max_pool2d_indices", _max_pool2d_indices_kernel, shape=_pool_shape,
                         dtype=lambda d, **p: D.int64,
                         doc="Flat H*W index of each window's max, as PyTorch's return_indices.")


def _avg_divisor(xp, n, o, k, s, p, count_include_pad, dtype):
    """Per-output window sizes along one dim (PyTorch: windows are clipped to the padded input,
    and to the input itself when padding does not count)."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    size = end - start
    if not count_include_pad:
        size = np.minimum(end, n) - np.maximum(start, 0)
    return xp.asarray(size.astype(dtype))


def _avg_divisors(xp, H, W, Ho, Wo, kernel, stride, padding, count_include_pad, dtype):
    dh = _avg_divisor(xp, H, Ho, kernel[0], stride[0], padding[0], count_include_pad, dtype)
    dw = _avg_divisor(xp, W, Wo, kernel[1], stride[1], padding[1], count_include_pad, dtype)
    return dh[:, None] * dw[None, :]


def _avg_pool2d_kernel(xp):
    def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad):
        H, W = x.shape[2:]
        Ho, Wo, pads = _pool_plan(H, W, kernel, stride, padding, (1, 1), ceil_mode)
        xp_ = _pad2(xp, x, *pads)
        out = None
        for _, sl in _windows(kernel, stride, (1, 1), Ho, Wo):
            if out is None:
                out = xp_[sl].copy()
            else:
                out += xp_[sl]
        out /= _avg_divisors(xp, H, W, Ho, Wo, kernel, stride, padding, count_include_pad, x.dtype)
        return out
    return avg_pool2d


def _avg_pool2d_backward_kernel(xp):
    def avg_pool2d_backward(g, in_shape, kernel, stride, padding, ceil_mode, count_include_pad):
        N, C, H, W = in_shape
        Ho, Wo, (t, b, l, r) = _pool_plan(H, W, kernel, stride, padding, (1, 1), ceil_mode)
        gs = g / _avg_divisors(xp, H, W, Ho, Wo, kernel, stride, padding, count_include_pad, g.dtype)
        big = xp.zeros((N, C, H + t + b, W + l + r), g.dtype)
        for _, sl in _windows(kernel, stride, (1, 1), Ho, Wo):
            big[sl] += gs
        return xp.ascontiguousarray(big[:, :, t:t + H, l:l + W])
    return avg_pool2d_backward


def _avg_pool2d_vjp(g, out, x, **params):
    return (avg_pool2d_backward_(g, in_shape=tuple(x.shape), **params),)


def _avg_pool2d_backward_vjp(v, out, g, *, in_shape, **params):
    return (avg_pool2d_(v, **params),)  # the two are each other's adjoint


avg_pool2d_ = Op("avg_pool2d", _avg_pool2d_kernel, vjp=_avg_pool2d_vjp, saves=False, shape=_pool_shape,
                 dtype=lambda d, **p: d, onnx="AveragePool", doc="Mean over each window.")
avg_pool2d_backward_ = Op("avg_pool2d_backward", _avg_pool2d_backward_kernel, vjp=_avg_pool2d_backward_vjp,
                          saves=False, shape=lambda gs, *, in_shape, **p: tuple(in_shape),
                          dtype=lambda d, **p: d, doc="The adjoint of avg_pool2d.")

