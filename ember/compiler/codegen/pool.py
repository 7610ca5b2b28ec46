"""Native kernels for ops whose NumPy kernels make many passes: max-pooling's backward (NumPy:
one masked pass per window offset, ~8 ms of a LeNet step; here one pass) and its forward
when the windows tile the input. The C follows the
eager kernel's rule exactly: the first maximum of a window wins, a NaN wins over numbers (the
last NaN), padding counts as -inf, and overlapping windows add up.

>>> source = render("p0", node)   # node: max_pool2d_backward(g, x, kernel=..., ...)
"""
from __future__ import annotations

import numpy as np

from ..graph import Var
from .c import _wrapper, ctype
from .native_op import NativeOp

NATIVE = {"max_pool2d_backward", "max_pool2d"}
# NaN must win and compare exactly here: -ffast-math (the module's flags) let GCC turn the
# selection into a max instruction that drops NaN (measured: wrong winners on 8x8 inputs).
_ATTR = '#if defined(__GNUC__) && !defined(__clang__)\n#define NO_FAST_MATH __attribute__((optimize("no-fast-math")))\n#else\n#define NO_FAST_MATH\n#endif\n'



def _tiles(node, x) -> bool:
    """Windows tile the input: stride = kernel, no padding or dilation, and no partial window
    at the end (sizes divisible by the kernel, or floor mode, where the last rows/columns that
    no window covers are left out: LeNet's 11x11 -> 5x5)."""
    p = node.params
    (kh, kw), (sh, sw) = p["kernel"], p["stride"]
    exact = x.shape[2] % kh == 0 and x.shape[3] % kw == 0
    return ((sh, sw) == (kh, kw) and tuple(p["padding"]) == (0, 0) and tuple(p["dilation"]) == (1, 1)
            and (exact or not p.get("ceil_mode", False)))


def supported(node) -> bool:
    if node.op.name == "max_pool2d":  # only the tiled case: NumPy's strided maximum is fine else
        x = node.args[0]
        return (len(node.args) == 1 and type(x) is Var and x.dtype in (np.float32, np.float64)
                and len(x.shape) == 4 and _tiles(node, x) and node.out.dtype == x.dtype)
    if node.op.name not in NATIVE or len(node.args) != 2 or len(node.vars) != 2:
        return False
    g, x = node.args
    return (x.dtype == g.dtype == node.out.dtype
            and x.dtype in (np.float32, np.float64) and len(x.shape) == 4)


