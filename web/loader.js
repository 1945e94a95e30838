// Weight shards: fetched a few at a time, streamed straight into their place in wasm memory,
// checked against the manifest's sha256, and kept in Cache Storage so a reload downloads nothing.
// A cached copy is this build's if stored with its sha256, and whole if the checksum stored with it still holds.
import { SHARD_FILE } from "./manifest.js";

const CACHE_NAME = "bitnet-wasm-shards-v1";
const CONCURRENCY = 4;
const ATTEMPTS = 2; // a corrupt shard is fetched once more, then reported
const NETWORK_ATTEMPTS = 5; // a failed request or a broken connection is retried, resuming what arrived
const BACKOFF_MS = 300; // before the first retry; doubled for each next one
const PROGRESS_INTERVAL_MS = 100;
const PIECE_BYTES = 1 << 20; // of a shard, read or stored at a time
const SHA256_HEADER = "X-Bitnet-Sha256"; // of a cached shard: the build it belongs to
const CHECKSUM_HEADER = "X-Bitnet-Checksum"; // of a cached shard's bytes, when stored

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
export const sha256Hex = async (bytes) => hex(await crypto.subtle.digest("SHA-256", bytes));

class ShardError extends Error {} // the bytes are wrong: refetch from scratch

class NetworkError extends Error { // the transfer failed: retry after a pause, from `received`
  constructor(message, received) {
    super(message);
    this.received = received;
  }
}

const RETRIED_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const pause = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
});

async function openCache() {
  if (!globalThis.caches) return { cache: null, error: "Cache Storage is unavailable here (not a secure context?); weights will be downloaded again on every visit" };
  try {
    return { cache: await caches.open(CACHE_NAME), error: null };
  } catch (e) {
    return { cache: null, error: `Cache Storage cannot be opened (${e.name}: ${e.message}); weights will be downloaded again on every visit` };
  }
}

// WebCrypto refuses views of shared memory, and copies its input when called: one scratch copy, reused for
// every shard of a load, is all threaded builds need (a copy per shard in flight was 100 MB more at the peak).
function hashableCopy() {
  let scratch = null;
  return (view) => {
    if (view.buffer instanceof ArrayBuffer) return view;
    if (!scratch || scratch.length < view.length) scratch = new Uint8Array(view.length);
    const bytes = scratch.subarray(0, view.length);
    bytes.set(view);
    return bytes;
  };
}

async function verify(shard, bytes) {
  const digest = await sha256Hex(bytes); // synchronous up to WebCrypto's copy of `bytes`: the caller may reuse them
  if (digest !== shard.sha256) throw new ShardError(`${shard.file}: sha256 ${digest} does not match the manifest's ${shard.sha256} (corrupt download)`);
}

// Chromium collects a byte-stream reader whose read is pending unless something holds it, and that read never
// resolves (seen on Cache Storage bodies under allocation): readers are held here while they read.
const readersInUse = new Set();

// A byte stream reads into one reused buffer ("byob"); a default reader's fresh chunk per read is garbage the
// page keeps until a collection: about 90 MB more at the peak of a 220 MB model's load from cache.
function reusingReader(body) {
  let reader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch (e) {
    if (!(e instanceof TypeError)) throw e; // not a byte stream in this engine
    return body.getReader();
  }
  let buffer = new ArrayBuffer(PIECE_BYTES);
  readersInUse.add(reader);
  const done = () => readersInUse.delete(reader);
  return {
    async read() {
      const chunk = await reader.read(new Uint8Array(buffer)).catch((e) => { done(); throw e; });
      if (chunk.done) done();
      else buffer = chunk.value.buffer;
      return chunk;
    },
    cancel: () => { done(); return reader.cancel(); },
  };
}

// Reads `body` into target(shard) from byte `received` on, as it arrives (no copy of the whole shard),
// telling onBytes the bytes in place after each piece; resolves to the bytes it holds, or to a count
// above shard.bytes as soon as more arrive (the rest is cancelled).
async function readInto(body, shard, target, received = 0, onBytes = () => {}) {
  const reader = reusingReader(body);
  for (let chunk; !(chunk = await reader.read()).done; onBytes(received)) {
    if (received + chunk.value.length > shard.bytes) {
      await reader.cancel();
      return received + chunk.value.length;
    }
    target(shard).set(chunk.value, received); // a fresh view each time: memory may have been replaced
    received += chunk.value.length;
  }
  return received;
}

