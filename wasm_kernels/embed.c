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


/* row v of an int8 or 7-bit table (bitnet.h): chunk c at chunks + c * stride, the last dim % BN_TABLE_CHUNK columns at tail */
typedef struct { const uint8_t *chunks, *tail; size_t stride; } TableRow;

static TableRow table_row(const uint8_t *table, int v, int dim, int vocab) {
    const int whole = dim / BN_TABLE_CHUNK * BN_TABLE_CHUNK, tiled = v < vocab / BN_TABLE_TILE_ROWS * BN_TABLE_TILE_ROWS;
    return (TableRow){ table + bn_table_at(v, 0, dim, vocab), table + bn_table_at(v, whole, dim, vocab),
                       tiled ? BN_TABLE_TILE_ROWS * BN_TABLE_CHUNK : BN_TABLE_CHUNK };
}

/* (value - zero) * row scale, the value an int8 (signed) or a 7-bit code (unsigned) */
BN_INLINE void embed_bytes(int is_signed, int zero, const uint8_t *table, const float *row_scale, const int32_t *ids, float *y, int n, int dim, int vocab) {
    const int whole = dim / BN_TABLE_CHUNK * BN_TABLE_CHUNK;
    for (int t = 0; t < n; t++, y += dim) {
        if (!in_vocab(ids[t], vocab)) { zero_row(y, dim); continue; }
        const TableRow row = table_row(table, ids[t], dim, vocab);
        const float s = row_scale[ids[t]];
        const v128_t vs = wasm_f32x4_splat(s), zeros = wasm_i16x8_splat((int16_t)zero);
        for (int i = 0; i < whole; i += BN_TABLE_CHUNK) {
            const v128_t bytes = wasm_v128_load(row.chunks + (size_t)(i / BN_TABLE_CHUNK) * row.stride);
            const v128_t lo = is_signed ? wasm_i16x8_extend_low_i8x16(bytes) : wasm_u16x8_extend_low_u8x16(bytes);
            const v128_t hi = is_signed ? wasm_i16x8_extend_high_i8x16(bytes) : wasm_u16x8_extend_high_u8x16(bytes);
            store_scaled_i16x8(y + i, wasm_i16x8_sub(lo, zeros), vs);
            store_scaled_i16x8(y + i + 8, wasm_i16x8_sub(hi, zeros), vs);
        }
        for (int i = whole; i < dim; i++) y[i] = (float)((is_signed ? (int)(int8_t)row.tail[i - whole] : (int)row.tail[i - whole]) - zero) * s;
    }
}

void bn_embed_q8(const int8_t *table, const float *row_scale, const int32_t *ids, float *y, int n, int dim, int vocab) {
    embed_bytes(1, 0, (const uint8_t *)table, row_scale, ids, y, n, dim, vocab);
}

void bn_embed_q7(const uint8_t *table, const float *row_scale, const int32_t *ids, float *y, int n, int dim, int vocab) {
    embed_bytes(0, BN_Q7_ZERO, table, row_scale, ids, y, n, dim, vocab);
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
