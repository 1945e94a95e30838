/* LUT layout: two ternary weights per 4-bit index, looked up with i8x16.swizzle (after T-MAC and
 * bitnet.cpp TL1, shaped for wasm).
 *
 * Rows come in tiles of 16; per block of 4 columns a tile has one 16-byte chunk whose byte r holds
 * row r's index of column pair 0 (low nibble) and pair 1 (high nibble); index = 3*(w0+1) + (w1+1).
 * Per token and column pair, scratch holds the 16-entry table of a0*w0 + a1*w1 for every index,
 * split into low bytes and high bytes (32 bytes); one swizzle then serves 16 rows at once. */
#include "bitlinear.h"
#include "touch.h"

#define LUT_FLUSH 32  /* blocks summed in i16: 32 blocks * 2 pairs * |a0*w0 + a1*w1| <= 256 < 2^15 */

static const int8_t W0[16] = {-1, -1, -1, 0, 0, 0, 1, 1, 1};
static const int8_t W1[16] = {-1, 0, 1, -1, 0, 1, -1, 0, 1};

static int lut_blocks(int in) { return (in + BN_LUT_COLS - 1) / BN_LUT_COLS; }
static size_t lut_table_bytes(int in) { return (size_t)lut_blocks(in) * 2 * 32; }

void bn_bitlinear_lut_ref(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n) {
    const int blocks = lut_blocks(in);
    for (int t = 0; t < n; t++) {
        const int8_t *a = q + (size_t)t * in;
        for (int o = 0; o < out; o++) {
            const uint8_t *chunk = w + (size_t)(o / BN_LUT_ROWS) * blocks * BN_LUT_ROWS + o % BN_LUT_ROWS;
            int32_t acc = 0;
            for (int b = 0; b < blocks; b++)
                for (int half = 0; half < 2; half++) {
                    int idx = (chunk[b * BN_LUT_ROWS] >> (4 * half)) & 15, c = b * BN_LUT_COLS + 2 * half;
                    if (c < in) acc += a[c] * W0[idx];
                    if (c + 1 < in) acc += a[c + 1] * W1[idx];
                }
            y[(size_t)t * out + o] = bn_bitlinear_out(acc, scale[t], wscale);
        }
    }
}

BN_INLINE v128_t lookup(v128_t table, v128_t idx) {
#if BN_RELAXED && defined(__wasm__)
    return wasm_i8x16_relaxed_swizzle(table, idx); /* indices are 0..15: same result as swizzle */
#else
    return wasm_i8x16_swizzle(table, idx);
#endif
}

