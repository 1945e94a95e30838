// The in-page half of the load and memory measurement of `bitnet-wasm bench --compare`
// (python/bitnet_wasm/bench/load_memory.py drives it, one step per call, and samples the browser's
// memory meanwhile).
const PAGE = 65536;

async function timed(run) {
  const started = performance.now();
  const result = await run();
  return [(performance.now() - started) / 1000, result];
}

/** One visit of the site: BitNet.load (from the network, or from Cache Storage once a visit filled it), a short greedy generation, dispose. */
async function visit({ siteUrl, simd, threads, prompt, tokens }) {
  const { BitNet } = await import(new URL("bitnet.js", siteUrl).href);
  const phaseSeconds = {}; // when each phase of the load reported first (weights: once the first shard is in place)
  const started = performance.now();
  const onProgress = ({ phase }) => { phaseSeconds[phase] ??= (performance.now() - started) / 1000; };
  const [loadSeconds, model] = await timed(() => BitNet.load(new URL("model/manifest.json", siteUrl).href, { threads, simd, onProgress }));
  try {
    for await (const piece of model.generate(prompt, { maxNewTokens: tokens, temperature: 0 })) void piece;
    const { simd: ran, threads: ranThreads, cachedBytes, cacheError, downloadBytes, memoryBytes } = model.info;
    return { loadSeconds, simd: ran, threads: ranThreads, cachedBytes, cacheError, shardBytes: downloadBytes, memoryBytes, phaseSeconds,
             newTokens: model.lastStats.newTokens };
  } finally {
    model.dispose();
  }
}

// The site's module (as the worker picks it for `simd`, one thread) with its memory grown by `bytes` from
// the page boundary above its data and stack, then room for the checksum's sums: where the worker places the shards.
async function siteModule(siteUrl, wasmFile, bytes) {
  const { CHECKSUM_SCRATCH_BYTES, wasmChecksum } = await import(new URL("checksum.js", siteUrl).href);
  const { instance } = await WebAssembly.instantiate(await (await fetch(new URL(`model/${wasmFile}`, siteUrl))).arrayBuffer(), {});
  const { memory } = instance.exports;
  const base = Math.ceil(instance.exports.__heap_base.value / PAGE) * PAGE;
  memory.grow(Math.ceil((base + bytes + CHECKSUM_SCRATCH_BYTES) / PAGE) - memory.buffer.byteLength / PAGE);
  return { memory, base, checksum: wasmChecksum(instance.exports, memory, base + bytes) };
}

/**
 * The site's shard bytes on the page's thread, once Cache Storage holds them, `rounds` times in turn: the site's own
 * loader from Cache Storage into the grown memory of a fresh instance of the site's module (cache read, copy,
 * checksum), then a plain copy of the placed bytes into a fresh WebAssembly.Memory (every round's pages new, as a
 * load's are). Then once more into the last copy's now resident pages, and, shard after shard, the loader's checksum
 * and WebCrypto's sha256 (the download's check).
 */
async function reference({ siteUrl, simd, rounds }) {
  const manifestUrl = new URL("model/manifest.json", siteUrl).href;
  const { loadShards } = await import(new URL("loader.js", siteUrl).href);
  const { readManifest } = await import(new URL("manifest.js", siteUrl).href);
  const manifest = await readManifest(manifestUrl);
  const { shards } = manifest;
  const offsets = shards.map((_, i) => shards.slice(0, i).reduce((sum, s) => sum + s.bytes, 0));
  const totalBytes = shards.reduce((sum, s) => sum + s.bytes, 0);
  const at = ({ memory, base }, i) => new Uint8Array(memory.buffer, base + offsets[i], shards[i].bytes);
  const copyAll = (copy, placed) => shards.forEach((_, i) => at(copy, i).set(at(placed, i)));
  const loaderSeconds = [], copySeconds = [], cachedBytes = [];
  let placed, copy;
  for (let round = 0; round < rounds; round++) {
    placed = await siteModule(siteUrl, manifest.wasm[simd], totalBytes);
    const [seconds, loaded] = await timed(() => loadShards({
      baseUrl: manifestUrl, shards, target: (shard) => at(placed, shards.indexOf(shard)), checksum: placed.checksum,
    }));
    loaderSeconds.push(seconds);
    cachedBytes.push(loaded.cachedBytes);
    copy = { memory: new WebAssembly.Memory({ initial: Math.ceil(totalBytes / PAGE) }), base: 0 };
    copySeconds.push((await timed(() => copyAll(copy, placed)))[0]);
  }
  const [copyTouchedSeconds] = await timed(() => copyAll(copy, placed)); // into pages now resident: the copy without page faults
  const [checksumSeconds] = await timed(() => shards.forEach((_, i) => placed.checksum(at(placed, i))));
  const [sha256Seconds] = await timed(async () => {
    for (let i = 0; i < shards.length; i++) await crypto.subtle.digest("SHA-256", at(placed, i));
  });
  // the rounds are judged as loads from cache only if every one of them took all its bytes from there
  return { shardBytes: totalBytes, shards: shards.length, loaderSeconds, cachedBytes: Math.min(...cachedBytes),
           copySeconds, copyTouchedSeconds, checksumSeconds, sha256Seconds };
}

const STEPS = { visit, reference };

/** step: "visit" or "reference" (see above); the other keys are that step's. */
export async function loadAndMemory({ step, ...argument }) {
  if (!STEPS[step]) throw new Error(`loadAndMemory: no step ${JSON.stringify(step)}; one of ${Object.keys(STEPS).join(", ")}`);
  return STEPS[step](argument);
}
