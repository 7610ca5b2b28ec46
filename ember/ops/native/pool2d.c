/* Max-pooling over NCHW planes, float32 and float64: the forward and the backward (which
 * routes each window's gradient to its maximum). NumPy needs one pass per window offset for
 * each (forward: 4 passes for 2x2; backward: an argmax pass plus a masked add per offset);
 * these make one pass, threads over planes.
 *
 * The rules are the eager NumPy kernels' (ember/ops/conv.py), which are PyTorch's: padding
 * counts as -inf, the first maximum of a window wins, a NaN wins over numbers (the last NaN of
 * the window), and overlapping windows add their gradients. NaN must compare exactly, so this
 * file is compiled without fast-math's no-NaN assumption (the pragma below).
 *
 * Loaded through ember.compiler.cache, called from ember.ops.conv.
 */
#pragma GCC optimize("no-fast-math")
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    long P, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw; /* P = N*C planes */
} pgeom;

/* The flat index (h*W + w) of the window's maximum, or -1 when it lies in the padding; *best
 * gets its value. Windows wholly inside the plane skip the bounds checks, and the selection is
 * written as conditional moves: on random data a branch on "v > best" mispredicts half the
 * time (measured: 19 ns per 2x2 window with branches). */
#define WINDOW_ARGMAX(T)                                                                          \
    static inline long argmax_##T(const pgeom* q, const T* x, long oh, long ow, T* best) {        \
        const long h0 = oh * q->sh - q->ph, w0 = ow * q->sw - q->pw;                              \
        if (h0 >= 0 && w0 >= 0 && h0 + q->dh * (q->kh - 1) < q->H && w0 + q->dw * (q->kw - 1) < q->W) { \
            long at = h0 * q->W + w0;                                                             \
            T b = x[at];                                                                          \
            for (long i = 0; i < q->kh; i++)                                                      \
                for (long j = 0; j < q->kw; j++) {                                                \
                    const long o = (h0 + i * q->dh) * q->W + w0 + j * q->dw;                      \
                    const T v = x[o];                                                             \
                    const int upd = (v > b) | (v != v); /* a NaN best stays: NaN > v is false */  \
                    b = upd ? v : b;                                                              \
                    at = upd ? o : at;                                                            \
                }                                                                                 \
            *best = b;                                                                            \
            return at;                                                                            \
        }                                                                                         \
        long at = -1;                                                                             \
        int first = 1;                                                                            \
        T b = 0;                                                                                  \
        for (long i = 0; i < q->kh; i++) {                                                        \
            const long ih = h0 + i * q->dh;                                                       \
            for (long j = 0; j < q->kw; j++) {                                                    \
                const long iw = w0 + j * q->dw;                                                   \
                const int inside = ih >= 0 && ih < q->H && iw >= 0 && iw < q->W;                  \
                const T v = inside ? x[ih * q->W + iw] : (T)-INFINITY;                            \
                if (first || v > b || v != v) {                                                   \
                    b = v;                                                                        \
                    at = inside ? ih * q->W + iw : -1;                                            \
                }                                                                                 \
                first = 0;                                                                        \
            }                                                                                     \
        }                                                                                         \
        *best = b;                                                                                \
        return at;                                                                                \
    }

