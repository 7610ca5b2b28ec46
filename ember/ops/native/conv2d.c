/* Direct 2-D convolution kernels: stride 1, float32, NCHW, any padding, dilation and groups.
 *
 * Why: im2col + OpenBLAS sgemm reached 100-130 GFLOP/s on LeNet/ResNet shapes (M = 64 is a poor
 * GEMM shape, and the column matrix is a full extra pass over memory). These kernels read the
 * input in place and keep a tile of outputs in vector registers: ~150-165 GFLOP/s per core.
 *
 * The flat layout: each zero-padded input plane (Hp x Wp) is stored flat, and output position
 * (h, w) is computed at flat index p = h*Wp + w. Kernel offset (i, j) then reads at p + off(i, j)
 * with off = i*dh*Wp + j*dw, so one vector of VL outputs is one unaligned load per offset for
 * every row length. The Wp - Wo "gap" columns per row are computed and dropped (LeNet 13 vs 11:
 * 15% extra work), which is cheaper than masking short rows.
 *
 * conv2d_fwd:   y[n,o] = sum_{c,i,j} w[o,c,i,j] * xpad[n,c, p + off(i,j)]
 *               (conv_transpose2d with stride 1 is this on the padded gradient with the
 *               flipped, channel-swapped kernel; the Python side arranges that.)
 * conv2d_wgrad: gw[o,c,i,j] = sum_{n,p} g[n,o,p] * xpad[n,c, p + off(i,j)], g spread to row
 *               stride Wp with zeros in the gap columns so they add nothing.
 *
 * Threads: every loop is dynamically scheduled, so on a busy machine the calling thread takes
 * over the share of a thread that is not running (a static share would wait for it).
 *
 * Loaded through ember.compiler.cache (compiled once per machine), called from ember.ops.conv.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define VL 16
#define NREG 32
#elif defined(__AVX__)
#define VL 8
#define NREG 16
#else
#define VL 4
#define NREG 16
#endif
/* forward tile: OB output channels x PB vectors of positions in registers */
#define PB 3 /* the tiling below assumes 3 */
#ifndef OB
#define OB ((NREG - 8) / PB)
#endif
#define MAXK 1024
#define L1_BYTES (24 << 10) /* what a tile's inner loops may touch: half of a 48 KB L1 */
#define L2_BYTES (512 << 10)

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4))); /* unaligned access */
#define AI static inline __attribute__((always_inline))
#define LOADU(p) (*(const vfu*)(p))
#define STOREU(p, v) (*(vfu*)(p) = (v))

typedef struct {
    long N, C, H, W, O, kh, kw, pt, pb, pl, pr, dh, dw, G; /* given */
    long Cg, Og, K, Hp, Wp, Sp, Ho, Wo, L, NV, Lpad;       /* derived */
    int off[MAXK];
} geom;

static int geom_init(geom* q) {
    q->Cg = q->C / q->G;
    q->Og = q->O / q->G;
    q->K = q->kh * q->kw;
    q->Hp = q->H + q->pt + q->pb;
    q->Wp = q->W + q->pl + q->pr;
    q->Ho = q->Hp - q->dh * (q->kh - 1);
    q->Wo = q->Wp - q->dw * (q->kw - 1);
    if (q->K > MAXK || q->Ho <= 0 || q->Wo <= 0) return -1;
    /* reads reach p + off <= NV*VL - 1 + offmax <= Hp*Wp + VL - 2: VL floats of zero slack */
    q->Sp = q->Hp * q->Wp + VL;
    q->L = (q->Ho - 1) * q->Wp + q->Wo;
    q->NV = (q->L + VL - 1) / VL;
    q->Lpad = q->NV * VL;
    for (long i = 0; i < q->kh; i++)
        for (long j = 0; j < q->kw; j++) q->off[i * q->kw + j] = (int)(i * q->dh * q->Wp + j * q->dw);
    return 0;
}

/* One zero-padded plane (with its zero slack) from a dense H x W plane. A negative bottom or
 * right padding drops the last rows or columns (a weight gradient whose output gradient is
 * smaller than the conv's output: a transposed conv's output_padding). */
