// The public API: a BitNet model running in a dedicated module Worker (worker.js), so the page
// never blocks. See bitnet.d.ts for the types.
import { cachedShards, evictShards } from "./loader.js";
import { readManifest } from "./manifest.js";
import { FOLLOWER_START_MS, startFollowers } from "./followers.js";
import { moduleWorker } from "./spawn.js";

// Longer than a follower's start may take: past it, the worker itself is stuck, so the page starts a
// fresh one on one thread.
const THREADED_START_HUNG_MS = FOLLOWER_START_MS + 10_000;

class ThreadedStartHung extends Error {}

async function collect(pieces, model) {
  const tokens = [];
  let text = "";
  for await (const piece of pieces) {
    tokens.push(piece.token);
    text += piece.text;
  }
  return { text, tokens, stats: model.lastStats };
}

const absolute = (url) => new URL(url, globalThis.location?.href).href;
const abortError = (signal) => signal.reason instanceof Error ? signal.reason : new DOMException("aborted", "AbortError");

export class BitNet {
  /** Load a built site's model; resolves once the weights are in memory and verified. */
  static async load(manifestUrl, { onProgress, signal, threads, simd } = {}) {
    signal?.throwIfAborted();
    const url = absolute(manifestUrl);
    const newModel = () => new BitNet(moduleWorker(new URL("./worker.js", import.meta.url)));
    let model = newModel();
    const onAbort = () => model._fail(abortError(signal));
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        model.info = await model._load({ manifestUrl: url, threads, simd }, onProgress);
      } catch (e) {
        if (!(e instanceof ThreadedStartHung)) throw e;
        model = newModel();
        model.info = await model._load({ manifestUrl: url, simd, threadsFallback: e.message }, onProgress);
      }
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return model;
  }

  async _load(request, onProgress) {
    let watchdog;
    const hung = () => this._fail(new ThreadedStartHung(`the threaded start did not finish within ${THREADED_START_HUNG_MS / 1000} s, so one thread runs`));
    try {
      return Object.freeze(await this._request({ type: "load", ...request }, {
        progress: (p) => {
          clearTimeout(watchdog);
          if (p.phase === "threads") watchdog = setTimeout(hung, THREADED_START_HUNG_MS);
          onProgress?.({ loadedBytes: 0, totalBytes: 0, mbPerSecond: 0, etaSeconds: null, ...p });
        },
      }));
    } finally {
      clearTimeout(watchdog);
    }
  }

  /** How much of the site's weights Cache Storage holds: {complete, cachedBytes, totalBytes} (fetches the manifest). */
  static async cached(manifestUrl) {
    const url = absolute(manifestUrl);
    return cachedShards(url, (await readManifest(url)).shards);
  }

  /** Removes the site's weight shards (of this build and earlier ones) from Cache Storage; resolves to how many were removed. */
  static evict(manifestUrl) {
    return evictShards(absolute(manifestUrl));
  }

  constructor(worker) {
    this._worker = worker;
    this._followers = []; // the threaded module's other threads, started here for the worker
    this._pending = new Map(); // id -> {resolve, reject, piece?, progress?}
    this._nextId = 1;
    this.info = null;
    this.lastStats = null;
    worker.onmessage = ({ data }) => this._receive(data);
    worker.onerror = (event) => {
      event.preventDefault?.();
      this._fail(new Error(`the bitnet-wasm worker failed: ${event.message || "it could not be started (is worker.js served?)"}`));
    };
  }

  _receive(message) {
    if (message.type === "startFollowers") this._startFollowers(message);
    else if (message.type === "stopFollowers") this._stopFollowers();
    else this._answer(message);
  }

  async _startFollowers({ module, memory, stackTops }) {
    let error = null;
    try {
      this._followers = await startFollowers(module, memory, stackTops);
    } catch (e) {
      error = e.message;
    }
    if (this._worker) this._worker.postMessage({ type: "followersStarted", error });
    else this._stopFollowers(); // disposed meanwhile
  }

  _stopFollowers() {
    for (const follower of this._followers) follower.terminate();
    this._followers = [];
  }

  _answer({ type, id, result, error, piece, progress }) {
    const pending = this._pending.get(id);
    if (!pending) return;
    if (type === "progress") pending.progress?.(progress);
    else if (type === "piece") pending.piece?.(piece);
    else {
      this._pending.delete(id);
      if (type === "result") pending.resolve(result);
      else pending.reject(Object.assign(new Error(error.message), { name: error.name }));
    }
  }

  _fail(error) {
    for (const pending of this._pending.values()) pending.reject(error);
    this._pending.clear();
    this._worker?.terminate();
    this._worker = null;
    this._stopFollowers();
  }

  _request(message, handlers = {}) {
    if (!this._worker) return Promise.reject(new Error("this model was disposed"));
    const id = this._nextId++;
    const promise = new Promise((resolve, reject) => this._pending.set(id, { resolve, reject, ...handlers }));
    this._worker.postMessage({ ...message, id });
    return Object.assign(promise, { id });
  }

  tokenize(text) {
    return this._request({ type: "tokenize", text });
  }

  /** Token ids of a conversation in the model's chat template, the assistant's turn opened (info.chat tells if it has one). */
  chatTokens(messages) {
    return this._request({ type: "chatTokens", messages });
  }

  detokenize(ids) {
    return this._request({ type: "detokenize", ids: Array.from(ids) });
  }

  /** One Float32Array of logits per position of ids, run from an empty cache. */
  logits(ids) {
    return this._request({ type: "logits", ids: Array.from(ids) });
  }

  /**
   * Yields {text, token} for every new token (text is "" while a character is incomplete). An
   * abort via options.signal ends the loop quietly between tokens; lastStats.stopReason says why.
   */
  generate(prompt, { signal, ...options } = {}) {
    return this._stream({ type: "generate", prompt: typeof prompt === "string" ? prompt : Array.from(prompt), options }, signal);
  }

  /**
   * The assistant's reply to OpenAI-style messages ({role: "system" | "user" | "assistant", content}),
   * in the model's chat template; the keys and values of the conversation so far are reused. With
   * stream: true, an async iterator like generate(); otherwise a promise of {text, tokens, stats}.
   */
  chat(messages, { stream = false, signal, ...options } = {}) {
    const pieces = this._stream({ type: "chat", messages, options }, signal);
    return stream ? pieces : collect(pieces, this);
  }

  async *_stream(message, signal) {
    const pieces = [];
    let wake = () => {};
    const request = this._request(message, { piece: (piece) => { pieces.push(piece); wake(); } });
    let finished = false;
    const settled = request.then((stats) => { this.lastStats = stats; }).finally(() => { finished = true; wake(); });
    const abort = () => this._worker?.postMessage({ type: "abort", target: request.id });
    signal?.addEventListener("abort", abort, { once: true });
    if (signal?.aborted) abort();
    try {
      while (!signal?.aborted) {
        if (pieces.length) yield pieces.shift();
        else if (finished) break;
        else await new Promise((resolve) => { wake = resolve; });
      }
      await settled; // rethrows the worker's error; after an abort, waits for the worker to stop
    } finally {
      signal?.removeEventListener("abort", abort);
      if (!finished) {
        abort(); // the consumer left the loop early
        await settled.catch(() => {});
      }
    }
  }

  dispose() {
    this._fail(new Error("this model was disposed"));
  }
}
