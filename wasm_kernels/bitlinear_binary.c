/* Binary layout: 1 bit per weight (set = +1) in bit planes (see bitlinear_planes.h);
 * acc = 2 * dot(q, bit) - sum(q). */
#include "bitlinear_planes.h"

#define BINARY_BITS 1
#if BN_RELAXED
#define BINARY_ISA PLANE_RELAXED
#else
#define BINARY_ISA PLANE_SIMD128
#endif

void bn_bitlinear_binary_ref(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    plane_bitlinear_ref(w, wscale, q, scale, y, out, in, n, BINARY_BITS);
}

void bn_bitlinear_binary_rows(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n, int o0, int o1) {
    plane_bitlinear(BINARY_ISA, w, wscale, q, scale, y, out, in, n, BINARY_BITS, o0, o1);
}

void bn_bitlinear_binary(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n) {
    bn_bitlinear_binary_rows(w, wscale, q, scale, y, out, in, n, 0, out);
}
