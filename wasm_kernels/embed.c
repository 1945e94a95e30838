/* Embedding lookup: y[t] = row ids[t] of the table as f32; an id outside [0, vocab) gives zeros. */
#include "bitnet.h"
#include "bn_math.h"

static int in_vocab(int32_t id, int vocab) { return id >= 0 && id < vocab; }

/* no libc in the native build: keep clang from turning the loop into a memset call */
__attribute__((no_builtin("memset"))) static void zero_row(float *y, int dim) {
    int i = 0;
    for (; i + 4 <= dim; i += 4) wasm_v128_store(y + i, wasm_f32x4_splat(0.0f));
    for (; i < dim; i++) y[i] = 0.0f;
}

/* y[0..8) = q (8 x i16) * scale */
static void store_scaled_i16x8(float *y, v128_t q, v128_t scale) {
    wasm_v128_store(y, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(q)), scale));
    wasm_v128_store(y + 4, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(wasm_i32x4_extend_high_i16x8(q)), scale));
}

void bn_embed_f32(const float *table, const int32_t *ids, float *y, int n, int dim, int vocab) {
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const float *row = table + (size_t)ids[t] * dim;
        int i = 0;
        for (; i + 4 <= dim; i += 4) wasm_v128_store(y + i, wasm_v128_load(row + i));
        for (; i < dim; i++) y[i] = row[i];
    }
}

void bn_embed_f16(const uint16_t *table, const int32_t *ids, float *y, int n, int dim, int vocab) {
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const uint16_t *row = table + (size_t)ids[t] * dim;
        int i = 0;
        for (; i + 8 <= dim; i += 8) {
            v128_t h = wasm_v128_load(row + i);
            wasm_v128_store(y + i, bn_f16x4_to_f32x4(wasm_i32x4_extend_low_i16x8(h)));
            wasm_v128_store(y + i + 4, bn_f16x4_to_f32x4(wasm_i32x4_extend_high_i16x8(h)));
        }
        for (; i < dim; i++) y[i] = bn_f16_to_f32(row[i]);
    }
}

void bn_embed_bf16(const uint16_t *table, const int32_t *ids, float *y, int n, int dim, int vocab) {
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const uint16_t *row = table + (size_t)ids[t] * dim;
        int i = 0;
        for (; i + 8 <= dim; i += 8) {
            v128_t h = wasm_v128_load(row + i);
            wasm_v128_store(y + i, wasm_i32x4_shl(wasm_u32x4_extend_low_u16x8(h), 16));
            wasm_v128_store(y + i + 4, wasm_i32x4_shl(wasm_u32x4_extend_high_u16x8(h), 16));
        }
        for (; i < dim; i++) y[i] = bn_bf16_to_f32(row[i]);
    }
}

void bn_embed_q8(const int8_t *table, const float *row_scale, const int32_t *ids, float *y, int n, int dim, int vocab) {
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const int8_t *row = table + (size_t)ids[t] * dim;
        const float s = row_scale[ids[t]];
        const v128_t vs = wasm_f32x4_splat(s);
        int i = 0;
        for (; i + 8 <= dim; i += 8) store_scaled_i16x8(y + i, wasm_i16x8_extend_low_i8x16(wasm_v128_load64_zero(row + i)), vs);
        for (; i < dim; i++) y[i] = (float)row[i] * s;
    }
}

/* row v of a 7-bit table (bitnet.h): chunk c at chunks + c * stride, the last dim % BN_Q7_CHUNK columns at tail */
typedef struct { const uint8_t *chunks, *tail; size_t stride; } Q7Row;

static Q7Row q7_row(const uint8_t *table, int v, int dim, int vocab) {
    const int r = v % BN_Q7_TILE_ROWS, whole = dim / BN_Q7_CHUNK * BN_Q7_CHUNK;
    const uint8_t *tile = table + (size_t)(v - r) * dim;
    if (v >= vocab / BN_Q7_TILE_ROWS * BN_Q7_TILE_ROWS) return (Q7Row){ table + (size_t)v * dim, table + (size_t)v * dim + whole, BN_Q7_CHUNK };
    return (Q7Row){ tile + r * BN_Q7_CHUNK, tile + (size_t)whole * BN_Q7_TILE_ROWS + (size_t)r * (dim - whole), BN_Q7_TILE_ROWS * BN_Q7_CHUNK };
}

void bn_embed_q7(const uint8_t *table, const float *row_scale, const int32_t *ids, float *y, int n, int dim, int vocab) {
    const int whole = dim / BN_Q7_CHUNK * BN_Q7_CHUNK;
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const Q7Row row = q7_row(table, ids[t], dim, vocab);
        const float s = row_scale[ids[t]];
        const v128_t vs = wasm_f32x4_splat(s), zero = wasm_i16x8_splat(BN_Q7_ZERO);
        for (int i = 0; i < whole; i += BN_Q7_CHUNK) {
            const v128_t codes = wasm_v128_load(row.chunks + (size_t)(i / BN_Q7_CHUNK) * row.stride);
            store_scaled_i16x8(y + i, wasm_i16x8_sub(wasm_u16x8_extend_low_u8x16(codes), zero), vs);
            store_scaled_i16x8(y + i + 8, wasm_i16x8_sub(wasm_u16x8_extend_high_u8x16(codes), zero), vs);
        }
        for (int i = whole; i < dim; i++) y[i] = (float)(row.tail[i - whole] - BN_Q7_ZERO) * s;
    }
}

/* y[0..16) = q (16 x i8) * scale */
static void store_scaled_i8x16(float *y, v128_t q, v128_t scale) {
    store_scaled_i16x8(y, wasm_i16x8_extend_low_i8x16(q), scale);
    store_scaled_i16x8(y + 8, wasm_i16x8_extend_high_i8x16(q), scale);
}

void bn_embed_q4(const uint8_t *table, const float *group_scale, const int32_t *ids, float *y, int n, int dim, int vocab) {
    const int row_bytes = bn_q4_row_bytes(dim), groups = bn_q4_groups(dim), whole = dim / BN_Q4_CHUNK;
    const v128_t nibble = wasm_i8x16_splat(0x0F), zero = wasm_i8x16_splat(BN_Q4_ZERO);
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const uint8_t *row = table + (size_t)ids[t] * row_bytes;
        const float *scale = group_scale + (size_t)ids[t] * groups;
        for (int m = 0; m < whole; m++) {  /* one chunk: its two nibble planes, 16 columns each */
            const v128_t codes = wasm_v128_load(row + m * (BN_Q4_CHUNK / 2)), s = wasm_f32x4_splat(scale[m * BN_Q4_CHUNK / BN_Q4_GROUP]);
            store_scaled_i8x16(y + m * BN_Q4_CHUNK, wasm_i8x16_sub(wasm_v128_and(codes, nibble), zero), s);
            store_scaled_i8x16(y + m * BN_Q4_CHUNK + BN_Q4_CHUNK / 2, wasm_i8x16_sub(wasm_v128_and(wasm_u16x8_shr(codes, 4), nibble), zero), s);
        }
        for (int i = whole * BN_Q4_CHUNK; i < dim; i++) y[i] = (float)(bn_q4_code(row, i) - BN_Q4_ZERO) * scale[i / BN_Q4_GROUP];
    }
}
