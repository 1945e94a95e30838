/* The LM head: logits[t, v] = x[t] . E[v] over an f16, int8, 7-bit or 4-bit embedding matrix (tied weights). */
#include "bitnet.h"
#include "bitlinear.h"
#include "dot_f16.h"
#include "touch.h"

void bn_head_f16_ref(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim) {
    for (int v = 0; v < vocab; v++)
        for (int t = 0; t < n; t++) logits[(size_t)t * vocab + v] = bn_dot_f16_ref(x + (size_t)t * dim, E + (size_t)v * dim, dim);
}

/* four rows of E at a time, each row used for every token while it is in cache; rows [v0, v1) only */
void bn_head_f16_rows(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim, int v0, int v1) {
    int v = v0 > 0 ? v0 : 0;
    const int last = v1 < vocab ? v1 : vocab;
    for (const int first = v; v + 4 <= last; v += 4) {
        bn_touch_phase(E + (size_t)v * dim, 4 * sizeof *E * dim, (v - first) / 4, (last - first) / 4, n);
        for (int t = 0; t < n; t++) {
            float out[4];
            bn_dot4_finite_f16(x + (size_t)t * dim, E + (size_t)v * dim, (size_t)dim, dim, out);
            for (int r = 0; r < 4; r++) logits[(size_t)t * vocab + v + r] = out[r];
        }
    }
    for (; v < last; v++)
        for (int t = 0; t < n; t++) logits[(size_t)t * vocab + v] = bn_dot_f16(x + (size_t)t * dim, E + (size_t)v * dim, dim);
}

void bn_head_f16(const uint16_t *E, const float *x, float *logits, int n, int vocab, int dim) {
    bn_head_f16_rows(E, x, logits, n, vocab, dim, 0, vocab);
}

/* int8 and 7-bit rows (bitnet.h's byte tables, in tiles), one walk over the tiles for both: int8 values times
 * int8 activations; 7-bit codes q + BN_Q7_ZERO in 1..127 (q in -63..63), the unsigned operand of the relaxed
 * dot as the ternary kernels' weight codes, with dot(x, q) = dot(x, code) - BN_Q7_ZERO * sum(x). */
enum byte_table { TABLE_Q8, TABLE_Q7 };

static int32_t table_value(enum byte_table kind, uint8_t byte) { return kind == TABLE_Q8 ? (int8_t)byte : byte; }

static int32_t byte_dot_ref(enum byte_table kind, const int8_t *x, const uint8_t *row, int d) {
    int32_t acc = 0;
    for (int i = 0; i < d; i++) acc += (int32_t)x[i] * table_value(kind, row[i]);
    return acc;
}

static int32_t table_dot_ref(enum byte_table kind, const uint8_t *E, int v, const int8_t *x, int dim, int vocab) {
    int32_t acc = 0;
    for (int i = 0; i < dim; i++) acc += (int32_t)x[i] * table_value(kind, E[bn_table_at(v, i, dim, vocab)]);
    return acc;
}

static float q8_logit(int32_t acc, float row_scale, float xscale) { return ((float)acc * row_scale) / xscale; }

static float table_logit(enum byte_table kind, int32_t dot, int32_t x_sum, float row_scale, float xscale) {
    return q8_logit(kind == TABLE_Q8 ? dot : dot - BN_Q7_ZERO * x_sum, row_scale, xscale);
}

static void table_head_ref(enum byte_table kind, const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    for (int v = 0; v < vocab; v++)
        for (int t = 0; t < n; t++) {
            const int8_t *x = xq + (size_t)t * dim;
            logits[(size_t)t * vocab + v] = table_logit(kind, table_dot_ref(kind, E, v, x, dim, vocab), bn_token_sum_ref(x, dim), row_scale[v], xscale[t]);
        }
}

