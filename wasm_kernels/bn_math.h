/* Freestanding math shared by both builds: wasm has no libm, and wasm and native must agree
 * bit for bit, so every transcendental is our own code (no FMA, no fast-math). */
#ifndef BN_MATH_H
#define BN_MATH_H

#include <stdint.h>

static inline uint32_t bn_f32_bits(float x) { union { float f; uint32_t u; } v = { x }; return v.u; }
static inline float bn_bits_f32(uint32_t u) { union { uint32_t u; float f; } v = { u }; return v.f; }

/* Round half to even, as torch.round: adding 1.5 * 2^23 leaves no fraction bits (|x| < 2^22). */
static inline float bn_rintf(float x) {
    const float magic = 12582912.0f;
    return (x >= 0.0f) ? (x + magic) - magic : (x - magic) + magic;
}

static inline float bn_absf(float x) { return bn_bits_f32(bn_f32_bits(x) & 0x7fffffffu); }

#endif
