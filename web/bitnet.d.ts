// Types of bitnet.js: a BitNet model built by `bitnet-wasm build`, running in a Web Worker.

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
  mbPerSecond: number;
  etaSeconds: number | null;
  phase: "manifest" | "wasm" | "threads" | "tokenizer" | "weights";
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
  /** The relaxed build's int8 dot form the kernels run, the fastest of those timed at load (BN_DOT_I16 = 0,
   * BN_DOT_I32 = 1 in wasm_kernels/bitnet.h; the same sums either way), or null with simd128. */
  dotForm: number | null;
  /** Whether the kernels that read their weights as one stream (the ternary layers, the int8 and 7-bit heads) read a decode
   * call's weights a phase ahead before computing them (the other heads always do), as timed at load on the model
   * itself (the faster of with and without; the same sums either way). */
  readAhead: boolean;
  /** Threads actually running inference. */
  threads: number;
  crossOriginIsolated: boolean;
  /** Why more than one thread was asked for but one runs (e.g. the page is not cross-origin isolated), or null. */
  threadsFallback: string | null;
  vocabSize: number;
  context: number;
  /** Why the shards could not be kept in Cache Storage (e.g. quota exceeded), or null. */
  cacheError: string | null;
  /** Bytes of weight shards that came from Cache Storage (all of them on a reload). */
  cachedBytes: number;
  /** Bytes of the WebAssembly memory the model runs in (module data, weights, KV cache, activations, thread stacks). */
  memoryBytes: number;
  /** The model has a chat template (see chat). */
  chat: boolean;
  /** Its chat template takes a system message. */
  chatSystem: boolean;
}

/**
 * Options of generate() and chat(). Names, defaults and limits come from the site's manifest
 * ("generation", written from compiler/generation.py): the same as the Python runtime and the CLI.
 * A value out of range is refused with an error naming it.
 */
export interface GenerateOptions {
  maxNewTokens?: number;        // integer >= 1; default 128
  temperature?: number;         // >= 0 (0: greedy); default 0.8
  topK?: number;                // integer >= 0 (0: all); default 0
  topP?: number;                // in (0, 1]; default 0.95
  minP?: number;                // in [0, 1]; default 0
  /** Divides the positive logits (multiplies the negative ones) of tokens already in the context; > 0, default 1 (off). */
  repetitionPenalty?: number;
  /** Subtracted from the logit of every token in the context; in [-2, 2], default 0. */
  presencePenalty?: number;
  /** Subtracted, times its count, from the logit of every token in the context; in [-2, 2], default 0. */
  frequencyPenalty?: number;
  /** Same seed and settings -> the same tokens as `bitnet-wasm run`; default random (lastStats.seed tells which). */
  seed?: number | bigint;
  /** Generation ends at the first of these strings, which is not emitted; a string is one stop string. */
  stop?: string | string[];
  /** Keep generating past the end-of-sequence tokens; default false. */
  ignoreEos?: boolean;
  /** Reuse the keys and values of the longest prefix of the prompt already in the cache; default true. */
  cachePrompt?: boolean;
  /** Ends the loop quietly between tokens; lastStats.stopReason becomes "aborted". */
  signal?: AbortSignal;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface ChatOptions extends GenerateOptions {
  /** When the conversation outgrows the context: refuse it (default), or drop its oldest turns after a system message. */
  contextPolicy?: "error" | "drop_oldest";
  /** true: an async iterator of pieces, like generate(). */
  stream?: boolean;
}

export interface ChatReply {
  text: string;
  tokens: number[];
  stats: GenerationStats;
}

export interface Piece {
  /** New text; "" while a character is incomplete or may begin a stop string. */
  text: string;
  token: number;
}

export interface GenerationStats {
  promptTokens: number;
  /** Prompt tokens whose keys and values came from the cache (an earlier turn of the conversation). */
  reusedTokens: number;
  /** Prompt tokens the forward pass ran before the first new token. */
  prefillTokens: number;
  /** chat() with contextPolicy "drop_oldest": messages left out to fit the context. */
  droppedMessages?: number;
  /** The seed sampling used. */
  seed: number | bigint;
  newTokens: number;
  /** From the call to the first new token: the prompt's forward pass and the first choice (a token is given before it runs). */
  ttftSeconds: number | null;
  prefillTokensPerSecond: number | null;
  /** New tokens after the first, over the time since the first: each one forward pass (of the token before it) and a choice. */
  decodeTokensPerSecond: number | null;
  stopReason: "eos" | "stop" | "length" | "context" | "aborted";
}

/** What Cache Storage holds of a site's weight shards, of this build (BitNet.cached). */
export interface CacheStatus {
  /** Every shard of the manifest is cached: the next load downloads no weights. */
  complete: boolean;
  cachedBytes: number;
  totalBytes: number;
}

export declare class BitNet {
  static load(manifestUrl: string | URL, options?: LoadOptions): Promise<BitNet>;
  /** How much of the site's weights Cache Storage holds (fetches the manifest). */
  static cached(manifestUrl: string | URL): Promise<CacheStatus>;
  /** Removes the site's weight shards, of this build and earlier ones, from Cache Storage; resolves to how many. */
  static evict(manifestUrl: string | URL): Promise<number>;
  readonly info: ModelInfo;
  /** Set when a generate() loop ends. */
  lastStats: GenerationStats | null;
  generate(prompt: string | ArrayLike<number>, options?: GenerateOptions): AsyncGenerator<Piece, void, undefined>;
  tokenize(text: string): Promise<number[]>;
  detokenize(ids: ArrayLike<number>): Promise<string>;
  /** The assistant's reply to a conversation, in the model's chat template (info.chat); reuses the cached turns. */
  chat(messages: ChatMessage[], options: ChatOptions & { stream: true }): AsyncGenerator<Piece, void, undefined>;
  chat(messages: ChatMessage[], options?: ChatOptions & { stream?: false }): Promise<ChatReply>;
  /** Token ids of the conversation in the model's chat template, the assistant's turn opened. */
  chatTokens(messages: ChatMessage[]): Promise<number[]>;
  /** Logits after each position of ids, from an empty cache. */
  logits(ids: ArrayLike<number>): Promise<Float32Array[]>;
  /** Stops the worker; the model cannot be used afterwards. */
  dispose(): void;
}
