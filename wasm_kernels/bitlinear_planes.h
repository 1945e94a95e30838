/* Bit-plane layouts shared by MAD (2-bit codes, w = code - 1) and binary (1-bit, w = 2*code - 1).
 *
 * Rows come in tiles of 4. Per block of 128/bits columns each row has a 16-byte chunk; the 4
 * chunks of a block are adjacent (one 64-byte line), tiles follow each other. Byte j of a chunk
 * holds the code of column 16k + j of the block in bits [bits*k, bits*k + bits).
 * So plane k is (chunk >> bits*k) & mask lane by lane, lined up with 16 consecutive activations
 * (relaxed dot); seen as u16 lanes, the low bytes hold the codes of the even activations, the
 * high bytes those of the odd ones (i16 dot of plain SIMD128). */
#ifndef BN_BITLINEAR_PLANES_H
#define BN_BITLINEAR_PLANES_H

#include "bitlinear.h"
#include "touch.h"

#define PLANE_SUM_CHUNK 64     /* tokens passing over each row tile while it sits in L1 (prefill; fewer where the simd128 path prepares them) */
#define PLANE_TOKENS 4         /* tokens a row's codes serve at once (prefill) */

enum plane_isa { PLANE_SIMD128, PLANE_RELAXED };

BN_INLINE int plane_cols(int bits) { return 8 * BN_PLANE_CHUNK / bits; }
BN_INLINE int plane_blocks(int in, int bits) { return (in + plane_cols(bits) - 1) / plane_cols(bits); }
BN_INLINE size_t plane_tile_bytes(int in, int bits) { return (size_t)plane_blocks(in, bits) * BN_PLANE_ROWS * BN_PLANE_CHUNK; }
BN_INLINE int32_t plane_weight_sum(int32_t code_dot, int32_t act_sum, int bits) {
    return (bits == 1 ? 2 * code_dot : code_dot) - act_sum;
}

/* sum_i q[i] * code(o, i), plainly */
BN_INLINE int32_t plane_code_dot_ref(const uint8_t *w, const int8_t *q, int o, int in, int bits) {
    const int cols = plane_cols(bits), mask = (1 << bits) - 1;
    const uint8_t *row = w + (size_t)(o / BN_PLANE_ROWS) * plane_tile_bytes(in, bits) + (o % BN_PLANE_ROWS) * BN_PLANE_CHUNK;
    int32_t acc = 0;
    for (int b = 0; b * cols < in; b++, row += BN_PLANE_ROWS * BN_PLANE_CHUNK) {
        const int8_t *a = q + b * cols;
        const int width = in - b * cols < cols ? in - b * cols : cols;
        for (int j = 0; j < BN_PLANE_CHUNK; j++) {
            const int byte = row[j];
            if (width == cols) /* full block: every plane of the byte is a real column */
                for (int k = 0; k < 8 / bits; k++) acc += a[k * BN_PLANE_CHUNK + j] * ((byte >> (bits * k)) & mask);
            else
                for (int k = 0; k < 8 / bits; k++)
                    if (k * BN_PLANE_CHUNK + j < width) acc += a[k * BN_PLANE_CHUNK + j] * ((byte >> (bits * k)) & mask);
        }
    }
    return acc;
}

BN_INLINE void plane_bitlinear_ref(const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n, int bits) {
    for (int t = 0; t < n; t++) {
        const int8_t *qt = q + (size_t)t * in;
        int32_t act_sum = bn_token_sum_ref(qt, in);
        for (int o = 0; o < out; o++)
            y[(size_t)t * out + o] = bn_bitlinear_out(plane_weight_sum(plane_code_dot_ref(w, qt, o, in, bits), act_sum, bits), scale[t], wscale);
    }
}

#if BN_RELAXED
/* an i16 lane gains <= 8/bits planes * 2 products * 128 * (2^bits - 1) <= 3072 per block (one sum per row in
 * the i16 form): widened to i32 every PLANE_FLUSH blocks, it stays within i16 */
#define PLANE_FLUSH 8

