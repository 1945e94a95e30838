// The profile's leader thread (bench/profile.py; a worker, as only workers may wait on atomics):
// runs a site's profiling build (its forward.c compiled with -DBN_PROFILE=1) on the site's weights
// and answers with the milliseconds each op of forward.c took; or the same steps on the site's own module.
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

// One of the site's modules (or its profiling build), its threads started, with room for the site's arena at `base`.
async function load(bytes, arenaBytes, threads) {
  const machine = await instantiate(bytes, arenaBytes, threads);
  const { exports } = machine;
  const base = Math.ceil(exports.__heap_base.value / 64) * 64;
  const missing = base + arenaBytes + 16 + machine.stacks - machine.memory.buffer.byteLength;
  if (missing > 0) machine.memory.grow(Math.ceil(missing / PAGE));
  if (threads > 1) {
    await startFollowers(machine, Math.ceil((base + arenaBytes) / 16) * 16, threads);
    if (exports.bn_threads_init(threads) !== threads) throw new Error(`the module refused ${threads} threads`);
  }
  return { ...machine, base };
}

// An untimed prefill (the kernels then run in the optimizing tier), a timed one, then greedy decode
// tokens through bn_model_step as in the runtime (each step runs the token the step before chose);
// `ops` zeroes and reads the profiling build's table around each timed part.
function timeSteps({ exports, memory, base }, manifest, promptTokens, decodeTokens, ops) {
  const { abi, model: { vocab_size: vocab } } = manifest;
  const ids = new Int32Array(memory.buffer, base + abi.buffers.tokens.offset, promptTokens + decodeTokens);
  ids.forEach((_, i) => { ids[i] = (i * 7919 + 1) % vocab; });  // any ids: the work does not depend on them
  const step = new Int32Array(memory.buffer, base + abi.buffers.step.offset, abi.words);
  step.fill(-1, abi.stop_tokens_word, abi.stop_tokens_word + abi.max_stop_tokens);  // no stop tokens
  const runPrompt = () => {  // as the runtime's worker does: bn_model_forward a chunk at a time
    for (let i = 0; i < promptTokens; i += manifest.plan.chunk)
      if (exports.bn_model_forward(base, Math.min(manifest.plan.chunk, promptTokens - i), i, 0) !== 0)
        throw new Error(`the forward pass refused the prompt's tokens from position ${i}`);
  };
  runPrompt();

  ops.start();
  let start = performance.now();
  runPrompt();
  const prefillMs = performance.now() - start;
  const prefill = ops.read(promptTokens);

  const greedyStep = (i) => {  // step i runs the token step i - 1 chose; the last ends the generation
    const code = exports.bn_model_step(base, promptTokens + i, i, decodeTokens + 1, 0, vocab, 1, 0, 1, 0, 0);
    if (abi.stop_reasons[code] !== (i < decodeTokens ? "" : "length")) throw new Error(`the generation step at position ${promptTokens + i} returned ${code}`);
  };
  greedyStep(0);  // chooses the first token from the prompt's logits: it runs nothing
  ops.start();
  start = performance.now();
  for (let i = 1; i <= decodeTokens; i++) greedyStep(i);
  const decodeMs = performance.now() - start;
  return { prefill, decode: ops.read(decodeTokens), generated: Array.from(ids.subarray(promptTokens)),
    prefillMsPerToken: prefillMs / promptTokens, decodeMsPerToken: decodeMs / decodeTokens };
}

const UNPROFILED = { start() {}, read() { return null; } };

// As the runtime times the read-ahead (web/read_ahead.js): token 0 at position 0, before the timed steps.
function forwardOneToken({ exports, memory, base }, manifest) {
  new Int32Array(memory.buffer, base + manifest.abi.buffers.tokens.offset, 1)[0] = 0;
  if (exports.bn_model_forward(base, 1, 0, 0) !== 0) throw new Error("the forward pass refused one token at position 0");
}

// One module on the site's weights: the profiling build (with its table of ops, in the dot form the runtime
// would pick) or, in a worker of its own, the site's module (in the profile's dot form).
async function profile({ manifestUrl, wasmUrl, dotFormUrl, readAheadUrl, simd, threads, promptTokens, decodeTokens, dotForm, readAhead }) {
  const { pickDotForm, warmDotForms } = await import(dotFormUrl);
  const { pickReadAhead } = await import(readAheadUrl);
  const manifest = await (await fetch(manifestUrl)).json();
  const fetchBytes = async (url) => (await fetch(url)).arrayBuffer();
  const machine = await load(await fetchBytes(wasmUrl), manifest.abi.arena_bytes, threads);
  const { exports, memory, base } = machine;
  if (simd === "relaxed") warmDotForms(machine);  // as the runtime: compiled while the weights load
  for (const shard of manifest.shards)
    new Uint8Array(memory.buffer, base + shard.offset, shard.bytes).set(new Uint8Array(await fetchBytes(new URL(shard.file, manifestUrl))));
  const form = simd !== "relaxed" ? null : dotForm ?? pickDotForm(machine);
  if (form !== null) exports.bn_set_dot_form(form);
  const ahead = readAhead === undefined ? pickReadAhead(exports, () => forwardOneToken(machine, manifest)) === 1 : readAhead;
  exports.bn_set_read_ahead(ahead ? 1 : 0);
  const choices = { dotForm: form, readAhead: ahead };
  if (!exports.bn_profile_ops) return { ...choices, ...timeSteps(machine, manifest, promptTokens, decodeTokens, UNPROFILED) };
  const ops = cString(memory, exports.bn_profile_ops()).trim().split("\n");
  const table = () => new Float64Array(memory.buffer, exports.bn_profile_ms(), ops.length);
  return { ops, ...choices, crossOriginIsolated: self.crossOriginIsolated === true,
    ...timeSteps(machine, manifest, promptTokens, decodeTokens, { start: () => table().fill(0), read: (tokens) => Array.from(table(), (ms) => ms / tokens) }) };
}

self.onmessage = async ({ data }) => {
  try {
    postMessage({ result: await profile(data) });
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
  }
};