const isThisBuilds = (response, shard) => response?.headers.get(SHA256_HEADER) === shard.sha256;

// A cached copy of another build (or of none: stored before the checksum) is left for the download to replace.
async function fromCache(cache, url, shard, target, checksum) {
  const response = cache && (await cache.match(url));
  if (!isThisBuilds(response, shard)) return false;
  try {
    const bytes = response.body ? await readInto(response.body, shard, target) : 0;
    if (bytes !== shard.bytes) throw new ShardError(`${shard.file}: cached copy has ${bytes > shard.bytes ? "more than " + shard.bytes : bytes} bytes`);
    if (checksum(target(shard)) !== response.headers.get(CHECKSUM_HEADER)) throw new ShardError(`${shard.file}: cached copy is damaged`);
    return true;
  } catch (e) {
    if (!(e instanceof ShardError)) throw e;
    await cache.delete(url);
    return false;
  }
}

// Fetch the shard's bytes from `resumeAt` on (a Range request) into target(shard); onBytes(received)
// reports the bytes in place so far. A server that ignores Range sends the whole shard again.
async function fromNetwork(url, shard, target, { fresh, resumeAt, signal, onBytes, hashable }) {
  let response;
  try {
    // a refetch after corrupt bytes bypasses the HTTP cache, which may hold the same bad bytes
    response = await fetch(url, { signal, cache: fresh ? "no-store" : "default", headers: resumeAt ? { Range: `bytes=${resumeAt}-` } : {} });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new NetworkError(`${shard.file}: the request failed (${e.message})`, resumeAt);
  }
  const status = `HTTP ${response.status} ${response.statusText} from ${url}`;
  if (RETRIED_STATUS.has(response.status)) throw new NetworkError(`${shard.file}: ${status}`, resumeAt);
  if (!response.ok) throw new Error(`${shard.file}: ${status}`);
  let received = response.status === 206 && response.headers.get("Content-Range")?.startsWith(`bytes ${resumeAt}-`) ? resumeAt : 0;
  if (response.status === 206 && !received && resumeAt) throw new ShardError(`${shard.file}: the server answered a Range request with other bytes`);
  onBytes(received);
  try {
    received = await readInto(response.body, shard, target, received, (inPlace) => onBytes(received = inPlace));
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new NetworkError(`${shard.file}: the connection broke after ${received} of ${shard.bytes} bytes (${e.message})`, received);
  }
  if (received > shard.bytes) throw new ShardError(`${shard.file}: the server sent more than the manifest's ${shard.bytes} bytes`);
  if (received !== shard.bytes) {
    // the body ended early: a broken transfer if the server promised the whole shard, else its copy is short
    const promised = Number(response.headers.get("Content-Length")) + (response.status === 206 ? resumeAt : 0);
    if (promised === shard.bytes) throw new NetworkError(`${shard.file}: the connection broke after ${received} of ${shard.bytes} bytes`, received);
    throw new ShardError(`${shard.file}: truncated: ${received} of ${shard.bytes} bytes arrived`);
  }
  await verify(shard, hashable(target(shard)));
}

// The shard from wasm memory a piece at a time: a whole-shard body would be one more copy of it per shard in flight.
const piecesOf = (shard, target) => {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      const end = Math.min(at + PIECE_BYTES, shard.bytes);
      controller.enqueue(target(shard).slice(at, end));
      if ((at = end) === shard.bytes) controller.close();
    },
  });
};

async function store(cache, url, shard, target, checksum) {
  try {
    const headers = { [SHA256_HEADER]: shard.sha256, [CHECKSUM_HEADER]: checksum(target(shard)) };
    await cache.put(url, new Response(piecesOf(shard, target), { headers }));
    return null;
  } catch (e) {
    const why = e.name === "QuotaExceededError" ? "the storage quota is exceeded" : `${e.name}: ${e.message}`;
    return `${shard.file} could not be stored in Cache Storage (${why}); it will be downloaded again next visit`;
  }
}

