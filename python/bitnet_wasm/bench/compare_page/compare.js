// The in-page half of `bitnet-wasm bench --compare` (python/bitnet_wasm/bench/compare.py drives it
// through window.bench): read bandwidth, int8-dot peak, our engine, wllama, and load and memory, each returning plain data.
import { loadAndMemory } from "./load.js";

const WARMUP_PROMPT = "Warm up.";
const WARMUP_TOKENS = 2;
const quietLogger = { debug() {}, log() {}, warn: console.warn, error: console.error };

function ask(worker, message) {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data.result));
    worker.onerror = (event) => reject(new Error(event.message || "the bandwidth worker failed to start"));
    worker.postMessage(message);
  });
}

// `threads` workers, each with its own kernel library instance and `bytes` of memory, run `probe` in rounds
// they start together (roofline_worker.js); the results, one per worker, each with its span of each round.
async function roofline({ wasmUrl, threads, bytes }, probe) {
  if (threads > 1 && !self.crossOriginIsolated) throw new Error("the roofline of several threads needs a cross-origin isolated page (SharedArrayBuffer)");
  const workers = Array.from({ length: threads }, () => new Worker(new URL("./roofline_worker.js", import.meta.url), { type: "module" }));
  const shared = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
  try {
    await Promise.all(workers.map((w) => ask(w, { type: "setup", wasmUrl, bytes })));
    return await Promise.all(workers.map((w, i) => ask(w, { ...probe, shared, parties: threads, leader: i === 0 })));
  } finally {
    workers.forEach((w) => w.terminate());
  }
}

// The fastest round's time in seconds: from its first thread's start to its last thread's end.
function fastestRound(spansPerWorker) {
  const rounds = Math.min(...spansPerWorker.map((spans) => spans.length));
  if (!rounds) throw new Error("the roofline probe timed no round");
  let best = Infinity;
  for (let i = 0; i < rounds; i++) {
    const round = spansPerWorker.map((spans) => spans[i]);
    best = Math.min(best, Math.max(...round.map(([, end]) => end)) - Math.min(...round.map(([start]) => start)));
  }
  return { seconds: best / 1000, rounds };
}

/** Aggregate read GB/s of `threads` workers streaming their own buffers together: all the bytes of the fastest round over its span. */
async function bandwidth({ wasmUrl, threads, megabytes, seconds }) {
  const bytes = megabytes * 2 ** 20;
  const runs = await roofline({ wasmUrl, threads, bytes }, { type: "read", bytes, seconds });
  const round = fastestRound(runs.map((r) => r.spans));
  return { gbps: (threads * bytes) / round.seconds / 1e9, threads, megabytes, rounds: round.rounds };
}

/** Aggregate int8 GOPS (2 per multiply-add) of `threads` workers running bn_dot_peak together: the fastest round of the faster form. */
async function compute({ wasmUrl, threads, bytes, reps, macsPerCall, seconds }) {
  const runs = await roofline({ wasmUrl, threads, bytes }, { type: "dot", bytes, reps, seconds });
  const rounds = runs[0].spansByForm.map((_, form) => fastestRound(runs.map((r) => r.spansByForm[form])));
  const fastest = Math.min(...rounds.map((r) => r.seconds));
  return { gops: (threads * 2 * macsPerCall) / fastest / 1e9, threads, rounds: Math.min(...rounds.map((r) => r.rounds)) };
}

async function drain(generator) {
  const tokens = [];
  for await (const piece of generator) tokens.push(piece.token);
  return tokens;
}

/** Our engine: load the site's model, one short warm-up generation, then the timed one (prompt: text or token ids). */
async function ours({ siteUrl, threads, simd, prompt, tokens }) {
  const { BitNet } = await import(new URL("bitnet.js", siteUrl).href);
  const model = await BitNet.load(new URL("model/manifest.json", siteUrl).href, { threads, simd });
  try {
    await drain(model.generate(WARMUP_PROMPT, { maxNewTokens: WARMUP_TOKENS, temperature: 0 }));
    const ids = await drain(model.generate(prompt, { maxNewTokens: tokens, temperature: 0, cachePrompt: false })); // the whole prompt prefilled
    const s = model.lastStats;
    return {
      simd: model.info.simd, dotForm: model.info.dotForm, readAhead: model.info.readAhead, threads: model.info.threads, threadsFallback: model.info.threadsFallback ?? null,
      promptTokens: s.promptTokens, newTokens: s.newTokens, tokens: ids, ttftSeconds: s.ttftSeconds,
      prefillTokensPerSecond: s.prefillTokensPerSecond, decodeTokensPerSecond: s.decodeTokensPerSecond,
    };
  } finally {
    model.dispose();
  }
}

/** wllama (llama.cpp): the same prompt, greedy, the same warm-up; its own timings. */
async function wllama({ moduleUrl, wasmUrl, ggufUrl, threads, context, prompt, tokens, logitBias }) {
  const { Wllama } = await import(moduleUrl);
  const engine = new Wllama({ default: wasmUrl }, { suppressNativeLog: true, logger: quietLogger });
  await engine.loadModelFromUrl(ggufUrl, { n_threads: threads, n_ctx: context, n_gpu_layers: 0, useCache: false });
  try {
    const complete = (text, n) => engine.createCompletion({
      prompt: text, max_tokens: n, temperature: 0, top_k: 1, logit_bias: logitBias, cache_prompt: false,
    });
    await complete(WARMUP_PROMPT, WARMUP_TOKENS);
    const response = await complete(prompt, tokens);
    const t = response.timings;
    return {
      threads: engine.getNumThreads(), multithread: engine.isMultithread(), crossOriginIsolated: self.crossOriginIsolated === true,
      promptTokens: t.prompt_n, cachedTokens: t.cache_n, newTokens: t.predicted_n,
      prefillTokensPerSecond: t.prompt_per_second, decodeTokensPerSecond: t.predicted_per_second, text: response.choices[0].text,
    };
  } finally {
    await engine.exit();
  }
}

window.bench = { bandwidth, compute, ours, wllama, loadAndMemory };
document.documentElement.dataset.state = "ready";
