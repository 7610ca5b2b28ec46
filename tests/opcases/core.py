"""Cases for the core primitives (elementwise, reductions, movement, matmul) and composites."""
import math

import numpy as np

import ember as em
from ember.ops import registry as R
from opcases import Case

try:
    import torch
except ImportError:  # the sweep skips oracle checks without torch
    torch = None

erf_np = np.vectorize(math.erf)


def shape(rng, ndim=2):
    return tuple(int(s) for s in rng.integers(2, 5, size=ndim))


def normal(*shape_):
    return lambda rng: tuple(rng.standard_normal(s) for s in (shape_ or [shape(rng)]))


def positive(rng):
    return (rng.uniform(0.5, 2.0, shape(rng)),)


def away_from_int(rng):
    x = rng.uniform(-3, 3, shape(rng))
    return (np.floor(x) + rng.uniform(0.1, 0.4, x.shape),)


def bcast_pair(rng):
    s = shape(rng, 3)
    return rng.standard_normal(s), rng.standard_normal((s[1], 1))


def pos_pair(rng):
    s = shape(rng)
    return rng.uniform(0.5, 2.0, s), rng.uniform(0.5, 2.0, s[-1:])


def T(name):
    return (lambda *a: getattr(torch, name)(*a)) if torch else None


def gelu_np(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf_np(x / math.sqrt(2)))


def sigmoid_np(x):
    return 1 / (1 + np.exp(-x))


UNARY = [
    ("neg", normal(), np.negative, "neg"), ("abs", normal(), np.abs, "abs"), ("exp", normal(), np.exp, "exp"),
    ("log", positive, np.log, "log"), ("log1p", positive, np.log1p, "log1p"), ("expm1", normal(), np.expm1, "expm1"),
    ("sqrt", positive, np.sqrt, "sqrt"), ("rsqrt", positive, lambda x: 1 / np.sqrt(x), "rsqrt"),
    ("sin", normal(), np.sin, "sin"), ("cos", normal(), np.cos, "cos"), ("tanh", normal(), np.tanh, "tanh"),
    ("sigmoid", normal(), sigmoid_np, "sigmoid"), ("relu", normal(), lambda x: np.maximum(x, 0), "relu"),
    ("erf", normal(), erf_np, "erf"), ("silu", normal(), lambda x: x * sigmoid_np(x), None),
    ("floor", away_from_int, np.floor, "floor"), ("ceil", away_from_int, np.ceil, "ceil"),
    ("round", away_from_int, np.round, "round"), ("sign", normal(), np.sign, "sign"),
    ("reciprocal", positive, lambda x: 1 / x, "reciprocal"),
]

CASES = []
for name, gen, ref, tname in UNARY:
    CASES.append(Case(name, getattr(em, name), gen, ref,
                      (T(tname) if tname else (lambda x: torch.nn.functional.silu(x))) if torch else None))

CASES += [
    Case("gelu", lambda x: em.gelu(x), normal(), gelu_np, lambda x: torch.nn.functional.gelu(x) if torch else None,
         name="exact"),
    Case("gelu", lambda x: em.gelu(x, approximate="tanh"), normal(), lambda x: gelu_np(x, "tanh"),
         lambda x: torch.nn.functional.gelu(x, approximate="tanh"), name="tanh"),
    Case("clamp", lambda x: x.clamp(-0.5, 0.5), normal(), lambda x: np.clip(x, -0.5, 0.5),
         lambda x: x.clamp(-0.5, 0.5)),
    Case("clamp", lambda x: x.clamp(min=0.1), normal(), lambda x: np.maximum(x, 0.1), lambda x: x.clamp(min=0.1),
         name="min-only"),
    Case("cast", lambda x: x.to(em.float32).to(x.dtype), normal(), lambda x: x.astype(np.float32).astype(x.dtype),
         lambda x: x.float().to(x.dtype), atol=1e-6, rtol=1e-6, fd_eps=1e-3),
    Case("cast", lambda x: (x * 3).long(), normal(), lambda x: (x * 3).astype(np.int64), lambda x: (x * 3).long(),
         grad=False, name="to-int"),
    Case("copy", lambda x: x.clone(), normal(), lambda x: x.copy(), lambda x: x.clone()),
    Case("logical_not", lambda x: (x > 0).logical_not(), normal(), lambda x: ~(x > 0), lambda x: (x > 0).logical_not(),
         grad=False),
    Case("bitwise_not", lambda x: ~(x > 0), normal(), lambda x: ~(x > 0), lambda x: ~(x > 0), grad=False),
    Case("isnan", lambda x: (x / (x - x)).isnan(), normal(), lambda x: np.isnan(x / (x - x)), None, grad=False),
    Case("isinf", lambda x: (x / 0).isinf(), normal(), lambda x: np.isinf(x / 0), None, grad=False),
    Case("isfinite", lambda x: (x / (x > 0)).isfinite(), normal(), lambda x: np.isfinite(x / (x > 0)), None, grad=False),
]

