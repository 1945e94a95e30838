/* The attention kernels for one KV cache element type, included once per type by attention.c,
 * which defines KV (the element type), KV_NAME(f, rest) (the name f + this type's suffix + rest), KV_TO_F32(x),
 * KV_LOAD8(p, lo, hi) (eight elements as two f32x4, exact for finite ones), KV_FINITE(p, n) (whether the n
 * elements at p are finite) and the reference's f32 . KV dot KV_DOT_REF in the four-lane order of simd.h. */

static void KV_NAME(head, _ref)(const Shape *s, const float *q, const KV *k, const KV *v, float *o, float *p, int len) {
    float mx = -__builtin_inff();
    for (int j = 0; j < len; j++) {
        p[j] = KV_DOT_REF(q, k + (size_t)j * s->head_dim, s->head_dim) * s->scale;
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
        for (int d = 0; d < s->head_dim; d++) o[d] += p[j] * KV_TO_F32(v[(size_t)j * s->head_dim + d]);
    for (int d = 0; d < s->head_dim; d++) o[d] = o[d] / sum;
}

void KV_NAME(bn_attention, _ref)(const float *q, const KV *k_cache, const KV *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int context, int pos0) {
    if (!valid(n, heads, kv_heads, head_dim, context, pos0)) return;
    const Shape s = shape_of(heads, kv_heads, head_dim, context);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < heads; h++) {
            size_t qo = ((size_t)t * heads + h) * head_dim;
            KV_NAME(head, _ref)(&s, q + qo, k_cache + kv_offset(&s, h), v_cache + kv_offset(&s, h), out + qo, scratch, pos0 + t + 1);
        }
}

/* `count` cache rows of one kv head as f32, head_dim apart in dst (as in the cache) */
static void KV_NAME(rows_f32, )(const Shape *s, const KV *src, int count, float *dst) {
    const size_t total = (size_t)count * s->head_dim;
    size_t i = 0;
    for (; i + 8 <= total; i += 8) {
        v128_t lo, hi;
        KV_LOAD8(src + i, lo, hi);
        wasm_v128_store(dst + i, lo);
        wasm_v128_store(dst + i + 4, hi);
    }
    for (; i < total; i++) dst[i] = KV_TO_F32(src[i]);
}

/* `count` key rows from k as f32: the cache's own where it holds f32, else converted into rows */
static const float *KV_NAME(key_rows, )(const Shape *s, const KV *k, int count, float *rows) {
    if (sizeof(KV) == sizeof(float)) return (const float *)k;
    KV_NAME(rows_f32, )(s, k, count, rows);
    return rows;
}

/* p[0..len) = bn_expf(score - max); returns their sum in four lanes */
static float KV_NAME(softmax_numerators, )(const Shape *s, float *p, int len) {
    float mx = -__builtin_inff();
    int j;
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
    return bn_lanes_total(lanes);
}

/* o of the gh heads at p (scores len apart) and o (head_dim apart) = the sum over j of p[j] times value
 * row j, in the reference's order per element (p[0] * v_0, then + p[j] * v_j for j = 1, 2, ...), for
 * `chunks` blocks of 8 columns from column i, over rows [j0, j1) (the sums so far in o where j0 > 0):
 * every sum in a register (gh and chunks are constants where it is inlined, gh * chunks <= VALUE_SLOTS),
 * each value converted once. */
BN_INLINE void KV_NAME(values_pass, )(const Shape *s, const float *p, int len, const KV *v, float *o, int i, const int gh, const int chunks, int j0, int j1) {
    v128_t lo[VALUE_SLOTS], hi[VALUE_SLOTS], v_lo, v_hi;
    for (int c = 0; c < chunks; c++) {
        if (j0 == 0) KV_LOAD8(v + i + 8 * c, v_lo, v_hi);
        for (int h = 0; h < gh; h++) {
            const float *sum = o + (size_t)h * s->head_dim + i + 8 * c;
            const v128_t w = wasm_f32x4_splat(p[(size_t)h * len]);
            lo[h * chunks + c] = j0 == 0 ? wasm_f32x4_mul(w, v_lo) : wasm_v128_load(sum);
            hi[h * chunks + c] = j0 == 0 ? wasm_f32x4_mul(w, v_hi) : wasm_v128_load(sum + 4);
        }
    }
    for (int j = j0 > 0 ? j0 : 1; j < j1; j++)
        for (int c = 0; c < chunks; c++) {
            KV_LOAD8(v + (size_t)j * s->head_dim + i + 8 * c, v_lo, v_hi);
            for (int h = 0; h < gh; h++) {
                const v128_t w = wasm_f32x4_splat(p[(size_t)h * len + j]);
                lo[h * chunks + c] = wasm_f32x4_add(lo[h * chunks + c], wasm_f32x4_mul(w, v_lo));
                hi[h * chunks + c] = wasm_f32x4_add(hi[h * chunks + c], wasm_f32x4_mul(w, v_hi));
            }
        }
    for (int h = 0; h < gh; h++)
        for (int c = 0; c < chunks; c++) {
            wasm_v128_store(o + (size_t)h * s->head_dim + i + 8 * c, lo[h * chunks + c]);
            wasm_v128_store(o + (size_t)h * s->head_dim + i + 8 * c + 4, hi[h * chunks + c]);
        }
}

