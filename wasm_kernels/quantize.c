/* Per-token absmax int8 quantization of activations, as BitNet b1.58 defines it. A NaN makes its
 * token's scale NaN, as torch's max does: the damage reaches the logits, which the step reports,
 * instead of being quantized to 0 and decoded into fluent garbage. */
#include "bitnet.h"
#include "bn_math.h"

static float absmax_scale(float amax) {
    if (amax != amax) return bn_bits_f32(0x7fc00000u); /* one NaN's bits in every build */
    return 127.0f / (amax > 1e-5f ? amax : 1e-5f);
}

/* NaN (a NaN scale, or inf * 0) gives 0, as i32x4.trunc_sat does */
static int8_t quantize_one(float x, float scale) {
    float v = bn_rintf(x * scale);
    if (v != v) return 0;
    v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
    return (int8_t)v;
}

void bn_quantize_rows_ref(const float *x, int8_t *q, float *scale, int n, int k) {
    for (int t = 0; t < n; t++, x += k, q += k) {
        float amax = 0.0f;
        for (int i = 0; i < k; i++) {
            float a = bn_absf(x[i]);
            amax = a > amax || a != a ? a : amax;
        }
        float s = absmax_scale(amax);
        scale[t] = s;
        for (int i = 0; i < k; i++) q[i] = quantize_one(x[i], s);
    }
}

/* |x| as bits: non-negative floats order as their bits, and every NaN lies above inf, so the integer
 * max is the float max with NaN kept. |x * scale| <= 127 (|x| <= amax), so the rounded products need no
 * clamp: trunc_sat and the saturating narrows give what the reference's clamp does, NaN as 0. */
void bn_quantize_rows(const float *x, int8_t *q, float *scale, int n, int k) {
    const v128_t magnitude = wasm_i32x4_splat(0x7fffffff);
    for (int t = 0; t < n; t++, x += k, q += k) {
        v128_t vmax = wasm_i32x4_splat(0);
        int i = 0;
        for (; i + 4 <= k; i += 4) vmax = wasm_i32x4_max(vmax, wasm_v128_and(wasm_v128_load(x + i), magnitude));
        uint32_t lanes[4], most = 0;
        wasm_v128_store(lanes, vmax);
        for (int l = 0; l < 4; l++) most = lanes[l] > most ? lanes[l] : most;
        for (; i < k; i++) {
            const uint32_t a = bn_f32_bits(x[i]) & 0x7fffffffu;
            most = a > most ? a : most;
        }
        float s = absmax_scale(bn_bits_f32(most));
        scale[t] = s;

        const v128_t vs = wasm_f32x4_splat(s);
        i = 0;
        for (; i + 16 <= k; i += 16) {
            v128_t r[4];
            for (int j = 0; j < 4; j++) r[j] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(x + i + 4 * j), vs)));
            v128_t h0 = wasm_i16x8_narrow_i32x4(r[0], r[1]), h1 = wasm_i16x8_narrow_i32x4(r[2], r[3]);
            wasm_v128_store(q + i, wasm_i8x16_narrow_i16x8(h0, h1));
        }
        for (; i < k; i++) q[i] = quantize_one(x[i], s);
    }
}