#define POOL_KERNELS(T)                                                                           \
    WINDOW_ARGMAX(T)                                                                              \
    static void fwd_##T(const pgeom* q, const T* x, T* y) {                                       \
        _Pragma("omp parallel for schedule(dynamic, 4) if (q->P * q->H * q->W > 65536)")           \
        for (long p = 0; p < q->P; p++) {                                                         \
            const T* xp = x + p * q->H * q->W;                                                    \
            T* yp = y + p * q->Ho * q->Wo;                                                        \
            for (long oh = 0; oh < q->Ho; oh++)                                                   \
                for (long ow = 0; ow < q->Wo; ow++) argmax_##T(q, xp, oh, ow, yp + oh * q->Wo + ow); \
        }                                                                                         \
    }                                                                                             \
    static void bwd_##T(const pgeom* q, const T* g, const T* x, T* dx) {                          \
        _Pragma("omp parallel for schedule(dynamic, 4) if (q->P * q->H * q->W > 65536)")           \
        for (long p = 0; p < q->P; p++) {                                                         \
            const T* xp = x + p * q->H * q->W;                                                    \
            const T* gp = g + p * q->Ho * q->Wo;                                                  \
            T* dp = dx + p * q->H * q->W;                                                         \
            memset(dp, 0, sizeof(T) * q->H * q->W);                                               \
            for (long oh = 0; oh < q->Ho; oh++)                                                   \
                for (long ow = 0; ow < q->Wo; ow++) {                                             \
                    T best;                                                                       \
                    const long at = argmax_##T(q, xp, oh, ow, &best);                             \
                    if (at >= 0) dp[at] += gp[oh * q->Wo + ow];                                   \
                }                                                                                 \
        }                                                                                         \
    }

POOL_KERNELS(float)
POOL_KERNELS(double)

/* (x, y, geometry) and (g, x, dx, geometry): C-contiguous arrays of one float dtype. */
static int parse(PyObject* args, int nbuf, Py_buffer* b, pgeom* q) {
    int ok = nbuf == 2 ? PyArg_ParseTuple(args, "y*w*(lllllllllllll)", &b[0], &b[1], &q->P, &q->H, &q->W, &q->Ho,
                                          &q->Wo, &q->kh, &q->kw, &q->sh, &q->sw, &q->ph, &q->pw, &q->dh, &q->dw)
                       : PyArg_ParseTuple(args, "y*y*w*(lllllllllllll)", &b[0], &b[1], &b[2], &q->P, &q->H, &q->W,
                                          &q->Ho, &q->Wo, &q->kh, &q->kw, &q->sh, &q->sw, &q->ph, &q->pw, &q->dh,
                                          &q->dw);
    if (!ok) return -1;
    const Py_ssize_t in = q->P * q->H * q->W, out = q->P * q->Ho * q->Wo, it = b[0].itemsize;
    /* byte sizes: forward (x: in, y: out); backward (g: out, x: in, dx: in) */
    const Py_ssize_t want[3] = {(nbuf == 2 ? in : out) * it, (nbuf == 2 ? out : in) * it, in * it};
    for (int i = 0; i < nbuf; i++)
        if (b[i].len != want[i] || b[i].itemsize != it || (it != 4 && it != 8)) {
            PyErr_SetString(PyExc_ValueError, "max_pool2d native kernel: arrays do not fit the geometry");
            for (int k = 0; k < nbuf; k++) PyBuffer_Release(&b[k]);
            return -1;
        }
    return 0;
}

static PyObject* py_max_pool2d(PyObject* self, PyObject* args) {
    Py_buffer b[2];
    pgeom q;
    if (parse(args, 2, b, &q) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (b[0].itemsize == 4) fwd_float(&q, b[0].buf, b[1].buf);
    else fwd_double(&q, b[0].buf, b[1].buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&b[0]);
    PyBuffer_Release(&b[1]);
    Py_RETURN_NONE;
}

static PyObject* py_max_pool2d_backward(PyObject* self, PyObject* args) {
    Py_buffer b[3];
    pgeom q;
    if (parse(args, 3, b, &q) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (b[0].itemsize == 4) bwd_float(&q, b[0].buf, b[1].buf, b[2].buf);
    else bwd_double(&q, b[0].buf, b[1].buf, b[2].buf);
    Py_END_ALLOW_THREADS
    for (int i = 0; i < 3; i++) PyBuffer_Release(&b[i]);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"max_pool2d", py_max_pool2d, METH_VARARGS, "max_pool2d(x, y, geometry)"},
    {"max_pool2d_backward", py_max_pool2d_backward, METH_VARARGS, "max_pool2d_backward(g, x, dx, geometry)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "EMBER_MODULE_NAME", NULL, -1, methods};

PyMODINIT_FUNC PyInit_EMBER_MODULE_NAME(void) { return PyModule_Create(&module); }
