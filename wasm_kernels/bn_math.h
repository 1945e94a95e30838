/* Freestanding math shared by both builds: wasm has no libm, and wasm and native must agree
 * bit for bit, so every transcendental is our own code (no FMA, no fast-math). Functions with a
 * v128 twin (bn_expf4, bn_f16x4_to_f32x4, bn_f32x4_to_f16x4) do the same operations in the same
 * order lane by lane, so scalar and SIMD results are identical. */
#ifndef BN_MATH_H
#define BN_MATH_H

#include "simd.h"

static inline uint32_t bn_f32_bits(float x) { union { float f; uint32_t u; } v = { x }; return v.u; }
static inline float bn_bits_f32(uint32_t u) { union { uint32_t u; float f; } v = { u }; return v.f; }
static inline uint64_t bn_f64_bits(double x) { union { double f; uint64_t u; } v = { x }; return v.u; }
static inline double bn_bits_f64(uint64_t u) { union { uint64_t u; double f; } v = { u }; return v.f; }

/* Round half to even, as torch.round: adding 1.5 * 2^23 leaves no fraction bits (|x| < 2^22). */
static inline float bn_rintf(float x) {
    const float magic = 12582912.0f;
    return (x >= 0.0f) ? (x + magic) - magic : (x - magic) + magic;
}

/* The same for doubles, |x| < 2^51. */
static inline double bn_rint(double x) {
    const double magic = 6755399441055744.0;
    return (x >= 0.0) ? (x + magic) - magic : (x - magic) + magic;
}

static inline float bn_absf(float x) { return bn_bits_f32(bn_f32_bits(x) & 0x7fffffffu); }
static inline int bn_finite(float x) { return bn_absf(x) < __builtin_inff(); } /* false for +-inf and nan */

/* The IEEE sqrt instruction on both targets. Written as v128 sqrt: __builtin_sqrtf would keep a
 * call to libm's sqrtf for negative inputs in the native build (errno). */
static inline float bn_sqrtf(float x) { return wasm_f32x4_extract_lane(wasm_f32x4_sqrt(wasm_f32x4_splat(x)), 0); }
static inline double bn_sqrt(double x) { return wasm_f64x2_extract_lane(wasm_f64x2_sqrt(wasm_f64x2_splat(x)), 0); }

/* ---- expf: x = k ln2 + r (Cody-Waite, ln2 = C1 + C2 with k*C1 exact), exp(r) by Cephes'
 * minimax polynomial, times 2^k applied as 2^(k>>1) * 2^(k - (k>>1)) so subnormal results round
 * once. Clamping to [-104, 89] makes overflow and underflow fall out of the arithmetic. */
#define BN_EXP_LO -104.0f
#define BN_EXP_HI 89.0f
#define BN_LOG2E 1.44269504088896341f
#define BN_LN2_C1 0.693359375f
#define BN_LN2_C2 -2.12194440e-4f
static const float bn_exp_poly[6] = { 1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f };

static inline float bn_pow2i(int k) { return bn_bits_f32((uint32_t)(k + 127) << 23); }

static inline float bn_expf(float x) {
    if (x != x) return x;
    x = x < BN_EXP_LO ? BN_EXP_LO : x;
    x = BN_EXP_HI < x ? BN_EXP_HI : x;
    float k = bn_rintf(x * BN_LOG2E);
    float r = (x - k * BN_LN2_C1) - k * BN_LN2_C2;
    float p = bn_exp_poly[0];
    for (int i = 1; i < 6; i++) p = p * r + bn_exp_poly[i];
    p = (p * (r * r) + r) + 1.0f;
    int ki = (int)k, k1 = ki >> 1;
    return (p * bn_pow2i(k1)) * bn_pow2i(ki - k1);
}

static inline v128_t bn_pow2i4(v128_t k) { return wasm_i32x4_shl(wasm_i32x4_add(k, wasm_i32x4_splat(127)), 23); }

static inline v128_t bn_expf4(v128_t x0) {
    v128_t x = wasm_f32x4_pmax(x0, wasm_f32x4_splat(BN_EXP_LO));
    x = wasm_f32x4_pmin(x, wasm_f32x4_splat(BN_EXP_HI));
    v128_t k = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(BN_LOG2E)));
    v128_t r = wasm_f32x4_sub(wasm_f32x4_sub(x, wasm_f32x4_mul(k, wasm_f32x4_splat(BN_LN2_C1))), wasm_f32x4_mul(k, wasm_f32x4_splat(BN_LN2_C2)));
    v128_t p = wasm_f32x4_splat(bn_exp_poly[0]);
    for (int i = 1; i < 6; i++) p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(bn_exp_poly[i]));
    p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), r), wasm_f32x4_splat(1.0f));
    v128_t ki = wasm_i32x4_trunc_sat_f32x4(k), k1 = wasm_i32x4_shr(ki, 1);
    v128_t y = wasm_f32x4_mul(wasm_f32x4_mul(p, bn_pow2i4(k1)), bn_pow2i4(wasm_i32x4_sub(ki, k1)));
    return wasm_v128_bitselect(x0, y, wasm_f32x4_ne(x0, x0));
}