/* sums per row: two chains of i32 dot-adds hide the one instruction's latency; i16 sums need one */
BN_INLINE int plane_row_sums(int form) { return form == BN_DOT_I32 ? 2 : 1; }

/* total += the form's sums as i32; sums = 0 */
BN_INLINE void plane_widen(int form, v128_t total[BN_PLANE_ROWS], v128_t sums[2][BN_PLANE_ROWS]) {
    for (int r = 0; r < BN_PLANE_ROWS; r++)
        for (int s = 0; s < plane_row_sums(form); s++) {
            total[r] = wasm_i32x4_add(total[r], relaxed_widen(form, sums[s][r]));
            sums[s][r] = wasm_i32x4_splat(0);
        }
}

/* i8 lanes: plane k of a row's chunk, codes 0..2^bits - 1 (the i7 operand of the relaxed dot) */
BN_INLINE v128_t plane_codes_relaxed(v128_t chunk, int k, int bits) {
    return wasm_v128_and(wasm_u16x8_shr(chunk, bits * k), wasm_i8x16_splat((1 << bits) - 1));
}

BN_INLINE void plane_block_relaxed(int form, const uint8_t *chunk, const int8_t *a, int bits, v128_t acc[2][BN_PLANE_ROWS]) {
    for (int r = 0; r < BN_PLANE_ROWS; r++) {
        v128_t v = wasm_v128_load(chunk + r * BN_PLANE_CHUNK);
        for (int k = 0; k < 8 / bits; k++) {
            v128_t codes = plane_codes_relaxed(v, k, bits);
            v128_t *sum = &acc[k % plane_row_sums(form)][r];
            *sum = relaxed_dot(form, wasm_v128_load(a + k * BN_PLANE_CHUNK), codes, *sum);
        }
    }
}

/* code dots of the 4 rows of one tile with one token */
BN_INLINE void plane_tile_relaxed(int form, const uint8_t *tile, const int8_t *q, int in, int bits, int32_t dots[BN_PLANE_ROWS]) {
    const int cols = plane_cols(bits), full = in / cols;
    v128_t total[BN_PLANE_ROWS], sums[2][BN_PLANE_ROWS];
    for (int r = 0; r < BN_PLANE_ROWS; r++) total[r] = sums[0][r] = sums[1][r] = wasm_i32x4_splat(0);
    for (int b = 0; b < full; b++) {
        plane_block_relaxed(form, tile + (size_t)b * BN_PLANE_ROWS * BN_PLANE_CHUNK, q + b * cols, bits, sums);
        if (form == BN_DOT_I16 && b % PLANE_FLUSH == PLANE_FLUSH - 1) plane_widen(form, total, sums);
    }
    if (full * cols < in) {
        _Alignas(16) int8_t pad[128];
        bn_pad_tail(pad, q + full * cols, in - full * cols, cols);
        plane_block_relaxed(form, tile + (size_t)full * BN_PLANE_ROWS * BN_PLANE_CHUNK, pad, bits, sums);
    }
    plane_widen(form, total, sums);
    for (int r = 0; r < BN_PLANE_ROWS; r++) dots[r] = bn_i32x4_total(total[r]);
}

/* Rows multiplied together in the relaxed prefill, each activation load serving all of them: the whole
 * tile with i32 sums, two rows with i16 sums, whose flushes to i32 would spill the whole tile's (a
 * Chromium GEMM of 32 tokens: i32 1.25x faster with 4 rows than 2, i16 0.75x). The tile's 16 i32 sums
 * outnumber x64's vector registers (V8 likely spills some), and from some call sites that step runs ~2x slower
 * (docs/benchmarks.md, the q/k/v prefill); 2 rows runs alike from every one, but 1.25x slower than the fast case. */
BN_INLINE int plane_rows_at_once(int form) { return form == BN_DOT_I32 ? BN_PLANE_ROWS : 2; }

/* Prefill's codes (bitnet.h BN_PLANE_SEGMENT_COLS): codes + r * BN_PLANE_SEGMENT_COLS + c is the code of row r of
 * the tile at column c of blocks [b0, b0 + blocks), unpacked once for a chunk of tokens */
