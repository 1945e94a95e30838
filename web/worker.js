// All inference, off the page's thread: the site's compiled forward pass (bitnet.wasm) over one
// arena, the same generate loop as python/bitnet_wasm/runtime.py, and the tokenizer. Where the
// page is cross-origin isolated, the threaded module runs here (the leader) and in follower
// workers (threads.js) over one shared memory; elsewhere, one thread.
// Protocol: {type, id, ...} requests are answered in order with "result" | "error"; "generate"
// also posts "piece" messages; "abort" {target} stops a running request between tokens.
import { Tokenizer } from "./tokenizer.js";
import { loadShards, sha256Hex } from "./loader.js";
import { CHECKSUM_SCRATCH_BYTES, wasmChecksum } from "./checksum.js";
import { pickDotForm, warmDotForms } from "./dot_form.js";
import { pickReadAhead } from "./read_ahead.js";
import { readManifest } from "./manifest.js";
import { ALIGN, MODULE_RESERVE_BYTES } from "./format.js"; // generated at build
import { checkMessages, renderChat } from "./chat.js";
import { resolveOptions } from "./options.js";
import { StopStrings } from "./textstream.js";

const PAGE = 65536;
const DEFAULT_THREADS = 4;      // more rarely pays: decoding is bound by memory bandwidth
const THREAD_STACK_BYTES = 1 << 20;
const SIMD_VARIANTS = ["relaxed", "simd128"];

// Smallest modules using a SIMD128 instruction and a relaxed-SIMD one (i32x4.relaxed_trunc_f32x4_s).
const V128_CONST = [0xfd, 0x0c, ...new Array(16).fill(0)];
const probe = (body) => new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01, 0x00,
  0x0a, body.length + 4, 0x01, body.length + 2, 0x00, ...body, 0x0b]);
const SIMD_PROBE = probe(V128_CONST);
const RELAXED_PROBE = probe([...V128_CONST, 0xfd, 0x81, 0x02]);

function pickSimd(wasmFiles, requested) {
  if (!WebAssembly.validate(SIMD_PROBE)) throw new Error("this browser lacks WebAssembly SIMD, which bitnet-wasm needs: use a recent Chrome, Edge, Firefox or Safari (16.4+)");
  const relaxed = WebAssembly.validate(RELAXED_PROBE);
  if (requested === undefined) return relaxed && wasmFiles.relaxed ? "relaxed" : "simd128";
  if (!SIMD_VARIANTS.includes(requested)) throw new Error(`simd: ${JSON.stringify(requested)} is not one of ${SIMD_VARIANTS.map((v) => `"${v}"`).join(", ")}`);
  if (requested === "relaxed" && !relaxed) throw new Error('simd: "relaxed" was requested, but this browser cannot validate relaxed-SIMD WebAssembly');
  if (!wasmFiles[requested]) throw new Error(`simd: the site has no ${requested} module`);
  return requested;
}

// {threads, fallback}: the threads that will run, and why fewer than asked for (or null).
function pickThreads(wasmFiles, maxThreads, simd, requested) {
  const wanted = requested ?? Math.min(navigator.hardwareConcurrency || 1, DEFAULT_THREADS, maxThreads);
  if (!Number.isInteger(wanted) || wanted < 1 || wanted > maxThreads) throw new Error(`threads must be an integer from 1 to ${maxThreads}, got ${requested}`);
  const reasons = [
    [!self.crossOriginIsolated, "the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp, or build the site with --coi-service-worker)"],
    [typeof SharedArrayBuffer === "undefined", "this browser gives the page no SharedArrayBuffer although it is cross-origin isolated (WebKitGTK does so), so threads cannot share memory"],
    [!wasmFiles[`${simd}_threads`], "the site was built without threaded modules"],
  ];
  const fallback = wanted > 1 ? reasons.find(([hit]) => hit)?.[1] ?? null : null;
  return { threads: fallback ? 1 : wanted, fallback };
}

// The followers are the page's workers (bitnet.js starts them when asked, see followers.js): a
// worker that creates workers has hung inside `new Worker` in Firefox ESR. Resolves once all are
// ready to take jobs, on stacks above the arena.
let followersStarted = null; // settles the request to the page
function startFollowers(module, memory, stacksBase, threads) {
  const stackTops = Array.from({ length: threads - 1 }, (_, i) => stacksBase + (i + 1) * THREAD_STACK_BYTES);
  return new Promise((resolve, reject) => {
    followersStarted = ({ error }) => (error ? reject(new Error(error)) : resolve());
    postMessage({ type: "startFollowers", module, memory, stackTops });
  });
}

