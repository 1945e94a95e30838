// Whether the one-stream kernels (the ternary layers, the int8 and 7-bit heads, attention over a kv head's rows)
// read a decode call's weights or cache rows a phase ahead (wasm_kernels/touch.h) is decided by the CPU: 1.5-2x
// faster decode on an Intel Xeon, 0.7x on an AMD Zen 4 (docs/benchmarks.md). Timed on the model itself once its
// weights are in memory: one-token forward passes until they stop getting faster (presumably while the engine's
// optimizing tier compiles it: on the Zen 4, at two threads, the large shape's first three took 50-56, 33-40 and
// 21-24 ms, then 12-27), then passes with, without, without, with; the faster setting's best is kept. The same
// sums either way.
const ORDER = [1, 0, 0, 1];
const WARM = { most: 8, settled: 0.9 }; // a pass at least 0.9x the one before it ends the warm-up

function timed(forwardOneToken) {
  const start = performance.now();
  forwardOneToken();
  return performance.now() - start;
}

// exports: the module's; forwardOneToken() runs one token through the model. Returns the setting now in use (1 or 0).
export function pickReadAhead(exports, forwardOneToken) {
  for (let pass = 0, last = Infinity; pass < WARM.most; pass++) {
    const ms = timed(forwardOneToken);
    if (ms >= WARM.settled * last) break;
    last = ms;
  }
  const fastest = [Infinity, Infinity];
  for (const on of ORDER) {
    exports.bn_set_read_ahead(on);
    fastest[on] = Math.min(fastest[on], timed(forwardOneToken));
  }
  return exports.bn_set_read_ahead(fastest[0] < fastest[1] ? 0 : 1);
}