BN_INLINE void plane_unpack_relaxed(const uint8_t *tile, int b0, int blocks, int bits, uint8_t *codes) {
    for (int b = 0; b < blocks; b++)
        for (int r = 0; r < BN_PLANE_ROWS; r++) {
            const v128_t v = wasm_v128_load(tile + (size_t)(b0 + b) * BN_PLANE_ROWS * BN_PLANE_CHUNK + r * BN_PLANE_CHUNK);
            uint8_t *row = codes + r * BN_PLANE_SEGMENT_COLS + b * plane_cols(bits);
            for (int k = 0; k < 8 / bits; k++) wasm_v128_store(row + k * BN_PLANE_CHUNK, plane_codes_relaxed(v, k, bits));
        }
}

/* dots[r][t] += sum over `blocks` blocks of the unpacked codes of plane_rows_at_once(form) rows (code, code +
 * BN_PLANE_SEGMENT_COLS, ...) times token t's activations a[t], each activation load serving all of the rows */
BN_INLINE void plane_rows_tokens_relaxed(int form, const uint8_t *code, const int8_t *const a[PLANE_TOKENS], int blocks, int bits, int32_t dots[BN_PLANE_ROWS][PLANE_TOKENS]) {
    const int rows = plane_rows_at_once(form);
    const int cols = plane_cols(bits), flush = form == BN_DOT_I32 ? blocks : PLANE_FLUSH;
    v128_t total[BN_PLANE_ROWS][PLANE_TOKENS];
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < PLANE_TOKENS; t++) total[r][t] = wasm_i32x4_splat(0);
    for (int b0 = 0; b0 < blocks; b0 += flush) {
        v128_t part[BN_PLANE_ROWS][PLANE_TOKENS];
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < PLANE_TOKENS; t++) part[r][t] = wasm_i32x4_splat(0);
        for (int c = b0 * cols; c < blocks * cols && c < (b0 + flush) * cols; c += BN_PLANE_CHUNK) {
            v128_t codes[BN_PLANE_ROWS];
            for (int r = 0; r < rows; r++) codes[r] = wasm_v128_load(code + r * BN_PLANE_SEGMENT_COLS + c);
            for (int t = 0; t < PLANE_TOKENS; t++) {
                const v128_t act = wasm_v128_load(a[t] + c);
                for (int r = 0; r < rows; r++) part[r][t] = relaxed_dot(form, act, codes[r], part[r][t]);
            }
        }
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < PLANE_TOKENS; t++) total[r][t] = wasm_i32x4_add(total[r][t], relaxed_widen(form, part[r][t]));
    }
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < PLANE_TOKENS; t++) dots[r][t] += bn_i32x4_total(total[r][t]);
}

/* dots[t][r] += the code dots of the tile's rows, unpacked in `codes`, over blocks [b0, b0 + blocks) with the
 * PLANE_TOKENS consecutive tokens of q (the last block zero-padded where it is partial) */
BN_INLINE void plane_segment_tokens_relaxed(int form, const uint8_t *codes, int b0, int blocks, const int8_t *q, int in, int bits, int32_t dots[][BN_PLANE_ROWS]) {
    const int cols = plane_cols(bits), full = in / cols - b0 < blocks ? in / cols - b0 : blocks;
    _Alignas(16) int8_t pad[PLANE_TOKENS][128];
    const int8_t *a[PLANE_TOKENS], *tail[PLANE_TOKENS];
    for (int t = 0; t < PLANE_TOKENS; t++) {
        a[t] = q + (size_t)t * in + b0 * cols;
        tail[t] = pad[t];
        if (full < blocks) bn_pad_tail(pad[t], a[t] + full * cols, in - (b0 + full) * cols, cols);
    }
    for (int r0 = 0; r0 < BN_PLANE_ROWS; r0 += plane_rows_at_once(form)) {
        int32_t rows[BN_PLANE_ROWS][PLANE_TOKENS] = { { 0 } };
        plane_rows_tokens_relaxed(form, codes + r0 * BN_PLANE_SEGMENT_COLS, a, full, bits, rows);
        if (full < blocks) plane_rows_tokens_relaxed(form, codes + r0 * BN_PLANE_SEGMENT_COLS + full * cols, tail, 1, bits, rows);
        for (int r = 0; r < plane_rows_at_once(form); r++)
            for (int t = 0; t < PLANE_TOKENS; t++) dots[t][r0 + r] += rows[r][t];
    }
}

