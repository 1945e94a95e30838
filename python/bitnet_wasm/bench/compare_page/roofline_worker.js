// One thread of the roofline probes: its own instance of a bitnet-wasm kernel library, then either
// its own buffer read with bn_stream_read (v128 loads) or bn_dot_peak's multiply-adds on 4 KB in L1,
// again and again for a fixed time once told to start.
import { dotForms } from "./dot_form.js";

let exports = null;
let base = 0;

async function setup({ wasmUrl, bytes }) {
  ({ exports } = (await WebAssembly.instantiateStreaming(fetch(wasmUrl), {})).instance);
  for (const name of ["bn_stream_read", "bn_dot_peak", "bn_set_dot_form"])
    if (!exports[name]) throw new Error(`${wasmUrl} does not export ${name}`);
  const { memory, __heap_base } = exports;
  base = Math.ceil(__heap_base.value / 64) * 64;
  memory.grow(Math.max(0, Math.ceil((base + bytes - memory.buffer.byteLength) / 65536)));
  const buffer = new Uint8Array(memory.buffer, base, bytes);
  for (let i = 0; i < bytes; i += 4096) buffer[i] = i >> 12; // commit every page before timing
}

// The fastest of the calls made in `seconds` (two untimed calls first: the optimizing tier replaces
// the baseline code between calls); on a shared machine a call may lose the CPU midway.
function fastest(once, seconds) {
  once();
  once();
  let best = Infinity;
  const started = performance.now();
  do {
    const t0 = performance.now();
    once();
    best = Math.min(best, performance.now() - t0);
  } while (performance.now() - started < seconds * 1000);
  return best / 1000;
}

function read({ bytes, seconds }) {
  return { bytes, seconds: fastest(() => exports.bn_stream_read(base, bytes), seconds) };
}

// Each int8 dot form the library has (bn_set_dot_form; the runtime keeps the faster) for a share of the time.
function dot({ bytes, reps, seconds }) {
  const forms = dotForms(exports);
  const times = forms.map((form) => (exports.bn_set_dot_form(form), fastest(() => exports.bn_dot_peak(base, bytes, reps), seconds / forms.length)));
  return { seconds: Math.min(...times) };
}

const HANDLERS = { setup, read, dot };
self.onmessage = async ({ data }) => {
  try {
    postMessage({ result: await HANDLERS[data.type](data) });
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
  }
};