static void pad_plane(const geom* q, const float* src, float* dst) {
    const long rows = q->pb < 0 ? q->H + q->pb : q->H, cols = q->pr < 0 ? q->W + q->pr : q->W;
    memset(dst, 0, sizeof(float) * q->pt * q->Wp);
    for (long h = 0; h < rows; h++) {
        float* row = dst + (q->pt + h) * q->Wp;
        memset(row, 0, sizeof(float) * q->pl);
        memcpy(row + q->pl, src + h * q->W, sizeof(float) * cols);
        memset(row + q->pl + cols, 0, sizeof(float) * (q->Wp - q->pl - cols));
    }
    memset(dst + (q->pt + rows) * q->Wp, 0, sizeof(float) * ((q->Hp - q->pt - rows) * q->Wp + VL));
}

/* ---- forward ------------------------------------------------------------------------------- */

/* npb (<= PB) vectors of positions from p0, OB output channels, channels [0, C) of one image. */
AI void fwd_tile(const float* restrict xb, const float* restrict wb, const int* restrict off, long C,
                 long K, long Sp, float* restrict tile, long Lpad, long p0, const float* restrict init,
                 const int npb) {
    vf acc[OB][PB]; /* starts from the tile (later channel chunks) or the OB bias values */
#pragma GCC unroll 16
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 4
        for (int v = 0; v < npb; v++) acc[o][v] = init ? (vf){0} + init[o] : LOADU(tile + o * Lpad + p0 + v * VL);
    for (long c = 0; c < C; c++) {
        const float* xc = xb + c * Sp + p0;
        const float* wc = wb + c * K * OB;
        for (long k = 0; k < K; k++) {
            const float* xk = xc + off[k];
            vf xv[PB];
#pragma GCC unroll 4
            for (int v = 0; v < npb; v++) xv[v] = LOADU(xk + v * VL);
            const float* wk = wc + k * OB;
#pragma GCC unroll 16
            for (int o = 0; o < OB; o++) {
                const vf wv = (vf){0} + wk[o];
#pragma GCC unroll 4
                for (int v = 0; v < npb; v++) acc[o][v] += wv * xv[v];
            }
        }
    }
#pragma GCC unroll 16
    for (int o = 0; o < OB; o++)
#pragma GCC unroll 4
        for (int v = 0; v < npb; v++) STOREU(tile + o * Lpad + p0 + v * VL, acc[o][v]);
}

/* x (N,C,H,W), w (O,Cg,kh,kw), b (O) or NULL -> y (N,O,Ho,Wo). ws holds N*C*Sp floats (the
 * padded input), the packed weights [G][OBn][Cg][K][OB] (zero rows past Og), then the bias
 * in the same blocks [G][OBn][OB]. Returns 0, or -1 when a
 * thread's output tile could not be allocated. */
