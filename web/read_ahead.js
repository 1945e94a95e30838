// Whether the one-stream kernels (the ternary layers, the 7-bit head) read a decode call's weights a phase
// ahead (wasm_kernels/touch.h) is decided by the CPU: 1.5-2x faster decode on an Intel Xeon, 0.7x on an AMD Zen 4
// (docs/benchmarks.md). Timed on the model itself once its weights are in memory: one-token forward passes with,
// without, without, with (the first pass, the coldest, is not the only one of its setting); the faster setting's
// best is kept. The same sums either way.
const ORDER = [1, 0, 0, 1];

// exports: the module's; forwardOneToken() runs one token through the model. Returns the setting now in use (1 or 0).
export function pickReadAhead(exports, forwardOneToken) {
  const fastest = [Infinity, Infinity];
  for (const on of ORDER) {
    exports.bn_set_read_ahead(on);
    const start = performance.now();
    forwardOneToken();
    fastest[on] = Math.min(fastest[on], performance.now() - start);
  }
  return exports.bn_set_read_ahead(fastest[0] < fastest[1] ? 0 : 1);
}