async function instantiateSingle(bytes, arenaBytes) {
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new Machine(instance.exports, instance.exports.memory, arenaBytes, 0);
}

async function instantiateThreaded(bytes, arenaBytes, threads, progress) {
  const module = await WebAssembly.compile(bytes);
  const stackBytes = (threads - 1) * THREAD_STACK_BYTES;
  const pages = Math.ceil((MODULE_RESERVE_BYTES + arenaBytes + stackBytes) / PAGE);
  let memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages + MODULE_RESERVE_BYTES / PAGE, shared: true });
  } catch (e) {
    throw new Error(`${(pages * PAGE / 2 ** 20).toFixed(0)} MiB of shared WebAssembly memory were refused (${e.message})`);
  }
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const machine = new Machine(instance.exports, memory, arenaBytes, stackBytes);
  progress({ phase: "threads" }); // the page's watchdog runs until the next progress message
  await startFollowers(module, memory, machine.stacksBase, threads);
  if (instance.exports.bn_threads_init(threads) !== threads) {
    postMessage({ type: "stopFollowers" });
    throw new Error(`the threaded module refused ${threads} threads`);
  }
  return machine;
}

// {machine, threads, fallback}: the threaded start where asked for; any failure of it (refused
// shared memory, a memory that cannot be posted, a follower that does not start) runs one thread.
async function start(manifest, manifestUrl, simd, { threads, fallback }, signal, progress) {
  const fetchModule = (key) => fetchChecked(manifest, manifest.wasm[key], "WebAssembly module", manifestUrl, signal);
  const arenaBytes = manifest.abi.arena_bytes;
  if (threads > 1) {
    try {
      return { machine: await instantiateThreaded(await fetchModule(`${simd}_threads`), arenaBytes, threads, progress), threads, fallback };
    } catch (e) {
      signal.throwIfAborted();
      fallback = `the threaded start failed (${e?.message ?? e}), so one thread runs`;
    }
  }
  return { machine: await instantiateSingle(await fetchModule(simd), arenaBytes), threads: 1, fallback };
}

async function fetchOk(url, what, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`${what} ${url}: HTTP ${response.status} ${response.statusText}`);
  return response;
}

// A file of model/ (wasm module, tokenizer) as bytes, checked against the manifest's sha256.
async function fetchChecked(manifest, name, what, manifestUrl, signal) {
  const url = new URL(name, manifestUrl);
  const bytes = await (await fetchOk(url, what, signal)).arrayBuffer();
  if ((await sha256Hex(bytes)) !== manifest.files[name]) throw new Error(`${what} ${url}: sha256 does not match the manifest (corrupt or partial copy); rebuild or re-upload the site`);
  return bytes;
}

async function readRunnableManifest(url, signal) {
  const manifest = await readManifest(url, signal);
  if (!manifest.wasm) throw new Error(`manifest ${url}: the site was built without wasm modules`);
  return manifest;
}

// Bytes `memory` grows to, growing it by halving steps until the engine refuses (an error path: the memory is discarded).
function largestGrant(memory) {
  for (let pages = 2 ** 16; pages >= 1; pages /= 2) {
    try {
      memory.grow(pages);
    } catch {} // refused: try half as much
  }
  return memory.buffer.byteLength;
}

// The module's exports and memory; the arena starts at the first ALIGN-byte boundary above
// __heap_base, and stackBytes (the followers' stacks), then the checksum's sums follow it.
class Machine {
  constructor(exports, memory, arenaBytes, stackBytes) {
    this.exports = exports;
    this.memory = memory;
    this.base = Math.ceil(exports.__heap_base.value / ALIGN) * ALIGN;
    this.stacksBase = Math.ceil((this.base + arenaBytes) / 16) * 16;
    const checksumScratch = this.stacksBase + stackBytes;
    const missing = checksumScratch + CHECKSUM_SCRATCH_BYTES - this.memory.buffer.byteLength;
    try {
      if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));
    } catch (e) {
      throw new Error(`the model needs ${((this.base + arenaBytes) / 2 ** 20).toFixed(0)} MiB of WebAssembly memory and this browser refused it: it grants ${(largestGrant(this.memory) / 2 ** 20).toFixed(0)} MiB (${e.message})`);
    }
    this.checksum = wasmChecksum(exports, memory, checksumScratch);
  }

  bytes(offset, length) {
    return new Uint8Array(this.memory.buffer, this.base + offset, length);
  }

  view(Type, offset, count) {
    return new Type(this.memory.buffer, this.base + offset, count);
  }
}

