/* Per-token absmax int8 quantization of activations, as BitNet b1.58 defines it. */
#include "bitnet.h"
#include "bn_math.h"

static float absmax_scale(float amax) {
    return 127.0f / (amax > 1e-5f ? amax : 1e-5f);
}

static int8_t quantize_one(float x, float scale) {
    float v = bn_rintf(x * scale);
    v = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
    return (int8_t)v;
}

void bn_quantize_rows_ref(const float *x, int8_t *q, float *scale, int n, int k) {
    for (int t = 0; t < n; t++, x += k, q += k) {
        float amax = 0.0f;
        for (int i = 0; i < k; i++) {
            float a = bn_absf(x[i]);
            amax = a > amax ? a : amax;
        }
        float s = absmax_scale(amax);
        scale[t] = s;
        for (int i = 0; i < k; i++) q[i] = quantize_one(x[i], s);
    }
}

void bn_quantize_rows(const float *x, int8_t *q, float *scale, int n, int k) {
    for (int t = 0; t < n; t++, x += k, q += k) {
        v128_t vmax = wasm_f32x4_splat(0.0f);
        int i = 0;
        for (; i + 4 <= k; i += 4) vmax = wasm_f32x4_max(vmax, wasm_f32x4_abs(wasm_v128_load(x + i)));
        float lanes[4];
        wasm_v128_store(lanes, vmax);
        float amax = 0.0f;
        for (int l = 0; l < 4; l++) amax = lanes[l] > amax ? lanes[l] : amax;
        for (; i < k; i++) {
            float a = bn_absf(x[i]);
            amax = a > amax ? a : amax;
        }
        float s = absmax_scale(amax);
        scale[t] = s;

        const v128_t vs = wasm_f32x4_splat(s), lo = wasm_f32x4_splat(-128.0f), hi = wasm_f32x4_splat(127.0f);
        i = 0;
        for (; i + 16 <= k; i += 16) {
            v128_t r[4];
            for (int j = 0; j < 4; j++) {
                v128_t v = wasm_f32x4_nearest(wasm_f32x4_mul(wasm_v128_load(x + i + 4 * j), vs));
                r[j] = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_min(wasm_f32x4_max(v, lo), hi));
            }
            v128_t h0 = wasm_i16x8_narrow_i32x4(r[0], r[1]), h1 = wasm_i16x8_narrow_i32x4(r[2], r[3]);
            wasm_v128_store(q + i, wasm_i8x16_narrow_i16x8(h0, h1));
        }
        for (; i < k; i++) q[i] = quantize_one(x[i], s);
    }
}
