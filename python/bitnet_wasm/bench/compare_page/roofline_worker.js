// One thread of the roofline probes: its own instance of a bitnet-wasm kernel library, then either
// its own buffer read with bn_stream_read (v128 loads) or bn_dot_peak's multiply-adds on 4 KB in L1,
// in rounds that every thread starts together, for a fixed time once told to start.
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

// The shared Int32Array the page hands every thread of a probe (compare.js roofline)
const ARRIVED = 0, GENERATION = 1, STOP = 2;

function together({ flags, parties }) {
  const generation = Atomics.load(flags, GENERATION);
  if (Atomics.add(flags, ARRIVED, 1) === parties - 1) {
    Atomics.store(flags, ARRIVED, 0);
    Atomics.add(flags, GENERATION, 1);
    Atomics.notify(flags, GENERATION);
  } else {
    while (Atomics.load(flags, GENERATION) === generation) Atomics.wait(flags, GENERATION, generation);
  }
}

// A clock every worker shares (each worker's performance.now() counts from its own start)
const now = () => performance.timeOrigin + performance.now();

// This thread's [start, end] of each round's call, in ms on the shared clock: every thread starts a round's call
// together, so no call runs while another thread idles (a thread reading alone reads faster). The leader ends the
// rounds after `seconds`; two untimed calls first (the optimizing tier replaces the baseline code between calls).
function rounds(once, seconds, sync) {
  once();
  once();
  const spans = [];
  const started = performance.now();
  for (;;) {
    if (sync.leader && performance.now() - started >= seconds * 1000) Atomics.store(sync.flags, STOP, 1);
    together(sync);
    if (Atomics.load(sync.flags, STOP)) break;
    const start = now();
    once();
    spans.push([start, now()]);
  }
  together(sync); // every thread has seen STOP before the leader clears it for the next rounds
  if (sync.leader) Atomics.store(sync.flags, STOP, 0);
  return spans;
}

function syncOf({ shared, parties, leader }) {
  return { flags: new Int32Array(shared), parties, leader };
}

function read({ bytes, seconds, ...sync }) {
  return { spans: rounds(() => exports.bn_stream_read(base, bytes), seconds, syncOf(sync)) };
}

// Each int8 dot form the library has (bn_set_dot_form; the runtime keeps the faster) for a share of the time.
function dot({ bytes, reps, seconds, ...sync }) {
  const forms = dotForms(exports);
  return { spansByForm: forms.map((form) => (exports.bn_set_dot_form(form), rounds(() => exports.bn_dot_peak(base, bytes, reps), seconds / forms.length, syncOf(sync)))) };
}

const HANDLERS = { setup, read, dot };
self.onmessage = async ({ data }) => {
  try {
    postMessage({ result: await HANDLERS[data.type](data) });
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
  }
};
