"""The export table: ember registry op name -> a function that writes ONNX nodes for one IR node.

Every entry is ``fn(cx, node, p) -> output name``: ``cx`` is the exporter (``cx.x(arg)`` names an
argument, ``cx.const(array)`` adds a constant, ``cx.emit(op_type, inputs, **attrs)`` adds a node
and returns its output name, ``cx.ints(values)`` makes an int64 tensor of values that may be
symbolic ``Sym`` dims), ``node`` the IR node, ``p`` its params with dims that depend on a dynamic
axis replaced by ``Sym``. An op missing here has no ONNX form: export names it in its error.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import helper

from ..compiler.graph import ArgRef, Var
from .errors import OnnxError

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
SQRT1_2 = 1 / math.sqrt(2)

EXPORT: dict = {}


class Sym:
    """A dim that depends on a dynamic input axis: ``a * size(axis) + b``."""

    def __init__(self, a: int, b: int, axis, what: str = ""):
        self.a, self.b, self.axis = a, b, axis  # axis: (input index, dim), or None: not affine in one axis
        self.what = what

    def __repr__(self) -> str:
        return f"Sym({self.a}*{self.axis}+{self.b})"


def has_sym(v) -> bool:
    if isinstance(v, (tuple, list)):
        return any(has_sym(x) for x in v)
    if isinstance(v, slice):
        return has_sym((v.start, v.stop, v.step))
    return isinstance(v, Sym)


def static(name, p: dict, *keys):
    """Params used as ONNX attributes must not depend on a dynamic axis."""
    for k in keys or p:
        if has_sym(p.get(k)):
            raise OnnxError(f"ember.onnx.export: op {name!r} has parameter {k}={p[k]!r} that changes with a "
                            f"dynamic axis, and ONNX takes it as a fixed attribute; export without that dynamic axis")


def onnx_type(np_dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))


def reg(*names):
    def deco(fn):
        for n in names:
            EXPORT[n] = fn
        return fn
    return deco


# -- elementwise --------------------------------------------------------------------------------
_SAME = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos",
         "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf", "floor": "Floor", "ceil": "Ceil",
         "sign": "Sign", "reciprocal": "Reciprocal", "logical_not": "Not", "bitwise_not": "BitwiseNot",
         "isnan": "IsNaN", "isinf": "IsInf", "copy": "Identity", "to_device": "Identity",
         "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
         "minimum": "Min", "eq": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater",
         "ge": "GreaterOrEqual", "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor",
         "bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr", "bitwise_xor": "BitwiseXor", "where": "Where",
         "matmul": "MatMul"}

for _ember, _onnx in _SAME.items():
    EXPORT[_ember] = (lambda t: lambda cx, n, p: cx.emit(t, [cx.x(a) for a in n.args]))(_onnx)


def _scalar(cx, n, value):
    """A constant of the node's input dtype."""
    return cx.const(np.asarray(value, dtype=n.args[0].dtype if type(n.args[0]) is Var else np.float32))


@reg("round")
def _round(cx, n, p):
    d = p.get("decimals", 0)
    if not d:
        return cx.emit("Round", [cx.x(n.args[0])])
    s = _scalar(cx, n, 10.0 ** d)
    return cx.emit("Div", [cx.emit("Round", [cx.emit("Mul", [cx.x(n.args[0]), s])]), s])


@reg("log1p")
def _log1p(cx, n, p):
    return cx.emit("Log", [cx.emit("Add", [cx.x(n.args[0]), _scalar(cx, n, 1)])])


@reg("expm1")
def _expm1(cx, n, p):
    return cx.emit("Sub", [cx.emit("Exp", [cx.x(n.args[0])]), _scalar(cx, n, 1)])


@reg("rsqrt")
def _rsqrt(cx, n, p):
    return cx.emit("Reciprocal", [cx.emit("Sqrt", [cx.x(n.args[0])])])


@reg("silu")
def _silu(cx, n, p):
    x = cx.x(n.args[0])
    return cx.emit("Mul", [x, cx.emit("Sigmoid", [x])])


@reg("isfinite")
def _isfinite(cx, n, p):
    x = cx.x(n.args[0])
    return cx.emit("Not", [cx.emit("Or", [cx.emit("IsNaN", [x]), cx.emit("IsInf", [x])])])