/* columns [i, i + 8 * chunks) of the gh heads: values_pass with constant arguments for each (gh, chunks) that values uses */
static void KV_NAME(values_columns, )(const Shape *s, const float *p, int len, const KV *v, float *o, int i, int gh, int chunks, int j0, int j1) {
    switch (gh * 8 + chunks) {
    case 1 * 8 + 4: KV_NAME(values_pass, )(s, p, len, v, o, i, 1, 4, j0, j1); break;
    case 1 * 8 + 1: KV_NAME(values_pass, )(s, p, len, v, o, i, 1, 1, j0, j1); break;
    case 2 * 8 + 2: KV_NAME(values_pass, )(s, p, len, v, o, i, 2, 2, j0, j1); break;
    case 2 * 8 + 1: KV_NAME(values_pass, )(s, p, len, v, o, i, 2, 1, j0, j1); break;
    case 3 * 8 + 1: KV_NAME(values_pass, )(s, p, len, v, o, i, 3, 1, j0, j1); break;
    default: KV_NAME(values_pass, )(s, p, len, v, o, i, 4, 1, j0, j1); break;
    }
}

/* o of the g heads = their weighted sums of value rows [j0, j1) (see values_pass), VALUE_SLOTS heads at a time */
static void KV_NAME(values, )(const Shape *s, const float *p, int len, const KV *v, float *o, int g, int j0, int j1) {
    const int d = s->head_dim;
    for (int h0 = 0; h0 < g; h0 += VALUE_SLOTS) {
        const int gh = g - h0 < VALUE_SLOTS ? g - h0 : VALUE_SLOTS, wide = VALUE_SLOTS / gh;
        const float *ph = p + (size_t)h0 * len;
        float *oh = o + (size_t)h0 * d;
        int i = 0;
        for (; i + 8 * wide <= d; i += 8 * wide) KV_NAME(values_columns, )(s, ph, len, v, oh, i, gh, wide, j0, j1);
        for (; i + 8 <= d; i += 8) KV_NAME(values_columns, )(s, ph, len, v, oh, i, gh, 1, j0, j1);
        for (; i < d; i++)
            for (int h = 0; h < gh; h++) {
                float acc = j0 == 0 ? ph[(size_t)h * len] * KV_TO_F32(v[i]) : oh[(size_t)h * d + i];
                for (int j = j0 > 0 ? j0 : 1; j < j1; j++) acc += ph[(size_t)h * len + j] * KV_TO_F32(v[(size_t)j * s->head_dim + i]);
                oh[(size_t)h * d + i] = acc;
            }
    }
}

/* the scores of the g query heads at q (head_dim apart) with key rows [j0, j1), into p (len apart),
 * each block of key rows converted to f32 once for all of them (into rows: 4 of them) */
static void KV_NAME(scores, )(const Shape *s, const float *q, const KV *k, float *p, float *rows, int len, int g, int j0, int j1) {
    const int d = s->head_dim;
    int j = j0;
    for (; j + 4 <= j1; j += 4) {
        const float *e = KV_NAME(key_rows, )(s, k + (size_t)j * d, 4, rows);
        int h = 0;
        for (; h + 2 <= g; h += 2)
            dot4x2_f32(q + (size_t)h * d, q + (size_t)(h + 1) * d, e, d, p + (size_t)h * len + j, p + (size_t)(h + 1) * len + j);
        if (h < g) dot4_f32(q + (size_t)h * d, e, d, p + (size_t)h * len + j);
    }
    for (; j < j1; j++) {
        const float *e = KV_NAME(key_rows, )(s, k + (size_t)j * d, 1, rows);
        for (int h = 0; h < g; h++) p[(size_t)h * len + j] = dot_f32(q + (size_t)h * d, e, d);
    }
}

/* whether rows [j0, j1) of one kv head are finite, as KV_LOAD8 needs; read ahead a line at a time first
 * where the host reads one stream so (touch.h) */
static int KV_NAME(rows_finite, )(const Shape *s, const KV *first, int j0, int j1) {
    const KV *rows = first + (size_t)j0 * s->head_dim;
    const int count = (j1 - j0) * s->head_dim;
    if (bn_read_ahead) bn_touch(rows, (size_t)count * sizeof(KV));
    return KV_FINITE(rows, count);
}

/* cache rows a phase of the group's passes reads, checks and computes while they sit in L1: about
 * BN_TOUCH_BYTES of them, whole blocks of 4 */
static int KV_NAME(phase_rows, )(const Shape *s) {
    const int rows = (int)(BN_TOUCH_BYTES / ((size_t)s->head_dim * sizeof(KV))) & ~3;
    return rows > 4 ? rows : 4;
}