/* code dots of the 4 rows of one tile with tn consecutive tokens of q: PLANE_TOKENS at a time from the unpacked
 * codes, the rest one by one as in decode */
BN_INLINE void plane_tile_chunk_relaxed(int form, const uint8_t *tile, const int8_t *q, int in, int bits, int tn, int32_t dots[][BN_PLANE_ROWS]) {
    const int grouped = tn / PLANE_TOKENS * PLANE_TOKENS, segment = BN_PLANE_SEGMENT_COLS / plane_cols(bits), blocks = plane_blocks(in, bits);
    _Alignas(16) uint8_t codes[BN_PLANE_ROWS * BN_PLANE_SEGMENT_COLS];
    for (int t = 0; t < grouped; t++)
        for (int r = 0; r < BN_PLANE_ROWS; r++) dots[t][r] = 0;
    for (int b0 = 0; b0 < blocks && grouped > 0; b0 += segment) {
        const int span = blocks - b0 < segment ? blocks - b0 : segment;
        plane_unpack_relaxed(tile, b0, span, bits, codes);
        for (int t = 0; t < grouped; t += PLANE_TOKENS) plane_segment_tokens_relaxed(form, codes, b0, span, q + (size_t)t * in, in, bits, dots + t);
    }
    for (int t = grouped; t < tn; t++) plane_tile_relaxed(form, tile, q + (size_t)t * in, in, bits, dots[t]);
}
#endif

/* u16 lanes, masked without shifting: plane k of each byte holds code << bits*k. The activations
 * are shifted up by the rest, so every product in i32x4.dot_i16x8 carries the same factor
 * 2^plane_top_shift(bits), removed once per tile (exact while in < 2^17). */
BN_INLINE int plane_top_shift(int bits) { return 8 - bits; }

/* Prepared activations of one block for the simd128 path: per plane, its even and odd columns as
 * i16 lanes shifted into place (2 bytes per column); made once per token for every tile where they fit. */
BN_INLINE int plane_prep_vectors(int bits) { return 2 * 8 / bits; }
#define PLANE_PREP_MAX_VECTORS 16 /* plane_prep_vectors(1) */
BN_INLINE int plane_prep_tokens(int in, int bits) {
    const size_t token_bytes = (size_t)plane_blocks(in, bits) * plane_prep_vectors(bits) * sizeof(v128_t);
    return token_bytes ? (int)(BN_PLANE_PREP_BYTES / token_bytes) : PLANE_SUM_CHUNK;
}

BN_INLINE void plane_prep_block(const int8_t *q, int in, int b, int bits, v128_t *prep) {
    const int cols = plane_cols(bits), top = plane_top_shift(bits);
    _Alignas(16) int8_t pad[128];
    const int8_t *a = q + b * cols;
    if ((b + 1) * cols > in) {
        bn_pad_tail(pad, a, in - b * cols, cols);
        a = pad;
    }
    for (int k = 0; k < 8 / bits; k++) {
        v128_t v = wasm_v128_load(a + k * BN_PLANE_CHUNK);
        prep[2 * k] = wasm_i16x8_shl(wasm_i16x8_shr(wasm_i16x8_shl(v, 8), 8), top - bits * k);
        prep[2 * k + 1] = wasm_i16x8_shl(wasm_i16x8_shr(v, 8), top - bits * k);
    }
}

/* acc + plane k of one row's chunk (lo: its u16 lanes, hi: their high bytes) times a block's prepared activations */
BN_INLINE v128_t plane_dot_simd128(v128_t acc, v128_t lo, v128_t hi, const v128_t *prep, int k, int bits) {
    const v128_t mask = wasm_i16x8_splat(((1 << bits) - 1) << (bits * k));
    return wasm_i32x4_add(acc, wasm_i32x4_add(wasm_i32x4_dot_i16x8(prep[2 * k], wasm_v128_and(lo, mask)),
                                              wasm_i32x4_dot_i16x8(prep[2 * k + 1], wasm_v128_and(hi, mask))));
}

