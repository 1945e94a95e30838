/** Types of web/tokenizer.js: a Hugging Face tokenizer.json (BPE model) in the browser. */

/** The parsed contents of a tokenizer.json (only BPE models are supported). */
export interface TokenizerJSON {
  model: { type?: "BPE"; vocab: Record<string, number>; merges: (string | [string, string])[]; [key: string]: unknown };
  added_tokens?: {
    id: number;
    content: string;
    single_word?: boolean;
    lstrip?: boolean;
    rstrip?: boolean;
    normalized?: boolean;
    special?: boolean;
  }[];
  normalizer?: { type: string; [key: string]: unknown } | null;
  pre_tokenizer?: { type: string; [key: string]: unknown } | null;
  post_processor?: { type: string; [key: string]: unknown } | null;
  decoder?: { type: string; [key: string]: unknown } | null;
  [key: string]: unknown;
}

export interface EncodeOptions {
  /** Apply the post_processor (e.g. prepend BOS). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leave out added tokens marked `special` (BOS, EOS, ...). Default true. */
  skipSpecialTokens?: boolean;
}

/** Incremental detokenizer: text never ends inside a character split over byte tokens. */
export interface StreamDecoder {
  /** Adds one generated id; returns the new text ("" while a character is incomplete). */
  push(id: number): string;
  /** Returns what is still held back (end of generation) and starts over. */
  flush(): string;
}

export class Tokenizer {
  /** Throws an Error naming the unsupported or malformed part of the file. */
  static fromJSON(json: TokenizerJSON | string): Tokenizer;
  constructor(json: TokenizerJSON);
  /** Number of ids: 1 + the largest id of the vocab and added tokens. */
  readonly vocabSize: number;
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids that name no token are skipped, as in `tokenizers`. */
  decode(ids: Iterable<number>, options?: DecodeOptions): string;
  createStreamDecoder(options?: DecodeOptions): StreamDecoder;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
}
