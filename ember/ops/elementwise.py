"""Elementwise primitives. Each is one declaration: kernel (an array-module function name or a
factory of ``xp``), vjp in ember ops, C expression for the code generators, ONNX name.

vjp signature: ``vjp(g, out, *inputs, **params) -> tuple of gradients`` (None: no gradient).
"""
from __future__ import annotations

import math

from .registry import BinaryOp, TernaryOp, UnaryOp
from .special import erf_kernel

SQRT1_2 = 1 / math.sqrt(2)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
GELU_K = math.sqrt(2 / math.pi)


def _zero(g, out, *inputs, **params):
    """Piecewise-constant ops (floor, sign...): gradient zero almost everywhere, as in PyTorch."""
    return tuple(g * 0 if hasattr(x, "shape") else None for x in inputs)


# -- unary ----------------------------------------------------------------------------------
neg = UnaryOp("neg", "negative", vjp=lambda g, out, x: (-g,), saves=False, c="(-{0})", onnx="Neg")
abs = UnaryOp("abs", "absolute", vjp=lambda g, out, x: (g * x.sign(),), c="fabs({0})", onnx="Abs")
exp = UnaryOp("exp", "exp", out_dtype="float", vjp=lambda g, out, x: (g * out,), c="exp({0})", onnx="Exp")
log = UnaryOp("log", "log", out_dtype="float", vjp=lambda g, out, x: (g / x,), c="log({0})", onnx="Log")
log1p = UnaryOp("log1p", "log1p", out_dtype="float", vjp=lambda g, out, x: (g / (x + 1),), c="log1p({0})")
expm1 = UnaryOp("expm1", "expm1", out_dtype="float", vjp=lambda g, out, x: (g * (out + 1),), c="expm1({0})")
sqrt = UnaryOp("sqrt", "sqrt", out_dtype="float", vjp=lambda g, out, x: (g * 0.5 / out,), c="sqrt({0})", onnx="Sqrt")
rsqrt = UnaryOp("rsqrt", lambda xp: lambda x: 1 / xp.sqrt(x), out_dtype="float",
                vjp=lambda g, out, x: (g * -0.5 * out * out * out,), c="(1 / sqrt({0}))")
sin = UnaryOp("sin", "sin", out_dtype="float", vjp=lambda g, out, x: (g * x.cos(),), c="sin({0})", onnx="Sin")
cos = UnaryOp("cos", "cos", out_dtype="float", vjp=lambda g, out, x: (-g * x.sin(),), c="cos({0})", onnx="Cos")
tanh = UnaryOp("tanh", "tanh", out_dtype="float", vjp=lambda g, out, x: (g * (1 - out * out),),
               c="tanh({0})", onnx="Tanh")
# 0.5*tanh(x/2)+0.5 is sigmoid without overflow in exp for large |x|.
sigmoid = UnaryOp("sigmoid", lambda xp: lambda x: xp.tanh(x * 0.5) * 0.5 + 0.5, out_dtype="float",
                  vjp=lambda g, out, x: (g * out * (1 - out),), c="(1 / (1 + exp(-{0})))", onnx="Sigmoid")
relu = UnaryOp("relu", lambda xp: lambda x: xp.maximum(x, 0),
               vjp=lambda g, out, x: (g * (out > 0),), c="({0} > 0 ? {0} : 0)", onnx="Relu")
erf = UnaryOp("erf", erf_kernel, out_dtype="float",
              vjp=lambda g, out, x: (g * TWO_OVER_SQRT_PI * (-(x * x)).exp(),), c="erf({0})", onnx="Erf")


def _gelu_kernel(xp):
    erf_ = erf_kernel(xp)

    def gelu(x, approximate="none"):
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(GELU_K * (x + 0.044715 * x * x * x)))
        return 0.5 * x * (1 + erf_(x * SQRT1_2))
    return gelu