/* int8 widened to int16, then pmaddwd-style pair dots into int32 lanes (exact) */
static v128_t dot16_i8(v128_t x_lo, v128_t x_hi, v128_t e, v128_t acc) {
    acc = wasm_i32x4_add(acc, wasm_i32x4_dot_i16x8(x_lo, wasm_i16x8_extend_low_i8x16(e)));
    return wasm_i32x4_add(acc, wasm_i32x4_dot_i16x8(x_hi, wasm_i16x8_extend_high_i8x16(e)));
}

BN_INLINE v128_t dot16_byte(enum byte_table kind, v128_t x, v128_t e, v128_t acc) {
#if BN_RELAXED
    if (kind == TABLE_Q7) return bn_dot_i8_i7_add(x, e, acc);
#endif
    return dot16_i8(wasm_i16x8_extend_low_i8x16(x), wasm_i16x8_extend_high_i8x16(x), e, acc);  /* 7-bit codes < 128: their sign extension is their value */
}

#define TABLE_SUM_TOKENS 64 /* tokens whose activation sums are taken once per call, not once per tile */

/* dots of one tile's rows with one token: its chunks in order, then the rows' column tails (bitnet.h) */
BN_INLINE void table_tile_dots(enum byte_table kind, const uint8_t *tile, const int8_t *x, int dim, int32_t dots[BN_TABLE_TILE_ROWS]) {
    const int whole = dim / BN_TABLE_CHUNK * BN_TABLE_CHUNK, tail = dim - whole;
    v128_t acc[BN_TABLE_TILE_ROWS];
    for (int r = 0; r < BN_TABLE_TILE_ROWS; r++) acc[r] = wasm_i32x4_splat(0);
    for (int i = 0; i < whole; i += BN_TABLE_CHUNK) {
        const v128_t xv = wasm_v128_load(x + i);
        const uint8_t *chunk = tile + (size_t)i * BN_TABLE_TILE_ROWS;
        for (int r = 0; r < BN_TABLE_TILE_ROWS; r++) acc[r] = dot16_byte(kind, xv, wasm_v128_load(chunk + r * BN_TABLE_CHUNK), acc[r]);
    }
    const uint8_t *tails = tile + (size_t)whole * BN_TABLE_TILE_ROWS;
    for (int r = 0; r < BN_TABLE_TILE_ROWS; r++) dots[r] = bn_i32x4_total(acc[r]) + byte_dot_ref(kind, x + whole, tails + r * tail, tail);
}

/* the tiles holding rows [v0, v1) computed whole, their rows in range written; every path sums the same exact int32 */
BN_INLINE void table_head_rows(enum byte_table kind, const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    const int first = v0 > 0 ? v0 : 0, last = v1 < vocab ? v1 : vocab;
    const int tiled = vocab / BN_TABLE_TILE_ROWS * BN_TABLE_TILE_ROWS, tile0 = first / BN_TABLE_TILE_ROWS * BN_TABLE_TILE_ROWS;
    const int tiled_last = last < tiled ? last : tiled;
    const int tiles = tiled_last > tile0 ? (tiled_last - tile0 + BN_TABLE_TILE_ROWS - 1) / BN_TABLE_TILE_ROWS : 0;
    int32_t x_sum[TABLE_SUM_TOKENS];
    for (int t0 = 0; t0 < n; t0 += TABLE_SUM_TOKENS) {
        const int tn = n - t0 < TABLE_SUM_TOKENS ? n - t0 : TABLE_SUM_TOKENS;
        for (int t = 0; t < tn; t++) x_sum[t] = kind == TABLE_Q7 ? bn_token_sum(xq + (size_t)(t0 + t) * dim, dim) : 0;
        for (int k = 0; k < tiles; k++) {
            const int v = tile0 + k * BN_TABLE_TILE_ROWS;
            const uint8_t *tile = E + (size_t)v * dim;
            bn_touch_stream_phase(tile, BN_TABLE_TILE_ROWS * (size_t)dim, k, tiles, tn);
            for (int t = 0; t < tn; t++) {
                int32_t dots[BN_TABLE_TILE_ROWS];
                table_tile_dots(kind, tile, xq + (size_t)(t0 + t) * dim, dim, dots);
                for (int r = v < first ? first - v : 0; r < BN_TABLE_TILE_ROWS && v + r < last; r++)
                    logits[(size_t)(t0 + t) * vocab + v + r] = table_logit(kind, dots[r], x_sum[t], row_scale[v + r], xscale[t0 + t]);
            }
        }
        for (int v = first > tiled ? first : tiled; v < last; v++)
            for (int t = 0; t < tn; t++)
                logits[(size_t)(t0 + t) * vocab + v] = table_logit(kind, byte_dot_ref(kind, xq + (size_t)(t0 + t) * dim, E + (size_t)v * dim, dim), x_sum[t], row_scale[v], xscale[t0 + t]);
    }
}

