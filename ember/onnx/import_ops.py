"""The ONNX operator table of ember's backend: ONNX op type -> a function of ember ops.

Each entry is ``fn(n) -> Tensor | tuple``; ``n`` is a ``NodeArgs`` with the node's inputs (``n.i``,
None for an omitted optional input), attributes (``n.attr``), opset and output count. Everything
that carries values is computed with ember ops, so gradients flow through an imported model;
shapes, axes and indices that ONNX passes as tensors are read as static Python values.

Example: OPS["Relu"](NodeArgs("Relu", [x], {}, opset=17, nout=1))
"""
from __future__ import annotations

import math

import numpy as np
from onnx import helper, numpy_helper

import ember as em
from .. import dtypes as D
from ..ops import elementwise as E
from ..ops.conv import avg_pool2d_, conv2d_, conv_transpose2d_, max_pool2d_, max_pool2d_indices_
from ..ops.movement import index_add_, index_put_
from ..tensor import Tensor
from .errors import UnsupportedOperatorError

OPS: dict = {}


class NodeArgs:
    """What a table function sees of one node."""

    def __init__(self, op_type, inputs, attrs, opset, nout, name=""):
        self.op_type, self.i, self.attrs, self.opset, self.nout, self.name = op_type, inputs, attrs, opset, nout, name

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def input(self, k):
        return self.i[k] if k < len(self.i) else None

    def unsupported(self, what: str):
        return UnsupportedOperatorError(f"ONNX {self.op_type} (node {self.name!r}, opset {self.opset}): {what} "
                                        f"is not supported by ember's ONNX backend")


def op(*names):
    def deco(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return deco


# -- helpers ------------------------------------------------------------------------------------
def const(arr) -> Tensor:
    """A NumPy value as an ember tensor (clear error for dtypes ember lacks)."""
    a = np.asarray(arr)
    return em.from_numpy(a if a.flags.c_contiguous else a.copy())  # (ascontiguousarray makes 0-d 1-d)


def values(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def ints(t) -> list:
    return [int(v) for v in np.asarray(values(t) if isinstance(t, Tensor) else t).reshape(-1)]


def scalar(t: Tensor):
    return values(t).reshape(-1)[0].item()


def np_dtype(onnx_type: int, n: NodeArgs):
    try:
        d = np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type))
        D.from_numpy(d)
        return d
    except Exception:
        raise n.unsupported(f"data type {helper.tensor_dtype_to_string(onnx_type)}") from None


def axis_of(a: int, ndim: int) -> int:
    return a + ndim if a < 0 else a


def cast(x: Tensor, npd) -> Tensor:
    return x if x._data.dtype == npd else E.cast(x, dtype=D.from_numpy(np.dtype(npd)))


def like(y: Tensor, x: Tensor) -> Tensor:
    """``y`` in ``x``'s dtype (ONNX ops keep their input type where ember promotes)."""
    return cast(y, x._data.dtype)


def attr_value(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode() for s in v]
    if hasattr(v, "data_type") and hasattr(v, "dims"):  # a TensorProto
        return numpy_helper.to_array(v)
    return v


def axes_arg(n: NodeArgs, since: int, k: int = 1):
    """Axes as an attribute (before opset ``since``) or as input ``k`` (from it on)."""
    if n.opset >= since:
        t = n.input(k)
        return None if t is None else ints(t)
    a = n.attr("axes")
    return None if a is None else list(a)


# -- elementwise --------------------------------------------------------------------------------
def unary(name, fn):
    OPS[name] = lambda n: fn(n.i[0])


for _name, _fn in {
    "Neg": E.neg, "Abs": E.abs, "Exp": E.exp, "Log": E.log, "Sqrt": E.sqrt, "Sin": E.sin, "Cos": E.cos,
    "Tanh": E.tanh, "Sigmoid": E.sigmoid, "Relu": E.relu, "Erf": E.erf, "Floor": E.floor, "Ceil": E.ceil,
    "Round": E.round, "Sign": E.sign, "Not": E.logical_not, "BitwiseNot": E.bitwise_not,
    "IsNaN": E.isnan, "Identity": lambda x: x,
    "Tan": lambda x: x.sin() / x.cos(),
    "Sinh": lambda x: (x.exp() - (-x).exp()) * 0.5,
    "Cosh": lambda x: (x.exp() + (-x).exp()) * 0.5,
    "Asinh": lambda x: (x + (x * x + 1).sqrt()).log(),
    "Acosh": lambda x: (x + (x * x - 1).sqrt()).log(),
    "Atanh": lambda x: ((1 + x) / (1 - x)).log() * 0.5,
    "Softsign": lambda x: x / (1 + x.abs()),
    "Softplus": lambda x: E.relu(x) + E.log1p(E.exp(-x.abs())),
    "Mish": lambda x: x * (E.relu(x) + E.log1p(E.exp(-x.abs()))).tanh(),
}.items():
    unary(_name, _fn)


