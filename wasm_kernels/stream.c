/* The read-bandwidth roofline: v128 loads over a buffer, folded so none can be optimised away. */
#include "bitnet.h"

uint32_t bn_stream_read(const uint8_t *buf, int bytes) {
    v128_t acc[4] = {wasm_i32x4_splat(0), wasm_i32x4_splat(0), wasm_i32x4_splat(0), wasm_i32x4_splat(0)};
    int i = 0;
    for (; i + 64 <= bytes; i += 64)
        for (int j = 0; j < 4; j++) acc[j] = wasm_v128_xor(acc[j], wasm_v128_load(buf + i + 16 * j));
    v128_t v = wasm_v128_xor(wasm_v128_xor(acc[0], acc[1]), wasm_v128_xor(acc[2], acc[3]));
    uint32_t h = wasm_i32x4_extract_lane(v, 0) ^ wasm_i32x4_extract_lane(v, 1) ^ wasm_i32x4_extract_lane(v, 2) ^ wasm_i32x4_extract_lane(v, 3);
    for (; i < bytes; i++) h = (h << 1 | h >> 31) ^ buf[i];
    return h;
}
