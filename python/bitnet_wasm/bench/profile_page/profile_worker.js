// The profile's leader thread (bench/profile.py; a worker, as only workers may wait on atomics):
// runs a site's profiling build (its forward.c compiled with -DBN_PROFILE=1) on the site's weights
// and answers with the milliseconds each op of forward.c took.
const PAGE = 65536;
const MODULE_RESERVE_BYTES = 2 << 20; // below the arena: the module's stack and static data (plan.py)
const THREAD_STACK_BYTES = 1 << 20;
const imports = (memory) => ({ env: { ...(memory && { memory }), bn_now_ms: () => performance.now() } });

// A follower runs its share of every parallel op; it never calls the clock, but links against it.
const FOLLOWER = `self.onmessage = async ({ data: { module, memory, index, stackTop } }) => {
  const { exports } = await WebAssembly.instantiate(module, { env: { memory, bn_now_ms: () => performance.now() } });
  exports.__stack_pointer.value = stackTop;
  postMessage("ready");
  exports.bn_thread_main(index);
};`;

async function instantiate(bytes, arenaBytes, threads) {
  if (threads === 1) {
    const { instance } = await WebAssembly.instantiate(bytes, imports(null));
    return { exports: instance.exports, memory: instance.exports.memory, stacks: 0 };
  }
  const module = await WebAssembly.compile(bytes);
  const stacks = (threads - 1) * THREAD_STACK_BYTES;
  const pages = Math.ceil((MODULE_RESERVE_BYTES + arenaBytes + stacks) / PAGE);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages + MODULE_RESERVE_BYTES / PAGE, shared: true });
  const instance = await WebAssembly.instantiate(module, imports(memory));
  return { exports: instance.exports, memory, stacks, module };
}

async function startFollowers({ module, memory }, stacksBase, threads) {
  const url = URL.createObjectURL(new Blob([FOLLOWER], { type: "text/javascript" }));
  await Promise.all(Array.from({ length: threads - 1 }, (_, i) => new Promise((resolve, reject) => {
    const worker = new Worker(url);
    worker.onmessage = resolve;
    worker.onerror = (e) => reject(new Error(`follower ${i + 1}: ${e.message}`));
    worker.postMessage({ module, memory, index: i + 1, stackTop: stacksBase + (i + 1) * THREAD_STACK_BYTES });
  })));
}

function cString(memory, pointer) {
  const bytes = new Uint8Array(memory.buffer, pointer);
  return new TextDecoder().decode(bytes.slice(0, bytes.indexOf(0)));
}

async function profile({ manifestUrl, wasmUrl, dotFormUrl, simd, threads, promptTokens, decodeTokens }) {
  const { pickDotForm, warmDotForms } = await import(dotFormUrl);
  const manifest = await (await fetch(manifestUrl)).json();
  const arenaBytes = manifest.abi.arena_bytes;
  const machine = await instantiate(await (await fetch(wasmUrl)).arrayBuffer(), arenaBytes, threads);
  const { exports } = machine;
  const base = Math.ceil(exports.__heap_base.value / 64) * 64;
  const missing = base + arenaBytes + 16 + machine.stacks - machine.memory.buffer.byteLength;
  if (missing > 0) machine.memory.grow(Math.ceil(missing / PAGE));
  if (threads > 1) {
    await startFollowers(machine, Math.ceil((base + arenaBytes) / 16) * 16, threads);
    if (exports.bn_threads_init(threads) !== threads) throw new Error(`the module refused ${threads} threads`);
  }
  if (simd === "relaxed") warmDotForms({ exports, base });  // as the runtime: compiled while the weights load
  for (const shard of manifest.shards) {
    const bytes = new Uint8Array(await (await fetch(new URL(shard.file, manifestUrl))).arrayBuffer());
    new Uint8Array(machine.memory.buffer, base + shard.offset, shard.bytes).set(bytes);
  }
  const { tokens, logits } = manifest.abi.buffers;
  const vocab = manifest.model.vocab_size;
  const ops = cString(machine.memory, exports.bn_profile_ops()).trim().split("\n");
  const table = () => new Float64Array(machine.memory.buffer, exports.bn_profile_ms(), ops.length);
  const ids = new Int32Array(machine.memory.buffer, base + tokens.offset, promptTokens);
  ids.forEach((_, i) => { ids[i] = (i * 7919 + 1) % vocab; });  // any ids: the work does not depend on them

  // as the runtime: the dot form it would pick, and the kernels in the optimizing tier (an untimed prefill)
  const dotForm = simd === "relaxed" ? pickDotForm({ exports, base }) : null;
  exports.bn_model_prefill(base, promptTokens, 0);

  table().fill(0);
  let start = performance.now();
  exports.bn_model_prefill(base, promptTokens, 0);
  const prefillMs = performance.now() - start;
  const prefill = Array.from(table(), (ms) => ms / promptTokens);

  table().fill(0);
  start = performance.now();
  for (let pos = promptTokens; pos < promptTokens + decodeTokens; pos++) {
    const next = exports.bn_argmax(base + logits.offset, vocab);
    new Int32Array(machine.memory.buffer, base + tokens.offset, 1)[0] = next;
    exports.bn_model_forward(base, 1, pos, 0);
  }
  const decodeMs = performance.now() - start;
  return {
    ops, prefill, decode: Array.from(table(), (ms) => ms / decodeTokens), dotForm,
    prefillMsPerToken: prefillMs / promptTokens, decodeMsPerToken: decodeMs / decodeTokens,
    crossOriginIsolated: self.crossOriginIsolated === true,
  };
}

self.onmessage = async ({ data }) => {
  try {
    postMessage({ result: await profile(data) });
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
  }
};
