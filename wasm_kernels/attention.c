/* Causal GQA attention over an f16 KV cache, one (token, head) at a time: scores = (q . k_j) *
 * 1/sqrt(head_dim) (four-lane dot), p_j = bn_expf(score_j - max) summed in four lanes, then
 * out = (sum_j p_j v_j, j in order) / sum p. */
#include "bitnet.h"
#include "dot_f16.h"

typedef struct {
    int heads, kv_heads, head_dim, row; /* row: one cache row, kv_heads * head_dim */
    float scale;
} Shape;

static int valid(int n, int heads, int kv_heads, int head_dim, int pos0) {
    return n > 0 && heads > 0 && kv_heads > 0 && head_dim > 0 && pos0 >= 0;
}

static Shape shape_of(int heads, int kv_heads, int head_dim) {
    Shape s = { heads, kv_heads, head_dim, kv_heads * head_dim, (float)(1.0 / bn_sqrt((double)head_dim)) };
    return s;
}

/* kv head of query head h: h / (heads / kv_heads), written so it stays < kv_heads for any shape */
static size_t kv_offset(const Shape *s, int h) { return (size_t)(h * s->kv_heads / s->heads) * s->head_dim; }

static void head_ref(const Shape *s, const float *q, const uint16_t *k, const uint16_t *v, float *o, float *p, int len) {
    float mx = -__builtin_inff();
    for (int j = 0; j < len; j++) {
        p[j] = bn_dot_f16_ref(q, k + (size_t)j * s->row, s->head_dim) * s->scale;
        mx = p[j] > mx ? p[j] : mx;
    }
    float lanes[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (int j = 0; j < len; j++) {
        p[j] = bn_expf(p[j] - mx);
        lanes[j & 3] += p[j];
    }
    const float sum = bn_lanes_total(lanes);
    for (int d = 0; d < s->head_dim; d++) o[d] = p[0] * bn_f16_to_f32(v[d]);
    for (int j = 1; j < len; j++)
        for (int d = 0; d < s->head_dim; d++) o[d] += p[j] * bn_f16_to_f32(v[(size_t)j * s->row + d]);
    for (int d = 0; d < s->head_dim; d++) o[d] = o[d] / sum;
}

void bn_attention_ref(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int pos0) {
    if (!valid(n, heads, kv_heads, head_dim, pos0)) return;
    const Shape s = shape_of(heads, kv_heads, head_dim);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < heads; h++) {
            size_t qo = ((size_t)t * heads + h) * head_dim;
            head_ref(&s, q + qo, k_cache + kv_offset(&s, h), v_cache + kv_offset(&s, h), out + qo, scratch, pos0 + t + 1);
        }
}

static void head(const Shape *s, const float *q, const uint16_t *k, const uint16_t *v, float *o, float *p, int len) {
    const int d = s->head_dim;
    int j = 0;
    for (; j + 4 <= len; j += 4) bn_dot4_f16(q, k + (size_t)j * s->row, s->row, d, p + j);
    for (; j < len; j++) p[j] = bn_dot_f16(q, k + (size_t)j * s->row, d);
    float mx = -__builtin_inff();
    for (j = 0; j < len; j++) {
        p[j] = p[j] * s->scale;
        mx = p[j] > mx ? p[j] : mx;
    }

    const v128_t vmx = wasm_f32x4_splat(mx);
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (j = 0; j + 4 <= len; j += 4) {
        v128_t e = bn_expf4(wasm_f32x4_sub(wasm_v128_load(p + j), vmx));
        wasm_v128_store(p + j, e);
        acc = wasm_f32x4_add(acc, e);
    }
    float lanes[4];
    wasm_v128_store(lanes, acc);
    for (int l = 0; j < len; j++, l++) {
        p[j] = bn_expf(p[j] - mx);
        lanes[l] += p[j];
    }
    const float sum = bn_lanes_total(lanes);

    int i = 0;
    const v128_t w0 = wasm_f32x4_splat(p[0]);
    for (; i + 4 <= d; i += 4) wasm_v128_store(o + i, wasm_f32x4_mul(w0, bn_load_f16x4(v + i)));
    for (; i < d; i++) o[i] = p[0] * bn_f16_to_f32(v[i]);
    for (j = 1; j < len; j++) {
        const uint16_t *vj = v + (size_t)j * s->row;
        const v128_t w = wasm_f32x4_splat(p[j]);
        for (i = 0; i + 4 <= d; i += 4) wasm_v128_store(o + i, wasm_f32x4_add(wasm_v128_load(o + i), wasm_f32x4_mul(w, bn_load_f16x4(vj + i))));
        for (; i < d; i++) o[i] += p[j] * bn_f16_to_f32(vj[i]);
    }
    const v128_t vsum = wasm_f32x4_splat(sum);
    for (i = 0; i + 4 <= d; i += 4) wasm_v128_store(o + i, wasm_f32x4_div(wasm_v128_load(o + i), vsum));
    for (; i < d; i++) o[i] = o[i] / sum;
}

void bn_attention_heads(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int pos0, int h0, int h1) {
    if (!valid(n, heads, kv_heads, head_dim, pos0)) return;
    const Shape s = shape_of(heads, kv_heads, head_dim);
    for (int t = 0; t < n; t++)
        for (int h = h0 > 0 ? h0 : 0; h < h1 && h < heads; h++) {
            size_t qo = ((size_t)t * heads + h) * head_dim;
            head(&s, q + qo, k_cache + kv_offset(&s, h), v_cache + kv_offset(&s, h), out + qo, scratch, pos0 + t + 1);
        }
}

void bn_attention(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int pos0) {
    bn_attention_heads(q, k_cache, v_cache, out, scratch, n, heads, kv_heads, head_dim, pos0, 0, heads);
}

void bn_kv_store(const float *x, uint16_t *cache, int n, int row, int pos0) {
    if (pos0 < 0 || n <= 0 || row <= 0) return;
    uint16_t *dst = cache + (size_t)pos0 * row;
    const size_t total = (size_t)n * row;
    size_t i = 0;
    for (; i + 8 <= total; i += 8) {
        v128_t lo = bn_f32x4_to_f16x4(wasm_v128_load(x + i)), hi = bn_f32x4_to_f16x4(wasm_v128_load(x + i + 4));
        wasm_v128_store(dst + i, wasm_u16x8_narrow_i32x4(lo, hi));
    }
    for (; i < total; i++) dst[i] = bn_f32_to_f16(x[i]);
}
