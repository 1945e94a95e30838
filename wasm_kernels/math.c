/* bn_math.h as arrays, for the tests: exp runs its v128 form with a scalar tail. */
#include "bitnet.h"
#include "bn_math.h"

void bn_expf_array(const float *x, float *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) wasm_v128_store(y + i, bn_expf4(wasm_v128_load(x + i)));
    for (; i < n; i++) y[i] = bn_expf(x[i]);
}

void bn_logf_array(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = bn_logf(x[i]);
}

void bn_sinf_array(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = bn_sinf(x[i]);
}

void bn_cosf_array(const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = bn_cosf(x[i]);
}

void bn_f32_to_f16_array(const float *x, uint16_t *y, int n) {
    for (int i = 0; i < n; i++) y[i] = bn_f32_to_f16(x[i]);
}

void bn_f16_to_f32_array(const uint16_t *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = bn_f16_to_f32(x[i]);
}

void bn_bf16_to_f32_array(const uint16_t *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] = bn_bf16_to_f32(x[i]);
}