class Model {
  // threadsFallback: the page's reason to run one thread (a threaded start of an earlier worker hung)
  static async load({ manifestUrl, threads: requested, simd: requestedSimd, threadsFallback }, signal, progress) {
    progress({ phase: "manifest" });
    const manifest = await readRunnableManifest(manifestUrl, signal);
    const simd = pickSimd(manifest.wasm, requestedSimd);
    progress({ phase: "wasm" });
    const plan = threadsFallback ? { threads: 1, fallback: threadsFallback } : pickThreads(manifest.wasm, manifest.abi.max_threads ?? 1, simd, requested);
    const { machine, threads, fallback } = await start(manifest, manifestUrl, simd, plan, signal, progress);
    if (simd === "relaxed") warmDotForms(machine);
    let tokenizer = null;
    if (manifest.tokenizer) {
      progress({ phase: "tokenizer" });
      const bytes = await fetchChecked(manifest, manifest.tokenizer.file, "tokenizer", manifestUrl, signal);
      tokenizer = Tokenizer.fromJSON(new TextDecoder().decode(bytes));
    }
    const { cacheError, cachedBytes } = await loadShards({
      baseUrl: manifestUrl, shards: manifest.shards, signal,
      target: (shard) => machine.bytes(shard.offset, shard.bytes), checksum: machine.checksum,
      onProgress: (p) => progress(p),
    });
    if (cacheError) console.warn(`bitnet-wasm: ${cacheError}`);
    const dotForm = simd === "relaxed" ? pickDotForm(machine) : null;
    const model = new Model(manifest, machine, tokenizer, { simd, dotForm, threads, fallback, cacheError, cachedBytes });
    model.info.readAhead = pickReadAhead(model.exports, () => model.step([0], 0, false)) === 1;  // before any tokens are cached
    return model;
  }

  constructor(manifest, machine, tokenizer, { simd, dotForm, threads, fallback, cacheError, cachedBytes }) {
    this.machine = machine;
    this.exports = machine.exports;
    this.tokenizer = tokenizer;
    this.chat = manifest.chat ?? null;
    this.vocab = manifest.model.vocab_size;
    this.context = manifest.plan.context;
    this.chunk = manifest.plan.chunk;
    this.eos = new Set(manifest.model.eos_token_ids ?? []);
    this.buffers = manifest.abi.buffers;
    this.abi = manifest.abi;
    this.generationOptions = manifest.generation;
    this.maxPosition = manifest.model.max_position;
    this.cached = []; // the tokens whose keys and values are in the KV cache, from position 0
    this.info = {
      name: manifest.model.name,
      parameters: manifest.card.parameters,
      bitsPerWeight: manifest.card.bits_per_weight,
      downloadBytes: manifest.card.download_bytes,
      simd,
      dotForm,
      threads,
      crossOriginIsolated: self.crossOriginIsolated === true,
      threadsFallback: fallback,
      vocabSize: this.vocab,
      context: this.context,
      cacheError,
      cachedBytes,
      memoryBytes: machine.memory.buffer.byteLength,
      chat: this.chat !== null,
      chatSystem: this.chat !== null && "system" in this.chat.start,
    };
  }

  encode(text) {
    if (!this.tokenizer) throw new Error("the site has no tokenizer; pass token ids");
    return this.tokenizer.encode(text);
  }

  decode(ids) {
    return this.tokenizer ? this.tokenizer.decode(ids) : "";
  }

  chatTokens(messages) {
    if (!this.chat || !this.tokenizer) throw new Error("the model has no chat template");
    checkMessages(this.chat, messages);
    return this.tokenizer.encode(renderChat(this.chat, messages), { addSpecialTokens: false });
  }