/* per column pair: entries 0..15 of a0*W0[idx] + a1*W1[idx] as i16, stored as 16 low then 16 high bytes */
static void build_tables(uint8_t *tab, const int8_t *a, int in) {
    const v128_t w0_first8 = wasm_i16x8_make(-1, -1, -1, 0, 0, 0, 1, 1), w0_last8 = wasm_i16x8_make(1, 0, 0, 0, 0, 0, 0, 0);
    const v128_t w1_first8 = wasm_i16x8_make(-1, 0, 1, -1, 0, 1, -1, 0), w1_last8 = wasm_i16x8_make(1, 0, 0, 0, 0, 0, 0, 0);
    const int cols = BN_LUT_COLS * lut_blocks(in);
    for (int c = 0; c < cols; c += 2, tab += 32) {
        v128_t a0 = wasm_i16x8_splat(c < in ? a[c] : 0), a1 = wasm_i16x8_splat(c + 1 < in ? a[c + 1] : 0);
        v128_t first8 = wasm_i16x8_add(wasm_i16x8_mul(a0, w0_first8), wasm_i16x8_mul(a1, w1_first8));
        v128_t last8 = wasm_i16x8_add(wasm_i16x8_mul(a0, w0_last8), wasm_i16x8_mul(a1, w1_last8));
        wasm_v128_store(tab, wasm_i8x16_shuffle(first8, last8, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
        wasm_v128_store(tab + 16, wasm_i8x16_shuffle(first8, last8, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
    }
}

/* i16 sums of 16 rows (two i16x8 halves) for one column pair: low and high table bytes interleaved */
BN_INLINE void add_pair(v128_t acc[2], const uint8_t *table, v128_t idx) {
    v128_t lo = lookup(wasm_v128_load(table), idx), hi = lookup(wasm_v128_load(table + 16), idx);
    acc[0] = wasm_i16x8_add(acc[0], wasm_i8x16_shuffle(lo, hi, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
    acc[1] = wasm_i16x8_add(acc[1], wasm_i8x16_shuffle(lo, hi, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
}

/* dots[t][r] for the 16 rows of one tile and T tokens whose tables are table_bytes apart */
BN_INLINE void lut_tile(const uint8_t *tile, const uint8_t *tables, size_t table_bytes, int blocks, int T, int32_t dots[BN_LUT_TOKENS][BN_LUT_ROWS]) {
    const v128_t nibble = wasm_i8x16_splat(15);
    v128_t acc32[BN_LUT_TOKENS][4];
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 4; j++) acc32[t][j] = wasm_i32x4_splat(0);
    for (int b0 = 0; b0 < blocks; b0 += LUT_FLUSH) {
        const int b1 = blocks - b0 < LUT_FLUSH ? blocks : b0 + LUT_FLUSH;
        v128_t acc16[BN_LUT_TOKENS][2];
        for (int t = 0; t < T; t++) acc16[t][0] = acc16[t][1] = wasm_i16x8_splat(0);
        for (int b = b0; b < b1; b++) {
            v128_t v = wasm_v128_load(tile + (size_t)b * BN_LUT_ROWS);
            v128_t idx0 = wasm_v128_and(v, nibble), idx1 = wasm_v128_and(wasm_u16x8_shr(v, 4), nibble);
            for (int t = 0; t < T; t++) {
                const uint8_t *tab = tables + t * table_bytes + (size_t)b * 64;
                add_pair(acc16[t], tab, idx0);
                add_pair(acc16[t], tab + 32, idx1);
            }
        }
        for (int t = 0; t < T; t++)
            for (int h = 0; h < 2; h++) {
                acc32[t][2 * h] = wasm_i32x4_add(acc32[t][2 * h], wasm_i32x4_extend_low_i16x8(acc16[t][h]));
                acc32[t][2 * h + 1] = wasm_i32x4_add(acc32[t][2 * h + 1], wasm_i32x4_extend_high_i16x8(acc16[t][h]));
            }
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 4; j++) wasm_v128_store(dots[t] + 4 * j, acc32[t][j]);
}

/* Rows [o0, o1) of y only, any bounds: the tiles they touch are computed whole. */
void bn_bitlinear_lut_rows(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n, int o0, int o1) {
    const int blocks = lut_blocks(in), first = o0 > 0 ? o0 : 0, last = o1 < out ? o1 : out;
    const size_t table_bytes = lut_table_bytes(in);
    for (int t0 = 0; t0 < n && first < last; t0 += BN_LUT_TOKENS) {
        const int T = n - t0 < BN_LUT_TOKENS ? n - t0 : BN_LUT_TOKENS;
        for (int t = 0; t < T; t++) build_tables(scratch + t * table_bytes, q + (size_t)(t0 + t) * in, in);
        const int begin = first / BN_LUT_ROWS, tiles = (last + BN_LUT_ROWS - 1) / BN_LUT_ROWS - begin;
        for (int o = begin * BN_LUT_ROWS; o < last; o += BN_LUT_ROWS) {
            const uint8_t *tile = w + (size_t)(o / BN_LUT_ROWS) * blocks * BN_LUT_ROWS;
            bn_touch_stream_phase(tile, (size_t)blocks * BN_LUT_ROWS, o / BN_LUT_ROWS - begin, tiles, T);
            _Alignas(16) int32_t dots[BN_LUT_TOKENS][BN_LUT_ROWS];
            if (T == BN_LUT_TOKENS) /* constant T: the token loops unroll */
                lut_tile(tile, scratch, table_bytes, blocks, BN_LUT_TOKENS, dots);
            else /* fewer tokens left: one at a time, the tile stays in L1 meanwhile */
                for (int t = 0; t < T; t++) lut_tile(tile, scratch + t * table_bytes, table_bytes, blocks, 1, dots + t);
            for (int t = 0; t < T; t++)
                for (int r = o < first ? first - o : 0; r < BN_LUT_ROWS && o + r < last; r++)
                    y[(size_t)(t0 + t) * out + o + r] = bn_bitlinear_out(dots[t][r], scale[t0 + t], wscale);
        }
    }
}

void bn_bitlinear_lut(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, uint8_t *scratch, int out, int in, int n) {
    bn_bitlinear_lut_rows(w, wscale, q, scale, y, scratch, out, in, n, 0, out);
}

size_t bn_lut_scratch_bytes(int in) { return BN_LUT_TOKENS * lut_table_bytes(in); }
