/* The weight layouts as one table (as ggml's type_traits_cpu): what a wrapper needs to run a
 * bitlinear in any layout, so threading (parallel.c) and timing (repeat.c) are one function each.
 * Rows are indexed by enum bn_layout (bitnet.h), the order of wasm_kernels/layouts.py's LAYOUTS. */
#include "bitlinear_planes.h"

static void mad_rows(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n, int o0, int o1) {
    bn_bitlinear_mad_rows(w, wscale, q, scale, y, out, in, n, o0, o1);
}

static void binary_rows(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n, int o0, int o1) {
    bn_bitlinear_binary_rows(w, wscale, q, scale, y, out, in, n, o0, o1);
}

static size_t no_scratch(int in) { return 0; }

/* Chunks stay few: LUT calls build their activation tables first; MAD decoded the large shape 1.13x faster on two
 * threads with 4 per thread than with 16 (docs/benchmarks.md, 2026-12-06) */
const bn_layout_traits BN_LAYOUT_TRAITS[BN_LAYOUTS] = {
    [BN_LAYOUT_MAD] = { .rows = mad_rows, .tile_rows = BN_PLANE_ROWS, .scratch_bytes = no_scratch, .chunks_per_thread = 4 },
    [BN_LAYOUT_LUT] = { .rows = bn_bitlinear_lut_rows, .tile_rows = BN_LUT_ROWS, .scratch_bytes = bn_lut_scratch_bytes, .chunks_per_thread = 4 },
    [BN_LAYOUT_BINARY] = { .rows = binary_rows, .tile_rows = BN_PLANE_ROWS, .scratch_bytes = no_scratch, .chunks_per_thread = 16 },
};

int bn_layout_scratch_bytes(int layout, int in_) {
    return bn_layout_valid(layout) ? (int)BN_LAYOUT_TRAITS[layout].scratch_bytes(in_) : 0;
}