void bn_head_q8_ref(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    table_head_ref(TABLE_Q8, (const uint8_t *)E, row_scale, xq, xscale, logits, n, vocab, dim);
}

void bn_head_q8_rows(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    table_head_rows(TABLE_Q8, (const uint8_t *)E, row_scale, xq, xscale, logits, n, vocab, dim, v0, v1);
}

void bn_head_q8(const int8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    bn_head_q8_rows(E, row_scale, xq, xscale, logits, n, vocab, dim, 0, vocab);
}

void bn_head_q7_ref(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    table_head_ref(TABLE_Q7, E, row_scale, xq, xscale, logits, n, vocab, dim);
}

void bn_head_q7_rows(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    table_head_rows(TABLE_Q7, E, row_scale, xq, xscale, logits, n, vocab, dim, v0, v1);
}

void bn_head_q7(const uint8_t *E, const float *row_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    bn_head_q7_rows(E, row_scale, xq, xscale, logits, n, vocab, dim, 0, vocab);
}

/* 4-bit rows (bitnet.h): group by group, an exact int32 of codes less BN_Q4_ZERO per activation,
 * scaled and summed in f32 in group order; every path does those f32 steps in that order. */
static int32_t q4_group_dot_ref(const uint8_t *row, const int8_t *x, int begin, int end) {
    int32_t dot = 0, sum = 0;
    for (int i = begin; i < end; i++) {
        dot += (int32_t)x[i] * bn_q4_code(row, i);
        sum += x[i];
    }
    return dot - BN_Q4_ZERO * sum;
}

static float q4_logit_ref(const uint8_t *row, const float *group_scale, const int8_t *x, float xscale, int dim) {
    float acc = 0.0f;
    for (int g = 0, begin = 0; begin < dim; g++, begin += BN_Q4_GROUP) {
        const int end = begin + BN_Q4_GROUP < dim ? begin + BN_Q4_GROUP : dim;
        acc = acc + (float)q4_group_dot_ref(row, x, begin, end) * group_scale[g];
    }
    return acc / xscale;
}

static void q4_rows_ref(const uint8_t *E, const float *group_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    const int row_bytes = bn_q4_row_bytes(dim), groups = bn_q4_groups(dim);
    for (int v = v0; v < v1; v++)
        for (int t = 0; t < n; t++)
            logits[(size_t)t * vocab + v] = q4_logit_ref(E + (size_t)v * row_bytes, group_scale + (size_t)v * groups, xq + (size_t)t * dim, xscale[t], dim);
}

void bn_head_q4_ref(const uint8_t *E, const float *group_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    q4_rows_ref(E, group_scale, xq, xscale, logits, n, vocab, dim, 0, vocab);
}

/* The SIMD paths sum a group's exact dot(x, codes) in the build's dot form: codes 0..15 are 7-bit
 * operands of the relaxed dot. In the i16 form each lane takes 2 * Q4_CHUNKS_PER_GROUP pair sums of
 * at most 2 * 128 * 15: within i16 for one group, widened to i32 at its end. */
