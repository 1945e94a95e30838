/* Weights streamed from memory are read ahead in a loop of one load per cache line, a phase of
 * BN_TOUCH_BYTES at a time, then computed from L1. A kernel's own loads, ~50 instructions apart,
 * keep few cache misses (and page walks) in flight: on an Intel Xeon in Chromium a GEMV of 2B-4T's
 * gate+up shape read its weights at 2.2-4.0 GB/s where one load per line read 13-14, and 1.6-2.2x faster
 * touched first; a 2B-4T decode token took 0.47-0.67x the time. On an AMD Zen 4, whose prefetchers keep
 * the ternary kernels' one stream of tiles coming, reading their weights ahead made them 1.8x slower, so
 * for the kernels that read one stream (the ternary linears, the int8 and 7-bit heads' tiles, the 4-bit head's
 * rows, attention's rows of a kv head) it is the host's choice by speed (bn_set_read_ahead, read_ahead.c); the
 * f16 head, whose rows are read 4 at once (as many streams), gains on both CPUs (docs/benchmarks.md). */
#ifndef BN_TOUCH_H
#define BN_TOUCH_H

#include "simd.h"

#define BN_TOUCH_LINE 64       /* bytes: one load per cache line (every other line was slower: no pair prefetch here) */
#define BN_TOUCH_BYTES 16384   /* a phase: well within L1, beside the activations */
#define BN_TOUCH_TOKENS 3      /* at most: a call serving more tokens per weight read computes long enough to hide it (touching cost 5% at 32) */

/* volatile: loads whose values nobody uses, kept; bytes: any address will do (heads' rows are not aligned) */
BN_INLINE void bn_touch(const void *p, size_t bytes) {
    for (size_t i = 0; i < bytes; i += BN_TOUCH_LINE) (void)((const volatile uint8_t *)p)[i];
}

extern int bn_read_ahead; /* read_ahead.c: the one-stream kernels' setting, 1 (the default) or 0 */

/* Called before unit `index` of `count` units of unit_bytes each, consecutive from this one's address,
 * that the call computes for `tokens` tokens: at the first unit of each phase, touches the phase
 * (where the call serves at most BN_TOUCH_TOKENS). */
BN_INLINE void bn_touch_phase(const void *unit, size_t unit_bytes, int index, int count, int tokens) {
    const int units = unit_bytes < BN_TOUCH_BYTES ? (int)(BN_TOUCH_BYTES / unit_bytes) : 1;
    if (tokens <= BN_TOUCH_TOKENS && index % units == 0) bn_touch(unit, (size_t)(count - index < units ? count - index : units) * unit_bytes);
}

/* bn_touch_phase for one-stream kernels' weights, where the host reads them ahead */
BN_INLINE void bn_touch_stream_phase(const void *unit, size_t unit_bytes, int index, int count, int tokens) {
    if (bn_read_ahead) bn_touch_phase(unit, unit_bytes, index, count, tokens);
}

#endif