static int conv2d_fwd(geom* q, const float* x, const float* w, const float* b, float* y, float* ws) {
    const long OBn = (q->Og + OB - 1) / OB, planes = q->N * q->C;
    float* xp = ws;
    float* wp = ws + planes * q->Sp;
    float* bp = wp + q->G * OBn * q->Cg * q->K * OB;
    const long tasks = q->N * q->G * OBn;
    /* per channel, one tile reads PB*VL floats plus the kernel's reach, and K*OB weights */
    const long per_c = (PB * VL + q->off[q->K - 1] + q->K * OB) * (long)sizeof(float);
    const long cb = L1_BYTES / per_c > 0 ? L1_BYTES / per_c : 1;
    int failed = 0;
#pragma omp parallel if (planes * q->Sp > 4096)
    {
        float* tile = malloc(sizeof(float) * OB * q->Lpad);
        if (!tile) {
#pragma omp atomic write
            failed = 1;
        }
        /* one pass (one barrier) pads the input planes and packs the weight blocks */
#pragma omp for schedule(dynamic, 8)
        for (long t = 0; t < planes + q->G * OBn; t++) {
            if (t < planes) {
                pad_plane(q, x + t * q->H * q->W, xp + t * q->Sp);
                continue;
            }
            const long gob = t - planes, g = gob / OBn, ob = gob % OBn;
            for (long o = 0; o < OB; o++) /* the block's bias, zero past Og or without a bias */
                bp[gob * OB + o] = b && ob * OB + o < q->Og ? b[g * q->Og + ob * OB + o] : 0.0f;
            float* dst = wp + gob * q->Cg * q->K * OB; /* [Cg][K][OB] */
            for (long c = 0; c < q->Cg; c++)
                for (long k = 0; k < q->K; k++)
                    for (long o = 0; o < OB; o++) {
                        const long oo = ob * OB + o;
                        dst[(c * q->K + k) * OB + o] = oo < q->Og ? w[((g * q->Og + oo) * q->Cg + c) * q->K + k] : 0.0f;
                    }
        }
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < tasks; t++) {
            if (!tile) continue;
            const long n = t / (q->G * OBn), g = (t / OBn) % q->G, ob = t % OBn;
            const float* xb = xp + (n * q->C + g * q->Cg) * q->Sp;
            const float* wb = wp + (g * OBn + ob) * q->Cg * q->K * OB;
            const float* bias = bp + (g * OBn + ob) * OB;
            for (long c0 = 0; c0 < q->Cg; c0 += cb) { /* channel chunks: a tile's reads stay in L1 */
                const long nc = c0 + cb < q->Cg ? cb : q->Cg - c0;
                const float* xc = xb + c0 * q->Sp;
                const float* wc = wb + c0 * q->K * OB;
                const float* init = c0 == 0 ? bias : NULL;
                /* tiles of 3 vectors, ending 3+1 as 2+2: a 1-vector tile is load-bound */
                const long n3 = q->NV % 3 == 1 && q->NV > 3 ? q->NV / 3 - 1 : q->NV / 3;
                long v = 0;
                for (; v < 3 * n3; v += 3) fwd_tile(xc, wc, q->off, nc, q->K, q->Sp, tile, q->Lpad, v * VL, init, 3);
                for (; v + 2 <= q->NV; v += 2) fwd_tile(xc, wc, q->off, nc, q->K, q->Sp, tile, q->Lpad, v * VL, init, 2);
                if (v < q->NV) fwd_tile(xc, wc, q->off, nc, q->K, q->Sp, tile, q->Lpad, v * VL, init, 1);
            }
            const long oe = q->Og - ob * OB < OB ? q->Og - ob * OB : OB;
            for (long o = 0; o < oe; o++) { /* drop the gap columns */
                float* yo = y + (n * q->O + g * q->Og + ob * OB + o) * q->Ho * q->Wo;
                const float* to = tile + o * q->Lpad;
                for (long h = 0; h < q->Ho; h++) memcpy(yo + h * q->Wo, to + h * q->Wp, sizeof(float) * q->Wo);
            }
        }
        free(tile);
    }
    return failed ? -1 : 0;
}

/* ---- weight gradient ---------------------------------------------------------------------- */

/* The weight gradient is a GEMM over (image, position) with the im2col left implicit:
 *   gwT[q][o] += sum_{n,p} x[n, c(q), p + off(k(q))] * gT[n][p][o],  q = c*K + k
 * with g transposed so that WV vectors of output channels load at each position, and each of
 * WJ (channel, offset) pairs broadcast from the padded input: WV*WJ accumulators, no horizontal
 * sums, and only real output positions (no gap columns). */
#define WV (VL == 16 ? 2 : 1)
#define WJ 12
#define WO (WV * VL)

