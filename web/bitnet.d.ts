// Types of bitnet.js: a BitNet model built by `bitnet-wasm build`, running in a Web Worker.

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
  mbPerSecond: number;
  etaSeconds: number | null;
  phase: "manifest" | "wasm" | "tokenizer" | "weights";
}

export interface LoadOptions {
  onProgress?: (progress: LoadProgress) => void;
  /** Aborting rejects load() with an AbortError and stops the downloads. */
  signal?: AbortSignal;
  /**
   * Threads sharing each matrix-vector product and attention, 1..8; default
   * min(navigator.hardwareConcurrency, 4). More than one needs a cross-origin isolated page
   * (COOP/COEP headers, or a site built with --coi-service-worker); elsewhere the model runs on
   * one thread and info.threadsFallback says why.
   */
  threads?: number;
  /** Force the module variant; default: "relaxed" where the browser validates relaxed SIMD. */
  simd?: "relaxed" | "simd128";
}

export interface ModelInfo {
  name: string;
  parameters: number;
  bitsPerWeight: number | null;
  /** Bytes of weight shards. */
  downloadBytes: number;
  simd: "relaxed" | "simd128";
  /** Threads actually running inference. */
  threads: number;
  crossOriginIsolated: boolean;
  /** Why more than one thread was asked for but one runs (e.g. the page is not cross-origin isolated), or null. */
  threadsFallback: string | null;
  vocabSize: number;
  context: number;
  /** Why the shards could not be kept in Cache Storage (e.g. quota exceeded), or null. */
  cacheError: string | null;
  /** The model has a chat template (see formatChat). */
  chat: boolean;
}

export interface GenerateOptions {
  maxNewTokens?: number;   // default 128
  temperature?: number;    // default 0: greedy
  topK?: number;           // default 0: all
  topP?: number;           // default 1
  minP?: number;           // default 0
  /** Same seed and settings -> the same tokens as `bitnet-wasm run`; default random. */
  seed?: number | bigint;
  /** Ends the loop quietly between tokens; lastStats.stopReason becomes "aborted". */
  signal?: AbortSignal;
  /** Generation ends at the first of these strings, which is not emitted. */
  stop?: string[];
}

export interface Piece {
  /** New text; "" while a character is incomplete or may begin a stop string. */
  text: string;
  token: number;
}

export interface GenerationStats {
  promptTokens: number;
  newTokens: number;
  ttftSeconds: number | null;
  prefillTokensPerSecond: number | null;
  decodeTokensPerSecond: number | null;
  stopReason: "eos" | "stop" | "length" | "context" | "aborted";
}

export declare class BitNet {
  static load(manifestUrl: string | URL, options?: LoadOptions): Promise<BitNet>;
  readonly info: ModelInfo;
  /** Set when a generate() loop ends. */
  lastStats: GenerationStats | null;
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): AsyncGenerator<Piece, void, undefined>;
  tokenize(text: string): Promise<number[]>;
  detokenize(ids: ArrayLike<number>): Promise<string>;
  /** Token ids of `text` as one user turn of the model's chat template; pass them to generate. */
  formatChat(text: string): Promise<number[]>;
  /** Logits after each position of ids, from an empty cache. */
  logits(ids: ArrayLike<number>): Promise<Float32Array[]>;
  /** Stops the worker; the model cannot be used afterwards. */
  dispose(): void;
}
