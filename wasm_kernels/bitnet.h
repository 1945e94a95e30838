/* The kernel ABI: every function the generated forward pass and the tests call.
 *
 * Conventions
 * - bn_X is the fast (SIMD) path, bn_X_ref its plain scalar reference; both give the same bits.
 * - Pointer arguments carry their element count as a bracketed comment, e.g. float *y [n*dim].
 *   The Python binding (wasm_kernels/abi.py) reads those to check every array before a call, so C
 *   never reads or writes past what it was given. Names in brackets are the scalar arguments
 *   or size functions of wasm_kernels/abi.py and layouts.py.
 * - Matrices are row-major; n is the number of tokens (rows of activations).
 * - f16 and bf16 values travel as uint16_t bit patterns.
 */
#ifndef BITNET_H
#define BITNET_H

#include "simd.h"

/* ---- quantize.c: per-token absmax int8 activations (BitNet b1.58 semantics) ----
 * scale[t] = 127 / max(max_i |x[t,i]|, 1e-5), NaN where x[t] holds a NaN;  q = clamp(round_half_even(x * scale), -128, 127), 0 where NaN */
BN_API void bn_quantize_rows(const float *x /*[n*k]*/, int8_t *q /*[n*k]*/, float *scale /*[n]*/, int n, int k);
BN_REF_API void bn_quantize_rows_ref(const float *x /*[n*k]*/, int8_t *q /*[n*k]*/, float *scale /*[n]*/, int n, int k);

/* ---- bitlinear_mad.c / bitlinear_lut.c / bitlinear_binary.c: int8 x {ternary, binary} ----
 * y[t,o] = (float)acc / (scale[t] * wscale), acc = sum_i q[t,i] * W[o,i] in exact int32.
 * wscale is the INVERSE weight scale, as in BitNet b1.58 2B4T's weight_scale.
 * w is the matrix packed by layouts.pack_<layout>(W); scratch is the layout's working memory.
 * bn_bitlinear_mad_relaxed exists only in the relaxed builds; the unsuffixed names run the best
 * path of the build. Exact for in < 2^17. */
/* the simd128 path of mad and binary prepares the activations of the tokens it serves at once in this
 * many bytes of stack (2 per column and token), else block by block for every tile (wider rows) */
#define BN_PLANE_PREP_BYTES 65536
/* the relaxed path of mad and binary unpacks a tile's codes, a byte per column, this many columns at a time in
 * prefill (4 rows: 8 KB of stack, in L1 beside 4 tokens' activations), then multiplies without shift or mask */
#define BN_PLANE_SEGMENT_COLS 2048
BN_API void bn_bitlinear_mad(const uint8_t *w /*[mad_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n);
BN_REF_API void bn_bitlinear_mad_ref(const uint8_t *w /*[mad_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n);
BN_API void bn_bitlinear_mad_simd128(const uint8_t *w /*[mad_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n);
BN_API void bn_bitlinear_mad_relaxed(const uint8_t *w /*[mad_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n);

BN_API void bn_bitlinear_lut(const uint8_t *w /*[lut_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, uint8_t *scratch /*[lut_scratch_bytes(in_)]*/, int out, int in_, int n);
BN_REF_API void bn_bitlinear_lut_ref(const uint8_t *w /*[lut_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, uint8_t *scratch /*[lut_scratch_bytes(in_)]*/, int out, int in_, int n);

