/* The attention kernels for one KV cache element type, included once per type by attention.c,
 * which defines KV (the element type), KV_NAME(f, rest) (the name f + this type's suffix + rest), KV_TO_F32(x),
 * KV_LOAD4(p) (four elements as f32x4) and the f32 . KV dots KV_DOT_REF, KV_DOT, KV_DOT4 in the
 * four-lane order of simd.h. */

static void KV_NAME(head, _ref)(const Shape *s, const float *q, const KV *k, const KV *v, float *o, float *p, int len) {
    float mx = -__builtin_inff();
    for (int j = 0; j < len; j++) {
        p[j] = KV_DOT_REF(q, k + (size_t)j * s->row, s->head_dim) * s->scale;
        mx = p[j] > mx ? p[j] : mx;
    }
    float lanes[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (int j = 0; j < len; j++) {
        p[j] = bn_expf(p[j] - mx);
        lanes[j & 3] += p[j];
    }
    const float sum = bn_lanes_total(lanes);
    for (int d = 0; d < s->head_dim; d++) o[d] = p[0] * KV_TO_F32(v[d]);
    for (int j = 1; j < len; j++)
        for (int d = 0; d < s->head_dim; d++) o[d] += p[j] * KV_TO_F32(v[(size_t)j * s->row + d]);
    for (int d = 0; d < s->head_dim; d++) o[d] = o[d] / sum;
}

void KV_NAME(bn_attention, _ref)(const float *q, const KV *k_cache, const KV *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int pos0) {
    if (!valid(n, heads, kv_heads, head_dim, pos0)) return;
    const Shape s = shape_of(heads, kv_heads, head_dim);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < heads; h++) {
            size_t qo = ((size_t)t * heads + h) * head_dim;
            KV_NAME(head, _ref)(&s, q + qo, k_cache + kv_offset(&s, h), v_cache + kv_offset(&s, h), out + qo, scratch, pos0 + t + 1);
        }
}

static void KV_NAME(head, )(const Shape *s, const float *q, const KV *k, const KV *v, float *o, float *p, int len) {
    const int d = s->head_dim;
    int j = 0;
    for (; j + 4 <= len; j += 4) KV_DOT4(q, k + (size_t)j * s->row, s->row, d, p + j);
    for (; j < len; j++) p[j] = KV_DOT(q, k + (size_t)j * s->row, d);
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
    for (; i + 4 <= d; i += 4) wasm_v128_store(o + i, wasm_f32x4_mul(w0, KV_LOAD4(v + i)));
    for (; i < d; i++) o[i] = p[0] * KV_TO_F32(v[i]);
    for (j = 1; j < len; j++) {
        const KV *vj = v + (size_t)j * s->row;
        const v128_t w = wasm_f32x4_splat(p[j]);
        for (i = 0; i + 4 <= d; i += 4) wasm_v128_store(o + i, wasm_f32x4_add(wasm_v128_load(o + i), wasm_f32x4_mul(w, KV_LOAD4(vj + i))));
        for (; i < d; i++) o[i] += p[j] * KV_TO_F32(vj[i]);
    }
    const v128_t vsum = wasm_f32x4_splat(sum);
    for (i = 0; i + 4 <= d; i += 4) wasm_v128_store(o + i, wasm_f32x4_div(wasm_v128_load(o + i), vsum));
    for (; i < d; i++) o[i] = o[i] / sum;
}

void KV_NAME(bn_attention, _heads)(const float *q, const KV *k_cache, const KV *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int pos0, int h0, int h1) {
    if (!valid(n, heads, kv_heads, head_dim, pos0)) return;
    const Shape s = shape_of(heads, kv_heads, head_dim);
    for (int t = 0; t < n; t++)
        for (int h = h0 > 0 ? h0 : 0; h < h1 && h < heads; h++) {
            size_t qo = ((size_t)t * heads + h) * head_dim;
            KV_NAME(head, )(&s, q + qo, k_cache + kv_offset(&s, h), v_cache + kv_offset(&s, h), out + qo, scratch, pos0 + t + 1);
        }
}

void KV_NAME(bn_attention, )(const float *q, const KV *k_cache, const KV *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int pos0) {
    KV_NAME(bn_attention, _heads)(q, k_cache, v_cache, out, scratch, n, heads, kv_heads, head_dim, pos0, 0, heads);
}