/**
 * Load every shard of `shards` ({file, offset, bytes, sha256}) from baseUrl into target(shard), a
 * Uint8Array of exactly shard.bytes; checksum(view) the digest a cached shard is stored with and checked
 * against (web/checksum.js's wasmChecksum over the same memory). onProgress({loadedBytes, totalBytes, mbPerSecond, etaSeconds, phase}).
 * Resolves to {cacheError, cachedBytes}: null, or why the shards could not be cached (loading still
 * succeeded); and the bytes that came from Cache Storage.
 */
export async function loadShards({ baseUrl, shards, target, checksum, onProgress = () => {}, signal, concurrency = CONCURRENCY }) {
  const { cache, error: openError } = await openCache();
  const totalBytes = shards.reduce((sum, s) => sum + s.bytes, 0);
  const started = performance.now();
  let loadedBytes = 0, lastReport = -Infinity;
  const cacheErrors = openError ? [openError] : [];
  let cachedBytes = 0; // of the shards Cache Storage held already
  const report = (force = false) => {
    const now = performance.now();
    if (!force && now - lastReport < PROGRESS_INTERVAL_MS) return;
    lastReport = now;
    const bytesPerSecond = loadedBytes / Math.max((now - started) / 1000, 1e-3);
    const etaSeconds = bytesPerSecond > 0 ? (totalBytes - loadedBytes) / bytesPerSecond : null;
    onProgress({ loadedBytes, totalBytes, mbPerSecond: bytesPerSecond / 1e6, etaSeconds, phase: "weights" });
  };

  const hashable = hashableCopy();
  const loadOne = async (shard) => {
    const url = new URL(shard.file, baseUrl).href;
    if (await fromCache(cache, url, shard, target, checksum)) {
      loadedBytes += shard.bytes;
      cachedBytes += shard.bytes;
      return report();
    }
    let counted = 0, resumeAt = 0, corrupt = 0, failures = 0;
    const onBytes = (received) => { loadedBytes += received - counted; counted = received; report(); };
    for (;;) {
      try {
        await fromNetwork(url, shard, target, { fresh: corrupt > 0, resumeAt, signal, onBytes, hashable });
        break;
      } catch (e) {
        if (e instanceof ShardError) {
          if (++corrupt >= ATTEMPTS) throw new Error(`weight shard ${e.message}; fetched ${ATTEMPTS} times, the site's copy is bad`);
          onBytes(resumeAt = 0);
        } else if (e instanceof NetworkError) {
          if (++failures >= NETWORK_ATTEMPTS) throw new Error(`weight shard ${e.message}; gave up after ${NETWORK_ATTEMPTS} attempts`);
          resumeAt = e.received;
          await pause(BACKOFF_MS * 2 ** (failures - 1), signal);
        } else {
          throw e;
        }
      }
    }
    const cacheError = cache && (await store(cache, url, shard, target, checksum));
    if (cacheError) cacheErrors.push(cacheError);
  };

  const queue = [...shards];
  const workers = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    while (queue.length) {
      signal?.throwIfAborted();
      await loadOne(queue.shift());
    }
  });
  await Promise.all(workers);
  report(true);
  return { cacheError: cacheErrors.length ? cacheErrors.join("; ") : null, cachedBytes };
}

/** {complete, cachedBytes, totalBytes}: how much of `shards` (their files under baseUrl) Cache Storage holds for this build. */
export async function cachedShards(baseUrl, shards) {
  const { cache } = await openCache();
  const cached = await Promise.all(shards.map(async (s) => cache && isThisBuilds(await cache.match(new URL(s.file, baseUrl).href), s)));
  const totalBytes = shards.reduce((sum, s) => sum + s.bytes, 0);
  const cachedBytes = shards.filter((_, i) => cached[i]).reduce((sum, s) => sum + s.bytes, 0);
  return { complete: cachedBytes === totalBytes, cachedBytes, totalBytes };
}

/** Deletes every cached shard of the folder of baseUrl (this build's and any earlier one's); resolves to how many. */
export async function evictShards(baseUrl) {
  if (!globalThis.caches || !(await caches.has(CACHE_NAME))) return 0;
  const folder = new URL(".", baseUrl).href;
  const cache = await caches.open(CACHE_NAME);
  const shards = (await cache.keys()).filter((request) => request.url.startsWith(folder) && SHARD_FILE.test(request.url.slice(folder.length)));
  await Promise.all(shards.map((request) => cache.delete(request)));
  return shards.length;
}
