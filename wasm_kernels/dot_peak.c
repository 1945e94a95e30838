/* The int8-dot compute roofline: the ternary kernels' inner multiply-add on activations that sit
 * in L1, against BN_DOT_PEAK_ROWS weight vectors held in registers, with a sum per row. */
#include "bitlinear.h"

#if BN_RELAXED
/* as bitlinear_planes.h's relaxed path, in the given dot form */
BN_INLINE v128_t peak_dot(int form, v128_t a, v128_t w, v128_t acc) { return relaxed_dot(form, a, w, acc); }
#else
/* as bitlinear_planes.h's SIMD128 path: even and odd bytes widened to i16, two i32 dots */
BN_INLINE v128_t peak_dot(int form, v128_t a, v128_t w, v128_t acc) {
    v128_t even_a = wasm_i16x8_shr(wasm_i16x8_shl(a, 8), 8), odd_a = wasm_i16x8_shr(a, 8);
    v128_t even_w = wasm_i16x8_shr(wasm_i16x8_shl(w, 8), 8), odd_w = wasm_i16x8_shr(w, 8);
    return wasm_i32x4_add(acc, wasm_i32x4_add(wasm_i32x4_dot_i16x8(even_a, even_w), wasm_i32x4_dot_i16x8(odd_a, odd_w)));
}
#endif

BN_INLINE uint32_t peak_in_form(int form, const int8_t *act, int bytes, int reps) {
    v128_t w[BN_DOT_PEAK_ROWS], acc[BN_DOT_PEAK_ROWS];
    for (int r = 0; r < BN_DOT_PEAK_ROWS; r++) {
        w[r] = wasm_i8x16_splat(r + 1);
        acc[r] = wasm_i32x4_splat(0);
    }
    for (int rep = 0; rep < reps; rep++)
        for (int i = 0; i + 16 <= bytes; i += 16) {
            v128_t a = wasm_v128_load(act + i);
            for (int r = 0; r < BN_DOT_PEAK_ROWS; r++) acc[r] = peak_dot(form, a, w[r], acc[r]);
        }
    uint32_t h = 0;
    for (int r = 0; r < BN_DOT_PEAK_ROWS; r++)
        h ^= (uint32_t)(wasm_i32x4_extract_lane(acc[r], 0) ^ wasm_i32x4_extract_lane(acc[r], 1) ^ wasm_i32x4_extract_lane(acc[r], 2) ^ wasm_i32x4_extract_lane(acc[r], 3));
    return h;
}

uint32_t bn_dot_peak(const int8_t *act, int bytes, int reps) {
    return BN_RELAXED && bn_dot_form_in_use == BN_DOT_I32 ? peak_in_form(BN_DOT_I32, act, bytes, reps) : peak_in_form(BN_DOT_I16, act, bytes, reps);
}