/* The g query heads at q (head_dim apart) that read one kv head: each block of key rows and each
 * value row is converted to f32 once for all of them (GQA: the conversion is most of the work),
 * and every head sees the operations of the one-head reference in its order. The keys, then the
 * values, a phase of rows at a time: touched, checked finite, computed. Returns 0 where a row is
 * inf or nan (o is then garbage: the caller runs the reference). scratch: p, g rows of len scores,
 * then g sums, then 4 converted rows. */
static int KV_NAME(group, )(const Shape *s, const float *q, const KV *k, const KV *v, float *o, float *scratch, int len, int g) {
    const int d = s->head_dim, phase = KV_NAME(phase_rows, )(s);
    float *sums = scratch + (size_t)g * len, *rows = sums + g;
    for (int j0 = 0; j0 < len; j0 += phase) {
        const int j1 = len - j0 < phase ? len : j0 + phase;
        if (!KV_NAME(rows_finite, )(s, k, j0, j1)) return 0;
        KV_NAME(scores, )(s, q, k, scratch, rows, len, g, j0, j1);
    }
    for (int h = 0; h < g; h++) sums[h] = KV_NAME(softmax_numerators, )(s, scratch + (size_t)h * len, len);
    for (int j0 = 0; j0 < len; j0 += phase) {
        const int j1 = len - j0 < phase ? len : j0 + phase;
        if (!KV_NAME(rows_finite, )(s, v, j0, j1)) return 0;
        KV_NAME(values, )(s, scratch, len, v, o, g, j0, j1);
    }
    for (int h = 0; h < g; h++) {
        float *oh = o + (size_t)h * d;
        const v128_t vsum = wasm_f32x4_splat(sums[h]);
        int i = 0;
        for (; i + 4 <= d; i += 4) wasm_v128_store(oh + i, wasm_f32x4_div(wasm_v128_load(oh + i), vsum));
        for (; i < d; i++) oh[i] = oh[i] / sums[h];
    }
    return 1;
}

/* A prompt's tokens over a cache narrower than f32: the g query heads from h read their kv head's rows
 * converted once into the end of scratch, through group_f32 (attention.c includes it first): the same
 * values in the same order, so the same bits, without converting every row again for each token. */
static void KV_NAME(prompt_converted, )(const Shape *s, const float *q, const KV *k, const KV *v, float *out, float *scratch, int n, int pos0, int h, int g) {
    const int rows = pos0 + n, d = s->head_dim;
    float *keys = scratch + (size_t)bn_attention_scratch(s->heads, s->kv_heads, d, rows) - 2 * (size_t)rows * d, *values = keys + (size_t)rows * d;
    KV_NAME(rows_f32, )(s, k, rows, keys);
    KV_NAME(rows_f32, )(s, v, rows, values);
    for (int t = 0; t < n; t++) {
        const size_t qo = ((size_t)t * s->heads + h) * d;
        group_f32(s, q + qo, keys, values, out + qo, scratch, pos0 + t + 1, g);
    }
}

void KV_NAME(bn_attention, _heads)(const float *q, const KV *k_cache, const KV *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int context, int pos0, int h0, int h1) {
    if (!valid(n, heads, kv_heads, head_dim, context, pos0)) return;
    const Shape s = shape_of(heads, kv_heads, head_dim, context);
    const int last = h1 < heads ? h1 : heads;
    for (int h = h0 > 0 ? h0 : 0, end; h < last; h = end) {
        for (end = h + 1; end < last && kv_offset(&s, end) == kv_offset(&s, h); end++) {}
        const KV *k = k_cache + kv_offset(&s, h), *v = v_cache + kv_offset(&s, h);
        if (n > 1 && sizeof(KV) < sizeof(float) && KV_NAME(rows_finite, )(&s, k, 0, pos0 + n) && KV_NAME(rows_finite, )(&s, v, 0, pos0 + n)) {
            KV_NAME(prompt_converted, )(&s, q, k, v, out, scratch, n, pos0, h, end - h);
            continue;
        }
        for (int t = 0; t < n; t++) {  /* tokens inner: a prompt's tokens reread one kv head's rows while they are in cache */
            size_t qo = ((size_t)t * heads + h) * head_dim;
            if (!KV_NAME(group, )(&s, q + qo, k, v, out + qo, scratch, pos0 + t + 1, end - h))  /* inf or nan in the cache: the reference's exact conversion, the same bits */
                for (int g = 0; g < end - h; g++) KV_NAME(head, _ref)(&s, q + qo + (size_t)g * head_dim, k, v, out + qo + (size_t)g * head_dim, scratch, pos0 + t + 1);
        }
    }
}

void KV_NAME(bn_attention, )(const float *q, const KV *k_cache, const KV *v_cache, float *out, float *scratch, int n, int heads, int kv_heads, int head_dim, int context, int pos0) {
    KV_NAME(bn_attention, _heads)(q, k_cache, v_cache, out, scratch, n, heads, kv_heads, head_dim, context, pos0, 0, heads);
}
