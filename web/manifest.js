// The site's manifest, checked whole before any of it is used: the same keys, types and invariants as
// compiler/site_format.py (shards tile the weights region, ABI buffers are the plan's, disjoint and
// large enough, tensors inside the weights). tests/compiler/test_site_format.py runs one table of
// damaged manifests through both.
import { ALIGN, FORMAT, FORMAT_VERSION } from "./format.js"; // generated at build

const REGIONS = ["weights", "kv", "activations", "io"];
const MODEL_COUNTS = ["vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "max_position"];
const BUFFER_MINIMUM = {
  tokens: (context, chunk, vocab) => 4 * context,
  logits: (context, chunk, vocab) => 4 * chunk * vocab,
  rng_state: () => 8,
  sample_p: (context, chunk, vocab) => 4 * vocab,
  sample_idx: (context, chunk, vocab) => 4 * vocab,
  step: (context, chunk, vocab, words) => 4 * words,
};
export const SHARD_FILE = /^weights-\d{5}\.bin$/;
const SHA256 = /^[0-9a-f]{64}$/;
const PLAIN_NAME = /^[A-Za-z0-9_-]+$/;

const kind = (v) => (v === null ? "null" : Array.isArray(v) ? "list" : typeof v);
const short = (v) => { const t = JSON.stringify(v) ?? String(v); return t.length <= 40 ? t : `${t.slice(0, 37)}...`; };
const isObject = (v) => kind(v) === "object";
const isCount = (v) => Number.isInteger(v);

export function checkManifest(m, url) {
  const fail = (key, problem) => { throw new Error(`manifest ${url}: ${key} ${problem}; rebuild the site`); };
  const get = (obj, key, where, test, expected, optional = false) => {
    if (!(key in obj) || (optional && obj[key] === null)) {
      if (optional) return null;
      fail(`${where}${key}`, "is missing");
    }
    if (!test(obj[key])) fail(`${where}${key}`, `is ${kind(obj[key])} ${short(obj[key])}, expected ${expected}`);
    return obj[key];
  };
  const object = (obj, key, where, optional) => get(obj, key, where, isObject, "an object", optional);
  const count = (obj, key, where, minimum = 0) => {
    const v = get(obj, key, where, isCount, "an integer");
    if (v < minimum) fail(`${where}${key}`, `is ${v}, expected at least ${minimum}`);
    return v;
  };
  const span = (obj, where, [low, high], aligned = true) => {
    const offset = count(obj, "offset", where), bytes = count(obj, "bytes", where);
    if (aligned && offset % ALIGN) fail(`${where}offset`, `${offset} is not a multiple of ${ALIGN}`);
    if (offset < low || offset + bytes > high) fail(where.replace(/\.$/, ""), `[${offset}, ${offset + bytes}) lies outside [${low}, ${high})`);
    return [offset, offset + bytes];
  };
  const disjoint = (spans, where) => {
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0)); // as Python sorts tuples
    for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) fail(`${where}${spans[i - 1][2]}/${spans[i][2]}`, "overlap");
  };

  if (!isObject(m)) fail("the manifest", `is ${kind(m)}, expected an object`);
  if (m.format !== FORMAT || m.format_version !== FORMAT_VERSION)
    throw new Error(`manifest ${url}: not a bitnet-wasm site of format version ${FORMAT_VERSION} (format ${m.format}, version ${m.format_version}); rebuild the site`);
  const model = object(m, "model", "");
  const counts = Object.fromEntries(MODEL_COUNTS.map((key) => [key, count(model, key, "model.", 1)]));
  for (const key of ["rope_theta", "rms_norm_eps"]) {
    const v = get(model, key, "model.", (x) => typeof x === "number", "a number");
    if (!(Number.isFinite(v) && v > 0)) fail(`model.${key}`, `is ${v}, expected a positive finite number`);
  }
  const vocab = counts.vocab_size;
  const bos = get(model, "bos_token_id", "model.", isCount, "an integer", true);
  const eos = get(model, "eos_token_ids", "model.", Array.isArray, "a list", true) ?? [];
  for (const token of [...(bos === null ? [] : [bos]), ...eos])
    if (!isCount(token) || token < 0 || token >= vocab) fail("model.bos_token_id/eos_token_ids", `holds ${short(token)}, not a token id below the vocabulary size ${vocab}`);

  const files = object(m, "files", "");
  for (const [name, digest] of Object.entries(files))
    if (typeof digest !== "string" || !SHA256.test(digest) || name.includes("/") || name.startsWith(".")) fail(`files.${name}`, "is not a file name in model/ with a sha256 of 64 hex digits");
  const wasm = object(m, "wasm", "", true) ?? {};
  const tokenizer = object(m, "tokenizer", "", true);
  if (tokenizer && tokenizer.config !== undefined && tokenizer.config !== null && typeof tokenizer.config !== "string") fail("tokenizer.config", `is ${kind(tokenizer.config)}, expected a string`);
  if (tokenizer && typeof tokenizer.file !== "string") fail("tokenizer.file", `is ${kind(tokenizer.file)}, expected a string`);
  const named = [...Object.entries(wasm).map(([key, name]) => [`wasm.${key}`, name]),
    ...(tokenizer ? ["file", "config"].map((key) => [`tokenizer.${key}`, tokenizer[key]]) : [])];
  for (const [key, name] of named) if (name !== undefined && name !== null && !(name in files)) fail(key, `${short(name)} is not listed in files (with its sha256)`);

  const sources = object(m, "sources", "");
  if (!SHA256.test(get(sources, "sha256", "sources.", (v) => typeof v === "string", "a string"))) fail("sources.sha256", "is not 64 hex digits");
  const folder = get(sources, "dir", "sources.", (v) => typeof v === "string", "a string", true);
  if (folder !== null && !PLAIN_NAME.test(folder)) fail("sources.dir", `${short(folder)} is not the name of a folder in model/`);

  const plan = object(m, "plan", "");
  const context = count(plan, "context", "plan.", 1), chunk = count(plan, "chunk", "plan.", 1);
  if (chunk > context || context > counts.max_position) fail("plan.context/chunk", `${context}/${chunk}: expected chunk <= context <= model.max_position ${counts.max_position}`);
  const total = count(plan, "total_bytes", "plan.", 1);
  const regions = object(plan, "regions", "plan.");
  const spans = {};
  let cursor = 0;
  for (const name of REGIONS) {
    spans[name] = span(object(regions, name, "plan.regions."), `plan.regions.${name}.`, [0, total]);
    if (spans[name][0] !== cursor) fail(`plan.regions.${name}.offset`, `is ${spans[name][0]}, expected ${cursor} (regions are contiguous, in the order ${REGIONS.join(", ")})`);
    cursor = spans[name][1];
  }
  const card = object(m, "card", "");
  const abi = object(m, "abi", "");
  const words = count(abi, "words", "abi.", 1);
  for (const key of ["token_word", "stop_tokens_word"]) if (count(abi, key, "abi.") >= words) fail(`abi.${key}`, `is ${abi[key]}, beyond the ${words} words of the step buffer`);
  if (count(abi, "max_stop_tokens", "abi.", 1) > words - abi.stop_tokens_word) fail("abi.max_stop_tokens", `is ${abi.max_stop_tokens}, more than the step buffer holds`);
  if (!get(abi, "stop_reasons", "abi.", Array.isArray, "a list").every((r) => typeof r === "string")) fail("abi.stop_reasons", "is not a list of strings");
  if (count(abi, "arena_bytes", "abi.", 1) !== total) fail("abi.arena_bytes", `is ${abi.arena_bytes}, plan.total_bytes is ${total}`);

  const planned = object(plan, "buffers", "plan."), buffers = object(abi, "buffers", "abi.");
  const bufferSpans = Object.entries(buffers).map(([name, buffer]) => {
    const where = `abi.buffers.${name}`;
    if (!isObject(buffer) || !isObject(planned[name])) fail(where, "is not an object with a twin in plan.buffers");
    if (buffer.offset !== planned[name].offset || buffer.bytes !== planned[name].bytes) fail(where, `${short(buffer)} differs from plan.buffers.${name} ${short(planned[name])}`);
    return [...span(buffer, `${where}.`, [spans.kv[0], total]), name];
  });
  disjoint(bufferSpans, "abi.buffers.");
  for (const [name, minimum] of Object.entries(BUFFER_MINIMUM)) {
    const bytes = object(buffers, name, "abi.buffers.").bytes;
    if (bytes < minimum(context, chunk, vocab, words)) fail(`abi.buffers.${name}.bytes`, `is ${bytes}, expected at least ${minimum(context, chunk, vocab, words)}`);
  }

  const weights = spans.weights;
  const shards = get(m, "shards", "", Array.isArray, "a list");
  cursor = weights[0];
  shards.forEach((shard, i) => {
    const where = `shards[${i}].`;
    if (!isObject(shard)) fail(`shards[${i}]`, "is not an object");
    if (!SHARD_FILE.test(get(shard, "file", where, (v) => typeof v === "string", "a string"))) fail(`${where}file`, `${short(shard.file)} is not a shard file name (weights-NNNNN.bin)`);
    if (!SHA256.test(get(shard, "sha256", where, (v) => typeof v === "string", "a string"))) fail(`${where}sha256`, "is not 64 hex digits");
    const [start, end] = span(shard, where, weights, false);
    if (start !== cursor || end === start) fail(`shards[${i}]`, `covers [${start}, ${end}); the shards must tile the weights region [${weights[0]}, ${weights[1]}) in order, the next one starting at ${cursor}`);
    cursor = end;
  });
  if (cursor !== weights[1]) fail("shards", `cover the weights region only up to byte ${cursor} of ${weights[1]} (a shard is missing)`);
  if (count(card, "download_bytes", "card.") !== weights[1] - weights[0]) fail("card.download_bytes", `is ${card.download_bytes}, the shards hold ${weights[1] - weights[0]}`);
  const tensors = object(m, "tensors", "");
  if (!Object.keys(tensors).length) fail("tensors", "is empty");
  disjoint(Object.entries(tensors).map(([name, tensor]) => {
    if (!isObject(tensor)) fail(`tensors.${name}`, "is not an object");
    return [...span(tensor, `tensors.${name}.`, weights), name];
  }), "tensors.");
  return m;
}

/** The manifest at url, fetched and checked whole. */
export async function readManifest(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`manifest ${url}: HTTP ${response.status} ${response.statusText}`);
  let manifest;
  try {
    manifest = await response.json();
  } catch (e) {
    throw new Error(`manifest ${url}: not valid JSON (${e.message})`);
  }
  return checkManifest(manifest, url);
}