BINARY = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("maximum", None), ("minimum", None),
]
for name, f in BINARY:
    ef = f or getattr(em, name)
    nf = f or getattr(np, name)
    tf = f or (getattr(torch, name) if torch else None)
    CASES.append(Case(name, ef, bcast_pair, nf, tf, name="broadcast"))
    t_scalar = (lambda a, f=tf: f(a, 1.5)) if f else (lambda a, f=tf: f(a, torch.tensor(1.5, dtype=a.dtype)))
    CASES.append(Case(name, lambda a, f=ef: f(a, 1.5), normal(), lambda a, f=nf: f(a, 1.5), t_scalar,
                      name="scalar"))
CASES += [
    Case("sub", lambda a: 2.0 - a, normal(), lambda a: 2.0 - a, lambda a: 2.0 - a, name="rsub"),
    Case("div", lambda a: 2.0 / a, positive, lambda a: 2.0 / a, lambda a: 2.0 / a, name="rdiv"),
    Case("pow", lambda a, b: a ** b, pos_pair, np.power, lambda a, b: a ** b, name="tensor"),
    Case("pow", lambda a: a ** 3, normal(), lambda a: a ** 3, lambda a: a ** 3, name="int-exp"),
    Case("pow", lambda a: 2.0 ** a, normal(), lambda a: 2.0 ** a, lambda a: 2.0 ** a, name="rpow"),
    Case("remainder", lambda a, b: a % b, pos_pair, np.remainder, lambda a, b: torch.remainder(a, b)),
    Case("floor_divide", lambda a, b: a // b, pos_pair, np.floor_divide, lambda a, b: torch.floor_divide(a, b), grad=False),
]
for name, np_name in [("eq", "equal"), ("ne", "not_equal"), ("lt", "less"), ("le", "less_equal"),
                      ("gt", "greater"), ("ge", "greater_equal")]:
    CASES.append(Case(name, getattr(em, name), lambda rng: (rng.integers(0, 3, (3, 4)).astype(float),
                                                             rng.integers(0, 3, (4,)).astype(float)),
                      getattr(np, np_name), T(name), grad=False))
for name in ["logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"]:
    CASES.append(Case(name, lambda a, b, n=name: getattr(em, n)(a > 0, b > 0), bcast_pair,
                      lambda a, b, n=name: getattr(np, n)(a > 0, b > 0),
                      lambda a, b, n=name: getattr(torch, n)(a > 0, b > 0), grad=False))
CASES += [
    Case("where", lambda c, a, b: em.where(c > 0, a, b), lambda rng: tuple(rng.standard_normal((3, 4)) for _ in range(3)),
         lambda c, a, b: np.where(c > 0, a, b), lambda c, a, b: torch.where(c > 0, a, b)),
    Case("where", lambda a: em.where(a > 0, a, 0.0), normal(), lambda a: np.where(a > 0, a, 0.0),
         lambda a: torch.where(a > 0, a, 0.0), name="scalar"),
]

# -- reductions (sum, max, min, prod, all, any, argmax, argmin, cumsum) + composites --------------
def red(op, em_f, np_f, t_f, gen=None, **kw):
    return Case(op, em_f, gen or (lambda rng: (rng.standard_normal((3, 4, 2)),)), np_f, t_f, **kw)


CASES += [
    red("sum", lambda x: x.sum(), np.sum, lambda x: x.sum(), name="all"),
    red("sum", lambda x: x.sum(dim=1), lambda x: x.sum(1), lambda x: x.sum(dim=1), name="dim"),
    red("sum", lambda x: x.sum(dim=(0, -1), keepdim=True), lambda x: x.sum((0, 2), keepdims=True),
        lambda x: x.sum(dim=(0, -1), keepdim=True), name="dims-keepdim"),
    red("max", lambda x: x.max(), np.max, lambda x: x.max(), name="all"),
    red("max", lambda x: x.max(dim=-2).values, lambda x: x.max(-2), lambda x: x.max(dim=-2).values, name="dim"),
    red("min", lambda x: x.amin(dim=(0, 1), keepdim=True), lambda x: x.min((0, 1), keepdims=True),
        lambda x: x.amin(dim=(0, 1), keepdim=True)),
    red("prod", lambda x: x.prod(dim=1), lambda x: x.prod(1), lambda x: x.prod(dim=1),
        gen=lambda rng: (rng.uniform(0.5, 1.5, (3, 4, 2)),)),
    red("all", lambda x: (x > -1).all(dim=1), lambda x: (x > -1).all(1), lambda x: (x > -1).all(dim=1), grad=False),
    red("any", lambda x: (x > 1).any(), lambda x: np.asarray((x > 1).any()), lambda x: (x > 1).any(), grad=False),
    red("argmax", lambda x: x.argmax(dim=1), lambda x: x.argmax(1), lambda x: x.argmax(dim=1), grad=False),
    red("argmax", lambda x: x.argmax(), lambda x: np.asarray(x.argmax()), lambda x: x.argmax(), grad=False, name="flat"),
    red("argmin", lambda x: x.argmin(dim=-1, keepdim=True), lambda x: x.argmin(-1, keepdims=True),
        lambda x: x.argmin(dim=-1, keepdim=True), grad=False),
    red("cumsum", lambda x: x.cumsum(dim=1), lambda x: x.cumsum(1), lambda x: x.cumsum(dim=1)),
    red("mean", lambda x: x.mean(dim=(1, 2)), lambda x: x.mean((1, 2)), lambda x: x.mean(dim=(1, 2))),
    red("var", lambda x: x.var(dim=1), lambda x: x.var(1, ddof=1), lambda x: x.var(dim=1)),
    red("var", lambda x: x.var(correction=0), lambda x: np.asarray(x.var()), lambda x: x.var(correction=0), name="pop"),
    red("std", lambda x: x.std(dim=0, keepdim=True), lambda x: x.std(0, ddof=1, keepdims=True),
        lambda x: x.std(dim=0, keepdim=True)),
    red("logsumexp", lambda x: x.logsumexp(dim=1), lambda x: np.log(np.exp(x).sum(1)), lambda x: x.logsumexp(dim=1)),
    red("softmax", lambda x: x.softmax(-1), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
        lambda x: x.softmax(-1)),
    red("log_softmax", lambda x: x.log_softmax(1), lambda x: x - np.log(np.exp(x).sum(1, keepdims=True)),
        lambda x: x.log_softmax(1)),
    red("norm", lambda x: x.norm(dim=1), lambda x: np.sqrt((x * x).sum(1)), lambda x: x.norm(dim=1)),
]

# -- movement --------------------------------------------------------------------------------
def mv(op, em_f, np_f, t_f, gen=None, **kw):
    return Case(op, em_f, gen or (lambda rng: (rng.standard_normal((2, 3, 4)),)), np_f, t_f, **kw)


IDX = np.array([2, 0, 2])


def _np_scatter_add_row0(x, cols, src_row):
    """out = x; out[0, cols[j]] += src_row[j] (repeats accumulate)."""
    out = x.copy()
    np.add.at(out[0], cols, src_row)
    return out
CASES += [
    mv("reshape", lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1)),
    mv("reshape", lambda x: x.unsqueeze(1).flatten(2).squeeze(), lambda x: x.reshape(2, 1, 12).squeeze(),
       lambda x: x.unsqueeze(1).flatten(2).squeeze(), name="squeeze-flatten"),
    mv("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1), lambda x: x.permute(2, 0, 1)),
    mv("permute", lambda x: x.transpose(0, -1), lambda x: x.swapaxes(0, -1), lambda x: x.transpose(0, -1), name="transpose"),
    mv("expand", lambda x: x[:, :1].expand(2, 5, 4), lambda x: np.broadcast_to(x[:, :1], (2, 5, 4)),
       lambda x: x[:, :1].expand(2, 5, 4)),
    mv("expand", lambda x: x.repeat(2, 1, 3), lambda x: np.tile(x, (2, 1, 3)), lambda x: x.repeat(2, 1, 3), name="repeat"),
    mv("flip", lambda x: x.flip((0, 2)), lambda x: np.flip(x, (0, 2)), lambda x: x.flip((0, 2))),
    mv("getitem", lambda x: x[1, ::2, 1:], lambda x: x[1, ::2, 1:], lambda x: x[1, ::2, 1:], name="basic"),
    mv("getitem", lambda x: x[..., None, -1], lambda x: x[..., None, -1], lambda x: x[..., None, -1], name="ellipsis"),
    mv("getitem", lambda x: x[:, em.tensor(IDX)], lambda x: x[:, IDX], lambda x: x[:, torch.tensor(IDX)], name="int-array"),
    mv("getitem", lambda x: x[x > 0], lambda x: x[x > 0], lambda x: x[x > 0], name="bool-mask"),
    mv("getitem", lambda x: x.index_select(2, em.tensor(IDX)), lambda x: x[:, :, IDX],
       lambda x: x.index_select(2, torch.tensor(IDX)), name="index_select"),
    mv("getitem", lambda x: em.stack(x.split([1, 2], dim=1)[1].chunk(2, dim=2), dim=0),
       lambda x: np.stack(np.split(x[:, 1:], 2, axis=2)), lambda x: torch.stack(x.split([1, 2], 1)[1].chunk(2, 2)),
       name="split-chunk-stack"),
    mv("index_add", lambda x: em.ops.movement.index_add_(x, shape=(5, 3, 4), index=(np.array([0, 4]),)),
       lambda x: np.concatenate([x[:1], np.zeros((3, 3, 4)), x[1:]]), None),
    mv("index_put", lambda x, v: em.ops.movement.index_put_(x, v, index=(slice(None), 1)),
       lambda x, v: np.concatenate([x[:, :1], v[:, None], x[:, 2:]], 1), None,
       gen=lambda rng: (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4)))),
    mv("pad", lambda x: em.pad(x, (1, 2, 0, 1), value=0.5),
       lambda x: np.pad(x, ((0, 0), (0, 1), (1, 2)), constant_values=0.5),
       lambda x: torch.nn.functional.pad(x, (1, 2, 0, 1), value=0.5)),
    mv("pad", lambda x: em.pad(x, (2, 1), mode="reflect"), lambda x: np.pad(x, ((0, 0), (0, 0), (2, 1)), mode="reflect"),
       lambda x: torch.nn.functional.pad(x, (2, 1), mode="reflect"), name="reflect"),
    mv("pad", lambda x: em.pad(x, (1, 1, 2, 0), mode="replicate"),
       lambda x: np.pad(x, ((0, 0), (2, 0), (1, 1)), mode="edge"),
       lambda x: torch.nn.functional.pad(x, (1, 1, 2, 0), mode="replicate"), name="replicate"),
    mv("pad", lambda x: em.pad(x, (1, 2), mode="circular"), lambda x: np.pad(x, ((0, 0), (0, 0), (1, 2)), mode="wrap"),
       lambda x: torch.nn.functional.pad(x, (1, 2), mode="circular"), name="circular"),
    mv("cat", lambda a, b: em.cat([a, b], dim=-1), lambda a, b: np.concatenate([a, b], -1),
       lambda a, b: torch.cat([a, b], -1), gen=lambda rng: (rng.standard_normal((2, 3)), rng.standard_normal((2, 5)))),
    mv("gather", lambda x: x.gather(1, em.tensor(np.array([[[0], [2]], [[1], [1]]]))),
       lambda x: np.take_along_axis(x[:, :, :1], np.array([[[0], [2]], [[1], [1]]]), 1),
       lambda x: x.gather(1, torch.tensor([[[0], [2]], [[1], [1]]]))),
    mv("scatter_add", lambda x, s: x.scatter_add(1, em.tensor(np.array([[0, 2, 2]])), s),
       lambda x, s: _np_scatter_add_row0(x, np.array([0, 2, 2]), s[0]),
       lambda x, s: x.scatter_add(1, torch.tensor([[0, 2, 2]]), s),
       gen=lambda rng: (rng.standard_normal((2, 4)), rng.standard_normal((1, 3)))),
    mv("getitem", lambda x: x.masked_fill(x > 0.5, -1.0), lambda x: np.where(x > 0.5, -1.0, x),
       lambda x: x.masked_fill(x > 0.5, -1.0), name="masked_fill"),
    mv("where", lambda x: x.tril(-1) + x.triu(1), lambda x: np.tril(x, -1) + np.triu(x, 1),
       lambda x: x.tril(-1) + x.triu(1), name="tril-triu"),
    mv("to_device", lambda x: R.REGISTRY["to_device"](x, device=em.device("cpu")), lambda x: x, lambda x: x.to("cpu")),
]

# -- matmul ------------------------------------------------------------------------------------
def mm(name, sa, sb):
    return Case("matmul", lambda a, b: a @ b, lambda rng: (rng.standard_normal(sa), rng.standard_normal(sb)),
                np.matmul, lambda a, b: a @ b, name=name)


CASES += [mm("2d", (3, 4), (4, 5)), mm("batched-broadcast", (2, 1, 3, 4), (3, 4, 2)), mm("vec-mat", (4,), (4, 3)),
          mm("mat-vec", (3, 4), (4,)), mm("vec-vec", (4,), (4,)), mm("batch-vec", (2, 3, 4), (4,))]