  checkIds(ids) {
    if (!Array.isArray(ids) || ids.length === 0) throw new Error("token ids must be a non-empty array of integers");
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.vocab) throw new Error(`token id ${id} is outside the vocabulary [0, ${this.vocab})`);
    return ids;
  }

  /** Runs ids at positions pos0..; returns the logits of all rows or of the last position. */
  step(ids, pos0, allLogits) {
    this.machine.view(Int32Array, this.buffers.tokens.offset, this.context).set(ids, pos0);
    const status = this.exports.bn_model_forward(this.machine.base, ids.length, pos0, allLogits ? 1 : 0);
    if (status !== 0) throw new Error(`the forward pass refused ${ids.length} tokens at position ${pos0} (context ${this.context})`);
    return this.machine.view(Float32Array, this.buffers.logits.offset, (allLogits ? ids.length : 1) * this.vocab);
  }

  logits(ids) {
    this.checkIds(ids);
    if (ids.length > this.context) throw new Error(`${ids.length} tokens do not fit the context of ${this.context}`);
    const rows = [];
    this.cached = [...ids];
    for (let i = 0; i < ids.length; i += this.chunk) {
      const part = ids.slice(i, i + this.chunk);
      const logits = this.step(part, i, true);
      for (let r = 0; r < part.length; r++) rows.push(logits.slice(r * this.vocab, (r + 1) * this.vocab));
    }
    return rows;
  }

  writeStopTokens(tokens) {
    const { words, stop_tokens_word: first, max_stop_tokens: count } = this.abi;
    const step = this.machine.view(Int32Array, this.buffers.step.offset, words);
    if (tokens.size > count) throw new Error(`${tokens.size} stop tokens; the generation step holds at most ${count}`);
    step.fill(-1, first, first + count);
    step.set([...tokens].sort((a, b) => a - b), first);
  }

  promptIds(prompt) {
    const ids = this.checkIds(typeof prompt === "string" ? this.encode(prompt) : prompt);
    if (ids.length >= this.context) throw new Error(tooLongMessage(ids.length, this.context, this.maxPosition));
    return ids;
  }

  generate(prompt, options, aborted, emit) {
    return this.run(this.promptIds(prompt), resolveOptions(this.generationOptions, options), [], {}, aborted, emit);
  }

  // runtime.py's Model.chat: the oldest turns (after a system message) go first under "drop_oldest".
  chatReply(messages, options, aborted, emit) {
    const o = resolveOptions(this.generationOptions, options, { chat: true });
    messages = [...messages];
    let ids = this.chatTokens(messages), dropped = 0;
    while (ids.length >= this.context && o.contextPolicy === "drop_oldest" && messages.filter((m) => m.role === "user").length > 1) {
      messages.splice(messages[0].role === "system" ? 1 : 0, 2); // a user message and the assistant's reply
      dropped += 2;
      ids = this.chatTokens(messages);
    }
    return this.run(this.promptIds(ids), o, this.chat.stop_tokens, { droppedMessages: dropped }, aborted, emit);
  }

  // Generation, the loop of runtime.py's Model._generate: the C step (bn_model_step) runs the token
  // chosen before, chooses the next and says whether the generation ends; here only text. Yields to
  // the event loop between steps so an abort message is seen.
  async run(ids, o, stopTokens, extraStats, aborted, emit) {
    const seed = o.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
    const started = performance.now();
    const stats = { promptTokens: ids.length, reusedTokens: 0, prefillTokens: 0, newTokens: 0, ttftSeconds: null, prefillTokensPerSecond: null,
      decodeTokensPerSecond: null, stopReason: "", seed, ...extraStats };
    stats.reusedTokens = o.cachePrompt ? this.cachedPrefix(ids) : 0;
    stats.prefillTokens = ids.length - stats.reusedTokens;
    this.cached = [];
    for (let i = stats.reusedTokens; i < ids.length; i += this.chunk) {
      if (await aborted()) return { ...stats, stopReason: "aborted" };
      this.step(ids.slice(i, i + this.chunk), i, false);
      this.cached = ids.slice(0, i + this.chunk);
    }
    this.machine.view(BigUint64Array, this.buffers.rng_state.offset, 1)[0] = BigInt.asUintN(64, BigInt(seed));
    this.writeStopTokens(new Set([...stopTokens, ...(o.ignoreEos ? [] : this.eos)]));
    stats.prefillTokensPerSecond = stats.prefillTokens / ((performance.now() - started) / 1000);
    const decoder = this.tokenizer?.createStreamDecoder();
    const stops = new StopStrings(o.stop);
    const step = this.machine.view(Int32Array, this.buffers.step.offset, this.abi.words);
    let position = ids.length, firstAt = 0, chosen = null;
    while (!stats.stopReason) {
      // beyond the context or the vocabulary these limits mean "no limit"; the C takes int32
      const code = this.exports.bn_model_step(this.machine.base, position, stats.newTokens, Math.min(o.maxNewTokens, this.context), o.temperature, Math.min(o.topK, this.vocab), o.topP, o.minP,
        o.repetitionPenalty, o.presencePenalty, o.frequencyPenalty);
      if (code === this.abi.bad_logits) throw new Error(`the logits at position ${position} are not finite (NaN or inf): the model's arithmetic overflowed float32 (weights far outside a trained model's range: a damaged or wrongly converted checkpoint)`);
      if (code < 0) throw new Error(`the generation step refused position ${position} (context ${this.context})`);
      if (chosen !== null) this.cached.push(chosen); // the step ran the token chosen before this one
      const token = step[this.abi.token_word];
      chosen = token;
      stats.newTokens += 1;
      if (stats.newTokens === 1) {
        firstAt = performance.now();
        stats.ttftSeconds = (firstAt - started) / 1000;
      }
      const reason = this.abi.stop_reasons[code];
      const text = decoder ? decoder.push(token) + (reason ? decoder.flush() : "") : "";
      const shown = stops.push(text, reason !== "");
      stats.stopReason = stops.stopped ? "stop" : reason;
      emit({ token, text: shown });
      position += 1;
      if (!stats.stopReason && (await aborted())) stats.stopReason = "aborted";
    }
    if (stats.newTokens > 1) stats.decodeTokensPerSecond = (stats.newTokens - 1) / ((performance.now() - firstAt) / 1000);
    return stats;
  }

  // How many leading tokens of ids are in the KV cache already (never all: the last runs for its logits).
  cachedPrefix(ids) {
    const limit = Math.min(this.cached.length, ids.length - 1);
    let n = 0;
    while (n < limit && this.cached[n] === ids[n]) n++;
    return n;
  }
}

