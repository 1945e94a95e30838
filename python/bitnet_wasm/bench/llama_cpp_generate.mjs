// Greedy generation in native llama.cpp for bitnet_wasm.bench.llama_cpp, through node-llama-cpp's prebuilt binary.
// argv: the node-llama-cpp package folder. stdin: {model, promptIds, tokens, warmupIds, warmupTokens, threads, context}.
// stdout: one JSON line; on failure, stderr's last line is the error. node-llama-cpp has no timing API that returns
// numbers (printTimings only logs), so the script times around its calls: prefill = prompt tokens over the time to
// the first new token; decode = the new tokens after the first over the time from the first to the last.
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { pathToFileURL } from "node:url";

const [packageDir] = process.argv.slice(2);
const llamaErrors = []; // llama.cpp's own error log: the first line names the cause a thrown error only summarizes

// Greedy (temperature 0), and an end-of-generation token is one more token, not the end: a fixed count, like the other rows.
async function generate(sequence, ids, count) {
  const times = [];
  const tokens = [];
  const started = performance.now();
  for await (const token of sequence.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
    times.push(performance.now());
    tokens.push(token);
    if (tokens.length === count) break;
  }
  await sequence.clearHistory();
  return { started, times, tokens };
}

let llama = null;
try {
  const request = JSON.parse(await text(process.stdin));
  const { getLlama } = await import(pathToFileURL(join(packageDir, "dist/index.js")));
  llama = await getLlama({
    gpu: false, build: "never", maxThreads: 0, // maxThreads 0: a context's `threads` is exact, not a hint
    logLevel: "error", logger: (level, message) => llamaErrors.push(message.trim()),
  });
  const model = await llama.loadModel({ modelPath: request.model });
  const context = await model.createContext({ contextSize: request.context, threads: request.threads });
  const sequence = context.getSequence();
  await generate(sequence, request.warmupIds, request.warmupTokens);
  const { started, times, tokens } = await generate(sequence, request.promptIds, request.tokens);
  const seconds = (from, to) => (to - from) / 1000;
  console.log(JSON.stringify({
    promptTokens: request.promptIds.length,
    newTokens: tokens.length,
    threads: context.currentThreads,
    prefillTokensPerSecond: request.promptIds.length / seconds(started, times[0]),
    decodeTokensPerSecond: (tokens.length - 1) / seconds(times[0], times[times.length - 1]),
  }));
} catch (e) {
  console.error(e.message + (llamaErrors.length ? ` (llama.cpp: ${llamaErrors[0]})` : ""));
  process.exitCode = 1;
} finally {
  await llama?.dispose();
}
