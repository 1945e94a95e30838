/* One SIMD vocabulary for both builds: wasm_simd128.h in the browser, the same intrinsics
 * through SIMDe natively, so every kernel is written once. */
#ifndef BN_SIMD_H
#define BN_SIMD_H

#include <stdint.h>
#include <stddef.h>

#ifdef __wasm__
#include <wasm_simd128.h>
#define BN_API __attribute__((visibility("default")))
#else
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/wasm/simd128.h>
#define BN_API __attribute__((visibility("default")))
#endif
/* for kernels whose loops must unroll on constant arguments (their sums then live in registers) */
#define BN_INLINE static inline __attribute__((always_inline))
/* the scalar references are for tests: small code, not fast code (size changes no result) */
#define BN_REF_API BN_API __attribute__((minsize))

/* BN_RELAXED is set by build.py for the relaxed-SIMD build. Natively, SIMDe has no relaxed dot,
 * so the same operation is spelled out exactly; with weight codes in 0..127 the result is
 * deterministic and equal on every engine. */
#if BN_RELAXED
#ifdef __wasm__
static inline v128_t bn_dot_i8_i7_add(v128_t a, v128_t b7, v128_t acc) {
    return wasm_i32x4_relaxed_dot_i8x16_i7x16_add(a, b7, acc);
}
#else
static inline v128_t bn_dot_i8_i7_add(v128_t a, v128_t b7, v128_t acc) {
    v128_t lo = wasm_i16x8_extmul_low_i8x16(a, b7);
    v128_t hi = wasm_i16x8_extmul_high_i8x16(a, b7);
    v128_t pairs = wasm_i16x8_add(wasm_i16x8_shuffle(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14),
                                  wasm_i16x8_shuffle(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15));
    /* pairs now hold products 2j+(2j+1) for j = 0..7; sum adjacent pairs into i32 lanes */
    return wasm_i32x4_add(acc, wasm_i32x4_extadd_pairwise_i16x8(pairs));
}
#endif
#endif

/* Float reductions use four interleaved partial sums (element i goes to lane i % 4) combined
 * as (l0 + l1) + (l2 + l3): the scalar references do exactly the same, so SIMD == scalar. */
static inline float bn_lanes_total(const float lanes[4]) {
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

static inline float bn_v128_total(v128_t v) {
    float lanes[4];
    wasm_v128_store(lanes, v);
    return bn_lanes_total(lanes);
}

#endif