static void wg_tile(const geom* q, const float* restrict xp, const float* restrict gT, long Opv, long n0, long n1,
                    long g, long ob, long qb, float* restrict gwT) {
    const long nq = q->Cg * q->K;
    long pair[WJ];
    for (int j = 0; j < WJ; j++) { /* pairs past the end read the first plane; their sums are dropped */
        const long qq = qb * WJ + j;
        pair[j] = qq < nq ? (qq / q->K) * q->Sp + q->off[qq % q->K] : 0;
    }
    float* dst = gwT + (g * ((nq + WJ - 1) / WJ * WJ) + qb * WJ) * Opv + ob * WO;
    vf acc[WV][WJ];
#pragma GCC unroll 16
    for (int j = 0; j < WJ; j++)
#pragma GCC unroll 4
        for (int v = 0; v < WV; v++) acc[v][j] = LOADU(dst + j * Opv + v * VL);
    for (long n = n0; n < n1; n++) {
        const float* xn = xp + (n * q->C + g * q->Cg) * q->Sp;
        const float* gn = gT + (n * q->G + g) * q->Ho * q->Wo * Opv + ob * WO;
        for (long h = 0; h < q->Ho; h++) {
            const float* xr = xn + h * q->Wp;
            const float* gr = gn + h * q->Wo * Opv;
            for (long w = 0; w < q->Wo; w++) {
                vf gv[WV];
#pragma GCC unroll 4
                for (int v = 0; v < WV; v++) gv[v] = LOADU(gr + w * Opv + v * VL);
#pragma GCC unroll 16
                for (int j = 0; j < WJ; j++) {
                    const vf xb = (vf){0} + xr[pair[j] + w];
#pragma GCC unroll 4
                    for (int v = 0; v < WV; v++) acc[v][j] += gv[v] * xb;
                }
            }
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < WJ; j++)
#pragma GCC unroll 4
        for (int v = 0; v < WV; v++) STOREU(dst + j * Opv + v * VL, acc[v][j]);
}

/* How the weight gradient's work is split. A task is (image split, group, o-block, run of
 * q-blocks); it sums its images in passes sized so one o-block of gT stays in L2 while each
 * q-block of the run reads it. With few (group, o-block, q-block) tiles the images are split
 * too, into partial sums added at the end. The split depends only on the geometry, so results
 * do not depend on the number of threads. */
typedef struct {
    long Opv, OBn, HW, nq, QBn, nqp, QG, QGn, S, tasks, nchunk;
} wsplit;

static wsplit wg_split(const geom* q) {
    wsplit s;
    s.Opv = (q->Og + WO - 1) / WO * WO;
    s.OBn = s.Opv / WO;
    s.HW = q->Ho * q->Wo;
    s.nq = q->Cg * q->K;
    s.QBn = (s.nq + WJ - 1) / WJ;
    s.nqp = s.QBn * WJ;
    const long tiles = q->G * s.OBn * s.QBn;
    s.S = tiles >= 8 ? 1 : (q->N < 4 ? q->N : 4);
    long groups = (8 + q->G * s.OBn * s.S - 1) / (q->G * s.OBn * s.S); /* aim for >= 8 tasks */
    if (groups > s.QBn) groups = s.QBn;
    s.QG = (s.QBn + groups - 1) / groups;
    s.QGn = (s.QBn + s.QG - 1) / s.QG;
    s.tasks = s.S * q->G * s.OBn * s.QGn;
    s.nchunk = L2_BYTES / (s.HW * WO * (long)sizeof(float));
    if (s.nchunk < 1) s.nchunk = 1;
    return s;
}

/* x (N,C,H,W), g (N,O,Ho,Wo) -> gw (O,Cg,kh,kw). ws holds N*C*Sp floats (padded input), then
 * gT [N][G][Ho*Wo][Opv] (zero columns past Og), then S partial sums gwT [G][nqp][Opv]. */
static int conv2d_wgrad(geom* q, const float* x, const float* g_, float* gw, float* ws) {
    const wsplit s = wg_split(q);
    const long planes = q->N * q->C, part = q->G * s.nqp * s.Opv;
    float* xp = ws;
    float* gT = xp + planes * q->Sp;
    float* gwT = gT + q->N * q->G * s.HW * s.Opv;
#pragma omp parallel if (planes * q->Sp > 4096)
    {
        /* one pass pads the input planes, transposes g to (HW, Opv) per image and group, and
         * zeroes the partial sums */
#pragma omp for schedule(dynamic, 8)
        for (long t = 0; t < planes + q->N * q->G + s.S; t++) {
            if (t < planes) {
                pad_plane(q, x + t * q->H * q->W, xp + t * q->Sp);
            } else if (t < planes + q->N * q->G) {
                const long ng = t - planes;
                float* dst = gT + ng * s.HW * s.Opv;
                const float* src = g_ + ng * q->Og * s.HW;
                for (long p = 0; p < s.HW; p++) {
                    for (long o = 0; o < q->Og; o++) dst[p * s.Opv + o] = src[o * s.HW + p];
                    for (long o = q->Og; o < s.Opv; o++) dst[p * s.Opv + o] = 0.0f;
                }
            } else {
                memset(gwT + (t - planes - q->N * q->G) * part, 0, sizeof(float) * part);
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < s.tasks; t++) { /* t = ((sp*G + g)*OBn + ob)*QGn + qg */
            const long qg = t % s.QGn, ob = (t / s.QGn) % s.OBn, g = (t / (s.QGn * s.OBn)) % q->G;
            const long sp = t / (s.QGn * s.OBn * q->G);
            const long na = q->N * sp / s.S, nb = q->N * (sp + 1) / s.S;
            const long qe = (qg + 1) * s.QG < s.QBn ? (qg + 1) * s.QG : s.QBn;
            for (long n0 = na; n0 < nb; n0 += s.nchunk)
                for (long qb = qg * s.QG; qb < qe; qb++)
                    wg_tile(q, xp, gT, s.Opv, n0, n0 + s.nchunk < nb ? n0 + s.nchunk : nb, g, ob, qb, gwT + sp * part);
            if (s.S > 1) continue;
            /* one split: the task's sums are final; write them out now (no gather pass) */
            const long oe = (ob + 1) * WO < q->Og ? (ob + 1) * WO : q->Og;
            for (long qq = qg * s.QG * WJ; qq < qe * WJ && qq < s.nq; qq++)
                for (long o = ob * WO; o < oe; o++)
                    gw[(g * q->Og + o) * s.nq + qq] = gwT[(g * s.nqp + qq) * s.Opv + o];
        }
        if (s.S > 1) {
#pragma omp for schedule(dynamic, 256)
            for (long i = 0; i < q->O * s.nq; i++) { /* gw[(g*Og + o)][qq] = sum over splits of gwT[g][qq][o] */
                const long go = i / s.nq, qq = i % s.nq;
                const float* src = gwT + ((go / q->Og) * s.nqp + qq) * s.Opv + go % q->Og;
                float sum = 0.0f;
                for (long sp = 0; sp < s.S; sp++) sum += src[sp * part];
                gw[i] = sum;
            }
        }
    }
    return 0;
}

/* ---- input gradient, scatter form --------------------------------------------------------- */

/* For a conv with little padding the input gradient as a forward conv (on the gradient padded
 * by the kernel's reach) multiplies many zeros: LeNet's 11x11 -> 13x13 layer computes 15-wide
 * rows for 13 outputs. The scatter form instead adds each kernel offset's products into the
 * padded input plane:  gxp[n,c][P + off(k)] += sum_o w[o,c,k] * g[n,o][P],  with g spread to
 * the plane's row stride (zero gaps) so a vector of P is one load per o. A task owns one
 * (image, channel) plane, so its read-modify-writes need no synchronisation. */
typedef struct {
    long Hs, Ws, Ss, NV, Lpad, KB;
    int off[MAXK];
} dplan;

static long dg_kb(long K) { /* kernel offsets per tile: the largest divisor of K up to 9 */
    for (long kb = 9; kb > 1; kb--)
        if (K % kb == 0) return kb;
    return 1;
}

static void dg_plan(const geom* q, dplan* d) {
    const long rh = q->dh * (q->kh - 1), rw = q->dw * (q->kw - 1);
    d->Ws = q->Wo + rw > q->pl + q->W ? q->Wo + rw : q->pl + q->W;
    d->Hs = q->Ho + rh > q->pt + q->H ? q->Ho + rh : q->pt + q->H;
    d->Ss = d->Hs * d->Ws + VL; /* writes reach NV*VL - 1 + offmax <= Hs*Ws + VL - 2 */
    d->NV = ((q->Ho - 1) * d->Ws + q->Wo + VL - 1) / VL;
    d->Lpad = d->NV * VL;
    d->KB = dg_kb(q->K);
    for (long i = 0; i < q->kh; i++)
        for (long j = 0; j < q->kw; j++) d->off[i * q->kw + j] = (int)(i * q->dh * d->Ws + j * q->dw);
}

/* kb kernel offsets x npb vectors of positions from p0, summed over Og output channels. */
AI void dg_tile(const float* restrict gs, const float* restrict wc, long Og, long K, long Lpad,
                const int* off, float* plane, long p0, const int kb, const int npb) {
    vf acc[9][PB];
#pragma GCC unroll 9
    for (int k = 0; k < kb; k++)
#pragma GCC unroll 4
        for (int v = 0; v < npb; v++) acc[k][v] = (vf){0};
    for (long o = 0; o < Og; o++) {
        vf gv[PB];
#pragma GCC unroll 4
        for (int v = 0; v < npb; v++) gv[v] = LOADU(gs + o * Lpad + p0 + v * VL);
        const float* wo = wc + o * K;
#pragma GCC unroll 9
        for (int k = 0; k < kb; k++) {
            const vf wb = (vf){0} + wo[k];
#pragma GCC unroll 4
            for (int v = 0; v < npb; v++) acc[k][v] += wb * gv[v];
        }
    }
#pragma GCC unroll 9
    for (int k = 0; k < kb; k++)
#pragma GCC unroll 4
        for (int v = 0; v < npb; v++) {
            float* dst = plane + p0 + v * VL + off[k];
            STOREU(dst, LOADU(dst) + acc[k][v]);
        }
}

#define DG_ROW(kb)                                                                                \
    case kb: {                                                                                    \
        const long n3 = NV % 3 == 1 && NV > 3 ? NV / 3 - 1 : NV / 3;                              \
        long v = 0;                                                                               \
        for (; v < 3 * n3; v += 3) dg_tile(gs, wc, Og, K, Lpad, off, plane, v * VL, kb, 3);       \
        for (; v + 2 <= NV; v += 2) dg_tile(gs, wc, Og, K, Lpad, off, plane, v * VL, kb, 2);      \
        if (v < NV) dg_tile(gs, wc, Og, K, Lpad, off, plane, v * VL, kb, 1);                      \
        break;                                                                                    \
    }

/* All positions for kernel offsets [k0, k0 + kb). */
static void dg_rows(const float* gs, const float* wc, long Og, long K, long Lpad, long NV, const int* off,
                    float* plane, long kb) {
    switch (kb) {
        DG_ROW(1) DG_ROW(2) DG_ROW(3) DG_ROW(4) DG_ROW(5) DG_ROW(6) DG_ROW(7) DG_ROW(8) DG_ROW(9)
    }
}

/* g (N,O,Ho,Wo), w (O,Cg,kh,kw), b (C) or NULL -> gx (N,C,H,W), the input gradient of a
 * stride-1 conv whose input is (N,C,H,W) with padding (pt, pb, pl, pr) (pb/pr may be negative:
 * a transposed conv's output_padding). ws holds g spread to [N][O][Lpad], then the weights as
 * [G][Cg][Og][K]. */
static int conv2d_dgrad(geom* q, const float* g_, const float* w, const float* b, float* gx, float* ws) {
    dplan d;
    dg_plan(q, &d);
    float* gs = ws;
    float* wq = gs + q->N * q->O * d.Lpad;
    const long rows = q->N * q->O, blocks = q->G * q->Cg;
    int failed = 0;
#pragma omp parallel if (rows * d.Lpad > 4096)
    {
        float* plane = malloc(sizeof(float) * d.Ss);
        if (!plane) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 8)
        for (long t = 0; t < rows + blocks; t++) {
            if (t < rows) { /* g row (n, o) spread to stride Ws with zero gaps and tail */
                float* dst = gs + t * d.Lpad;
                const float* src = g_ + t * q->Ho * q->Wo;
                memset(dst, 0, sizeof(float) * d.Lpad);
                for (long h = 0; h < q->Ho; h++) memcpy(dst + h * d.Ws, src + h * q->Wo, sizeof(float) * q->Wo);
                continue;
            }
            const long gc = t - rows, g = gc / q->Cg, c = gc % q->Cg;
            float* dst = wq + gc * q->Og * q->K; /* [Og][K] for (g, c) */
            for (long o = 0; o < q->Og; o++)
                for (long k = 0; k < q->K; k++) dst[o * q->K + k] = w[((g * q->Og + o) * q->Cg + c) * q->K + k];
        }
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < q->N * q->C; t++) { /* t = n*C + g*Cg + c */
            if (!plane) continue;
            const long n = t / q->C, g = (t % q->C) / q->Cg;
            const float* gsn = gs + (n * q->O + g * q->Og) * d.Lpad;
            const float* wc = wq + (t % q->C) * q->Og * q->K;
            memset(plane, 0, sizeof(float) * d.Ss);
            for (long k0 = 0; k0 < q->K; k0 += d.KB)
                dg_rows(gsn, wc + k0, q->Og, q->K, d.Lpad, d.NV, d.off + k0, plane, d.KB);
            const float bias = b ? b[t % q->C] : 0.0f;
            float* out = gx + t * q->H * q->W;
            for (long h = 0; h < q->H; h++) {
                const float* src = plane + (q->pt + h) * d.Ws + q->pl;
                for (long x = 0; x < q->W; x++) out[h * q->W + x] = src[x] + bias;
            }
        }
        free(plane);
    }
    return failed ? -1 : 0;
}