BN_INLINE void plane_block_simd128(const uint8_t *chunk, const v128_t *prep, int bits, v128_t acc[BN_PLANE_ROWS]) {
    for (int r = 0; r < BN_PLANE_ROWS; r++) {
        const v128_t lo = wasm_v128_load(chunk + r * BN_PLANE_CHUNK), hi = wasm_u16x8_shr(lo, 8);
        for (int k = 0; k < 8 / bits; k++) acc[r] = plane_dot_simd128(acc[r], lo, hi, prep, k, bits);
    }
}

/* code dots of the 4 rows of one tile with one token: its prepared activations (plane_prep_block for
 * every block), or NULL to prepare each block here (the simd128 path) */
BN_INLINE void plane_tile(enum plane_isa isa, int form, const uint8_t *tile, const int8_t *q, const v128_t *prep, int in, int bits, int32_t dots[BN_PLANE_ROWS]) {
#if BN_RELAXED
    if (isa == PLANE_RELAXED) {
        plane_tile_relaxed(form, tile, q, in, bits, dots);
        return;
    }
#endif
    v128_t acc[BN_PLANE_ROWS], own[PLANE_PREP_MAX_VECTORS];
    for (int r = 0; r < BN_PLANE_ROWS; r++) acc[r] = wasm_i32x4_splat(0);
    for (int b = 0; b < plane_blocks(in, bits); b++) {
        if (!prep) plane_prep_block(q, in, b, bits, own);
        plane_block_simd128(tile + (size_t)b * BN_PLANE_ROWS * BN_PLANE_CHUNK, prep ? prep + b * plane_prep_vectors(bits) : own, bits, acc);
    }
    for (int r = 0; r < BN_PLANE_ROWS; r++) dots[r] = bn_i32x4_total(acc[r]) >> plane_top_shift(bits);
}

/* code dots of the 4 rows of one tile with PLANE_TOKENS tokens whose prepared activations are
 * prep_stride vectors apart: each row's codes of a block are masked once and applied to every token */
BN_INLINE void plane_tile_tokens_simd128(const uint8_t *tile, const v128_t *prep, size_t prep_stride, int in, int bits, int32_t dots[PLANE_TOKENS][BN_PLANE_ROWS]) {
    for (int r = 0; r < BN_PLANE_ROWS; r++) {
        v128_t acc[PLANE_TOKENS];
        for (int t = 0; t < PLANE_TOKENS; t++) acc[t] = wasm_i32x4_splat(0);
        for (int b = 0; b < plane_blocks(in, bits); b++) {
            const v128_t lo = wasm_v128_load(tile + (size_t)b * BN_PLANE_ROWS * BN_PLANE_CHUNK + r * BN_PLANE_CHUNK), hi = wasm_u16x8_shr(lo, 8);
            const v128_t *block = prep + b * plane_prep_vectors(bits);
            for (int k = 0; k < 8 / bits; k++)
                for (int t = 0; t < PLANE_TOKENS; t++) acc[t] = plane_dot_simd128(acc[t], lo, hi, block + t * prep_stride, k, bits);
        }
        for (int t = 0; t < PLANE_TOKENS; t++) dots[t][r] = bn_i32x4_total(acc[t]) >> plane_top_shift(bits);
    }
}

/* code dots of the 4 rows of one tile with tn consecutive tokens of q: the relaxed path from unpacked codes, the
 * simd128 one PLANE_TOKENS at a time from the tokens' prepared activations where there are some (prep), else one by one */