def render(name: str, node, par_min: int = 0) -> str:
    """C source of the node's kernel and its Python wrapper."""
    if node.op.name == "max_pool2d":
        return _forward(name, node)
    g, x = node.args[:2]
    p = node.params
    N, C, H, W = x.shape
    Ho, Wo = g.shape[2:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = p["kernel"], p["stride"], p["padding"], p["dilation"]
    t = ctype(x.dtype)
    if _tiles(node, x):
        return _tiled(name, g, x, node.out, N * C, H, W, Ho, Wo, kh, kw, t)
    src = f"""
NO_FAST_MATH static void {name}(const {t}* restrict gr, const {t}* restrict x, {t}* restrict dx) {{
    memset(dx, 0, sizeof({t}) * {N * C * H * W}LL);
    for (int64_t nc = 0; nc < {N * C}; nc++) {{
        const {t}* xp = x + nc * {H * W};
        const {t}* gp = gr + nc * {Ho * Wo};
        {t}* dp = dx + nc * {H * W};
        for (int64_t oh = 0; oh < {Ho}; oh++) {{
            for (int64_t ow = 0; ow < {Wo}; ow++) {{
                {t} best = 0; int64_t at = -1; int first = 1;
                for (int64_t i = 0; i < {kh}; i++) {{
                    const int64_t ih = oh * {sh} - {ph} + i * {dh};
                    for (int64_t j = 0; j < {kw}; j++) {{
                        const int64_t iw = ow * {sw} - {pw} + j * {dw};
                        const int inside = ih >= 0 && ih < {H} && iw >= 0 && iw < {W};
                        const {t} v = inside ? xp[ih * {W} + iw] : -INFINITY;
                        if (first || v > best || v != v) {{  /* a NaN best stays: NaN > v is false */
                            best = v; at = inside ? ih * {W} + iw : -1;
                        }}
                        first = 0;
                    }}
                }}
                if (at >= 0) dp[at] += gp[oh * {Wo} + ow];
            }}
        }}
    }}
}}
"""
    return _ATTR + src + "\n".join(_wrapper(name, [g, x], [node.out]))


def _tiled(name, g, x, out, NC, H, W, Ho, Wo, kh, kw, t) -> str:
    """Windows that tile the input (2x2 stride 2): every input element belongs to at most one
    window, so each is written once (no accumulation); only the rows and columns past the last
    window (odd sizes in floor mode) are zeroed."""
    rest = ""
    if W > Wo * kw:
        rest += f"""
        for (int64_t h = 0; h < {Ho * kh}; h++)
            for (int64_t w = {Wo * kw}; w < {W}; w++) dp[h * {W} + w] = 0;"""
    if H > Ho * kh:
        rest += f"""
        memset(dp + {Ho * kh * W}, 0, sizeof({t}) * {(H - Ho * kh) * W});"""
    src = f"""
NO_FAST_MATH static void {name}(const {t}* restrict gr, const {t}* restrict x, {t}* restrict dx) {{
    for (int64_t nc = 0; nc < {NC}; nc++) {{
        const {t}* xp = x + nc * {H * W};
        const {t}* gp = gr + nc * {Ho * Wo};
        {t}* dp = dx + nc * {H * W};{rest}
        for (int64_t oh = 0; oh < {Ho}; oh++) {{
            for (int64_t ow = 0; ow < {Wo}; ow++) {{
                const int64_t base = oh * {kh * W} + ow * {kw};
                {t} best = xp[base]; int64_t at = base;
                for (int64_t i = 0; i < {kh}; i++)
                    for (int64_t j = 0; j < {kw}; j++) {{
                        const int64_t o = base + i * {W} + j;
                        const {t} v = xp[o];
                        if ((i | j) && (v > best || v != v)) {{ best = v; at = o; }}  /* NaN > v is false */
                    }}
                const {t} gv = gp[oh * {Wo} + ow];
                for (int64_t i = 0; i < {kh}; i++)
                    for (int64_t j = 0; j < {kw}; j++) {{
                        const int64_t o = base + i * {W} + j;
                        dp[o] = o == at ? gv : 0;
                    }}
            }}
        }}
    }}
}}
"""
    return _ATTR + src + "\n".join(_wrapper(name, [g, x], [out]))


def _forward(name, node) -> str:
    """Tiled max-pooling (see _tiles): each window's max, NaN propagating (NumPy's maximum:
    the first of equal values is kept)."""
    x, out = node.args[0], node.out
    N, C, H, W = x.shape
    (kh, kw) = node.params["kernel"]
    Ho, Wo = H // kh, W // kw
    t = ctype(x.dtype)
    src = f"""
NO_FAST_MATH static void {name}(const {t}* restrict x, {t}* restrict y) {{
    for (int64_t nc = 0; nc < {N * C}; nc++) {{
        const {t}* xp = x + nc * {H * W};
        {t}* yp = y + nc * {Ho * Wo};
        for (int64_t oh = 0; oh < {Ho}; oh++)
            for (int64_t ow = 0; ow < {Wo}; ow++) {{
                const int64_t base = oh * {kh * W} + ow * {kw};
                {t} best = xp[base];
                for (int64_t i = 0; i < {kh}; i++)
                    for (int64_t j = 0; j < {kw}; j++) {{
                        const {t} v = xp[base + i * {W} + j];
                        best = (v > best || v != v) ? v : best;  /* a NaN best stays: NaN > v is false */
                    }}
                yp[oh * {Wo} + ow] = best;
            }}
    }}
}}
"""
    return _ATTR + src + "\n".join(_wrapper(name, [x], [out]))


class Native(NativeOp):
    """The op of a node computed by a generated C function (not in the registry); keeps the
    original op's name so the graph reads the same."""

    def cpu(self, *arrays, **params):
        if self.name == "max_pool2d":
            (x,) = arrays
            kh, kw = params["kernel"]
            out = np.empty(x.shape[:2] + (x.shape[2] // kh, x.shape[3] // kw), x.dtype)
        else:
            out = np.empty(arrays[1].shape, arrays[1].dtype)
        self.fn(*[np.ascontiguousarray(a) for a in arrays], out)
        return out
