/* Causal GQA attention over an f16 or f32 KV cache, one (token, head) at a time: scores =
 * (q . k_j) * 1/sqrt(head_dim) (four-lane dot), p_j = bn_expf(score_j - max) summed in four
 * lanes, then out = (sum_j p_j v_j, j in order) / sum p. The f16 cache halves the memory; the f32
 * one (bn_*_f32, build option --kv f32) keeps keys and values exactly as computed. A kv head's rows
 * follow each other (the cache is [kv_heads, context, head_dim]): one stream, which the CPU's
 * prefetchers fetch while the rows before it compute. */
#include "bitnet.h"
#include "dot_f16.h"
#include "touch.h"

typedef struct {
    int heads, kv_heads, head_dim, context; /* context: the rows of a kv head in the cache */
    float scale;
} Shape;

static int valid(int n, int heads, int kv_heads, int head_dim, int context, int pos0) {
    return heads > 0 && bn_kv_rows_fit(n, kv_heads, head_dim, context, pos0);
}

static Shape shape_of(int heads, int kv_heads, int head_dim, int context) {
    Shape s = { heads, kv_heads, head_dim, context, (float)(1.0 / bn_sqrt((double)head_dim)) };
    return s;
}

/* kv head of query head h: h / (heads / kv_heads), written so it stays < kv_heads for any shape */
static size_t kv_offset(const Shape *s, int h) { return (size_t)(h * s->kv_heads / s->heads) * s->context * s->head_dim; }


static inline float dot_f32_ref(const float *x, const float *e, int d) {
    float lanes[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (int i = 0; i < d; i++) lanes[i & 3] += x[i] * e[i];
    return bn_lanes_total(lanes);
}

/* acc holds the lanes of x . e up to element i; the tail i..d-1 continues in lane order */
static inline float dot_f32_tail(v128_t acc, const float *x, const float *e, int i, int d) {
    float lanes[4];
    wasm_v128_store(lanes, acc);
    for (int l = 0; i < d; i++, l++) lanes[l] += x[i] * e[i];
    return bn_lanes_total(lanes);
}

static inline float dot_f32(const float *x, const float *e, int d) {
    v128_t acc = wasm_f32x4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= d; i += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(x + i), wasm_v128_load(e + i)));
    return dot_f32_tail(acc, x, e, i, d);
}

/* out[r] = bn_lanes_total of acc[r], r < 4: the lanes transposed, so the same adds run four rows at once */
static inline void lanes_totals4(const v128_t acc[4], float *out) {
    const v128_t x = wasm_i32x4_shuffle(acc[0], acc[1], 0, 1, 4, 5), y = wasm_i32x4_shuffle(acc[0], acc[1], 2, 3, 6, 7);
    const v128_t z = wasm_i32x4_shuffle(acc[2], acc[3], 0, 1, 4, 5), w = wasm_i32x4_shuffle(acc[2], acc[3], 2, 3, 6, 7);
    const v128_t l0 = wasm_i32x4_shuffle(x, z, 0, 2, 4, 6), l1 = wasm_i32x4_shuffle(x, z, 1, 3, 5, 7);
    const v128_t l2 = wasm_i32x4_shuffle(y, w, 0, 2, 4, 6), l3 = wasm_i32x4_shuffle(y, w, 1, 3, 5, 7);
    wasm_v128_store(out, wasm_f32x4_add(wasm_f32x4_add(l0, l1), wasm_f32x4_add(l2, l3)));
}

/* out[r] = the dot of x with row r of e, d apart (its lanes in acc[r] up to element i), r < 4 */
static inline void dot4_totals(const v128_t acc[4], const float *x, const float *e, int i, int d, float *out) {
    if (i == d) lanes_totals4(acc, out);
    else
        for (int r = 0; r < 4; r++) out[r] = dot_f32_tail(acc[r], x, e + (size_t)r * d, i, d);
}

/* four dot_f32 with rows of e, d apart, at once, each in its own order: independent sums hide the adds' latency */
static inline void dot4_f32(const float *x, const float *e, int d, float *out) {
    v128_t acc[4] = { wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f) };
    int i = 0;
    for (; i + 4 <= d; i += 4) {
        const v128_t xv = wasm_v128_load(x + i);
        for (int r = 0; r < 4; r++) acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(xv, wasm_v128_load(e + (size_t)r * d + i)));
    }
    dot4_totals(acc, x, e, i, d, out);
}

