// One thread of the read-bandwidth probe: its own instance of a bitnet-wasm module and its own
// buffer, read with bn_stream_read (v128 loads) again and again for a fixed time once told to start.
let readOnce = null;
let bytes = 0;

async function setup({ wasmUrl, megabytes }) {
  const { instance } = await WebAssembly.instantiateStreaming(fetch(wasmUrl), {});
  const { memory, bn_stream_read, __heap_base } = instance.exports;
  if (!bn_stream_read) throw new Error(`${wasmUrl} does not export bn_stream_read`);
  bytes = megabytes * 2 ** 20;
  const base = Math.ceil(__heap_base.value / 64) * 64;
  memory.grow(Math.ceil((base + bytes - memory.buffer.byteLength) / 65536));
  new Uint8Array(memory.buffer, base, bytes).fill(1); // commit every page before timing
  readOnce = () => bn_stream_read(base, bytes);
  readOnce(); // two untimed reads: the optimizing tier replaces the baseline code between calls
  readOnce();
}

// The fastest of the reads made in `seconds`: on a shared machine a read may lose the CPU midway.
function run({ seconds }) {
  let fastest = Infinity;
  const started = performance.now();
  do {
    const t0 = performance.now();
    readOnce();
    fastest = Math.min(fastest, performance.now() - t0);
  } while (performance.now() - started < seconds * 1000);
  return { bytes, seconds: fastest / 1000 };
}

const HANDLERS = { setup, run };
self.onmessage = async ({ data }) => {
  try {
    postMessage({ result: await HANDLERS[data.type](data) });
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
  }
};