@op("Reciprocal")
def _reciprocal(n):
    return like(E.reciprocal(n.i[0]), n.i[0])


@op("LeakyRelu")
def _leaky_relu(n):
    x = n.i[0]
    return em.where(x >= 0, x, x * n.attr("alpha", 0.01))


@op("Elu")
def _elu(n):
    x = n.i[0]
    return em.where(x > 0, x, E.expm1(x) * n.attr("alpha", 1.0))


@op("Selu")
def _selu(n):
    x = n.i[0]
    a, g = n.attr("alpha", 1.67326319217681884765625), n.attr("gamma", 1.05070102214813232421875)
    return em.where(x > 0, x, E.expm1(x) * a) * g


@op("Celu")
def _celu(n):
    x, a = n.i[0], n.attr("alpha", 1.0)
    return E.relu(x) + E.minimum(E.expm1(x / a) * a, 0.0)


@op("ThresholdedRelu")
def _thresholded_relu(n):
    x = n.i[0]
    return em.where(x > n.attr("alpha", 1.0), x, 0.0)


@op("HardSigmoid")
def _hard_sigmoid(n):
    return (n.i[0] * n.attr("alpha", 0.2) + n.attr("beta", 0.5)).clamp(0.0, 1.0)


@op("HardSwish")
def _hard_swish(n):
    x = n.i[0]
    return x * (x * (1 / 6) + 0.5).clamp(0.0, 1.0)


@op("PRelu")
def _prelu(n):
    x, slope = n.i
    return em.where(x < 0, x * slope, x)


@op("Gelu")
def _gelu(n):
    return E.gelu(n.i[0], approximate=n.attr("approximate", "none"))


@op("Shrink")
def _shrink(n):
    x, l, b = n.i[0], n.attr("lambd", 0.5), n.attr("bias", 0.0)
    return like(em.where(x < -l, x + b, em.where(x > l, x - b, 0)), x)


@op("IsInf")
def _isinf(n):
    x = n.i[0]
    pos, neg = n.attr("detect_positive", 1), n.attr("detect_negative", 1)
    inf = E.isinf(x)
    if pos and neg:
        return inf
    if pos:
        return inf.logical_and(x > 0)
    if neg:
        return inf.logical_and(x < 0)
    return inf.logical_and(inf.logical_not())


for _name, _fn in {
    "Add": E.add, "Sub": E.sub, "Mul": E.mul, "Equal": E.eq, "Less": E.lt, "LessOrEqual": E.le,
    "Greater": E.gt, "GreaterOrEqual": E.ge, "And": E.logical_and, "Or": E.logical_or,
    "Xor": E.logical_xor, "BitwiseAnd": E.bitwise_and, "BitwiseOr": E.bitwise_or,
    "BitwiseXor": E.bitwise_xor,
}.items():
    OPS[_name] = (lambda f: lambda n: f(n.i[0], n.i[1]))(_fn)


@op("Div")
def _div(n):
    a, b = n.i
    if a.dtype.is_floating_point:
        return a / b
    q = E.floor_divide(a, b)  # ONNX truncates integer division toward zero
    return em.where(E.remainder(a, b).ne(0).logical_and((a < 0).logical_xor(b < 0)), q + 1, q)


@op("Mod")
def _mod(n):
    a, b = n.i
    if n.attr("fmod", 0):  # C's fmod: the sign of the dividend
        return like(E.remainder(a.abs(), b.abs()) * E.sign(a), a)
    return E.remainder(a, b)  # Python's sign rule (of the divisor)


@op("Pow")
def _pow(n):
    a, b = n.i
    return like(E.pow(a, b), a)


def _variadic(f):
    def fn(n):
        out = n.i[0]
        for t in n.i[1:]:
            out = f(out, t)
        return out
    return fn


OPS["Max"] = _variadic(E.maximum)
OPS["Min"] = _variadic(E.minimum)
OPS["Sum"] = _variadic(E.add)
OPS["Mean"] = lambda n: like(_variadic(E.add)(n) / len(n.i), n.i[0])


@op("Where")
def _where(n):
    return em.where(*n.i)


