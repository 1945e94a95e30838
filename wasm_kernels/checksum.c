/* The checksum a cached weight shard is stored with (web/checksum.js reads it): Fletcher sums over
 * little-endian 32-bit words in four lanes (word i in lane i % 4); per lane a += word, then b += a,
 * modulo 2^32. One v128 holds one word of each lane, so the SIMD path is the definition itself. */
#include "bitnet.h"

#define GROUP 16 /* bytes: one word per lane */

static uint32_t le_word(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void bn_checksum(const uint8_t *data, int bytes, uint32_t *sums) {
    v128_t a = wasm_v128_load(sums), b = wasm_v128_load(sums + 4);
    const int whole = bytes - bytes % GROUP;
    int i = 0;
    for (; i + 4 * GROUP <= whole; i += 4 * GROUP) {
        a = wasm_i32x4_add(a, wasm_v128_load(data + i)); b = wasm_i32x4_add(b, a);
        a = wasm_i32x4_add(a, wasm_v128_load(data + i + GROUP)); b = wasm_i32x4_add(b, a);
        a = wasm_i32x4_add(a, wasm_v128_load(data + i + 2 * GROUP)); b = wasm_i32x4_add(b, a);
        a = wasm_i32x4_add(a, wasm_v128_load(data + i + 3 * GROUP)); b = wasm_i32x4_add(b, a);
    }
    for (; i < whole; i += GROUP) {
        a = wasm_i32x4_add(a, wasm_v128_load(data + i)); b = wasm_i32x4_add(b, a);
    }
    if (i < bytes) {
        uint8_t last[GROUP] = {0};
        for (int j = 0; i + j < bytes; j++) last[j] = data[i + j];
        a = wasm_i32x4_add(a, wasm_v128_load(last)); b = wasm_i32x4_add(b, a);
    }
    wasm_v128_store(sums, a);
    wasm_v128_store(sums + 4, b);
}

void bn_checksum_ref(const uint8_t *data, int bytes, uint32_t *sums) {
    for (int i = 0; i < bytes; i += GROUP) {
        for (int lane = 0; lane < 4; lane++) {
            uint8_t word[4] = {0};
            for (int j = 0; j < 4 && i + 4 * lane + j < bytes; j++) word[j] = data[i + 4 * lane + j];
            sums[lane] += le_word(word);
            sums[4 + lane] += sums[lane];
        }
    }
}