def _gelu_vjp(g, out, x, approximate="none"):
    if approximate == "tanh":
        t = ((x + 0.044715 * x * x * x) * GELU_K).tanh()
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_K * (1 + 3 * 0.044715 * x * x)
    else:
        d = 0.5 * (1 + (x * SQRT1_2).erf()) + x * (-0.5 * x * x).exp() * INV_SQRT_2PI
    return (g * d,)


def _gelu_c(approximate="none"):
    if approximate == "tanh":
        return f"(0.5 * {{0}} * (1 + tanh({GELU_K!r} * ({{0}} + 0.044715 * {{0}} * {{0}} * {{0}}))))"
    return f"(0.5 * {{0}} * (1 + erf({{0}} * {SQRT1_2!r})))"


gelu = UnaryOp("gelu", _gelu_kernel, out_dtype="float", vjp=_gelu_vjp, c=_gelu_c, onnx="Gelu")


def _silu_vjp(g, out, x):
    s = x.sigmoid()
    return (g * s * (1 + x * (1 - s)),)


silu = UnaryOp("silu", lambda xp: lambda x: x * (xp.tanh(x * 0.5) * 0.5 + 0.5), out_dtype="float",
               vjp=_silu_vjp, c="({0} / (1 + exp(-{0})))")
floor = UnaryOp("floor", "floor", vjp=_zero, c="floor({0})", onnx="Floor")
ceil = UnaryOp("ceil", "ceil", vjp=_zero, c="ceil({0})", onnx="Ceil")
round = UnaryOp("round", lambda xp: lambda x, decimals=0: xp.round(x, decimals), vjp=_zero,
                c="nearbyint({0})", onnx="Round")  # half to even, like PyTorch
sign = UnaryOp("sign", "sign", vjp=_zero, c="(({0} > 0) - ({0} < 0))", onnx="Sign")
reciprocal = UnaryOp("reciprocal", lambda xp: lambda x: 1 / x, out_dtype="float",
                     vjp=lambda g, out, x: (-g * out * out,), c="(1 / {0})", onnx="Reciprocal")
logical_not = UnaryOp("logical_not", "logical_not", out_dtype="bool", c="(!{0})", onnx="Not")
bitwise_not = UnaryOp("bitwise_not", "invert", c="(~{0})", onnx="BitwiseNot")
isnan = UnaryOp("isnan", "isnan", out_dtype="bool", c="isnan({0})", onnx="IsNaN")
isinf = UnaryOp("isinf", "isinf", out_dtype="bool", c="isinf({0})", onnx="IsInf")
isfinite = UnaryOp("isfinite", "isfinite", out_dtype="bool", c="isfinite({0})")


def _clamp_kernel(xp):
    def clamp(x, min=None, max=None):
        if min is not None:
            x = xp.maximum(x, min)
        if max is not None:
            x = xp.minimum(x, max)
        return x
    return clamp


def _clamp_vjp(g, out, x, min=None, max=None):
    # PyTorch passes the gradient where min <= x <= max (boundaries included).
    mask = None
    if min is not None:
        mask = x >= min
    if max is not None:
        mask = (x <= max) if mask is None else mask.logical_and(x <= max)
    return (g if mask is None else g * mask,)


def _clamp_c(min=None, max=None):
    e = "{0}"
    if min is not None:
        e = f"({e} < {min!r} ? {min!r} : {e})"
    if max is not None:
        e = f"({e} > {max!r} ? {max!r} : {e})"
    return e


clamp_scalar = UnaryOp("clamp", _clamp_kernel, vjp=_clamp_vjp, c=_clamp_c, onnx="Clip")

cast = UnaryOp("cast", lambda xp: lambda x, dtype: x.astype(dtype.np),
               dtype=lambda d, dtype: dtype, vjp=lambda g, out, x, dtype: (g.to(x.dtype),),
               saves=False, c=lambda dtype: f"(({dtype.name}_t){{0}})", onnx="Cast")
