/* Pieces every bitlinear kernel shares: the exact int32 -> float epilogue, per-token activation
 * sums, and zero-padded copies of the last partial activation block. */
#ifndef BN_BITLINEAR_H
#define BN_BITLINEAR_H

#include "bitnet.h"

size_t bn_lut_scratch_bytes(int in); /* bitlinear_lut.c: the LUT kernel's working memory for one thread */

/* One row of layouts.c's table: rows() computes output rows [o0, o1) of every token (any layout's
 * bn_bitlinear_X_rows, scratch passed where it takes one); threads share whole tiles of tile_rows. */
typedef struct {
    void (*rows)(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n, int o0, int o1);
    int tile_rows;
    size_t (*scratch_bytes)(int in);  /* one thread's working memory */
    int chunks_per_thread;            /* of a threaded job: more evens out the threads' finish, each costs what a call sets up */
} bn_layout_traits;
extern const bn_layout_traits BN_LAYOUT_TRAITS[BN_LAYOUTS];

BN_INLINE int bn_layout_valid(int layout) { return layout >= 0 && layout < BN_LAYOUTS; }

/* The one epilogue all paths (and the numpy reference) compute: float(acc) / (scale * wscale). */
BN_INLINE float bn_bitlinear_out(int32_t acc, float scale, float wscale) {
    float den = scale * wscale;
    return (float)acc / den;
}

BN_INLINE int32_t bn_i32x4_total(v128_t v) {
    return wasm_i32x4_extract_lane(v, 0) + wasm_i32x4_extract_lane(v, 1) +
           wasm_i32x4_extract_lane(v, 2) + wasm_i32x4_extract_lane(v, 3);
}

static inline int32_t bn_token_sum_ref(const int8_t *q, int in) {
    int32_t s = 0;
    for (int i = 0; i < in; i++) s += q[i];
    return s;
}

static inline int32_t bn_token_sum(const int8_t *q, int in) {
    v128_t acc = wasm_i32x4_splat(0);
    int i = 0;
    for (; i + 16 <= in; i += 16)
        acc = wasm_i32x4_add(acc, wasm_i32x4_extadd_pairwise_i16x8(wasm_i16x8_extadd_pairwise_i8x16(wasm_v128_load(q + i))));
    return bn_i32x4_total(acc) + bn_token_sum_ref(q + i, in - i);
}

extern int bn_dot_form_in_use; /* dot_form.c: BN_DOT_I16 or BN_DOT_I32 */

#if BN_RELAXED
/* i16 lane i = a[2i] * b7[2i] + a[2i+1] * b7[2i+1]: the ternary kernels' multiply-add (b7 in 0..127) */
#ifdef __wasm__
BN_INLINE v128_t dot_i8_i7_i16(v128_t a, v128_t b7) { return wasm_i16x8_relaxed_dot_i8x16_i7x16(a, b7); }
#else /* SIMDe has no relaxed dot: the exact pairwise sum, as bn_dot_i8_i7_add in simd.h */
BN_INLINE v128_t dot_i8_i7_i16(v128_t a, v128_t b7) {
    v128_t lo = wasm_i16x8_extmul_low_i8x16(a, b7), hi = wasm_i16x8_extmul_high_i8x16(a, b7);
    return wasm_i16x8_add(wasm_i16x8_shuffle(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14), wasm_i16x8_shuffle(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15));
}
#endif

/* acc += a . b7 in the form's lanes: i16 pairs (sums kept in i16 until widened) or i32 quads */
BN_INLINE v128_t relaxed_dot(int form, v128_t a, v128_t b7, v128_t acc) {
    return form == BN_DOT_I32 ? bn_dot_i8_i7_add(a, b7, acc) : wasm_i16x8_add(acc, dot_i8_i7_i16(a, b7));
}

/* the form's sums as i32 lanes */
BN_INLINE v128_t relaxed_widen(int form, v128_t acc) {
    return form == BN_DOT_I32 ? acc : wasm_i32x4_extadd_pairwise_i16x8(acc);
}
#endif

/* dst[0..width) = src[0..count) followed by zeros; padded columns then contribute nothing. */
static inline void bn_pad_tail(int8_t *dst, const int8_t *src, int count, int width) {
    for (int i = 0; i < width; i += 16) wasm_v128_store(dst + i, wasm_i8x16_splat(0));
    for (int i = 0; i < count; i++) ((volatile int8_t *)dst)[i] = src[i]; /* volatile: no memcpy call */
}

#endif