static long dgrad_ws(const geom* q) {
    dplan d;
    dg_plan(q, &d);
    return q->N * q->O * d.Lpad + q->O * q->Cg * q->K;
}

/* ---- Python bindings ---------------------------------------------------------------------- */

static long wgrad_ws(const geom* q) {
    const wsplit s = wg_split(q);
    return q->N * q->C * q->Sp + q->N * q->G * s.HW * s.Opv + s.S * q->G * s.nqp * s.Opv;
}

static long fwd_ws(const geom* q) {
    return q->N * q->C * q->Sp + q->G * ((q->Og + OB - 1) / OB) * (q->Cg * q->K + 1) * OB;
}

#define GEOM_FMT "(llllllllllllll)"
#define GEOM_ARGS(q) &q.N, &q.C, &q.H, &q.W, &q.O, &q.kh, &q.kw, &q.pt, &q.pb, &q.pl, &q.pr, &q.dh, &q.dw, &q.G

static int geom_parse(geom* q) {
    if (q->G < 1 || q->C % q->G || q->O % q->G || q->pt < 0 || q->pl < 0 || q->pb < -q->H || q->pr < -q->W ||
        geom_init(q) < 0) {
        PyErr_SetString(PyExc_ValueError, "conv2d native kernel: bad geometry (empty output, groups, or kernel too large)");
        return -1;
    }
    return 0;
}

