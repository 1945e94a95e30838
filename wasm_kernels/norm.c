/* RMSNorm, as Llama/BitNet: y = weight * (x * (1 / sqrt(mean(x^2) + eps))). */
#include "bitnet.h"
#include "bn_math.h"

static float inverse_rms(float sum_squares, int dim, float eps) {
    return 1.0f / bn_sqrtf(sum_squares / (float)dim + eps);
}

void bn_rmsnorm_ref(const float *x, const float *weight, float *y, int n, int dim, float eps) {
    for (int t = 0; t < n; t++, x += dim, y += dim) {
        float lanes[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
        for (int i = 0; i < dim; i++) lanes[i & 3] += x[i] * x[i];
        float r = inverse_rms(bn_lanes_total(lanes), dim, eps);
        for (int i = 0; i < dim; i++) y[i] = weight[i] * (x[i] * r);
    }
}

void bn_rmsnorm(const float *x, const float *weight, float *y, int n, int dim, float eps) {
    for (int t = 0; t < n; t++, x += dim, y += dim) {
        v128_t acc = wasm_f32x4_splat(0.0f);
        int i = 0;
        for (; i + 4 <= dim; i += 4) {
            v128_t v = wasm_v128_load(x + i);
            acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v));
        }
        float lanes[4];
        wasm_v128_store(lanes, acc);
        for (int l = 0; i < dim; i++, l++) lanes[l] += x[i] * x[i];
        float r = inverse_rms(bn_lanes_total(lanes), dim, eps);
        v128_t vr = wasm_f32x4_splat(r);
        for (i = 0; i + 4 <= dim; i += 4)
            wasm_v128_store(y + i, wasm_f32x4_mul(wasm_v128_load(weight + i), wasm_f32x4_mul(wasm_v128_load(x + i), vr)));
        for (; i < dim; i++) y[i] = weight[i] * (x[i] * r);
    }
}
