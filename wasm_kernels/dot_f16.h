/* f32 . f16 dot products in the four-lane order of simd.h (the f16 head; attention's reference). */
#ifndef BN_DOT_F16_H
#define BN_DOT_F16_H

#include "bn_math.h"

static inline float bn_dot_f16_ref(const float *x, const uint16_t *e, int d) {
    float lanes[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
    for (int i = 0; i < d; i++) lanes[i & 3] += x[i] * bn_f16_to_f32(e[i]);
    return bn_lanes_total(lanes);
}

static inline v128_t bn_load_f16x4(const uint16_t *p) {
    return bn_f16x4_to_f32x4(wasm_i32x4_extend_low_i16x8(wasm_v128_load64_zero(p)));
}

/* lanes[] holds the vector part; the tail i..d-1 continues in lane order */
static inline float bn_dot_f16_tail(v128_t acc, const float *x, const uint16_t *e, int i, int d) {
    float lanes[4];
    wasm_v128_store(lanes, acc);
    for (int l = 0; i < d; i++, l++) lanes[l] += x[i] * bn_f16_to_f32(e[i]);
    return bn_lanes_total(lanes);
}

static inline float bn_dot_f16(const float *x, const uint16_t *e, int d) {
    v128_t acc = wasm_f32x4_splat(0.0f);
    int i = 0;
    for (; i + 4 <= d; i += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(x + i), bn_load_f16x4(e + i)));
    return bn_dot_f16_tail(acc, x, e, i, d);
}

/* four rows e, e + stride, ... at once: independent accumulators, same order per row; eight
 * elements per step (one 16-byte load per row), added to the lanes four at a time. For tables
 * checked finite when they were packed (the f16 head: compiler/shards.py refuses overflow), so the
 * shorter conversion gives the same values. */
static inline void bn_dot4_finite_f16(const float *x, const uint16_t *e, size_t stride, int d, float *out) {
    v128_t acc[4] = { wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f), wasm_f32x4_splat(0.0f) };
    int i = 0;
    for (; i + 8 <= d; i += 8) {
        v128_t lo = wasm_v128_load(x + i), hi = wasm_v128_load(x + i + 4);
        for (int r = 0; r < 4; r++) {
            v128_t h = wasm_v128_load(e + r * stride + i);
            acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(lo, bn_finite_f16x4_to_f32x4(wasm_i32x4_extend_low_i16x8(h))));
            acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(hi, bn_finite_f16x4_to_f32x4(wasm_i32x4_extend_high_i16x8(h))));
        }
    }
    for (; i + 4 <= d; i += 4) {
        v128_t xv = wasm_v128_load(x + i);
        for (int r = 0; r < 4; r++) acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(xv, bn_load_f16x4(e + r * stride + i)));
    }
    for (int r = 0; r < 4; r++) out[r] = bn_dot_f16_tail(acc[r], x, e + r * stride, i, d);
}

#endif