BN_INLINE void plane_tile_chunk(enum plane_isa isa, int form, const uint8_t *tile, const int8_t *q, const v128_t *prep, size_t prep_stride, int in, int bits, int tn, int32_t dots[][BN_PLANE_ROWS]) {
#if BN_RELAXED
    if (isa == PLANE_RELAXED) {
        plane_tile_chunk_relaxed(form, tile, q, in, bits, tn, dots);
        return;
    }
#endif
    for (int t = 0; t < tn;)
        if (prep && tn - t >= PLANE_TOKENS) {
            plane_tile_tokens_simd128(tile, prep + t * prep_stride, prep_stride, in, bits, dots + t);
            t += PLANE_TOKENS;
        } else {
            plane_tile(isa, form, tile, q + (size_t)t * in, prep ? prep + t * prep_stride : NULL, in, bits, dots[t]);
            t++;
        }
}

/* Row tiles outer: a tile (4 rows, in bytes for MAD) is read from memory once per chunk of tokens
 * (touched a phase of tiles at a time, touch.h) and from L1 for the rest; each row's codes serve several
 * tokens (plane_tile_chunk), the simd128 path's from each token's activations prepared once per chunk where they fit. */
BN_INLINE void plane_bitlinear_in(enum plane_isa isa, int form, const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n, int bits, int o0, int o1) {
    const size_t tile_bytes = plane_tile_bytes(in, bits);
    const int first = o0 > 0 ? o0 : 0, last = o1 < out ? o1 : out;
    const int prep_tokens = isa == PLANE_SIMD128 ? plane_prep_tokens(in, bits) : 0;
    const int chunk = prep_tokens > 0 && prep_tokens < PLANE_SUM_CHUNK ? prep_tokens : PLANE_SUM_CHUNK;
    const size_t prep_stride = (size_t)plane_blocks(in, bits) * plane_prep_vectors(bits);
    int32_t act_sum[PLANE_SUM_CHUNK], dots[PLANE_SUM_CHUNK][BN_PLANE_ROWS];
    v128_t prep[BN_PLANE_PREP_BYTES / sizeof(v128_t)];
    for (int t0 = 0; t0 < n && first < last; t0 += chunk) {
        const int tn = n - t0 < chunk ? n - t0 : chunk;
        for (int t = 0; t < tn; t++) act_sum[t] = bn_token_sum(q + (size_t)(t0 + t) * in, in);
        for (int t = 0; t < tn && prep_tokens > 0; t++)
            for (int b = 0; b < plane_blocks(in, bits); b++) plane_prep_block(q + (size_t)(t0 + t) * in, in, b, bits, prep + t * prep_stride + b * plane_prep_vectors(bits));
        const int begin = first / BN_PLANE_ROWS, tiles = (last + BN_PLANE_ROWS - 1) / BN_PLANE_ROWS - begin;
        for (int o = begin * BN_PLANE_ROWS; o < last; o += BN_PLANE_ROWS) {
            const uint8_t *tile = w + (size_t)(o / BN_PLANE_ROWS) * tile_bytes;
            bn_touch_stream_phase(tile, tile_bytes, o / BN_PLANE_ROWS - begin, tiles, tn);
            plane_tile_chunk(isa, form, tile, q + (size_t)t0 * in, prep_tokens > 0 ? prep : NULL, prep_stride, in, bits, tn, dots);
            for (int t = 0; t < tn; t++)
                for (int r = o < first ? first - o : 0; r < BN_PLANE_ROWS && o + r < last; r++)
                    y[(size_t)(t0 + t) * out + o + r] = bn_bitlinear_out(plane_weight_sum(dots[t][r], act_sum[t], bits), scale[t0 + t], wscale);
        }
    }
}

/* Rows [o0, o1) of y only (the rest untouched), any bounds: the tiles they touch are computed whole.
 * The relaxed path in the dot form in use, each form compiled on its own. */
BN_INLINE void plane_bitlinear(enum plane_isa isa, const uint8_t *w, float wscale, const int8_t *q, const float *scale, float *y, int out, int in, int n, int bits, int o0, int o1) {
    if (BN_RELAXED && isa == PLANE_RELAXED && bn_dot_form_in_use == BN_DOT_I32)
        plane_bitlinear_in(isa, BN_DOT_I32, w, wscale, q, scale, y, out, in, n, bits, o0, o1);
    else
        plane_bitlinear_in(isa, BN_DOT_I16, w, wscale, q, scale, y, out, in, n, bits, o0, o1);
}

#endif