#define Q4_CHUNKS_PER_GROUP (BN_Q4_GROUP / BN_Q4_CHUNK)
_Static_assert(2 * Q4_CHUNKS_PER_GROUP * 2 * 128 * 15 <= 32767, "a group's i16 sums fit in i16");
#if BN_RELAXED
BN_INLINE v128_t q4_dot(int form, v128_t x, v128_t codes, v128_t acc) { return relaxed_dot(form, x, codes, acc); }
BN_INLINE v128_t q4_widen(int form, v128_t acc) { return relaxed_widen(form, acc); }
#else /* i16 dots into i32 lanes */
BN_INLINE v128_t q4_dot(int form, v128_t x, v128_t codes, v128_t acc) {
    return dot16_i8(wasm_i16x8_extend_low_i8x16(x), wasm_i16x8_extend_high_i8x16(x), codes, acc);
}
BN_INLINE v128_t q4_widen(int form, v128_t acc) { return acc; }
#endif

/* i32 lanes summing to the exact dot of a row's chunks [m, m + chunks) with their activations x (x[0] meets chunk m) */
BN_INLINE v128_t q4_chunks_dot(int form, const uint8_t *row, int m, int chunks, const int8_t *x) {
    const v128_t nibble = wasm_i8x16_splat(0x0F);
    v128_t acc = wasm_i32x4_splat(0);
    for (int c = 0; c < chunks; c++) {
        const v128_t codes = wasm_v128_load(row + (size_t)(m + c) * (BN_Q4_CHUNK / 2));
        acc = q4_dot(form, wasm_v128_load(x + c * BN_Q4_CHUNK), wasm_v128_and(codes, nibble), acc);
        acc = q4_dot(form, wasm_v128_load(x + c * BN_Q4_CHUNK + BN_Q4_CHUNK / 2), wasm_v128_and(wasm_u16x8_shr(codes, 4), nibble), acc);
    }
    return q4_widen(form, acc);
}

