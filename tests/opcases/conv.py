"""Cases for the convolution and pooling primitives (ember/ops/conv.py). NumPy references are
naive loops over output positions (independent of the im2col kernels); sizes stay tiny because
the sweep takes finite differences element by element."""
import numpy as np

from ember.ops import conv as C
from opcases import Case

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the sweep skips oracle checks without torch
    torch = TF = None


def conv_np(x, w, stride, padding, dilation, groups):
    N, Cin, H, W = x.shape
    O, Cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    Ho = C.conv_out_size(H, kh, stride[0], padding[0], dilation[0])
    Wo = C.conv_out_size(W, kw, stride[1], padding[1], dilation[1])
    out = np.zeros((N, O, Ho, Wo), x.dtype)
    og = O // groups
    for o in range(O):
        c0 = (o // og) * Cg
        for i in range(Ho):
            for j in range(Wo):
                r, c = i * stride[0], j * stride[1]
                patch = xp[:, c0:c0 + Cg, r:r + dilation[0] * (kh - 1) + 1:dilation[0],
                           c:c + dilation[1] * (kw - 1) + 1:dilation[1]]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return out


def conv_transpose_np(y, w, stride, padding, output_padding, dilation, groups):
    """Scatter each input pixel times the kernel into the output (the definition)."""
    N, Cin, Hy, Wy = y.shape
    _, Cog, kh, kw = w.shape
    H, W = C._transpose_out(y.shape, w.shape, stride, padding, output_padding, dilation)
    big = np.zeros((N, Cog * groups, H + 2 * padding[0] + kh * dilation[0], W + 2 * padding[1] + kw * dilation[1]))
    cig = Cin // groups
    for c in range(Cin):
        o0 = (c // cig) * Cog
        for i in range(Hy):
            for j in range(Wy):
                for a in range(kh):
                    for b in range(kw):
                        big[:, o0:o0 + Cog, i * stride[0] + a * dilation[0], j * stride[1] + b * dilation[1]] += \
                            y[:, c, i, j][:, None] * w[c, :, a, b]
    return big[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W]


def weight_grad_np(x, g, kernel, stride, padding, dilation, groups):
    """d/dw sum(conv(x, w) * g), by linearity: one conv per weight element with a unit kernel."""
    O, Cg = g.shape[1], x.shape[1] // groups
    gw = np.zeros((O, Cg) + tuple(kernel))
    for idx in np.ndindex(gw.shape):
        e = np.zeros_like(gw)
        e[idx] = 1.0
        gw[idx] = (conv_np(x, e, stride, padding, dilation, groups)[:, :, :g.shape[2], :g.shape[3]] * g).sum()
    return gw


def pool_np(x, kernel, stride, padding, dilation, ceil_mode, reduce, fill):
    N, Cc, H, W = x.shape
    Ho, Wo, (t, b, l, r) = C._pool_plan(H, W, kernel, stride, padding, dilation, ceil_mode)
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)
    out = np.zeros((N, Cc, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            r0, c0 = i * stride[0], j * stride[1]
            out[:, :, i, j] = reduce(xp[:, :, r0:r0 + dilation[0] * (kernel[0] - 1) + 1:dilation[0],
                                        c0:c0 + dilation[1] * (kernel[1] - 1) + 1:dilation[1]])
    return out


def avg_np(x, kernel, stride, padding, ceil_mode, count_include_pad):
    s = pool_np(x, kernel, stride, padding, (1, 1), ceil_mode, lambda p: p.sum(axis=(2, 3)), 0.0)
    H, W = x.shape[2:]
    Ho, Wo = s.shape[2:]
    return s / np.asarray(C._avg_divisors(np, H, W, Ho, Wo, kernel, stride, padding, count_include_pad, s.dtype))


def conv_params(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


CONV = [  # (name, x shape, w shape, params)
    ("plain", (2, 2, 5, 4), (3, 2, 3, 2), conv_params()),
    ("stride-pad", (1, 2, 6, 5), (2, 2, 3, 3), conv_params((2, 1), (1, 2))),
    ("dilation-groups", (2, 4, 6, 6), (4, 2, 2, 3), conv_params((1, 2), (1, 0), (2, 1), 2)),
    ("one-gemm", (1, 8, 4, 4), (2, 8, 3, 3), conv_params(padding=(1, 1))),  # C*kh*kw >= 64: one big GEMM
]
CONVT = [  # (name, y shape, w shape, params incl. output_padding)
    ("stride1", (2, 3, 3, 4), (3, 2, 3, 2), dict(conv_params(padding=(1, 0)), output_padding=(0, 0))),
    ("stride1-flat", (1, 4, 4, 3), (4, 2, 2, 2), dict(conv_params(padding=(2, 0)), output_padding=(0, 0))),
    ("stride2-outpad", (1, 2, 3, 3), (2, 2, 3, 3), dict(conv_params((2, 2), (1, 0)), output_padding=(1, 0))),
    ("dilation-groups", (2, 4, 3, 3), (4, 1, 2, 2), dict(conv_params((1, 2), (0, 1), (2, 1), 2), output_padding=(1, 1))),
]
POOL = [  # (name, x shape, kernel, stride, padding, dilation, ceil_mode)
    ("2x2", (2, 2, 4, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ("overlap-pad", (1, 2, 5, 5), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ("ceil-dilation", (1, 2, 6, 7), (2, 3), (2, 2), (1, 0), (2, 1), True),
]


def _case_conv(name, xs, ws, p):
    return [
        Case("conv2d", lambda x, w, p=p: C.conv2d_(x, w, **p),
             lambda rng, xs=xs, ws=ws: (rng.standard_normal(xs), rng.standard_normal(ws)),
             numpy=lambda x, w, p=p: conv_np(x, w, p["stride"], p["padding"], p["dilation"], p["groups"]),
             torch=(lambda x, w, p=p: TF.conv2d(x, w, **p)) if torch else None, name=name),
        Case("conv2d_weight_grad",
             lambda x, g, p=p, ws=ws: C.conv2d_weight_grad_(x, g, kernel=ws[2:], **p),
             lambda rng, xs=xs, ws=ws, p=p: (rng.standard_normal(xs),
                                             rng.standard_normal(C._conv_shape(xs, ws, **p))),
             numpy=lambda x, g, p=p, ws=ws: weight_grad_np(x, g, ws[2:], p["stride"], p["padding"], p["dilation"],
                                                           p["groups"]),
             torch=(lambda x, g, p=p, ws=ws: torch.nn.grad.conv2d_weight(x, (g.shape[1], x.shape[1] // p["groups"]) + ws[2:],
                                                                          g, **p)) if torch else None, name=name),
    ]


def _case_convt(name, ys, ws, p):
    return Case("conv_transpose2d", lambda y, w, p=p: C.conv_transpose2d_(y, w, **p),
                lambda rng, ys=ys, ws=ws: (rng.standard_normal(ys), rng.standard_normal(ws)),
                numpy=lambda y, w, p=p: conv_transpose_np(y, w, p["stride"], p["padding"], p["output_padding"],
                                                          p["dilation"], p["groups"]),
                torch=(lambda y, w, p=p: TF.conv_transpose2d(y, w, **p)) if torch else None, name=name)


def _case_bias(op, numpy_fn, torch_fn, name, xs, ws, p, out_channels):
    """The op with its optional (O,) bias input: the reference adds it per output channel."""
    return Case(op, lambda x, w, b, p=p: getattr(C, op + "_")(x, w, b, **p),
                lambda rng, xs=xs, ws=ws: (rng.standard_normal(xs), rng.standard_normal(ws),
                                           rng.standard_normal(out_channels)),
                numpy=lambda x, w, b, p=p: numpy_fn(x, w, p) + b.reshape(1, -1, 1, 1),
                torch=(lambda x, w, b, p=p: torch_fn(x, w, b, **p)) if torch else None, name=name + "-bias")


def _case_pool(name, xs, k, s, pd, d, ceil):
    mp = dict(kernel=k, stride=s, padding=pd, dilation=d, ceil_mode=ceil)
    ap = dict(kernel=k, stride=s, padding=pd, ceil_mode=ceil, count_include_pad=name != "overlap-pad")
    tm = dict(kernel_size=k, stride=s, padding=pd, dilation=d, ceil_mode=ceil)
    ta = dict(kernel_size=k, stride=s, padding=pd, ceil_mode=ceil, count_include_pad=ap["count_include_pad"])
    out_shape = lambda xs=xs: C._pool_shape(xs, **mp)  # noqa: E731
    avg_shape = lambda xs=xs: C._pool_shape(xs, **ap)  # noqa: E731
    xrand = lambda rng, xs=xs: (rng.standard_normal(xs),)  # noqa: E731

    def t_max_bwd(g, x):
        xx = x.detach().requires_grad_(True)
        return torch.autograd.grad(TF.max_pool2d(xx, **tm), xx, g, create_graph=True)[0]

    def np_max_bwd(g, x):
        # a tiny nudge of each input element: the one that moves the max gets the window's gradient
        base, grad = pool_np(x, k, s, pd, d, ceil, lambda p: p.max(axis=(2, 3)), -np.inf), np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            xx = x.copy()
            xx[idx] += 1e-3
            grad[idx] = ((pool_np(xx, k, s, pd, d, ceil, lambda p: p.max(axis=(2, 3)), -np.inf) - base) * g).sum() / 1e-3
        return grad

    cases = [
        Case("max_pool2d", lambda x, mp=mp: C.max_pool2d_(x, **mp), xrand,
             numpy=lambda x: pool_np(x, k, s, pd, d, ceil, lambda p: p.max(axis=(2, 3)), -np.inf),
             torch=(lambda x: TF.max_pool2d(x, **tm)) if torch else None, name=name),
        Case("max_pool2d_backward", lambda g, x, mp=mp: C.max_pool2d_backward_(g, x, **mp),
             lambda rng: (rng.standard_normal(out_shape()), rng.standard_normal(xs)),
             numpy=np_max_bwd, torch=t_max_bwd if torch else None, name=name, atol=1e-9, rtol=1e-6),
        Case("max_pool2d_indices", lambda x, mp=mp: C.max_pool2d_indices_(x, **mp), xrand, grad=False,
             torch=(lambda x: TF.max_pool2d(x, return_indices=True, **tm)[1]) if torch else None, name=name),
    ]
    if d == (1, 1):
        def t_avg_bwd(g):
            xx = torch.zeros(xs, dtype=g.dtype, requires_grad=True)
            return torch.autograd.grad(TF.avg_pool2d(xx, **ta), xx, g, create_graph=True)[0]
        cases += [
            Case("avg_pool2d", lambda x, ap=ap: C.avg_pool2d_(x, **ap), xrand,
                 numpy=lambda x, ap=ap: avg_np(x, k, s, pd, ceil, ap["count_include_pad"]),
                 torch=(lambda x: TF.avg_pool2d(x, **ta)) if torch else None, name=name),
            Case("avg_pool2d_backward", lambda g, ap=ap: C.avg_pool2d_backward_(g, in_shape=xs, **ap),
                 lambda rng: (rng.standard_normal(avg_shape()),),
                 torch=t_avg_bwd if torch else None, name=name),
        ]
    return cases


CASES = []
for _c in CONV:
    CASES += _case_conv(*_c)
CASES += [_case_convt(*_c) for _c in CONVT]
CASES += [
    _case_bias("conv2d", lambda x, w, p: conv_np(x, w, p["stride"], p["padding"], p["dilation"], p["groups"]),
               TF.conv2d if torch else None, *CONV[2], out_channels=CONV[2][2][0]),
    _case_bias("conv_transpose2d", lambda y, w, p: conv_transpose_np(y, w, p["stride"], p["padding"], p["output_padding"],
                                                                       p["dilation"], p["groups"]),
               TF.conv_transpose2d if torch else None, *CONVT[3], out_channels=CONVT[3][2][1] * CONVT[3][3]["groups"]),
]
for _c in POOL:
    CASES += _case_pool(*_c)
