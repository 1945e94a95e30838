/* Which of the relaxed dot's two forms the kernels use (bitnet.h): a host's choice, by speed only. */
#include "bitlinear_planes.h"

int bn_dot_form_in_use = BN_DOT_I16;

int bn_set_dot_form(int form) {
    if (form >= 0 && form < BN_DOT_FORMS) bn_dot_form_in_use = form;
    return bn_dot_form_in_use;
}

#define PROBE_COLS 1024
#define PROBE_TILE_BYTES (PROBE_COLS / 4)  /* per row: 2-bit codes */
#define PROBE_BLOCK_BYTES (BN_PLANE_ROWS * BN_PLANE_CHUNK)
_Static_assert(BN_PLANE_ROWS * PROBE_TILE_BYTES + PROBE_BLOCK_BYTES + PROBE_COLS == BN_DOT_FORM_PROBE_BYTES, "bitnet.h's probe size");

/* Odd reps read the tile one block further on, so no rep repeats the one before it (nothing to hoist). */
BN_INLINE uint32_t probe_in_form(int form, const uint8_t *mem, int reps) {
    const enum plane_isa isa = BN_RELAXED ? PLANE_RELAXED : PLANE_SIMD128;
    const int8_t *act = (const int8_t *)mem + BN_PLANE_ROWS * PROBE_TILE_BYTES + PROBE_BLOCK_BYTES;
    uint32_t digest = 0;
    for (int rep = 0; rep < reps; rep++) {
        int32_t dots[BN_PLANE_ROWS];
        plane_tile(isa, form, mem + (rep & 1) * PROBE_BLOCK_BYTES, act, NULL, PROBE_COLS, 2, dots);
        for (int r = 0; r < BN_PLANE_ROWS; r++) digest = digest * 31u + (uint32_t)dots[r];
    }
    return digest;
}

/* each form compiled on its own, as the kernels' (bitlinear_planes.h plane_bitlinear) */
uint32_t bn_dot_form_probe(const uint8_t *mem, int reps) {
    return BN_RELAXED && bn_dot_form_in_use == BN_DOT_I32 ? probe_in_form(BN_DOT_I32, mem, reps) : probe_in_form(BN_DOT_I16, mem, reps);
}
