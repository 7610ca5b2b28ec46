"""The op registry and the public functions built on it (PyTorch names)."""
from .registry import REGISTRY, Op, declared
from .elementwise import (abs, add, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, cast, ceil,
                          cos, div, eq, erf, exp, expm1, floor, floor_divide, ge, gelu, gt, isfinite,
                          isinf, isnan, le, log, log1p, logical_and, logical_not, logical_or,
                          logical_xor, lt, maximum, minimum, mul, ne, neg, pow, reciprocal, relu,
                          remainder, round, rsqrt, sigmoid, sign, silu, sin, sqrt, sub, tanh)
from .reduce import (all, amax, amin, any, argmax, argmin, cumsum, logsumexp, max, mean, min, norm,
                     prod, std, sum, var)
from .movement import (broadcast_to, cat, chunk, clone, concatenate, contiguous, expand, expand_as,
                       flatten, flip, gather, getitem, index_select, masked_fill, movedim, narrow,
                       pad, permute, repeat, reshape, scatter_add, setitem, split, squeeze, stack,
                       transpose, tril, triu, unbind, unflatten, unsqueeze, view, view_as)
from .linalg import matmul, mm
from .composite import clamp, clip, lerp, softmax, square, where
from .inplace import (add_, addcdiv_, addcmul_, clamp_, copy_, div_, exp_, fill_, iadd, imul,
                      isub, itruediv, lerp_, masked_fill_, mul_, neg_, normal_, pow_, sqrt_, sub_,
                      uniform_, zero_)
from .nnops import log_softmax
