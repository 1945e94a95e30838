/* Timing helpers: `reps` one-token GEMVs in a row inside the module, so that a host's per-call
 * overhead (16-35 us in wasmtime) does not drown a small matrix's time (compiler/kernel_choice.py). */
#include "bitnet.h"

void bn_bitlinear_mad_repeat(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in_, int reps) {
    for (int r = 0; r < reps; r++) bn_bitlinear_mad(w, wscale, q, scale, y, out, in_, 1);
}

void bn_bitlinear_lut_repeat(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in_, int reps) {
    for (int r = 0; r < reps; r++) bn_bitlinear_lut(w, wscale, q, scale, y, scratch, out, in_, 1);
}