/* dot4_f32 for two vectors x0 and x1 (two heads) at once: eight sums keep both of the core's add units busy */
static inline void dot4x2_f32(const float *x0, const float *x1, const float *e, int d, float *out0, float *out1) {
    v128_t acc0[4], acc1[4];
    for (int r = 0; r < 4; r++) acc0[r] = acc1[r] = wasm_f32x4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= d; i += 4) {
        const v128_t u = wasm_v128_load(x0 + i), w = wasm_v128_load(x1 + i);
        for (int r = 0; r < 4; r++) {
            const v128_t er = wasm_v128_load(e + (size_t)r * d + i);
            acc0[r] = wasm_f32x4_add(acc0[r], wasm_f32x4_mul(u, er));
            acc1[r] = wasm_f32x4_add(acc1[r], wasm_f32x4_mul(w, er));
        }
    }
    dot4_totals(acc0, x0, e, i, d, out0);
    dot4_totals(acc1, x1, e, i, d, out1);
}

static inline float f32_value(float x) { return x; }

#define VALUE_SLOTS 4 /* blocks of 8 value sums (heads x column blocks) kept in registers: 8 f32x4 */

/* eight f16 as two f32x4 by the short conversion, exact for finite values (converting the cache is
 * most of attention's work) */
static inline void load8_f16(const uint16_t *p, v128_t *lo, v128_t *hi) {
    const v128_t h = wasm_v128_load(p);
    *lo = bn_finite_f16x4_to_f32x4(wasm_i32x4_extend_low_i16x8(h));
    *hi = bn_finite_f16x4_to_f32x4(wasm_i32x4_extend_high_i16x8(h));
}

/* whether the n f16 at p are finite: each lane keeps its largest h << 1, where inf and nan show as >= 0xf800 */
static int finite_f16(const uint16_t *p, int n) {
    v128_t seen = wasm_i16x8_splat(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const v128_t h = wasm_v128_load(p + i);
        seen = wasm_u16x8_max(seen, wasm_i16x8_add(h, h));
    }
    int finite = !wasm_v128_any_true(wasm_u16x8_ge(seen, wasm_u16x8_splat(0xf800)));
    for (; i < n; i++) finite &= (p[i] & 0x7c00) != 0x7c00;
    return finite;
}

/* f32 first: the f16 kernels run a prompt through its group_f32 */
#define KV float
#define KV_NAME(f, rest) f##_f32##rest
#define KV_LOAD8(p, lo, hi) ((lo) = wasm_v128_load(p), (hi) = wasm_v128_load((p) + 4))
#define KV_TO_F32 f32_value
#define KV_FINITE(p, n) 1 /* KV_LOAD8 takes f32 as they are, whatever they hold */
#define KV_DOT_REF dot_f32_ref
#include "attention_kv.h"
#undef KV
#undef KV_NAME
#undef KV_TO_F32
#undef KV_FINITE
#undef KV_DOT_REF
#undef KV_LOAD8

#define KV uint16_t
#define KV_NAME(f, rest) f##rest
#define KV_LOAD8(p, lo, hi) load8_f16(p, &(lo), &(hi))
#define KV_TO_F32 bn_f16_to_f32
#define KV_FINITE finite_f16
#define KV_DOT_REF bn_dot_f16_ref
#include "attention_kv.h"

void bn_kv_store(const float *x, uint16_t *cache, int n, int kv_heads, int head_dim, int context, int pos0) {
    if (!bn_kv_rows_fit(n, kv_heads, head_dim, context, pos0)) return;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < kv_heads; h++) {
            const float *src = x + ((size_t)t * kv_heads + h) * head_dim;
            uint16_t *dst = cache + ((size_t)h * context + pos0 + t) * head_dim;
            int i = 0;
            for (; i + 8 <= head_dim; i += 8) {
                v128_t lo = bn_f32x4_to_f16x4(wasm_v128_load(src + i)), hi = bn_f32x4_to_f16x4(wasm_v128_load(src + i + 4));
                wasm_v128_store(dst + i, wasm_u16x8_narrow_i32x4(lo, hi));
            }
            for (; i < head_dim; i++) dst[i] = bn_f32_to_f16(src[i]);
        }
}

void bn_kv_store_f32(const float *x, float *cache, int n, int kv_heads, int head_dim, int context, int pos0) {
    if (!bn_kv_rows_fit(n, kv_heads, head_dim, context, pos0)) return;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < kv_heads; h++) {
            const float *src = x + ((size_t)t * kv_heads + h) * head_dim;
            float *dst = cache + ((size_t)h * context + pos0 + t) * head_dim;
            for (int i = 0; i < head_dim; i++) dst[i] = src[i];
        }
}
