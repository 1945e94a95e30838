/* Binary layout: 1 bit per weight (set = +1) in bit planes (see bitlinear_planes.h);
 * acc = 2 * dot(q, bit) - sum(q). */
#include "bitlinear_planes.h"

#define BINARY_BITS 1

void bn_bitlinear_binary_ref(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    plane_bitlinear_ref(w, wscale, q, scale, y, out, in, n, BINARY_BITS);
}

void bn_bitlinear_binary(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
#if BN_RELAXED
    plane_bitlinear(PLANE_RELAXED, w, wscale, q, scale, y, out, in, n, BINARY_BITS);
#else
    plane_bitlinear(PLANE_SIMD128, w, wscale, q, scale, y, out, in, n, BINARY_BITS);
#endif
}
