/* The LM head: logits[t, v] = x[t] . E[v] over an f16, int8 or 7-bit embedding matrix (tied weights). */
#include "bitnet.h"
#include "bitlinear.h"
#include "dot_f16.h"

void bn_head_f16_ref(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim) {
    for (int v = 0; v < vocab; v++)
        for (int t = 0; t < n; t++) logits[(size_t)t * vocab + v] = bn_dot_f16_ref(x + (size_t)t * dim, E + (size_t)v * dim, dim);
}

/* four rows of E at a time, each row used for every token while it is in cache; rows [v0, v1) only */
void bn_head_f16_rows(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim, int v0, int v1) {
    int v = v0 > 0 ? v0 : 0;
    const int last = v1 < vocab ? v1 : vocab;
    for (; v + 4 <= last; v += 4)
        for (int t = 0; t < n; t++) {
            float out[4];
            bn_dot4_finite_f16(x + (size_t)t * dim, E + (size_t)v * dim, (size_t)dim, dim, out);
            for (int r = 0; r < 4; r++) logits[(size_t)t * vocab + v + r] = out[r];
        }
    for (; v < last; v++)
        for (int t = 0; t < n; t++) logits[(size_t)t * vocab + v] = bn_dot_f16(x + (size_t)t * dim, E + (size_t)v * dim, dim);
}

void bn_head_f16(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim) {
    bn_head_f16_rows(E, x, logits, n, vocab, dim, 0, vocab);
}

static float q8_logit(int32_t acc, float row_scale, float xscale) { return ((float)acc * row_scale) / xscale; }

static int32_t dot_i8_ref(const int8_t *a, const int8_t *b, int d) {
    int32_t acc = 0;
    for (int i = 0; i < d; i++) acc += (int32_t)a[i] * (int32_t)b[i];
    return acc;
}

void bn_head_q8_ref(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    for (int v = 0; v < vocab; v++)
        for (int t = 0; t < n; t++)
            logits[(size_t)t * vocab + v] = q8_logit(dot_i8_ref(xq + (size_t)t * dim, E + (size_t)v * dim, dim), row_scale[v], xscale[t]);
}

/* int8 widened to int16, then pmaddwd-style pair dots into int32 lanes (exact) */
static v128_t dot16_i8(v128_t x_lo, v128_t x_hi, v128_t e, v128_t acc) {
    acc = wasm_i32x4_add(acc, wasm_i32x4_dot_i16x8(x_lo, wasm_i16x8_extend_low_i8x16(e)));
    return wasm_i32x4_add(acc, wasm_i32x4_dot_i16x8(x_hi, wasm_i16x8_extend_high_i8x16(e)));
}


void bn_head_q8_rows(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    int v = v0 > 0 ? v0 : 0;
    const int last = v1 < vocab ? v1 : vocab;
    for (; v + 4 <= last; v += 4) {
        const int8_t *e = E + (size_t)v * dim;
        for (int t = 0; t < n; t++) {
            const int8_t *x = xq + (size_t)t * dim;
            v128_t acc[4] = { wasm_i32x4_splat(0), wasm_i32x4_splat(0), wasm_i32x4_splat(0), wasm_i32x4_splat(0) };
            int i = 0;
            for (; i + 16 <= dim; i += 16) {
                v128_t xv = wasm_v128_load(x + i), x_lo = wasm_i16x8_extend_low_i8x16(xv), x_hi = wasm_i16x8_extend_high_i8x16(xv);
                for (int r = 0; r < 4; r++) acc[r] = dot16_i8(x_lo, x_hi, wasm_v128_load(e + (size_t)r * dim + i), acc[r]);
            }
            for (int r = 0; r < 4; r++) {
                int32_t total = bn_i32x4_total(acc[r]) + dot_i8_ref(x + i, e + (size_t)r * dim + i, dim - i);
                logits[(size_t)t * vocab + v + r] = q8_logit(total, row_scale[v + r], xscale[t]);
            }
        }
    }
    for (; v < last; v++)
        for (int t = 0; t < n; t++)
            logits[(size_t)t * vocab + v] = q8_logit(dot_i8_ref(xq + (size_t)t * dim, E + (size_t)v * dim, dim), row_scale[v], xscale[t]);
}