/* ---- double-precision log and exp (~1e-16 relative): logf, and RoPE's theta^-e, round these
 * to float, so they are correctly rounded except in vanishingly rare cases. ---- */
#define BN_LN2_HI 6.93147180369123816490e-01 /* ln2 with 21 trailing zero bits: k*HI is exact */
#define BN_LN2_LO 1.90821492927058770002e-10
#define BN_SQRT2 1.41421356237309504880

/* log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716: coefficients 2/(2j+1), j = 0..11 */
static const double bn_atanh_series[12] = { 2.0 / 1, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19, 2.0 / 21, 2.0 / 23 };

static inline double bn_log_f64(double x) {
    if (!(x > 0.0)) return x == 0.0 ? -__builtin_inf() : __builtin_nan(""); /* NaN, negatives: NaN */
    if (x == __builtin_inf()) return x;
    int e = 0;
    if (x < 0x1p-1022) { x *= 0x1p54; e = -54; }
    uint64_t u = bn_f64_bits(x);
    e += (int)(u >> 52) - 1023;
    double m = bn_bits_f64((u & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
    if (m > BN_SQRT2) { m *= 0.5; e += 1; }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, p = bn_atanh_series[11];
    for (int j = 10; j >= 0; j--) p = p * s2 + bn_atanh_series[j];
    return (double)e * BN_LN2_HI + (s * p + (double)e * BN_LN2_LO);
}

/* exp(r) for |r| <= ln2/2 by Taylor to r^13 (truncation < 1e-17): coefficients 1/j!, j = 13..0 */
static const double bn_exp_taylor[14] = { 1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 1.0 / 2.0, 1.0, 1.0 };

/* Domain |x| < 708 (normal results), which is all its callers need. */
static inline double bn_exp_f64(double x) {
    double k = bn_rint(x * 1.44269504088896338700);
    double r = (x - k * BN_LN2_HI) - k * BN_LN2_LO, p = bn_exp_taylor[0];
    for (int j = 1; j < 14; j++) p = p * r + bn_exp_taylor[j];
    return p * bn_bits_f64((uint64_t)((int64_t)k + 1023) << 52);
}

static inline float bn_logf(float x) { return (float)bn_log_f64((double)x); }

/* ---- sinf, cosf: x = k pi/2 + r in double, pi/2 split in four parts of <= 29 significant bits
 * so k*part is exact for |k| < 2^24 (Cody-Waite); then fdlibm's double kernels on |r| <= pi/4.
 * Accurate for |x| <= 2^24 (float angles there are already 1 rad apart); NaN beyond. */
#define BN_SIN_MAX 16777216.0f
static const double bn_pio2_parts[4] = { 0x1.921fb54000000p+0, 0x1.10b4612000000p-30, -0x1.676733b000000p-60, 0x1.701b839a25205p-92 };
static const double bn_sin_poly[4] = { -0x15555554cbac77.0p-55, 0x111110896efbb2.0p-59, -0x1a00f9e2cae774.0p-65, 0x16cd878c3b46a7.0p-71 };
static const double bn_cos_poly[4] = { -0x1ffffffd0c5e81.0p-54, 0x155553e1053a42.0p-57, -0x16c087e80f1e27.0p-62, 0x199342e0ee5069.0p-68 };

static inline double bn_sin_kernel(double x) {
    double z = x * x, w = z * z, r = bn_sin_poly[2] + z * bn_sin_poly[3], s = z * x;
    return (x + s * (bn_sin_poly[0] + z * bn_sin_poly[1])) + s * w * r;
}

static inline double bn_cos_kernel(double x) {
    double z = x * x, w = z * z, r = bn_cos_poly[2] + z * bn_cos_poly[3];
    return ((1.0 + z * bn_cos_poly[0]) + w * bn_cos_poly[1]) + (w * z) * r;
}

/* sin(k pi/2 + r) for quadrant q = k mod 4: sin r, cos r, -sin r, -cos r */
static inline float bn_sin_quadrant(double r, int q) {
    double v = (q & 1) ? bn_cos_kernel(r) : bn_sin_kernel(r);
    return (float)((q & 2) ? -v : v);
}

static inline void bn_sincosf(float x, float *s, float *c) {
    if (!(bn_absf(x) <= BN_SIN_MAX)) { *s = *c = bn_bits_f32(0x7fc00000u); return; }
    double k = bn_rint((double)x * 0x1.45f306dc9c883p-1), r = (double)x;
    for (int i = 0; i < 4; i++) r -= k * bn_pio2_parts[i];
    int q = (int)k & 3;
    *s = bn_sin_quadrant(r, q);
    *c = bn_sin_quadrant(r, q + 1);
}

static inline float bn_sinf(float x) { float s, c; bn_sincosf(x, &s, &c); return s; }
static inline float bn_cosf(float x) { float s, c; bn_sincosf(x, &s, &c); return c; }

/* ---- f16 <-> f32, bf16 -> f32 (f16/bf16 as uint16_t bits) ----
 * f16 -> f32: exponent and mantissa moved into place and scaled by 2^112, which also turns f16
 * subnormals (exponent 0) into the right normal floats; exponent 31 (inf, nan) is set directly. */
static inline float bn_f16_to_f32(uint16_t h) {
    uint32_t em = (uint32_t)(h & 0x7fff) << 13;
    uint32_t mag = em >= 0x0f800000u ? em | 0x70000000u : bn_f32_bits(bn_bits_f32(em) * 0x1p112f);
    return bn_bits_f32(mag | (uint32_t)(h & 0x8000) << 16);
}

/* h: f16 bits sign-extended into i32 lanes (wasm_i32x4_extend_*_i16x8), so one shift puts the
 * sign in bit 31 and the mask clears the copies of it above the exponent. */
/* the same for finite values only (inf/nan come out as finite garbage): three operations, not seven */
static inline v128_t bn_finite_f16x4_to_f32x4(v128_t h) {
    return wasm_f32x4_mul(wasm_v128_and(wasm_i32x4_shl(h, 13), wasm_i32x4_splat((int32_t)0x8fffe000u)), wasm_f32x4_splat(0x1p112f));
}

static inline v128_t bn_f16x4_to_f32x4(v128_t h) {
    v128_t bits = wasm_v128_and(wasm_i32x4_shl(h, 13), wasm_i32x4_splat((int32_t)0x8fffe000u));
    v128_t scaled = wasm_f32x4_mul(bits, wasm_f32x4_splat(0x1p112f));
    v128_t infnan = wasm_i32x4_eq(wasm_v128_and(bits, wasm_i32x4_splat(0x0f800000)), wasm_i32x4_splat(0x0f800000));
    return wasm_v128_bitselect(wasm_v128_or(bits, wasm_i32x4_splat(0x70000000)), scaled, infnan);
}

/* f32 -> f16, round to nearest even (F. Giesen's float_to_half_fast3_rtne): subnormal results
 * are rounded by the FPU when adding 0.5f; normal ones by adding 0xfff + the lowest kept bit.
 * Magnitudes >= 65520 become inf; nan becomes the quiet nan 0x7e00. */
#define BN_F16_OVERFLOW 0x47800000u /* 2^16: from here the exponent no longer fits */
#define BN_F16_MIN_NORMAL 0x38800000u /* 2^-14 */
static inline uint16_t bn_f32_to_f16(float x) {
    uint32_t u = bn_f32_bits(x), sign = u & 0x80000000u, a = u ^ sign, h;
    if (a >= BN_F16_OVERFLOW) h = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
    else if (a < BN_F16_MIN_NORMAL) h = bn_f32_bits(bn_bits_f32(a) + 0.5f) - 0x3f000000u;
    else h = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    return (uint16_t)(h | sign >> 16);
}

/* result: f16 bits in the low half of each u32 lane */
static inline v128_t bn_f32x4_to_f16x4(v128_t x) {
    v128_t sign = wasm_v128_and(x, wasm_i32x4_splat((int32_t)0x80000000u)), a = wasm_v128_xor(x, sign);
    v128_t special = wasm_v128_bitselect(wasm_i32x4_splat(0x7e00), wasm_i32x4_splat(0x7c00), wasm_u32x4_gt(a, wasm_i32x4_splat(0x7f800000)));
    v128_t sub = wasm_i32x4_sub(wasm_f32x4_add(a, wasm_f32x4_splat(0.5f)), wasm_i32x4_splat(0x3f000000));
    v128_t odd = wasm_v128_and(wasm_u32x4_shr(a, 13), wasm_i32x4_splat(1));
    v128_t nrm = wasm_u32x4_shr(wasm_i32x4_add(wasm_i32x4_add(a, wasm_i32x4_splat((int32_t)0xc8000fffu)), odd), 13);
    v128_t h = wasm_v128_bitselect(sub, nrm, wasm_u32x4_lt(a, wasm_i32x4_splat(BN_F16_MIN_NORMAL)));
    h = wasm_v128_bitselect(special, h, wasm_u32x4_ge(a, wasm_i32x4_splat(BN_F16_OVERFLOW)));
    return wasm_v128_or(h, wasm_u32x4_shr(sign, 16));
}

static inline float bn_bf16_to_f32(uint16_t b) { return bn_bits_f32((uint32_t)b << 16); }

#endif
