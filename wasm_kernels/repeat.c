/* Timing helper: `reps` one-token GEMVs in a row inside the module, so that a host's per-call
 * overhead (16-35 us in wasmtime) does not drown a small matrix's time (compiler/kernel_choice.py). */
#include "bitlinear.h"

void bn_bitlinear_repeat(int layout, const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in_, int reps) {
    if (!bn_layout_valid(layout)) return;
    for (int r = 0; r < reps; r++) BN_LAYOUT_TRAITS[layout].rows(w, wscale, q, scale, y, scratch, out, in_, 1, 0, out);
}
