/* Elementwise pieces of the MLP and the residual stream; y may alias an input. */
#include "bitnet.h"
#include "bn_math.h"

/* relu(g)^2 * up (BitNet b1.58 2B4T); g < 0 ? 0 : g keeps a nan visible, like torch.relu */
static float relu2_mul(float g, float u) {
    float r = g < 0.0f ? 0.0f : g;
    return (r * r) * u;
}

static float silu_mul(float g, float u) { return (g / (1.0f + bn_expf(-g))) * u; }

void bn_relu2_mul_ref(const float *gate, const float *up, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = relu2_mul(gate[i], up[i]);
}

void bn_relu2_mul(const float *gate, const float *up, float *y, int n) {
    const v128_t zero = wasm_f32x4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v128_t r = wasm_f32x4_pmax(wasm_v128_load(gate + i), zero); /* pmax(g, 0) = g < 0 ? 0 : g */
        wasm_v128_store(y + i, wasm_f32x4_mul(wasm_f32x4_mul(r, r), wasm_v128_load(up + i)));
    }
    for (; i < n; i++) y[i] = relu2_mul(gate[i], up[i]);
}

void bn_silu_mul_ref(const float *gate, const float *up, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = silu_mul(gate[i], up[i]);
}

void bn_silu_mul(const float *gate, const float *up, float *y, int n) {
    const v128_t one = wasm_f32x4_splat(1.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v128_t g = wasm_v128_load(gate + i);
        v128_t s = wasm_f32x4_div(g, wasm_f32x4_add(one, bn_expf4(wasm_f32x4_neg(g))));
        wasm_v128_store(y + i, wasm_f32x4_mul(s, wasm_v128_load(up + i)));
    }
    for (; i < n; i++) y[i] = silu_mul(gate[i], up[i]);
}

void bn_add_ref(const float *a, const float *b, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void bn_add(const float *a, const float *b, float *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, wasm_f32x4_add(wasm_v128_load(a + i), wasm_v128_load(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}