@reg("gelu")
def _gelu(cx, n, p):
    x = cx.x(n.args[0])
    approx = p.get("approximate", "none")
    if cx.opset >= 20:
        return cx.emit("Gelu", [x], approximate=approx)
    half = _scalar(cx, n, 0.5)
    if approx == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = cx.emit("Mul", [cx.emit("Mul", [x, x]), x])
        inner = cx.emit("Add", [x, cx.emit("Mul", [x3, _scalar(cx, n, 0.044715)])])
        t = cx.emit("Tanh", [cx.emit("Mul", [inner, _scalar(cx, n, math.sqrt(2 / math.pi))])])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        t = cx.emit("Erf", [cx.emit("Mul", [x, _scalar(cx, n, SQRT1_2)])])
    return cx.emit("Mul", [cx.emit("Mul", [x, half]), cx.emit("Add", [t, _scalar(cx, n, 1)])])


@reg("clamp")
def _clamp(cx, n, p):
    lo, hi = p.get("min"), p.get("max")
    return cx.emit("Clip", [cx.x(n.args[0]), "" if lo is None else _scalar(cx, n, lo),
                            "" if hi is None else _scalar(cx, n, hi)])


@reg("cast")
def _cast(cx, n, p):
    return cx.emit("Cast", [cx.x(n.args[0])], to=onnx_type(p["dtype"].np))


@reg("ne")
def _ne(cx, n, p):
    return cx.emit("Not", [cx.emit("Equal", [cx.x(a) for a in n.args])])


def _float_floor_div(cx, a, b):
    return cx.emit("Floor", [cx.emit("Div", [a, b])])


@reg("floor_divide")
def _floor_divide(cx, n, p):
    a, b = (cx.x(x) for x in n.args)
    if n.out.dtype.kind == "f":
        return _float_floor_div(cx, a, b)
    f64 = onnx_type(np.float64)
    q = _float_floor_div(cx, cx.emit("Cast", [a], to=f64), cx.emit("Cast", [b], to=f64))
    return cx.emit("Cast", [q], to=onnx_type(n.out.dtype))


@reg("remainder")
def _remainder(cx, n, p):
    a, b = (cx.x(x) for x in n.args)
    if n.out.dtype.kind != "f":
        return cx.emit("Mod", [a, b], fmod=0)
    return cx.emit("Sub", [a, cx.emit("Mul", [_float_floor_div(cx, a, b), b])])


# -- reductions ---------------------------------------------------------------------------------
def _reduce(onnx_op):
    def fn(cx, n, p):
        x = cx.x(n.args[0])
        if n.out.dtype != n.args[0].dtype:  # ember sums integers and bools into int64
            x = cx.emit("Cast", [x], to=onnx_type(n.out.dtype))
        axis = p.get("axis")
        ins = [x] if axis is None else [x, cx.const(np.array(axis, np.int64))]
        return cx.emit(onnx_op, ins, keepdims=int(bool(p.get("keepdims", False))))
    return fn


EXPORT["sum"] = _reduce("ReduceSum")
EXPORT["max"] = _reduce("ReduceMax")
EXPORT["min"] = _reduce("ReduceMin")
EXPORT["prod"] = _reduce("ReduceProd")


def _bool_reduce(onnx_op):
    def fn(cx, n, p):
        x = cx.emit("Cast", [cx.x(n.args[0])], to=onnx_type(np.int32))
        axis = p.get("axis")
        ins = [x] if axis is None else [x, cx.const(np.array(axis, np.int64))]
        y = cx.emit(onnx_op, ins, keepdims=int(bool(p.get("keepdims", False))))
        return cx.emit("Cast", [y], to=onnx_type(np.bool_))
    return fn


EXPORT["all"] = _bool_reduce("ReduceMin")
EXPORT["any"] = _bool_reduce("ReduceMax")