function tooLongMessage(tokens, context, maxPosition) {
  const fix = context < maxPosition
    ? `shorten it, or rebuild the site with a longer --context (this model allows up to ${maxPosition})`
    : "shorten it (the site already has the model's full context)";
  return `the prompt has ${tokens} tokens; the context holds ${context}, with room for at least one new token: ${fix}`;
}

// A macrotask turn, so messages queued meanwhile (abort) are handled; faster than setTimeout.
const channel = new MessageChannel();
const nextTurn = () => new Promise((resolve) => {
  channel.port1.onmessage = () => resolve();
  channel.port2.postMessage(null);
});

// [aborted, emit] of a generate or chat request
const streaming = (message) => [async () => {
  await nextTurn();
  return abortedIds.has(message.id);
}, (piece) => postMessage({ type: "piece", id: message.id, piece })];

let model = null;
const abortedIds = new Set();
const loadControllers = new Map();

const HANDLERS = {
  async load(message) {
    const controller = new AbortController();
    loadControllers.set(message.id, controller);
    try {
      model = await Model.load(message, controller.signal, (p) => postMessage({ type: "progress", id: message.id, progress: p }));
      return model.info;
    } finally {
      loadControllers.delete(message.id);
    }
  },
  tokenize: ({ text }) => model.encode(text),
  detokenize: ({ ids }) => model.decode(ids),
  chatTokens: ({ messages }) => model.chatTokens(messages),
  logits: ({ ids }) => model.logits(ids),
  generate: (message) => model.generate(message.prompt, message.options, ...streaming(message)),
  chat: (message) => model.chatReply(message.messages, message.options, ...streaming(message)),
};

let queue = Promise.resolve();
self.onmessage = ({ data: message }) => {
  if (message.type === "followersStarted") {
    followersStarted?.(message);
    followersStarted = null;
    return;
  }
  if (message.type === "abort") {
    abortedIds.add(message.target);
    loadControllers.get(message.target)?.abort(new DOMException("loading was aborted", "AbortError"));
    return;
  }
  queue = queue.then(async () => {
    try {
      if (!HANDLERS[message.type]) throw new Error(`unknown request ${JSON.stringify(message.type)}`);
      if (message.type !== "load" && !model) throw new Error("the model is not loaded");
      const result = await HANDLERS[message.type](message);
      const transfer = message.type === "logits" ? result.map((row) => row.buffer) : [];
      postMessage({ type: "result", id: message.id, result }, transfer);
    } catch (e) {
      postMessage({ type: "error", id: message.id, error: { name: e?.name ?? "Error", message: e?.message ?? String(e) } });
    } finally {
      abortedIds.delete(message.id);
    }
  });
};
