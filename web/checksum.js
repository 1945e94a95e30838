// A shard's check against damage in Cache Storage, at memory speed: the site module's bn_checksum
// (wasm_kernels/checksum.c) over the shard where it lies in wasm memory (WebCrypto's sha256 took 2-3x the
// copy, a JS loop 1-2x). Trailing zeros within the last 16-byte group go unseen: the length is checked apart.
// No defence against a forger: what a shard *is* is its sha256, checked when downloaded.
import { CHECKSUM_SUMS } from "./format.js"; // generated at build: a0..a3 b0..b3, 32 bits each

export const CHECKSUM_SCRATCH_BYTES = CHECKSUM_SUMS * 4;

const hex8 = (sum) => sum.toString(16).padStart(8, "0");

/** checksum(view) for views of `memory`: the digest a0 a1 a2 a3 b0 b1 b2 b3, 8 hex digits each, by
 * exports.bn_checksum, whose sums take the CHECKSUM_SCRATCH_BYTES of memory at byte `scratch` (4-aligned). */
export function wasmChecksum(exports, memory, scratch) {
  const sums = () => new Uint32Array(memory.buffer, scratch, CHECKSUM_SUMS);
  return (view) => {
    if (view.buffer !== memory.buffer) throw new Error("checksum: the bytes are not in the module's memory");
    sums().fill(0);
    exports.bn_checksum(view.byteOffset, view.length, scratch);
    return Array.from(sums(), hex8).join("");
  };
}