def _arg(onnx_op):
    def fn(cx, n, p):
        x = cx.x(n.args[0])
        axis, keep = p.get("axis"), int(bool(p.get("keepdims", False)))
        if axis is None:  # over the flattened tensor
            flat = cx.emit("Reshape", [x, cx.const(np.array([-1], np.int64))])
            y = cx.emit(onnx_op, [flat], axis=0, keepdims=0)
            return cx.emit("Reshape", [y, cx.const(np.array(n.out.shape, np.int64))])
        return cx.emit(onnx_op, [x], axis=axis[0], keepdims=keep)
    return fn


EXPORT["argmax"] = _arg("ArgMax")
EXPORT["argmin"] = _arg("ArgMin")


@reg("cumsum")
def _cumsum(cx, n, p):
    return cx.emit("CumSum", [cx.x(n.args[0]), cx.const(np.array(p["axis"], np.int64))])


# -- movement -----------------------------------------------------------------------------------
@reg("reshape")
def _reshape(cx, n, p):
    shape = list(p["shape"])
    syms = [i for i, s in enumerate(shape) if isinstance(s, Sym)]
    if len(syms) == 1:  # the one dynamic dim is whatever is left: -1
        shape[syms[0]] = -1
    return cx.emit("Reshape", [cx.x(n.args[0]), cx.ints(shape)])


@reg("permute")
def _permute(cx, n, p):
    return cx.emit("Transpose", [cx.x(n.args[0])], perm=list(p["axes"]))


@reg("expand")
def _expand(cx, n, p):
    x = n.args[0]
    shape = list(p["shape"])
    off = len(shape) - len(x.shape)
    for i, s in enumerate(shape):  # Expand broadcasts both ways: 1 keeps the input's dynamic dim
        if isinstance(s, Sym) and i >= off and x.shape[i - off] != 1:
            shape[i] = 1
    return cx.emit("Expand", [cx.x(x), cx.ints(shape)])


@reg("flip")
def _flip(cx, n, p):
    axes = list(p["axes"])
    k = len(axes)
    return cx.emit("Slice", [cx.x(n.args[0]), cx.ints([-1] * k), cx.ints([INT64_MIN] * k),
                             cx.ints(axes), cx.ints([-1] * k)])


@reg("pad")
def _pad(cx, n, p):
    static("pad", p, "widths")
    widths = p["widths"]
    pads = [b for b, _ in widths] + [a for _, a in widths]
    return cx.emit("Pad", [cx.x(n.args[0]), cx.ints(pads), _scalar(cx, n, p.get("value", 0.0))])


@reg("cat")
def _cat(cx, n, p):
    return cx.emit("Concat", [cx.x(a) for a in n.args], axis=p["axis"])


@reg("gather")
def _gather(cx, n, p):
    return cx.emit("GatherElements", [cx.x(a) for a in n.args], axis=p["axis"])


@reg("scatter_add")
def _scatter_add(cx, n, p):
    x, idx, src = n.args
    s = cx.x(src)
    if src.shape != idx.shape:  # ember uses the leading part of a larger src
        k = len(idx.shape)
        s = cx.emit("Slice", [s, cx.ints([0] * k), cx.ints(list(idx.shape)), cx.ints(list(range(k)))])
    return cx.emit("ScatterElements", [cx.x(x), cx.x(idx), s], axis=p["axis"], reduction="add")