void bn_head_q8(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    bn_head_q8_rows(E, row_scale, xq, xscale, logits, n, vocab, dim, 0, vocab);
}

/* 7-bit rows: E holds codes q + BN_Q7_ZERO in 1..127 (q in -63..63), the unsigned operand of the
 * relaxed dot, as the ternary kernels' weight codes; dot(x, q) = dot(x, code) - BN_Q7_ZERO * sum(x). */
static int32_t dot_i8_u7_ref(const int8_t *x, const uint8_t *code, int d) {
    int32_t acc = 0;
    for (int i = 0; i < d; i++) acc += (int32_t)x[i] * (int32_t)code[i];
    return acc;
}

static float q7_logit(int32_t code_dot, int32_t x_sum, float row_scale, float xscale) {
    return q8_logit(code_dot - BN_Q7_ZERO * x_sum, row_scale, xscale);
}

void bn_head_q7_ref(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    for (int v = 0; v < vocab; v++)
        for (int t = 0; t < n; t++) {
            const int8_t *x = xq + (size_t)t * dim;
            logits[(size_t)t * vocab + v] = q7_logit(dot_i8_u7_ref(x, E + (size_t)v * dim, dim), bn_token_sum_ref(x, dim), row_scale[v], xscale[t]);
        }
}

static v128_t dot16_u7(v128_t x, v128_t code, v128_t acc) {
#if BN_RELAXED
    return bn_dot_i8_i7_add(x, code, acc);
#else /* codes < 128: their sign extension is their value */
    return dot16_i8(wasm_i16x8_extend_low_i8x16(x), wasm_i16x8_extend_high_i8x16(x), code, acc);
#endif
}

#define Q7_SUM_TOKENS 64 /* tokens whose activation sums are taken once per call, not once per row group */

/* four rows at a time, as bn_head_q8_rows; every path sums the same exact int32 */
void bn_head_q7_rows(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    const int first = v0 > 0 ? v0 : 0, last = v1 < vocab ? v1 : vocab;
    int32_t x_sum[Q7_SUM_TOKENS];
    for (int t0 = 0; t0 < n; t0 += Q7_SUM_TOKENS) {
        const int tn = n - t0 < Q7_SUM_TOKENS ? n - t0 : Q7_SUM_TOKENS;
        for (int t = 0; t < tn; t++) x_sum[t] = bn_token_sum(xq + (size_t)(t0 + t) * dim, dim);
        int v = first;
        for (; v + 4 <= last; v += 4) {
            const uint8_t *e = E + (size_t)v * dim;
            for (int t = 0; t < tn; t++) {
                const int8_t *x = xq + (size_t)(t0 + t) * dim;
                v128_t acc[4] = { wasm_i32x4_splat(0), wasm_i32x4_splat(0), wasm_i32x4_splat(0), wasm_i32x4_splat(0) };
                int i = 0;
                for (; i + 16 <= dim; i += 16) {
                    v128_t xv = wasm_v128_load(x + i);
                    for (int r = 0; r < 4; r++) acc[r] = dot16_u7(xv, wasm_v128_load(e + (size_t)r * dim + i), acc[r]);
                }
                for (int r = 0; r < 4; r++) {
                    int32_t total = bn_i32x4_total(acc[r]) + dot_i8_u7_ref(x + i, e + (size_t)r * dim + i, dim - i);
                    logits[(size_t)(t0 + t) * vocab + v + r] = q7_logit(total, x_sum[t], row_scale[v + r], xscale[t0 + t]);
                }
            }
        }
        for (; v < last; v++)
            for (int t = 0; t < tn; t++)
                logits[(size_t)(t0 + t) * vocab + v] = q7_logit(dot_i8_u7_ref(xq + (size_t)(t0 + t) * dim, E + (size_t)v * dim, dim), x_sum[t], row_scale[v], xscale[t0 + t]);
    }
}

void bn_head_q7(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    bn_head_q7_rows(E, row_scale, xq, xscale, logits, n, vocab, dim, 0, vocab);
}