enum { FWD, WGRAD, DGRAD };

static long need_ws(const geom* q, int kind) {
    return kind == WGRAD ? wgrad_ws(q) : kind == DGRAD ? dgrad_ws(q) : fwd_ws(q);
}

/* workspace(kind, geometry) -> float32 elements the workspace needs; kind 0 conv2d,
 * 1 conv2d_wgrad, 2 conv2d_dgrad */
static PyObject* py_workspace(PyObject* self, PyObject* args) {
    int kind;
    geom q;
    if (!PyArg_ParseTuple(args, "i" GEOM_FMT, &kind, GEOM_ARGS(q)) || geom_parse(&q) < 0) return NULL;
    return PyLong_FromLong(need_ws(&q, kind));
}

/* (a, b, bias or None, out, workspace, geometry); every array C-contiguous float32, sizes
 * checked by the caller (ember.ops.conv) except the workspace's; conv2d_wgrad takes no bias.
 * The GIL is released while it runs. */
static PyObject* run(PyObject* args, int kind) {
    Py_buffer a, b, bias = {0}, out, ws;
    PyObject* biaso;
    geom q;
    if (!PyArg_ParseTuple(args, "y*y*Ow*w*" GEOM_FMT, &a, &b, &biaso, &out, &ws, GEOM_ARGS(q))) return NULL;
    PyObject* ret = NULL;
    if (biaso != Py_None && (kind == WGRAD || PyObject_GetBuffer(biaso, &bias, PyBUF_C_CONTIGUOUS) < 0 ||
                             bias.len != (kind == DGRAD ? q.C : q.O) * (long)sizeof(float))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "conv2d native kernel: bias must be one float32 per output channel");
    } else if (geom_parse(&q) == 0) {
        const long need = need_ws(&q, kind), fl = sizeof(float);
        const long xs = q.N * q.C * q.H * q.W * fl, ws_ = q.O * q.Cg * q.K * fl, ys = q.N * q.O * q.Ho * q.Wo * fl;
        const long sa = kind == DGRAD ? ys : xs, sb = kind == FWD ? ws_ : kind == WGRAD ? ys : ws_;
        const long so = kind == FWD ? ys : kind == WGRAD ? ws_ : xs;
        if (a.len != sa || b.len != sb || out.len != so) {
            PyErr_Format(PyExc_ValueError, "conv2d native kernel: arrays of %zd, %zd, %zd bytes do not fit the "
                         "geometry (expected %ld, %ld, %ld)", a.len, b.len, out.len, sa, sb, so);
        } else if (ws.len < need * (long)sizeof(float)) {
            PyErr_Format(PyExc_ValueError, "conv2d native kernel: workspace of %zd bytes, need %ld", ws.len,
                         need * (long)sizeof(float));
        } else {
            int rc;
            Py_BEGIN_ALLOW_THREADS
            rc = kind == WGRAD   ? conv2d_wgrad(&q, a.buf, b.buf, out.buf, ws.buf)
                 : kind == DGRAD ? conv2d_dgrad(&q, a.buf, b.buf, bias.buf, out.buf, ws.buf)
                                 : conv2d_fwd(&q, a.buf, b.buf, bias.buf, out.buf, ws.buf);
            Py_END_ALLOW_THREADS
            if (rc == 0) {
                ret = Py_None;
                Py_INCREF(ret);
            } else {
                PyErr_NoMemory();
            }
        }
    }
    if (bias.buf) PyBuffer_Release(&bias);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    PyBuffer_Release(&ws);
    return ret;
}

static PyObject* py_conv2d(PyObject* self, PyObject* args) { return run(args, FWD); }
static PyObject* py_conv2d_wgrad(PyObject* self, PyObject* args) { return run(args, WGRAD); }
static PyObject* py_conv2d_dgrad(PyObject* self, PyObject* args) { return run(args, DGRAD); }

static PyMethodDef methods[] = {
    {"workspace", py_workspace, METH_VARARGS, "workspace(wgrad, geometry) -> float32 elements"},
    {"conv2d", py_conv2d, METH_VARARGS, "conv2d(x, w, bias or None, y, workspace, geometry)"},
    {"conv2d_wgrad", py_conv2d_wgrad, METH_VARARGS, "conv2d_wgrad(x, g, None, gw, workspace, geometry)"},
    {"conv2d_dgrad", py_conv2d_dgrad, METH_VARARGS, "conv2d_dgrad(g, w, bias or None, gx, workspace, geometry)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "EMBER_MODULE_NAME", NULL, -1, methods};

PyMODINIT_FUNC PyInit_EMBER_MODULE_NAME(void) {
    PyObject* m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "MAX_K", MAXK) < 0) Py_CLEAR(m); /* kernel offsets it takes */
    return m;
}