/* lane k = the total of acc[k]'s lanes (integers: exact in any order) */
BN_INLINE v128_t i32x4_totals(const v128_t acc[4]) {
    const v128_t ab = wasm_i32x4_add(wasm_i32x4_shuffle(acc[0], acc[1], 0, 4, 1, 5), wasm_i32x4_shuffle(acc[0], acc[1], 2, 6, 3, 7));
    const v128_t cd = wasm_i32x4_add(wasm_i32x4_shuffle(acc[2], acc[3], 0, 4, 1, 5), wasm_i32x4_shuffle(acc[2], acc[3], 2, 6, 3, 7));
    return wasm_i32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

/* One row's logit for one token (before / xscale), its f32 steps those of the reference in group order: four whole
 * groups' exact dots at a time, scaled in lanes, added one by one; then the rest group by group (the last one's
 * chunks past `whole` meet the zero-padded tail of x). */
BN_INLINE float q4_row_logit(int form, const uint8_t *row, const float *s, int dim, const int8_t *x, const int8_t *tail, const int32_t *zero_sum) {
    const int groups = bn_q4_groups(dim), whole = dim / BN_Q4_CHUNK, whole_groups = dim / BN_Q4_GROUP;
    const int chunks = (dim + BN_Q4_CHUNK - 1) / BN_Q4_CHUNK;
    float logit = 0.0f;
    int g = 0;
    for (; g + 4 <= whole_groups; g += 4) {
        v128_t dots[4];
        for (int k = 0; k < 4; k++) dots[k] = q4_chunks_dot(form, row, (g + k) * Q4_CHUNKS_PER_GROUP, Q4_CHUNKS_PER_GROUP, x + (g + k) * BN_Q4_GROUP);
        const v128_t d = wasm_i32x4_sub(i32x4_totals(dots), wasm_v128_load(zero_sum + g));
        const v128_t step = wasm_f32x4_mul(wasm_f32x4_convert_i32x4(d), wasm_v128_load(s + g));
        logit = logit + wasm_f32x4_extract_lane(step, 0);
        logit = logit + wasm_f32x4_extract_lane(step, 1);
        logit = logit + wasm_f32x4_extract_lane(step, 2);
        logit = logit + wasm_f32x4_extract_lane(step, 3);
    }
    for (; g < groups; g++) {
        const int m0 = g * Q4_CHUNKS_PER_GROUP, m1 = m0 + Q4_CHUNKS_PER_GROUP < chunks ? m0 + Q4_CHUNKS_PER_GROUP : chunks;
        v128_t acc = wasm_i32x4_splat(0);
        for (int m = m0; m < m1; m++) acc = wasm_i32x4_add(acc, q4_chunks_dot(form, row, m, 1, m < whole ? x + m * BN_Q4_CHUNK : tail));
        logit = logit + (float)(bn_i32x4_total(acc) - zero_sum[g]) * s[g];
    }
    return logit;
}

#define Q4_TOKENS 64        /* tokens whose group sums and last partial chunk are taken once per call */
#define Q4_SUM_WORDS 4096   /* group sums those tokens may hold (16 KB of stack): wider rows than 262144 take the reference path */

/* Row by row, so that the table is read as one stream (four rows read at once, interleaved, came at 6.5-8.4 GB/s where q7's
 * tiles came at 23-28, a 32768-row table in Chromium), each token's group sums taken once (as bn_head_q7_rows takes its
 * activation sums) */
BN_INLINE void q4_rows(int form, const uint8_t *E, const float *group_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int first, int last) {
    const int groups = bn_q4_groups(dim), row_bytes = bn_q4_row_bytes(dim), whole = dim / BN_Q4_CHUNK;
    const int block = Q4_SUM_WORDS / groups < Q4_TOKENS ? Q4_SUM_WORDS / groups : Q4_TOKENS;
    int32_t zero_sum[Q4_SUM_WORDS];         /* BN_Q4_ZERO * sum(x) over each group of each token of the block */
    int8_t tail[Q4_TOKENS][BN_Q4_CHUNK];    /* each token's last partial chunk, zero-padded */
    for (int t0 = 0; t0 < n; t0 += block) {
        const int tn = n - t0 < block ? n - t0 : block;
        for (int t = 0; t < tn; t++) {
            const int8_t *x = xq + (size_t)(t0 + t) * dim;
            for (int g = 0, begin = 0; g < groups; g++, begin += BN_Q4_GROUP)
                zero_sum[t * groups + g] = BN_Q4_ZERO * bn_token_sum(x + begin, (begin + BN_Q4_GROUP < dim ? begin + BN_Q4_GROUP : dim) - begin);
            if (whole * BN_Q4_CHUNK < dim) bn_pad_tail(tail[t], x + whole * BN_Q4_CHUNK, dim - whole * BN_Q4_CHUNK, BN_Q4_CHUNK);
        }
        for (int v = first; v < last; v++) {
            bn_touch_stream_phase(E + (size_t)v * row_bytes, (size_t)row_bytes, v - first, last - first, tn);
            for (int t = 0; t < tn; t++)
                logits[(size_t)(t0 + t) * vocab + v] = q4_row_logit(form, E + (size_t)v * row_bytes, group_scale + (size_t)v * groups, dim,
                                                                    xq + (size_t)(t0 + t) * dim, tail[t], zero_sum + t * groups) / xscale[t0 + t];
        }
    }
}

void bn_head_q4_rows(const uint8_t *E, const float *group_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim, int v0, int v1) {
    const int first = v0 > 0 ? v0 : 0, last = v1 < vocab ? v1 : vocab;
    if (bn_q4_groups(dim) > Q4_SUM_WORDS) q4_rows_ref(E, group_scale, xq, xscale, logits, n, vocab, dim, first, last);
    else if (BN_RELAXED && bn_dot_form_in_use == BN_DOT_I32) q4_rows(BN_DOT_I32, E, group_scale, xq, xscale, logits, n, vocab, dim, first, last);
    else q4_rows(BN_DOT_I16, E, group_scale, xq, xscale, logits, n, vocab, dim, first, last);
}

void bn_head_q4(const uint8_t *E, const float *group_scale, const int8_t *xq, const float *xscale, float *logits, int n, int vocab, int dim) {
    bn_head_q4_rows(E, group_scale, xq, xscale, logits, n, vocab, dim, 0, vocab);
}
