/* MAD layout: 2-bit codes w + 1 in bit planes (see bitlinear_planes.h); acc = dot(q, code) - sum(q). */
#include "bitlinear_planes.h"

#define MAD_BITS 2
#if BN_RELAXED
#define MAD_ISA PLANE_RELAXED
#else
#define MAD_ISA PLANE_SIMD128
#endif

void bn_bitlinear_mad_ref(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    plane_bitlinear_ref(w, wscale, q, scale, y, out, in, n, MAD_BITS);
}

void bn_bitlinear_mad_simd128(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    plane_bitlinear(PLANE_SIMD128, w, wscale, q, scale, y, out, in, n, MAD_BITS, 0, out);
}

#if BN_RELAXED
void bn_bitlinear_mad_relaxed(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    plane_bitlinear(PLANE_RELAXED, w, wscale, q, scale, y, out, in, n, MAD_BITS, 0, out);
}
#endif

void bn_bitlinear_mad_rows(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n, int o0, int o1) {
    plane_bitlinear(MAD_ISA, w, wscale, q, scale, y, out, in, n, MAD_BITS, o0, o1);
}

void bn_bitlinear_mad(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    bn_bitlinear_mad_rows(w, wscale, q, scale, y, out, in, n, 0, out);
}