BN_API void bn_bitlinear_binary(const uint8_t *w /*[binary_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n);
BN_REF_API void bn_bitlinear_binary_ref(const uint8_t *w /*[binary_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n);
/* _rows: only the output features o0 <= o < o1 of every token (any bounds; the rest of y untouched) */
BN_API void bn_bitlinear_mad_rows(const uint8_t *w /*[mad_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n, int o0, int o1);
BN_API void bn_bitlinear_lut_rows(const uint8_t *w /*[lut_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, uint8_t *scratch /*[lut_scratch_bytes(in_)]*/, int out, int in_, int n, int o0, int o1);
BN_API void bn_bitlinear_binary_rows(const uint8_t *w /*[binary_bytes(out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, int out, int in_, int n, int o0, int o1);

/* ---- layouts.c: the layouts as a table, indexed by these ids (wasm_kernels/layouts.py's LAYOUTS order);
 * the wrappers below run any of them. scratch may be null where the layout needs none. ---- */
enum bn_layout { BN_LAYOUT_MAD, BN_LAYOUT_LUT, BN_LAYOUT_BINARY, BN_LAYOUTS };
/* The packed formats' shapes, read by layouts.py from here: the bit-plane layouts' row tile and bytes per row per
 * column block (bitlinear_planes.h); the LUT layout's row tile, columns per chunk, and tokens whose tables its
 * scratch holds (bitlinear_lut.c) */
#define BN_PLANE_ROWS 4
#define BN_PLANE_CHUNK 16
#define BN_LUT_ROWS 16
#define BN_LUT_COLS 4
#define BN_LUT_TOKENS 4
BN_API int bn_layout_scratch_bytes(int layout, int in_);  /* one thread's working memory; 0 for an unknown layout */

/* ---- repeat.c: `reps` one-token calls of a bitlinear kernel in a row (for timing it without the
 * host's per-call overhead); y holds the last call's result ---- */
BN_API void bn_bitlinear_repeat(int layout, const uint8_t *w /*[layout_bytes(layout, out, in_)]*/, float wscale, const int8_t *q /*[in_]*/, const float *scale /*[1]*/, float *y /*[out]*/, uint8_t *scratch /*[layout_scratch_bytes(layout, in_)]*/, int out, int in_, int reps);

/* ---- stream.c: the memory-read roofline of the runtime (v128 loads over a buffer) ---- */
BN_API uint32_t bn_stream_read(const uint8_t *buf /*[bytes]*/, int bytes);

/* ---- checksum.c: the check of a weight shard cached in the browser ----
 * sums [a0..a3, b0..b3] += data zero-padded to whole 16-byte groups: per group, lane l (0..3) takes the
 * little-endian 32-bit word l, a_l += word, then b_l += a_l, modulo 2^32. Start from zeros; a shard
 * given in pieces gives the same sums if every piece but the last is whole groups. */
#define BN_CHECKSUM_SUMS 8
BN_API void bn_checksum(const uint8_t *data /*[bytes]*/, int bytes, uint32_t *sums /*[BN_CHECKSUM_SUMS]*/);
BN_REF_API void bn_checksum_ref(const uint8_t *data /*[bytes]*/, int bytes, uint32_t *sums /*[BN_CHECKSUM_SUMS]*/);

/* ---- dot_form.c: the relaxed build's int8 dot in one of two forms that give the same sums. An i32
 * dot-add is one instruction where the CPU has an int8 dot (x86 VNNI, ARM sdot) and three elsewhere,
 * where an i16 dot summed in i16 is two: the host times both with bn_dot_form_probe and keeps the faster.
 * Returns the form in use (the simd128 build has neither and ignores it; I16 until set). ---- */
#define BN_DOT_I16 0
#define BN_DOT_I32 1
#define BN_DOT_FORMS 2
BN_API int bn_set_dot_form(int form);
/* the MAD kernel's decode step in the form in use, `reps` times on one 4-row tile of 1024 columns in
 * BN_DOT_FORM_PROBE_BYTES of mem (any content: codes, then activations); returns a fold of the sums
 * (kernels' work, not bn_dot_peak's bare dots: there the two forms can tie where the kernels differ) */
#define BN_DOT_FORM_PROBE_BYTES 2112
BN_API uint32_t bn_dot_form_probe(const uint8_t *mem /*[BN_DOT_FORM_PROBE_BYTES]*/, int reps);

/* ---- read_ahead.c: whether the kernels that stream their weights as one run of tiles (the ternary
 * linears, the int8 and 7-bit heads) read a decode call's weights a phase ahead, one load per cache line, before
 * computing them (touch.h; the other heads always do). Faster where the CPU's own prefetch
 * keeps too few misses in flight (1.5-2x on an Intel Xeon), slower where it streams well (0.56x on an AMD
 * Zen 4): the host times both and keeps the faster. Same sums either way. Returns the setting (1 until set;
 * other values ignored). ---- */
BN_API int bn_set_read_ahead(int on);

/* ---- dot_peak.c: the int8-dot compute roofline of the runtime: `reps` passes over the whole 16-byte
 * vectors of act, each vector multiplied into BN_DOT_PEAK_ROWS weight rows (16 * BN_DOT_PEAK_ROWS
 * multiply-adds) by the build's ternary inner product in the dot form in use; returns a fold of the sums ---- */
#define BN_DOT_PEAK_ROWS 8
BN_API uint32_t bn_dot_peak(const int8_t *act /*[bytes]*/, int bytes, int reps);

/* ---- norm.c: y[t] = weight * (x[t] / sqrt(mean(x[t]^2) + eps)) ---- */
BN_API void bn_rmsnorm(const float *x /*[n*dim]*/, const float *weight /*[dim]*/, float *y /*[n*dim]*/, int n, int dim, float eps);
BN_REF_API void bn_rmsnorm_ref(const float *x /*[n*dim]*/, const float *weight /*[dim]*/, float *y /*[n*dim]*/, int n, int dim, float eps);

/* ---- rope.c: rotate-half RoPE, in place, on x[n, heads, head_dim] at positions pos0 + t:
 * for i < head_dim/2, angle = pos * theta^(-2i/head_dim);
 * (x_i, x_{i+d/2}) -> (x_i cos - x_{i+d/2} sin, x_{i+d/2} cos + x_i sin) ---- */
BN_API void bn_rope(float *x /*[n*heads*head_dim]*/, int n, int heads, int head_dim, int pos0, float theta);
BN_REF_API void bn_rope_ref(float *x /*[n*heads*head_dim]*/, int n, int heads, int head_dim, int pos0, float theta);

/* ---- attention.c: causal GQA attention over an f16 (or, bn_*_f32, an f32) KV cache ----
 * q, out: [n, heads, head_dim]; caches: [kv_heads, context, head_dim], rows 0 .. pos0+n-1 of each kv head valid;
 * query t (position pos0+t) attends to rows 0..pos0+t; head h reads kv head h / (heads/kv_heads);
 * scores * 1/sqrt(head_dim), softmax with the max subtracted, bn_expf. scratch: the scores and sums of
 * the query heads that share a kv head, four cache rows as f32, then (a prompt over the f16 cache) one kv
 * head's key and value rows as f32 (attention_scratch; abi.py). */
/* whether rows pos0 .. pos0+n-1 of each kv head lie within a cache of `context` rows: every attention and kv store
 * call checks it, and does nothing where they do not */
static inline int bn_kv_rows_fit(int n, int kv_heads, int head_dim, int context, int pos0) {
    return n > 0 && kv_heads > 0 && head_dim > 0 && pos0 >= 0 && pos0 + n <= context;
}
static inline int bn_attention_scratch(int heads, int kv_heads, int head_dim, int positions) {
    const int group = kv_heads > 0 ? (heads + kv_heads - 1) / kv_heads : 0;
    return group * (positions + 1) + 4 * head_dim + 2 * positions * head_dim;
}
BN_API void bn_attention(const float *q /*[n*heads*head_dim]*/, const uint16_t *k_cache /*[kv_heads*context*head_dim]*/, const uint16_t *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0);
BN_REF_API void bn_attention_ref(const float *q /*[n*heads*head_dim]*/, const uint16_t *k_cache /*[kv_heads*context*head_dim]*/, const uint16_t *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0);
/* only the query heads h0 <= h < h1 */
BN_API void bn_attention_heads(const float *q /*[n*heads*head_dim]*/, const uint16_t *k_cache /*[kv_heads*context*head_dim]*/, const uint16_t *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0, int h0, int h1);
/* rows pos0 .. pos0+n-1 of each kv head of the cache = f16(x[n, kv_heads, head_dim]), round to nearest even */
BN_API void bn_kv_store(const float *x /*[n*kv_heads*head_dim]*/, uint16_t *cache /*[kv_heads*context*head_dim]*/, int n, int kv_heads, int head_dim, int context, int pos0);
/* the same over an f32 cache (build option --kv f32): rows pos0 .. pos0+n-1 of each kv head = x[n, kv_heads, head_dim] */
BN_API void bn_attention_f32(const float *q /*[n*heads*head_dim]*/, const float *k_cache /*[kv_heads*context*head_dim]*/, const float *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0);
BN_REF_API void bn_attention_f32_ref(const float *q /*[n*heads*head_dim]*/, const float *k_cache /*[kv_heads*context*head_dim]*/, const float *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0);
BN_API void bn_attention_f32_heads(const float *q /*[n*heads*head_dim]*/, const float *k_cache /*[kv_heads*context*head_dim]*/, const float *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0, int h0, int h1);
BN_API void bn_kv_store_f32(const float *x /*[n*kv_heads*head_dim]*/, float *cache /*[kv_heads*context*head_dim]*/, int n, int kv_heads, int head_dim, int context, int pos0);

/* ---- activations.c (y may alias an input) ---- */
BN_API void bn_relu2_mul(const float *gate /*[n]*/, const float *up /*[n]*/, float *y /*[n]*/, int n);      /* max(g,0)^2 * up */
BN_REF_API void bn_relu2_mul_ref(const float *gate /*[n]*/, const float *up /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_silu_mul(const float *gate /*[n]*/, const float *up /*[n]*/, float *y /*[n]*/, int n);       /* g / (1 + exp(-g)) * up */
BN_REF_API void bn_silu_mul_ref(const float *gate /*[n]*/, const float *up /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_add(const float *a /*[n]*/, const float *b /*[n]*/, float *y /*[n]*/, int n);
BN_REF_API void bn_add_ref(const float *a /*[n]*/, const float *b /*[n]*/, float *y /*[n]*/, int n);

/* ---- embed.c: y[t] = row ids[t] of the table as f32; an id outside [0, vocab) gives zeros ---- */
BN_API void bn_embed_f32(const float *table /*[vocab*dim]*/, const int32_t *ids /*[n]*/, float *y /*[n*dim]*/, int n, int dim, int vocab);
BN_API void bn_embed_f16(const uint16_t *table /*[vocab*dim]*/, const int32_t *ids /*[n]*/, float *y /*[n*dim]*/, int n, int dim, int vocab);
BN_API void bn_embed_bf16(const uint16_t *table /*[vocab*dim]*/, const int32_t *ids /*[n]*/, float *y /*[n*dim]*/, int n, int dim, int vocab);
/* int8 and 7-bit tables: one byte per value, vocab * dim bytes in tiles of BN_TABLE_TILE_ROWS rows, so that a
 * head reads one stream of bytes, not one per row: in a tile, chunk c (BN_TABLE_CHUNK columns) of its row r at
 * (c * BN_TABLE_TILE_ROWS + r) * BN_TABLE_CHUNK, then the rows' last dim % BN_TABLE_CHUNK columns row by row;
 * the vocab % BN_TABLE_TILE_ROWS rows after the last tile follow, row by row. */
#define BN_TABLE_TILE_ROWS 8
#define BN_TABLE_CHUNK 16
_Static_assert(BN_TABLE_CHUNK == 16, "kernels read a chunk as one v128");
static inline size_t bn_table_at(int v, int i, int dim, int vocab) {  /* row v column i's byte: the layout above, one element at a time */
    const int r = v % BN_TABLE_TILE_ROWS, whole = dim / BN_TABLE_CHUNK * BN_TABLE_CHUNK;
    const size_t tile = (size_t)(v - r) * dim;
    if (v >= vocab / BN_TABLE_TILE_ROWS * BN_TABLE_TILE_ROWS) return (size_t)v * dim + i;
    if (i < whole) return tile + ((size_t)(i / BN_TABLE_CHUNK) * BN_TABLE_TILE_ROWS + r) * BN_TABLE_CHUNK + i % BN_TABLE_CHUNK;
    return tile + (size_t)whole * BN_TABLE_TILE_ROWS + (size_t)r * (dim - whole) + (i - whole);
}
BN_API void bn_embed_q8(const int8_t *table /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int32_t *ids /*[n]*/, float *y /*[n*dim]*/, int n, int dim, int vocab); /* q * row_scale */
/* 7-bit tables store q + BN_Q7_ZERO, q in -63..63 */
#define BN_Q7_ZERO 64
BN_API void bn_embed_q7(const uint8_t *table /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int32_t *ids /*[n]*/, float *y /*[n*dim]*/, int n, int dim, int vocab); /* (code - BN_Q7_ZERO) * row_scale */
/* 4-bit tables: codes q + BN_Q4_ZERO in 1..15 (q in -7..7), two per byte, and an f32 scale per
 * group of BN_Q4_GROUP columns of a row (the last group of a row may be shorter): value = q * scale.
 * A row is whole chunks of BN_Q4_CHUNK columns in BN_Q4_CHUNK / 2 bytes, padded with BN_Q4_ZERO
 * (weight 0); byte j of chunk m holds column BN_Q4_CHUNK*m + j in its low nibble and
 * BN_Q4_CHUNK*m + BN_Q4_CHUNK/2 + j in its high one, so each nibble plane meets 16 consecutive
 * activations. Sizes: q4_row_bytes(dim) bytes and q4_groups(dim) scales a row (abi.py). */
#define BN_Q4_ZERO 8
#define BN_Q4_GROUP 64
#define BN_Q4_CHUNK 32
_Static_assert(BN_Q4_CHUNK == 32 && BN_Q4_GROUP % BN_Q4_CHUNK == 0, "kernels read a chunk as one v128, a group as whole chunks");
static inline int bn_q4_groups(int dim) { return (dim + BN_Q4_GROUP - 1) / BN_Q4_GROUP; }
static inline int bn_q4_row_bytes(int dim) { return (dim + BN_Q4_CHUNK - 1) / BN_Q4_CHUNK * (BN_Q4_CHUNK / 2); }
static inline int bn_q4_code(const uint8_t *row, int i) {  /* column i's code: the layout above, one element at a time */
    const uint8_t byte = row[i / BN_Q4_CHUNK * (BN_Q4_CHUNK / 2) + i % (BN_Q4_CHUNK / 2)];
    return i % BN_Q4_CHUNK < BN_Q4_CHUNK / 2 ? byte & 0x0F : byte >> 4;
}
BN_API void bn_embed_q4(const uint8_t *table /*[vocab*q4_row_bytes(dim)]*/, const float *group_scale /*[vocab*q4_groups(dim)]*/, const int32_t *ids /*[n]*/, float *y /*[n*dim]*/, int n, int dim, int vocab); /* (code - BN_Q4_ZERO) * its group's scale */

/* ---- head.c: logits[t, v] = x[t] . E[v] ----
 * f16 rows: f32 products summed in the four-lane order of simd.h; E must be finite (no inf/nan:
 *   the SIMD path converts only finite halves, as the build guarantees).
 * int8 rows: exact int32 dot of quantized x with E, logits = acc * row_scale[v] / xscale[t].
 * 7-bit rows: the same with acc = dot(xq[t], E[v] - BN_Q7_ZERO), through the relaxed i8 x i7 dot
 *   of the ternary kernels in the relaxed builds (the same exact int32 in every build).
 * 4-bit rows: per group g of the row, the exact int32 d_g = dot(xq[t], codes) - BN_Q4_ZERO * sum(xq[t])
 *   over the group's columns; acc = 0.0f, then acc = acc + (float)d_g * group_scale[v][g] for g in
 *   order (f32, no fused multiply-add); logits = acc / xscale[t]; the dots in the relaxed dot form in use
 *   (bn_set_dot_form), i16 dots in the SIMD128 builds. */
BN_API void bn_head_f16(const uint16_t *E /*[vocab*dim]*/, const float *x /*[n*dim]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_REF_API void bn_head_f16_ref(const uint16_t *E /*[vocab*dim]*/, const float *x /*[n*dim]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_head_q8(const int8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_REF_API void bn_head_q8_ref(const int8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_head_q7(const uint8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_REF_API void bn_head_q7_ref(const uint8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_head_q4(const uint8_t *E /*[vocab*q4_row_bytes(dim)]*/, const float *group_scale /*[vocab*q4_groups(dim)]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_REF_API void bn_head_q4_ref(const uint8_t *E /*[vocab*q4_row_bytes(dim)]*/, const float *group_scale /*[vocab*q4_groups(dim)]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
/* _rows: only the vocabulary rows v0 <= v < v1 */
BN_API void bn_head_f16_rows(const uint16_t *E /*[vocab*dim]*/, const float *x /*[n*dim]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim, int v0, int v1);
BN_API void bn_head_q8_rows(const int8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim, int v0, int v1);
BN_API void bn_head_q7_rows(const uint8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim, int v0, int v1);
BN_API void bn_head_q4_rows(const uint8_t *E /*[vocab*q4_row_bytes(dim)]*/, const float *group_scale /*[vocab*q4_groups(dim)]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim, int v0, int v1);

/* ---- parallel.c: the ops the forward pass splits among threads ----
 * The threaded wasm builds (BN_THREADS=1) run the caller (the leader) and threads-1 followers over
 * one shared memory; each follower runs bn_thread_main(1 .. threads-1) forever in its own worker.
 * bn_threads_init(threads) sets how many take part and returns it, or 0 if threads is not in
 * 1 .. BN_MAX_THREADS (1 .. 1 in the other builds, which run every job on the caller).
 * bn_X_parallel gives the same bits as bn_X: rows, vocabulary rows or heads are shared out whole.
 * Scratch holds one thread's working memory per possible thread. */
#define BN_MAX_THREADS 8
BN_API int bn_threads_init(int threads);
BN_API void bn_thread_main(int index);
BN_API void bn_bitlinear_parallel(int layout, const uint8_t *w /*[layout_bytes(layout, out, in_)]*/, float wscale, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, float *y /*[n*out]*/, uint8_t *scratch /*[BN_MAX_THREADS*layout_scratch_bytes(layout, in_)]*/, int out, int in_, int n);
/* the linears of one input (q, k, v; gate, up) as one job: the same bits as a bn_bitlinear_parallel call each */
BN_API void bn_bitlinear2_parallel(int layout, const uint8_t *w0 /*[layout_bytes(layout, out0, in_)]*/, float wscale0, float *y0 /*[n*out0]*/, int out0, const uint8_t *w1 /*[layout_bytes(layout, out1, in_)]*/, float wscale1, float *y1 /*[n*out1]*/, int out1, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, uint8_t *scratch /*[BN_MAX_THREADS*layout_scratch_bytes(layout, in_)]*/, int in_, int n);
BN_API void bn_bitlinear3_parallel(int layout, const uint8_t *w0 /*[layout_bytes(layout, out0, in_)]*/, float wscale0, float *y0 /*[n*out0]*/, int out0, const uint8_t *w1 /*[layout_bytes(layout, out1, in_)]*/, float wscale1, float *y1 /*[n*out1]*/, int out1, const uint8_t *w2 /*[layout_bytes(layout, out2, in_)]*/, float wscale2, float *y2 /*[n*out2]*/, int out2, const int8_t *q /*[n*in_]*/, const float *scale /*[n]*/, uint8_t *scratch /*[BN_MAX_THREADS*layout_scratch_bytes(layout, in_)]*/, int in_, int n);
BN_API void bn_head_f16_parallel(const uint16_t *E /*[vocab*dim]*/, const float *x /*[n*dim]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_head_q8_parallel(const int8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_head_q7_parallel(const uint8_t *E /*[vocab*dim]*/, const float *row_scale /*[vocab]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_head_q4_parallel(const uint8_t *E /*[vocab*q4_row_bytes(dim)]*/, const float *group_scale /*[vocab*q4_groups(dim)]*/, const int8_t *xq /*[n*dim]*/, const float *xscale /*[n]*/, float *logits /*[n*vocab]*/, int n, int vocab, int dim);
BN_API void bn_attention_parallel(const float *q /*[n*heads*head_dim]*/, const uint16_t *k_cache /*[kv_heads*context*head_dim]*/, const uint16_t *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[BN_MAX_THREADS*attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0);
BN_API void bn_attention_f32_parallel(const float *q /*[n*heads*head_dim]*/, const float *k_cache /*[kv_heads*context*head_dim]*/, const float *v_cache /*[kv_heads*context*head_dim]*/, float *out /*[n*heads*head_dim]*/, float *scratch /*[BN_MAX_THREADS*attention_scratch(heads, kv_heads, head_dim, pos0+n)]*/, int n, int heads, int kv_heads, int head_dim, int context, int pos0);

/* ---- sample.c ----
 * bn_argmax: index of the first maximum.
 * bn_rng_next: splitmix64 step on *state, returns the high 32 bits.
 * bn_sample: temperature <= 0 -> argmax. Otherwise p = softmax(logits / temperature); keep the
 * top_k most likely (top_k <= 0: all), then the smallest prefix (by descending p, ties by lower
 * index) whose mass reaches top_p (top_p >= 1: all), then those with p >= min_p * p_max; draw
 * u = (bn_rng_next >> 8) * 2^-24 and return the first kept token whose cumulative mass exceeds
 * u * kept_mass. scratch_p / scratch_idx: working memory. */
BN_API int bn_argmax(const float *x /*[n]*/, int n);
BN_API uint32_t bn_rng_next(uint64_t *state /*[1]*/);
BN_API int bn_sample(const float *logits /*[n]*/, int n, float temperature, int top_k, float top_p, float min_p, uint64_t *rng_state /*[1]*/, float *scratch_p /*[n]*/, int32_t *scratch_idx /*[n]*/);

/* ---- step.c: one generation step, shared by the Python and JS hosts ----
 * bn_penalize: for each distinct token v among history[0..n_history) (ids outside [0, n) ignored),
 *   seen c times: l = logits[v]; if repetition != 1, l = l > 0 ? l / repetition : l * repetition;
 *   logits[v] = l - ((float)c * frequency + presence). Nothing changes when repetition is 1 and
 *   presence and frequency are 0. counts: working memory.
 * bn_generate_step: the token at `position` (1 <= position <= context), after `generated` new
 *   tokens (0 <= generated < max_new_tokens): bn_penalize over tokens[0..position), then
 *   bn_sample. Writes it to step[BN_STEP_TOKEN] and, if position < context, to tokens[position].
 *   Returns why the generation ends there, in this order: BN_STEP_EOS (one of the
 *   step[BN_STEP_STOP_TOKENS ..] ids; unused entries hold -1), BN_STEP_LENGTH (the
 *   max_new_tokens-th), BN_STEP_CONTEXT (position == context: no room to run it); otherwise
 *   BN_STEP_CONTINUE. BN_STEP_BAD_ARGUMENT if an argument is out of range (bn_step_arguments_valid);
 *   BN_STEP_BAD_LOGITS if a logit is NaN or +-inf (finite weights whose arithmetic overflowed: nothing is chosen). */
#define BN_STEP_BAD_ARGUMENT -1
#define BN_STEP_BAD_LOGITS -2
#define BN_STEP_CONTINUE 0
#define BN_STEP_EOS 1
#define BN_STEP_LENGTH 2
#define BN_STEP_CONTEXT 3
#define BN_STEP_TOKEN 0
#define BN_STEP_STOP_TOKENS 1
#define BN_MAX_STOP_TOKENS 8
#define BN_STEP_WORDS 9
BN_API void bn_penalize(float *logits /*[n]*/, int n, const int32_t *history /*[n_history]*/, int n_history, float repetition, float presence, float frequency, int32_t *counts /*[n]*/);
BN_API int bn_step_arguments_valid(int n, int context, int position, int generated, int max_new_tokens);
BN_API int bn_generate_step(float *logits /*[n]*/, int n, int32_t *tokens /*[context]*/, int context, int position, int generated, int max_new_tokens, int32_t *step /*[BN_STEP_WORDS]*/, float temperature, int top_k, float top_p, float min_p, float repetition, float presence, float frequency, uint64_t *rng_state /*[1]*/, float *scratch_p /*[n]*/, int32_t *scratch_idx /*[n]*/);

/* ---- bn_math.h exported for tests: y = f(x) elementwise with our own freestanding math ---- */
BN_API void bn_expf_array(const float *x /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_logf_array(const float *x /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_sinf_array(const float *x /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_cosf_array(const float *x /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_f32_to_f16_array(const float *x /*[n]*/, uint16_t *y /*[n]*/, int n);
BN_API void bn_f16_to_f32_array(const uint16_t *x /*[n]*/, float *y /*[n]*/, int n);
BN_API void bn_bf16_to_f32_array(const uint16_t *x /*[n]*/, float *y /*[n]*/, int n);

#endif