@reg("getitem")
def _getitem(cx, n, p):
    x = n.args[0]
    index = p["index"]
    arrays = [i for i in index if isinstance(i, ArgRef)]
    if len(arrays) > 1 or any(n.args[a].dtype == np.bool_ for a in arrays) or any(
            type(i) is bool for i in index):
        raise OnnxError(f"ember.onnx.export: indexing with {index!r} (several index tensors or a boolean "
                        f"mask) has no ONNX form here; index with one integer tensor per getitem")
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    items = []
    for i in index:
        items += [slice(None)] * (len(x.shape) - consumed) if i is Ellipsis else [i]
    items += [slice(None)] * (len(x.shape) - sum(1 for i in items if i is not None))
    starts, ends, axes, steps, ints_at, none_at = [], [], [], [], [], []
    d = cur = out = 0
    arr_axis, adv_positions = None, []
    for i in items:
        if i is None:
            none_at.append(out)
            out += 1
            continue
        if isinstance(i, ArgRef):
            arr_axis, k = d, len(n.args[i].shape)
            adv_positions.append(d)
            cur, out = cur + k, out + k
        elif isinstance(i, slice):
            if not (i.start in (None, 0) and i.stop is None and i.step in (None, 1)):
                starts.append(0 if i.start is None else i.start)
                ends.append(INT64_MAX if i.stop is None else i.stop)
                axes.append(d)
                steps.append(1 if i.step is None else i.step)
            cur, out = cur + 1, out + 1
        else:  # an int: a length-1 slice, squeezed below
            if isinstance(i, Sym):
                raise OnnxError("ember.onnx.export: an integer index that changes with a dynamic axis")
            starts.append(i)
            ends.append(INT64_MAX if i == -1 else i + 1)
            axes.append(d)
            steps.append(1)
            ints_at.append(cur)
            adv_positions.append(d)
            cur += 1
        d += 1
    if arr_axis is not None and ints_at and adv_positions != list(range(adv_positions[0], adv_positions[-1] + 1)) \
            and adv_positions[0] != 0:
        raise OnnxError(f"ember.onnx.export: index {index!r} mixes an index tensor with integers apart from it "
                        f"(NumPy moves those dims first); split the indexing into two steps")
    y = cx.x(x)
    if starts:
        y = cx.emit("Slice", [y, cx.ints(starts), cx.ints(ends), cx.ints(axes), cx.ints(steps)])
    if arr_axis is not None:
        y = cx.emit("Gather", [y, cx.x(n.args[arrays[0]])], axis=arr_axis)
    if ints_at:
        y = cx.emit("Squeeze", [y, cx.ints(ints_at)])
    if none_at:
        y = cx.emit("Unsqueeze", [y, cx.ints(none_at)])
    return y if y != cx.x(x) else cx.emit("Identity", [y])


# -- neural-network primitives -----------------------------------------------------------------
@reg("log_softmax")
def _log_softmax(cx, n, p):
    return cx.emit("LogSoftmax", [cx.x(n.args[0])], axis=p["axis"])


@reg("cross_entropy")
def _cross_entropy(cx, n, p):
    x, target, coef = n.args
    axis = p["axis"]
    lp = cx.emit("LogSoftmax", [cx.x(x)], axis=axis)
    t = cx.emit("Unsqueeze", [cx.x(target), cx.ints([axis])])
    picked = cx.emit("Squeeze", [cx.emit("GatherElements", [lp, t], axis=axis), cx.ints([axis])])
    return cx.emit("Mul", [cx.emit("Neg", [picked]), cx.x(coef)])


@reg("conv2d")
def _conv2d(cx, n, p):
    static("conv2d", p)
    pad = list(p["padding"])
    return cx.emit("Conv", [cx.x(a) for a in n.args], strides=list(p["stride"]), pads=pad + pad,
                   dilations=list(p["dilation"]), group=p["groups"], kernel_shape=list(n.args[1].shape[2:]))


@reg("conv_transpose2d")
def _conv_transpose2d(cx, n, p):
    static("conv_transpose2d", p)
    pad = list(p["padding"])
    return cx.emit("ConvTranspose", [cx.x(a) for a in n.args], strides=list(p["stride"]), pads=pad + pad,
                   output_padding=list(p["output_padding"]), dilations=list(p["dilation"]), group=p["groups"],
                   kernel_shape=list(n.args[1].shape[2:]))


@reg("max_pool2d")
def _max_pool2d(cx, n, p):
    static("max_pool2d", p)
    pad = list(p["padding"])
    return cx.emit("MaxPool", [cx.x(n.args[0])], kernel_shape=list(p["kernel"]), strides=list(p["stride"]),
                   pads=pad + pad, dilations=list(p.get("dilation", (1, 1))), ceil_mode=int(p.get("ceil_mode", False)))


@reg("avg_pool2d")
def _avg_pool2d(cx, n, p):
    static("avg_pool2d", p)
    pad = list(p["padding"])
    return cx.emit("AveragePool", [cx.x(n.args[0])], kernel_shape=list(p["kernel"]), strides=list(p["stride"]),
                   pads=pad + pad, ceil_mode=int(p.get("ceil_mode", False)),
                   count_include_pad=int(p.get("count_include_pad", True)))
