/* Rotate-half RoPE as HF Llama/BitNet compute it in float32: inv_freq = 1 / theta^(2i/d),
 * angle = float(pos) * inv_freq, then (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin). */
#include "bitnet.h"
#include "bn_math.h"

static float inverse_frequency(double log_theta, int i, int head_dim) {
    float exponent = (float)(2 * i) / (float)head_dim;
    return 1.0f / (float)bn_exp_f64((double)exponent * log_theta);
}

static void rotate(float *a, float *b, float c, float s) {
    float x1 = *a, x2 = *b;
    *a = x1 * c - x2 * s;
    *b = x2 * c + x1 * s;
}

void bn_rope_ref(float *x, int n, int heads, int head_dim, int pos0, float theta) {
    const int half = head_dim / 2, stride = heads * head_dim;
    const double log_theta = bn_log_f64(theta);
    for (int t = 0; t < n; t++) {
        float *xt = x + (size_t)t * stride;
        for (int i = 0; i < half; i++) {
            float s, c;
            bn_sincosf((float)(pos0 + t) * inverse_frequency(log_theta, i, head_dim), &s, &c);
            for (int h = 0; h < heads; h++) rotate(xt + h * head_dim + i, xt + h * head_dim + half + i, c, s);
        }
    }
}

/* Four frequencies at a time: their sin/cos once per token, applied to every head with v128. */
void bn_rope(float *x, int n, int heads, int head_dim, int pos0, float theta) {
    const int half = head_dim / 2, stride = heads * head_dim;
    const double log_theta = bn_log_f64(theta);
    for (int i0 = 0; i0 < half; i0 += 4) {
        const int m = half - i0 < 4 ? half - i0 : 4;
        float inv[4];
        for (int j = 0; j < m; j++) inv[j] = inverse_frequency(log_theta, i0 + j, head_dim);
        for (int t = 0; t < n; t++) {
            float *xt = x + (size_t)t * stride, s[4], c[4];
            for (int j = 0; j < m; j++) bn_sincosf((float)(pos0 + t) * inv[j], &s[j], &c[j]);
            if (m < 4) {
                for (int h = 0; h < heads; h++)
                    for (int j = 0; j < m; j++) rotate(xt + h * head_dim + i0 + j, xt + h * head_dim + half + i0 + j, c[j], s[j]);
                continue;
            }
            const v128_t vs = wasm_v128_load(s), vc = wasm_v128_load(c);
            for (int h = 0; h < heads; h++) {
                float *a = xt + h * head_dim + i0, *b = a + half;
                v128_t x1 = wasm_v128_load(a), x2 = wasm_v128_load(b);
                wasm_v128_store(a, wasm_f32x4_sub(wasm_f32x4_mul(x1, vc), wasm_f32x4_mul(x2, vs)));
                wasm_v128_store(b, wasm_f32x4_add(wasm_f32x4_mul(x2, vc), wasm_f32x4_mul(x1, vs)));
            }
        }
    }
}