copy = UnaryOp("copy", lambda xp: lambda x: x.copy(), vjp=lambda g, out, x: (g,), saves=False,
               c="{0}", onnx="Identity")

# -- binary ---------------------------------------------------------------------------------
add = BinaryOp("add", "add", vjp=lambda g, out, a, b: (g, g), saves=False, c="({0} + {1})", onnx="Add")
sub = BinaryOp("sub", "subtract", vjp=lambda g, out, a, b: (g, -g), saves=False, c="({0} - {1})", onnx="Sub")
mul = BinaryOp("mul", "multiply", vjp=lambda g, out, a, b: (g * b, g * a), bilinear=True, c="({0} * {1})",
               onnx="Mul")
div = BinaryOp("div", "true_divide", out_dtype="float", vjp=lambda g, out, a, b: (g / b, -g * out / b),
               c="({0} / {1})", onnx="Div")
floor_divide = BinaryOp("floor_divide", "floor_divide", c="floor({0} / {1})")
remainder = BinaryOp("remainder", "remainder",
                     vjp=lambda g, out, a, b: (g, -g * (a / b).floor()),
                     c="({0} - floor({0} / {1}) * {1})", onnx="Mod")


def _pow_vjp(g, out, a, b):
    ga = g * b * a ** (b - 1) if hasattr(a, "shape") else None
    gb = None
    if hasattr(b, "shape"):
        gb = g * out * (a.log() if hasattr(a, "shape") else math.log(a))
    return ga, gb


pow = BinaryOp("pow", "power", vjp=_pow_vjp, c="pow({0}, {1})", onnx="Pow")


def _max_vjp(g, out, a, b):
    # Ties split the gradient evenly, as PyTorch does.
    wa = (a > b) + (a == b) * 0.5
    return g * wa, g * (1 - wa)


def _min_vjp(g, out, a, b):
    wa = (a < b) + (a == b) * 0.5
    return g * wa, g * (1 - wa)


maximum = BinaryOp("maximum", "maximum", vjp=_max_vjp, c="({0} > {1} ? {0} : {1})", onnx="Max")
minimum = BinaryOp("minimum", "minimum", vjp=_min_vjp, c="({0} < {1} ? {0} : {1})", onnx="Min")
eq = BinaryOp("eq", "equal", out_dtype="bool", c="({0} == {1})", onnx="Equal")
ne = BinaryOp("ne", "not_equal", out_dtype="bool", c="({0} != {1})")
lt = BinaryOp("lt", "less", out_dtype="bool", c="({0} < {1})", onnx="Less")
le = BinaryOp("le", "less_equal", out_dtype="bool", c="({0} <= {1})", onnx="LessOrEqual")
gt = BinaryOp("gt", "greater", out_dtype="bool", c="({0} > {1})", onnx="Greater")
ge = BinaryOp("ge", "greater_equal", out_dtype="bool", c="({0} >= {1})", onnx="GreaterOrEqual")
logical_and = BinaryOp("logical_and", "logical_and", out_dtype="bool", c="({0} && {1})", onnx="And")
logical_or = BinaryOp("logical_or", "logical_or", out_dtype="bool", c="({0} || {1})", onnx="Or")
logical_xor = BinaryOp("logical_xor", "logical_xor", out_dtype="bool", c="(!{0} != !{1})", onnx="Xor")
bitwise_and = BinaryOp("bitwise_and", "bitwise_and", c="({0} & {1})", onnx="BitwiseAnd")
bitwise_or = BinaryOp("bitwise_or", "bitwise_or", c="({0} | {1})", onnx="BitwiseOr")
bitwise_xor = BinaryOp("bitwise_xor", "bitwise_xor", c="({0} ^ {1})", onnx="BitwiseXor")

# -- ternary --------------------------------------------------------------------------------
where = TernaryOp("where", "where", saves=True,
                  vjp=lambda g, out, c, a, b: (None, g * c, g * c.logical_not()),
                  c="({0} ? {1} : {2})", onnx="Where")