@op("Clip")
def _clip(n):
    x = n.i[0]
    if n.opset < 11:
        lo, hi = n.attr("min"), n.attr("max")
    else:
        lo = None if n.input(1) is None else scalar(n.i[1])
        hi = None if n.input(2) is None else scalar(n.i[2])
    if lo is None and hi is None:
        return x
    return E.clamp_scalar(x, min=lo, max=hi)


@op("Cast")
def _cast(n):
    return cast(n.i[0], np_dtype(n.attr("to"), n))


@op("CastLike")
def _cast_like(n):
    return cast(n.i[0], n.i[1]._data.dtype)


# -- reductions ---------------------------------------------------------------------------------
def reduction(since, fn, empty=0.0):
    """``empty``: the result of reducing over no elements (ONNX's identity of the reduction)."""
    def run(n):
        x = n.i[0]
        axes = axes_arg(n, since)
        keep = bool(n.attr("keepdims", 1))
        if not axes:
            if n.attr("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.ndim))
        dims = tuple(sorted(axis_of(a, x.ndim) for a in axes))
        if any(x.shape[d] == 0 for d in dims):
            shape = tuple(1 if d in dims else s for d, s in enumerate(x.shape) if keep or d not in dims)
            return const(np.full(shape, empty, dtype=x._data.dtype))
        return like(fn(x, dims, keep), x)
    return run


OPS["ReduceSum"] = reduction(13, lambda x, d, k: em.sum(x, dim=d, keepdim=k))
OPS["ReduceMean"] = reduction(18, lambda x, d, k: em.mean(x, dim=d, keepdim=k))
OPS["ReduceMax"] = reduction(18, lambda x, d, k: em.amax(x, dim=d, keepdim=k), -np.inf)
OPS["ReduceMin"] = reduction(18, lambda x, d, k: em.amin(x, dim=d, keepdim=k), np.inf)
OPS["ReduceProd"] = reduction(18, lambda x, d, k: em.prod(x, dim=d, keepdim=k), 1)
OPS["ReduceL1"] = reduction(18, lambda x, d, k: em.sum(x.abs(), dim=d, keepdim=k))
OPS["ReduceL2"] = reduction(18, lambda x, d, k: em.sum(x * x, dim=d, keepdim=k).sqrt())
OPS["ReduceSumSquare"] = reduction(18, lambda x, d, k: em.sum(x * x, dim=d, keepdim=k))
OPS["ReduceLogSum"] = reduction(18, lambda x, d, k: em.sum(x, dim=d, keepdim=k).log(), -np.inf)
OPS["ReduceLogSumExp"] = reduction(18, lambda x, d, k: em.logsumexp(x, dim=d, keepdim=k), -np.inf)


def _arg_extreme(f):
    def run(n):
        x = n.i[0]
        axis, keep = axis_of(n.attr("axis", 0), x.ndim), bool(n.attr("keepdims", 1))
        if n.attr("select_last_index", 0):
            return (x.shape[axis] - 1) - f(x.flip(axis), dim=axis, keepdim=keep)
        return f(x, dim=axis, keepdim=keep)
    return run


OPS["ArgMax"] = _arg_extreme(em.argmax)
OPS["ArgMin"] = _arg_extreme(em.argmin)


@op("CumSum")
def _cumsum(n):
    x = n.i[0]
    axis = axis_of(int(scalar(n.i[1])), x.ndim)
    y = x.flip(axis) if n.attr("reverse", 0) else x
    y = em.cumsum(y, axis)
    if n.attr("exclusive", 0):
        y = y - (x.flip(axis) if n.attr("reverse", 0) else x)
    return like(y.flip(axis) if n.attr("reverse", 0) else y, x)


# -- linear algebra, normalization, softmax ------------------------------------------------------
@op("MatMul")
def _matmul(n):
    return em.matmul(*n.i)


@op("Gemm")
def _gemm(n):
    a, b, c = n.i[0], n.i[1], n.input(2)
    a = a.transpose(0, 1) if n.attr("transA", 0) else a
    b = b.transpose(0, 1) if n.attr("transB", 0) else b
    y = em.matmul(a, b)
    alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


def _channel(t: Tensor, ndim: int) -> Tensor:
    """A per-channel (C,) tensor shaped to broadcast against (N, C, ...)."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


@op("BatchNormalization")
def _batch_norm(n):
    x, scale, bias, mean, var = n.i[:5]
    eps, mom = n.attr("epsilon", 1e-5), n.attr("momentum", 0.9)
    if n.attr("training_mode", 0):
        dims = (0,) + tuple(range(2, x.ndim))
        bm, bv = em.mean(x, dim=dims), em.var(x, dim=dims, correction=0)
        y = (x - _channel(bm, x.ndim)) / (_channel(bv, x.ndim) + eps).sqrt() * _channel(scale, x.ndim) + _channel(bias, x.ndim)
        return y, mean * mom + bm * (1 - mom), var * mom + bv * (1 - mom)
    inv = scale / (var + eps).sqrt()
    return x * _channel(inv, x.ndim) + _channel(bias - mean * inv, x.ndim)


@op("InstanceNormalization")
def _instance_norm(n):
    x, scale, bias = n.i
    dims = tuple(range(2, x.ndim))
    m = em.mean(x, dim=dims, keepdim=True)
    v = em.var(x, dim=dims, keepdim=True, correction=0)
    return (x - m) / (v + n.attr("epsilon", 1e-5)).sqrt() * _channel(scale, x.ndim) + _channel(bias, x.ndim)


@op("LayerNormalization")
def _layer_norm(n):
    x, scale, bias = n.i[0], n.i[1], n.input(2)
    axis = axis_of(n.attr("axis", -1), x.ndim)
    dims = tuple(range(axis, x.ndim))
    xf = cast(x, np.float32) if x._data.dtype != np.float64 else x  # stash_type: float32
    m = em.mean(xf, dim=dims, keepdim=True)
    d = xf - m
    inv = (em.mean(d * d, dim=dims, keepdim=True) + n.attr("epsilon", 1e-5)).sqrt().reciprocal()
    y = like(d * inv, x) * scale
    if bias is not None:
        y = y + bias
    return (y, m, inv)[:max(n.nout, 1)] if n.nout > 1 else y


@op("RMSNormalization")
def _rms_norm(n):
    x, scale = n.i[0], n.i[1]
    dims = tuple(range(axis_of(n.attr("axis", -1), x.ndim), x.ndim))
    xf = cast(x, np.float32) if x._data.dtype != np.float64 else x
    inv = (em.mean(xf * xf, dim=dims, keepdim=True) + n.attr("epsilon", 1e-5)).sqrt().reciprocal()
    return like(xf * inv, x) * scale


@op("Swish")
def _swish(n):
    x = n.i[0]
    return x * E.sigmoid(x * n.attr("alpha", 1.0))


@op("GroupNormalization")
def _group_norm(n):
    x, scale, bias = n.i
    g = n.attr("num_groups")
    N, C = x.shape[0], x.shape[1]
    xs = x.reshape(N, g, -1)
    m = em.mean(xs, dim=2, keepdim=True)
    v = em.var(xs, dim=2, keepdim=True, correction=0)
    y = ((xs - m) / (v + n.attr("epsilon", 1e-5)).sqrt()).reshape(tuple(x.shape))
    if scale.shape[0] != C:  # opset 18: one scale per group
        scale, bias = em.repeat(scale.reshape(g, 1), 1, C // g).reshape(C), em.repeat(bias.reshape(g, 1), 1, C // g).reshape(C)
    return y * _channel(scale, x.ndim) + _channel(bias, x.ndim)


@op("MeanVarianceNormalization")
def _mvn(n):
    x = n.i[0]
    dims = tuple(axis_of(a, x.ndim) for a in n.attr("axes", [0, 2, 3]))
    m = em.mean(x, dim=dims, keepdim=True)
    v = em.mean((x - m) * (x - m), dim=dims, keepdim=True)
    return (x - m) / (v.sqrt() + 1e-9)


@op("LpNormalization")
def _lp_norm(n):
    x, axis, p = n.i[0], n.attr("axis", -1), n.attr("p", 2)
    norm = em.sum(x.abs(), dim=axis, keepdim=True) if p == 1 else em.sum(x * x, dim=axis, keepdim=True).sqrt()
    return like(em.where(norm.eq(0), 0.0, x / em.where(norm.eq(0), 1.0, norm)), x)


@op("LRN")
def _lrn(n):
    x, size = n.i[0], n.attr("size")
    sq = x * x
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = em.pad(sq, (0, 0) * (x.ndim - 2) + (lo, hi))
    s = sum(sq[:, i:i + x.shape[1]] for i in range(size))
    return x / (n.attr("bias", 1.0) + s * (n.attr("alpha", 1e-4) / size)) ** n.attr("beta", 0.75)


def _coerced(fn):
    """Softmax family: from opset 13 one axis (default -1); before, the input is read as 2-D
    (dims before ``axis`` x the rest, default axis 1)."""
    def run(n):
        x = n.i[0]
        if n.opset >= 13:
            return fn(x, axis_of(n.attr("axis", -1), x.ndim))
        axis = axis_of(n.attr("axis", 1), x.ndim)
        shape = tuple(x.shape)
        return fn(x.reshape(math.prod(shape[:axis]), -1), 1).reshape(shape)
    return run


def _hardmax(x, axis):
    idx = em.argmax(x, dim=axis, keepdim=True)
    ar = np.arange(x.shape[axis]).reshape([-1 if d == axis else 1 for d in range(x.ndim)])
    return like(idx.eq(const(ar)), x)


OPS["Softmax"] = _coerced(lambda x, a: em.softmax(x, a))
OPS["LogSoftmax"] = _coerced(lambda x, a: em.log_softmax(x, a))
OPS["Hardmax"] = _coerced(_hardmax)


# -- convolution and pooling (2-D; 1-D runs as 2-D with a unit height) --------------------------
def _spatial(n, x, k_shape):
    """Strides, dilations and (begin..., end...) pads of a conv/pool node, auto_pad resolved."""
    nd = len(k_shape)
    strides = list(n.attr("strides", [1] * nd))
    dil = list(n.attr("dilations", [1] * nd))
    pads = list(n.attr("pads", [0] * (2 * nd)))
    auto = n.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (k_shape[i] - 1) * dil[i] + 1 - size)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    return strides, dil, pads


def _as_2d(n, x, nd):
    if nd == 1:
        return x.unsqueeze(2)
    if nd != 2:
        raise n.unsupported(f"{nd}-D input (ember has 1-D and 2-D convolution and pooling)")
    return x


def _pad_explicit(x, pads, nd, value=0.0):
    """Apply asymmetric (begin..., end...) pads with a pad op; returns (x, symmetric pads)."""
    begin, end = pads[:nd], pads[nd:]
    if begin == end:
        return x, begin
    widths = []
    for i in reversed(range(nd)):
        widths += [begin[i], end[i]]
    return em.pad(x, tuple(widths), value=value), [0] * nd


@op("Conv")
def _conv(n):
    x, w, b = n.i[0], n.i[1], n.input(2)
    nd = w.ndim - 2
    strides, dil, pads = _spatial(n, x, list(w.shape[2:]))
    x, p = _pad_explicit(x, pads, nd)
    if nd == 1:
        x, w, strides, dil, p = x.unsqueeze(2), w.unsqueeze(2), [1] + strides, [1] + dil, [0] + p
    _as_2d(n, x, 2 if nd == 1 else nd)
    y = conv2d_(*((x, w) if b is None else (x, w, b)), stride=tuple(strides), padding=tuple(p),
                dilation=tuple(dil), groups=n.attr("group", 1))
    return y.squeeze(2) if nd == 1 else y


@op("ConvTranspose")
def _conv_transpose(n):
    x, w, b = n.i[0], n.i[1], n.input(2)
    nd = w.ndim - 2
    _as_2d(n, x, 2 if nd == 1 else nd)
    k = list(w.shape[2:])
    strides = list(n.attr("strides", [1] * nd))
    dil = list(n.attr("dilations", [1] * nd))
    outpad = list(n.attr("output_padding", [0] * nd))
    pads = list(n.attr("pads", [0] * (2 * nd)))
    full = [(x.shape[2 + i] - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 + outpad[i] for i in range(nd)]
    out_shape = n.attr("output_shape")
    auto = n.attr("auto_pad", "NOTSET")
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = list(out_shape)[-nd:] if out_shape is not None else [x.shape[2 + i] * strides[i] for i in range(nd)]
        for i in range(nd):
            total = full[i] - target[i]
            lower = auto == "SAME_LOWER"
            pads[i], pads[i + nd] = (total - total // 2, total // 2) if lower else (total // 2, total - total // 2)
    if nd == 1:
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        strides, dil, outpad, pads = [1] + strides, [1] + dil, [0] + outpad, [0, pads[0], 0, pads[1]]
        nd2 = 2
    else:
        nd2 = nd
    y = conv_transpose2d_(x, w, stride=tuple(strides), padding=(0,) * nd2, output_padding=tuple(outpad),
                          dilation=tuple(dil), groups=n.attr("group", 1))
    # Crop the pads (they may differ at each end) from the full output; a negative pad (an
    # output_shape larger than the full output) adds zeros.
    widths = []
    for i in reversed(range(nd2)):
        widths += [-pads[i], -pads[i + nd2]]
    y = em.pad(y, tuple(widths)) if any(widths) else y
    if nd == 1:
        y = y.squeeze(2)
    return y if b is None else y + _channel(b, y.ndim)


def _pool(n, kind):
    x = n.i[0]
    k = list(n.attr("kernel_shape"))
    nd = len(k)
    strides, dil, pads = _spatial(n, x, k)
    ceil = bool(n.attr("ceil_mode", 0))
    x = _as_2d(n, x, nd)
    if nd == 1:
        k, strides, dil, pads = [1] + k, [1] + strides, [1] + dil, [0, pads[0], 0, pads[1]]
    begin, end = pads[:2], pads[2:]
    if kind == "max":
        src = x
        if not x.dtype.is_floating_point:  # ember pads windows with -inf
            x = cast(x, np.float64)
        if begin != end:
            x, p = _pad_explicit(x, pads, 2, value=-np.inf)
        else:
            p = begin
        params = dict(kernel=tuple(k), stride=tuple(strides), padding=tuple(p), dilation=tuple(dil), ceil_mode=ceil)
        y = like(max_pool2d_(x, **params), src)
        if n.nout > 1:
            if begin != end or nd != 2:
                raise n.unsupported("the Indices output with asymmetric pads or 1-D input")
            return y, _pool_indices(n, src, max_pool2d_indices_(x, **params))
    else:
        if dil != [1, 1]:
            raise n.unsupported("dilations in AveragePool")
        include = bool(n.attr("count_include_pad", 0))
        params = dict(kernel=tuple(k), stride=tuple(strides), ceil_mode=ceil, count_include_pad=True)
        if begin != end and not include:  # sum over the window / count of real elements in it
            ones = const(np.ones((1, 1) + tuple(x.shape[2:]), x._data.dtype))
            xp, p = _pad_explicit(x, pads, 2)
            op, _ = _pad_explicit(ones, pads, 2)
            y = avg_pool2d_(xp, padding=(0, 0), **params) / avg_pool2d_(op, padding=(0, 0), **params)
        else:
            if begin != end:
                x, p = _pad_explicit(x, pads, 2)
            else:
                p = begin
            params["count_include_pad"] = include
            y = avg_pool2d_(x, padding=tuple(p), **params)
    return y.squeeze(2) if nd == 1 else y


def _pool_indices(n, x, idx):
    """ember's per-plane H*W indices -> ONNX's flat NCHW (or NCWH, storage_order=1) indices."""
    N, C, H, W = x.shape
    if n.attr("storage_order", 0):
        idx = E.remainder(idx, W) * H + E.floor_divide(idx, W)
    return idx + const((np.arange(N * C, dtype=np.int64) * (H * W)).reshape(N, C, 1, 1))


OPS["MaxPool"] = lambda n: _pool(n, "max")
OPS["AveragePool"] = lambda n: _pool(n, "avg")


@op("GlobalAveragePool")
def _global_avg(n):
    x = n.i[0]
    return em.mean(x, dim=tuple(range(2, x.ndim)), keepdim=True)


@op("GlobalMaxPool")
def _global_max(n):
    x = n.i[0]
    return em.amax(x, dim=tuple(range(2, x.ndim)), keepdim=True)


@op("Dropout")
def _dropout(n):
    x = n.i[0]
    training = n.input(2) is not None and bool(scalar(n.i[2]))
    ratio = n.attr("ratio", 0.5) if n.opset < 12 else (0.5 if n.input(1) is None else scalar(n.i[1]))
    if training and ratio > 0:
        raise n.unsupported("training_mode=True (random masks)")
    return x if n.nout < 2 else (x, const(np.ones(x.shape, bool)))


# -- shapes and movement ---------------------------------------------------------------------------
@op("Reshape")
def _reshape(n):
    x = n.i[0]
    shape = ints(n.i[1]) if n.opset >= 5 else list(n.attr("shape"))
    if not n.attr("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(tuple(shape))


@op("Transpose")
def _transpose(n):
    x = n.i[0]
    perm = n.attr("perm", list(reversed(range(x.ndim))))
    return x.permute(*perm)


@op("Flatten")
def _flatten(n):
    x = n.i[0]
    axis = axis_of(n.attr("axis", 1), x.ndim)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@op("Squeeze")
def _squeeze(n):
    x = n.i[0]
    axes = axes_arg(n, 13)
    if axes is None:
        return em.squeeze(x)
    return em.squeeze(x, tuple(axis_of(a, x.ndim) for a in axes))


@op("Unsqueeze")
def _unsqueeze(n):
    x = n.i[0]
    axes = axes_arg(n, 13)
    r = x.ndim + len(axes)
    axes = sorted(axis_of(a, r) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return x.reshape(tuple(shape))


@op("Concat")
def _concat(n):
    ts = [t for t in n.i if t is not None]
    return em.cat(ts, dim=axis_of(n.attr("axis"), ts[0].ndim))


@op("Split")
def _split(n):
    x = n.i[0]
    axis = axis_of(n.attr("axis", 0), x.ndim)
    if n.opset >= 13:
        sizes = None if n.input(1) is None else ints(n.i[1])
    else:
        sizes = n.attr("split") or (ints(n.i[1]) if n.input(1) is not None else None)
    if sizes is None:
        parts = n.attr("num_outputs", n.nout)
        size = -(-x.shape[axis] // parts)
        sizes = [min(size, x.shape[axis] - size * i) for i in range(parts)]
    return tuple(em.split(x, sizes, dim=axis))


def slice_axis(x: Tensor, axis: int, start: int, end: int, step: int) -> Tensor:
    """ONNX Slice semantics on one axis (clamping; negative steps through flip)."""
    dim = x.shape[axis]
    start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return x[(slice(None),) * axis + (slice(start, max(start, end), step),)]
    start, end = min(max(start, -1), dim - 1), min(max(end, -1), dim - 1)
    f = x.flip(axis)
    s, e = dim - 1 - start, dim - 1 - end
    return f[(slice(None),) * axis + (slice(s, max(s, e), -step),)]


@op("Slice")
def _slice(n):
    x = n.i[0]
    if n.opset < 10:
        starts, ends = list(n.attr("starts")), list(n.attr("ends"))
        axes, steps = n.attr("axes"), None
    else:
        starts, ends = ints(n.i[1]), ints(n.i[2])
        axes = None if n.input(3) is None else ints(n.i[3])
        steps = None if n.input(4) is None else ints(n.i[4])
    axes = list(range(len(starts))) if axes is None else [axis_of(a, x.ndim) for a in axes]
    steps = steps or [1] * len(starts)
    for a, s, e, st in zip(axes, starts, ends, steps):
        x = slice_axis(x, a, s, e, st)
    return x


def _index(t: Tensor, dim: int) -> np.ndarray:
    i = values(t).astype(np.int64)
    return np.where(i < 0, i + dim, i)


@op("Gather")
def _gather(n):
    x, idx = n.i
    axis = axis_of(n.attr("axis", 0), x.ndim)
    return x[(slice(None),) * axis + (_index(idx, x.shape[axis]),)]


@op("GatherElements")
def _gather_elements(n):
    x, idx = n.i
    axis = axis_of(n.attr("axis", 0), x.ndim)
    return em.gather(x, axis, const(_index(idx, x.shape[axis])))


def _nd_index(x, idx: np.ndarray, batch_dims: int) -> tuple:
    lead = idx.shape[:-1]
    grids = [np.arange(lead[b]).reshape([-1 if d == b else 1 for d in range(len(lead))]) for b in range(batch_dims)]
    cols = []
    for j in range(idx.shape[-1]):
        c = idx[..., j]
        cols.append(np.where(c < 0, c + x.shape[batch_dims + j], c))
    return tuple(grids + cols)


@op("GatherND")
def _gather_nd(n):
    x, idx = n.i
    return x[_nd_index(x, values(idx).astype(np.int64), n.attr("batch_dims", 0))]


def _reduce_mode(n):
    mode = n.attr("reduction", "none")
    if mode not in ("none", "add"):
        raise n.unsupported(f"reduction={mode!r}")
    return mode


@op("ScatterElements", "Scatter")
def _scatter_elements(n):
    x, idx, upd = n.i
    axis = axis_of(n.attr("axis", 0), x.ndim)
    i = _index(idx, x.shape[axis])
    if _reduce_mode(n) == "add":
        return em.scatter_add(x, axis, const(i), upd)
    grids = list(np.indices(i.shape, sparse=True))
    grids[axis] = i
    return index_put_(x, upd, index=tuple(grids))


@op("ScatterND")
def _scatter_nd(n):
    x, idx, upd = n.i
    index = _nd_index(x, values(idx).astype(np.int64), 0)
    if _reduce_mode(n) == "add":
        return x + index_add_(upd, shape=tuple(x.shape), index=index)
    return index_put_(x, upd, index=index)


@op("Expand")
def _expand(n):
    x = n.i[0]
    shape = np.broadcast_shapes(tuple(x.shape), tuple(ints(n.i[1])))
    return x if tuple(shape) == tuple(x.shape) else em.broadcast_to(x, shape)


@op("Tile")
def _tile(n):
    return em.repeat(n.i[0], *ints(n.i[1]))


@op("Pad")
def _pad(n):
    x = n.i[0]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[n.attr("mode", "constant")]
    if n.opset < 11:
        pads, value, axes = list(n.attr("pads")), n.attr("value", 0.0), None
    else:
        pads = ints(n.i[1])
        value = 0 if n.input(2) is None else scalar(n.i[2])
        axes = None if n.input(3) is None else [axis_of(a, x.ndim) for a in ints(n.i[3])]
    axes = list(range(x.ndim)) if axes is None else axes
    k = len(axes)
    widths = {a: (pads[j], pads[j + k]) for j, a in enumerate(axes)}
    flat = []
    for d in reversed(range(x.ndim)):
        flat += list(widths.get(d, (0, 0)))
    return em.pad(x, tuple(flat), mode=mode, value=value) if any(flat) else x


@op("Constant")
def _constant(n):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        v = n.attr(key)
        if v is not None:
            dt = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                  "value_ints": np.int64}.get(key)
            return const(np.array(v, dtype=dt))
    raise n.unsupported(f"attribute {sorted(n.attrs)}")


@op("ConstantOfShape")
def _constant_of_shape(n):
    v = n.attr("value", np.zeros(1, np.float32))
    return const(np.full(tuple(ints(n.i[0])), v.reshape(-1)[0], dtype=v.dtype))


@op("Shape")
def _shape(n):
    s = list(n.i[0].shape)
    start, end = n.attr("start", 0), n.attr("end", None)
    return const(np.array(s[start:end], dtype=np.int64))


@op("Size")
def _size(n):
    return const(np.array(math.prod(n.i[0].shape), dtype=np.int64).reshape(()))


@op("Range")
def _range(n):
    start, limit, delta = (values(t).reshape(()) for t in n.i)
    return const(np.arange(start, limit, delta, dtype=start.dtype))


@op("EyeLike")
def _eye_like(n):
    x = n.i[0]
    dt = np_dtype(n.attr("dtype"), n) if n.attr("dtype") is not None else x._data.dtype
    return const(np.eye(x.shape[0], x.shape[1], n.attr("k", 0), dtype=dt))


@op("OneHot")
def _one_hot(n):
    idx, depth, vals = n.i
    d = int(scalar(depth))
    i = values(idx).astype(np.int64)
    i = np.where(i < 0, i + d, i)
    axis = axis_of(n.attr("axis", -1), i.ndim + 1)
    hot = np.expand_dims(i, axis) == np.arange(d).reshape([-1 if a == axis else 1 for a in range(i.ndim + 1)])
    return em.where(const(hot), vals[1], vals[0])


@op("NonZero")
def _nonzero(n):
    return const(np.array(np.nonzero(values(n.i[0])), dtype=np.int64).reshape(n.i[0].ndim, -1))


@op("Trilu")
def _trilu(n):
    x = n.i[0]
    k = 0 if n.input(1) is None else int(scalar(n.i[1]))
    return em.triu(x, k) if n.attr("upper", 1) else em.tril(x, k)


@op("DepthToSpace")
def _depth_to_space(n):
    x, b = n.i[0], n.attr("blocksize")
    N, C, H, W = x.shape
    if n.attr("mode", "DCR") == "DCR":
        y = x.reshape(N, b, b, C // (b * b), H, W).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(N, C // (b * b), b, b, H, W).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(N, C // (b * b), H * b, W * b)


@op("SpaceToDepth")
def _space_to_depth(n):
    x, b = n.i[0], n.attr("blocksize")
    N, C, H, W = x.shape
    y = x.reshape(N, C, H // b, b, W // b, b)
    y = y.permute(0, 1, 3, 5, 2, 4) if n.attr("mode", "DCR") == "CRD" else y.permute(0, 3, 5, 1, 2, 4)
    return y.reshape(N, C * b * b, H // b, W // b)


@op("NegativeLogLikelihoodLoss")
def _nll(n):
    return _nll_loss(n, n.i[0], n.i[1], n.input(2))


@op("SoftmaxCrossEntropyLoss")
def _softmax_ce(n):
    x = n.i[0]
    logp = em.log_softmax(x, 1)
    loss = _nll_loss(n, logp, n.i[1], n.input(2))
    return (loss, logp) if n.nout > 1 else loss


def _nll_loss(n, logp, target, weight):
    t = values(target).astype(np.int64)
    ignore = n.attr("ignore_index")
    keep = np.ones(t.shape, bool) if ignore is None else t != ignore
    safe = np.where(keep, t, 0)
    picked = -em.gather(logp, 1, const(np.expand_dims(safe, 1))).squeeze(1)
    w = keep.astype(logp._data.dtype)
    wt = const(w)
    if weight is not None:
        wt = weight[safe] * wt
    loss = picked * wt
    red = n.attr("reduction", "mean")
    if red == "none":
        return loss
    if red == "sum":
        return loss.sum()
    return loss.sum() / wt.sum()
