// A Hugging Face tokenizer.json (BPE model) in the browser: the same pipeline as the Rust
// `tokenizers` crate (added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor, and
// decoders back), with byte-level (GPT-2 / Llama-3) and SentencePiece-style (byte fallback) BPE.

// tokenizer.json regexes are Oniguruma: there \s is Unicode White_Space and \d is Unicode Nd.
const ONIGURUMA_ESCAPES = { s: "\\p{White_Space}", S: "\\P{White_Space}", d: "\\p{Nd}", D: "\\P{Nd}" };

// Regex text that older engines cannot compile, and the same language without it: the
// case-insensitive contractions of Llama-3 and GPT-4o style pre-tokenizers use a modifier group
// (?i:...), new in Chrome 125, Firefox 132 and Safari 18.4 (and absent from Node 20). With case
// folding, s also matches U+017F (long s) in Oniguruma and JS alike.
const REGEX_REWRITES = [
  ["(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'[sS\u017F]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"],
];

function compileRegex(pattern, where) {
  const rewritten = REGEX_REWRITES.reduce((text, [from, to]) => text.replaceAll(from, to), pattern);
  const source = rewritten.replace(/\\(.)/gsu, (escape, c) => ONIGURUMA_ESCAPES[c] ?? escape);
  try {
    return new RegExp(source, "gu");
  } catch (e) {
    throw new Error(`tokenizer.json: ${where}: regex ${JSON.stringify(pattern)} is not supported here: ${e.message}`);
  }
}

const escapeRegex = (s) => s.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&");

function compilePattern(pattern, where) {
  if (pattern && typeof pattern.Regex === "string") return compileRegex(pattern.Regex, where);
  if (pattern && typeof pattern.String === "string") return new RegExp(escapeRegex(pattern.String), "gu");
  throw new Error(`tokenizer.json: ${where}: pattern must be {"String": ...} or {"Regex": ...}`);
}

function fromTable(table, config, where) {
  if (config == null) return null;
  const build = table[config.type];
  if (!build) throw new Error(`tokenizer.json: unsupported ${where} type ${JSON.stringify(config.type)} (supported: ${Object.keys(table).join(", ")})`);
  return build(config);
}

// ---- normalizers: string -> string ----
const NORMALIZERS = {
  Sequence: (c) => {
    const steps = c.normalizers.map((n) => fromTable(NORMALIZERS, n, "normalizer"));
    return (s) => steps.reduce((acc, step) => step(acc), s);
  },
  NFC: () => (s) => s.normalize("NFC"),
  NFD: () => (s) => s.normalize("NFD"),
  NFKC: () => (s) => s.normalize("NFKC"),
  NFKD: () => (s) => s.normalize("NFKD"),
  Lowercase: () => (s) => s.toLowerCase(),
  Prepend: (c) => (s) => (s === "" ? s : c.prepend + s),
  Replace: (c) => {
    const pattern = compilePattern(c.pattern, "Replace normalizer");
    return (s) => s.replace(pattern, () => c.content);
  },
  Strip: (c) => (s) => {
    if (c.strip_left) s = s.replace(/^\p{White_Space}+/u, "");
    return c.strip_right ? s.replace(/\p{White_Space}+$/u, "") : s;
  },
  StripAccents: () => (s) => s.replace(/\p{M}/gu, ""),
};

// ---- pre-tokenizers: piece -> pieces; a piece is {text, atStart} (atStart: begins the input) ----
const SPLIT_BEHAVIORS = {
  Removed: (spans) => spans.filter((s) => !s.match),
  Isolated: (spans) => spans,
  Contiguous: (spans) => mergeSpans(spans, (span, previous) => span.match === previous),
  MergedWithPrevious: (spans) => mergeSpans(spans, (span, previous) => span.match && !previous),
  MergedWithNext: (spans) =>
    mergeSpans([...spans].reverse(), (span, previous) => span.match && !previous).reverse(),
};

// Folds a span into the last kept one when `joins(span, previousWasMatch)` says so.
function mergeSpans(spans, joins) {
  const kept = [];
  let previousMatch = false;
  for (const span of spans) {
    const last = kept[kept.length - 1];
    if (last && joins(span, previousMatch)) {
      last.start = Math.min(last.start, span.start);
      last.end = Math.max(last.end, span.end);
    } else {
      kept.push({ ...span });
    }
    previousMatch = span.match;
  }
  return kept;
}

function splitPiece(piece, regex, behavior, invert = false) {
  const { text } = piece;
  const spans = [];
  let end = 0;
  for (const m of text.matchAll(regex)) {
    if (m.index > end) spans.push({ start: end, end: m.index, match: invert });
    spans.push({ start: m.index, end: m.index + m[0].length, match: !invert });
    end = m.index + m[0].length;
  }
  if (end < text.length) spans.push({ start: end, end: text.length, match: invert });
  return SPLIT_BEHAVIORS[behavior](spans)
    .filter((s) => s.end > s.start)
    .map((s) => ({ text: text.slice(s.start, s.end), atStart: piece.atStart && s.start === 0 }));
}

function splitBehavior(name) {
  if (!SPLIT_BEHAVIORS[name]) throw new Error(`tokenizer.json: unknown split behavior ${JSON.stringify(name)}`);
  return name;
}

const GPT2_PATTERN = compileRegex("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "ByteLevel");

// GPT-2's reversible byte -> printable character table.
const BYTE_TO_CHAR = (() => {
  const table = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
})();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
const utf8 = new TextEncoder();

const metaspacePrepend = (c) => c.prepend_scheme ?? (c.add_prefix_space === false ? "never" : "always");

const PRE_TOKENIZERS = {
  Sequence: (c) => {
    const steps = c.pretokenizers.map((p) => fromTable(PRE_TOKENIZERS, p, "pre_tokenizer"));
    return (piece) => steps.reduce((pieces, step) => pieces.flatMap(step), [piece]);
  },
  Split: (c) => {
    const regex = compilePattern(c.pattern, "Split pre_tokenizer");
    const behavior = splitBehavior(c.behavior);
    return (piece) => splitPiece(piece, regex, behavior, c.invert);
  },
  ByteLevel: (c) => (piece) => {
    const text = c.add_prefix_space && !piece.text.startsWith(" ") ? " " + piece.text : piece.text;
    const pieces = c.use_regex === false ? [{ ...piece, text }] : splitPiece({ ...piece, text }, GPT2_PATTERN, "Isolated");
    return pieces.map((p) => ({ ...p, text: Array.from(utf8.encode(p.text), (b) => BYTE_TO_CHAR[b]).join("") }));
  },
  Digits: (c) => {
    const regex = c.individual_digits ? /\p{N}/gu : /\p{N}+/gu;
    return (piece) => splitPiece(piece, regex, "Isolated");
  },
  Metaspace: (c) => {
    const prepend = metaspacePrepend(c);
    const separator = new RegExp(escapeRegex(c.replacement), "gu");
    return (piece) => {
      let text = piece.text.replaceAll(" ", c.replacement);
      const wantsPrefix = prepend === "always" || (prepend === "first" && piece.atStart);
      if (wantsPrefix && !text.startsWith(c.replacement)) text = c.replacement + text;
      const replaced = { ...piece, text };
      return c.split === false ? [replaced] : splitPiece(replaced, separator, "MergedWithNext");
    };
  },
};

// ---- the BPE model: pre-token -> ids ----
const CACHE_LIMIT = 10000;

class MinHeap {
  constructor() { this.items = []; }
  get size() { return this.items.length; }
  push(value) {
    const a = this.items;
    a.push(value);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (a[parent] <= a[i]) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }
  pop() {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l] < a[m]) m = l;
        if (r < a.length && a[r] < a[m]) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

// Heap keys order merges by rank, then by position (leftmost first), like tokenizers' BPE.
const POSITIONS = 2 ** 32;

class BPE {
  constructor(model) {
    if (model.type !== undefined && model.type !== "BPE") {
      throw new Error(`tokenizer.json: model type ${JSON.stringify(model.type)} is not supported (only BPE)`);
    }
    if (model.dropout) throw new Error("tokenizer.json: BPE dropout is not supported");
    if (!model.vocab || typeof model.vocab !== "object" || Array.isArray(model.vocab) || !Array.isArray(model.merges)) {
      throw new Error("tokenizer.json: a BPE model needs \"vocab\" {token: id} and \"merges\" [...]");
    }
    this.vocab = new Map(Object.entries(model.vocab));
    this.unkToken = model.unk_token ?? null;
    this.fuseUnk = Boolean(model.fuse_unk);
    this.byteFallback = Boolean(model.byte_fallback);
    this.ignoreMerges = Boolean(model.ignore_merges);
    this.prefix = model.continuing_subword_prefix ?? "";
    this.suffix = model.end_of_word_suffix ?? "";
    if (this.unkToken !== null && !this.vocab.has(this.unkToken)) {
      throw new Error(`tokenizer.json: unk_token ${JSON.stringify(this.unkToken)} is not in the vocab`);
    }
    this.width = 0;
    for (const id of this.vocab.values()) this.width = Math.max(this.width, id + 1);
    this.mergeIndex = new Map(); // pair key -> rank
    this.mergeResult = new Int32Array(model.merges.length);
    model.merges.forEach((merge, rank) => {
      const pair = typeof merge === "string" ? merge.split(" ") : merge;
      const ids = pair.length === 2 ? [pair[0], pair[1], pair[0] + pair[1].slice(this.prefix.length)].map((t) => this.vocab.get(t)) : [];
      if (ids.length !== 3 || ids.includes(undefined)) {
        throw new Error(`tokenizer.json: merge #${rank} ${JSON.stringify(merge)} does not name two vocab tokens whose join is in the vocab`);
      }
      this.mergeIndex.set(ids[0] * this.width + ids[1], rank);
      this.mergeResult[rank] = ids[2];
    });
    this.cache = new Map();
  }

  tokenize(word) {
    if (word === "") return [];
    if (this.ignoreMerges && this.vocab.has(word)) return [this.vocab.get(word)];
    let ids = this.cache.get(word);
    if (ids === undefined) {
      ids = this.merge(this.symbols(word));
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    return ids;
  }

  // Characters -> initial ids (continuing prefix / end suffix, byte fallback, unk fusing).
  symbols(word) {
    const chars = Array.from(word);
    const ids = [];
    let unk = false;
    chars.forEach((ch, i) => {
      const s = (i > 0 ? this.prefix : "") + ch + (i === chars.length - 1 ? this.suffix : "");
      const id = this.vocab.get(s);
      if (id !== undefined) {
        if (unk) ids.push(this.vocab.get(this.unkToken));
        unk = false;
        ids.push(id);
        return;
      }
      if (this.byteFallback) {
        const bytes = Array.from(utf8.encode(s), (b) => this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
        if (!bytes.includes(undefined)) {
          ids.push(...bytes);
          return;
        }
      }
      if (this.unkToken === null) return;
      if (unk && !this.fuseUnk) ids.push(this.vocab.get(this.unkToken));
      unk = true;
    });
    if (unk) ids.push(this.vocab.get(this.unkToken));
    return ids;
  }

  rankOf(left, right) {
    return this.mergeIndex.get(left * this.width + right);
  }

  merge(ids) {
    const n = ids.length;
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const gone = new Uint8Array(n);
    const heap = new MinHeap();
    const offer = (pos) => {
      const rank = this.rankOf(ids[pos], ids[next[pos]]);
      if (rank !== undefined) heap.push(rank * POSITIONS + pos);
    };
    for (let i = 0; i + 1 < n; i++) offer(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const rank = Math.floor(key / POSITIONS);
      const pos = key - rank * POSITIONS;
      const right = next[pos];
      if (gone[pos] || right < 0 || this.rankOf(ids[pos], ids[right]) !== rank) continue; // stale entry
      ids[pos] = this.mergeResult[rank];
      gone[right] = 1;
      next[pos] = next[right];
      if (next[pos] >= 0) prev[next[pos]] = pos;
      if (prev[pos] >= 0) offer(prev[pos]);
      if (next[pos] >= 0) offer(pos);
    }
    return ids.filter((_, i) => !gone[i]);
  }
}

// ---- post-processors (single sequence): ids -> ids ----
const POST_PROCESSORS = {
  Sequence: (c) => {
    const steps = c.processors.map((p) => fromTable(POST_PROCESSORS, p, "post_processor"));
    return (ids) => steps.reduce((acc, step) => step(acc), ids);
  },
  ByteLevel: () => (ids) => ids,
  TemplateProcessing: (c) => {
    const parts = c.single.map((item) => {
      if (item.Sequence) return null; // the encoded text goes here
      const special = c.special_tokens[item.SpecialToken.id];
      if (!special) throw new Error(`tokenizer.json: TemplateProcessing uses undefined special token ${JSON.stringify(item.SpecialToken.id)}`);
      return special.ids;
    });
    return (ids) => parts.flatMap((part) => part ?? ids);
  },
};

// ---- decoders: tokens -> tokens, joined at the end ----
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
// U+FFFD per maximal invalid subpart, like Rust's from_utf8_lossy; a leading U+FEFF is text here.
const utf8Lossy = new TextDecoder("utf-8", { ignoreBOM: true });
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function stripChar(token, ch, fromStart, fromEnd) {
  const chars = Array.from(token);
  let start = 0, end = chars.length;
  while (start < fromStart && start < end && chars[start] === ch) start++;
  while (chars.length - end < fromEnd && end > start && chars[end - 1] === ch) end--;
  return chars.slice(start, end).join("");
}

const DECODERS = {
  Sequence: (c) => {
    const steps = c.decoders.map((d) => fromTable(DECODERS, d, "decoder"));
    return (tokens) => steps.reduce((acc, step) => step(acc), tokens);
  },
  ByteLevel: () => (tokens) => {
    const bytes = tokens.flatMap((t) => {
      const mapped = Array.from(t, (ch) => CHAR_TO_BYTE.get(ch));
      return mapped.includes(undefined) ? Array.from(utf8.encode(t)) : mapped;
    });
    return [utf8Lossy.decode(new Uint8Array(bytes))];
  },
  Metaspace: (c) => {
    const stripFirst = metaspacePrepend(c) !== "never";
    return (tokens) => tokens.map((t, i) => t.replaceAll(c.replacement, i === 0 && stripFirst ? "" : " "));
  },
  ByteFallback: () => (tokens) => {
    const out = [];
    let pending = [];
    const flush = () => {
      if (pending.length === 0) return;
      try {
        out.push(utf8Strict.decode(new Uint8Array(pending)));
      } catch {
        out.push(...pending.map(() => "\uFFFD"));
      }
      pending = [];
    };
    for (const t of tokens) {
      const byte = BYTE_TOKEN.exec(t);
      if (byte) pending.push(parseInt(byte[1], 16));
      else {
        flush();
        out.push(t);
      }
    }
    flush();
    return out;
  },
  Fuse: () => (tokens) => [tokens.join("")],
  Strip: (c) => (tokens) => tokens.map((t) => stripChar(t, c.content, c.start, c.stop)),
  Replace: (c) => {
    const pattern = compilePattern(c.pattern, "Replace decoder");
    return (tokens) => tokens.map((t) => t.replace(pattern, () => c.content));
  },
  BPEDecoder: (c) => (tokens) => tokens.map((t, i) => t.replaceAll(c.suffix, i === tokens.length - 1 ? "" : " ")),
};

// ---- added tokens: split out of the text before the model sees it ----
const startsWithWordChar = (s) => /^[\p{Alphabetic}\p{N}_]/u.test(s);
const endsWithWordChar = (s) => /[\p{Alphabetic}\p{N}_]$/u.test(s);
const SPACE = /\p{White_Space}/u;

// Tokens marked `normalized` are matched in the normalized text, the others in the raw text.
// Matched by lookups, not one alternation: WebKit refuses a regex of 100 k alternatives as too large.
class AddedTokenMatcher {
  constructor(tokens, contentOf) {
    this.byContent = new Map(tokens.map((t) => [contentOf(t), t]));
    this.lengths = [...new Set([...this.byContent.keys()].map((c) => c.length))].filter((n) => n > 0).sort((a, b) => b - a);
  }

  // Leftmost-longest, non-overlapping, like the Aho-Corasick automaton of tokenizers' AddedVocabulary.
  *matches(text) {
    for (let i = 0; i < text.length; ) {
      const length = this.lengths.find((n) => this.byContent.has(text.slice(i, i + n)));
      if (length === undefined) i++;
      else yield [i, (i += length)];
    }
  }

  // -> [{text, start} | {id, start}] covering `text`, like tokenizers' AddedVocabulary.find_matches.
  split(text) {
    if (text === "") return [];
    const parts = [];
    let done = 0;
    for (const [matchStart, matchEnd] of this.matches(text)) {
      const token = this.byContent.get(text.slice(matchStart, matchEnd));
      let start = matchStart, end = matchEnd;
      if (token.single_word && (endsWithWordChar(text.slice(0, start)) || startsWithWordChar(text.slice(end, end + 2)))) continue;
      if (token.lstrip) while (start > done && SPACE.test(text[start - 1])) start--;
      if (token.rstrip) while (end < text.length && SPACE.test(text[end])) end++;
      if (start > done) parts.push({ text: text.slice(done, start), start: done });
      parts.push({ id: token.id, start });
      done = end;
    }
    if (done < text.length) parts.push({ text: text.slice(done), start: done });
    return parts;
  }
}

export class Tokenizer {
  /** @param {object|string} json the parsed (or raw) contents of a tokenizer.json */
  static fromJSON(json) {
    if (typeof json !== "string") return new Tokenizer(json);
    try {
      json = JSON.parse(json);
    } catch (e) {
      throw new Error(`tokenizer.json is not valid JSON: ${e.message}`);
    }
    return new Tokenizer(json);
  }

  constructor(json) {
    if (!json || typeof json !== "object" || !json.model) throw new Error("tokenizer.json: expected an object with a \"model\"");
    this.model = new BPE(json.model);
    this.normalize = fromTable(NORMALIZERS, json.normalizer, "normalizer");
    this.preTokenize = fromTable(PRE_TOKENIZERS, json.pre_tokenizer, "pre_tokenizer") ?? ((piece) => [piece]);
    this.postProcess = fromTable(POST_PROCESSORS, json.post_processor, "post_processor") ?? ((ids) => ids);
    this.decodeTokens = fromTable(DECODERS, json.decoder, "decoder") ?? ((tokens) => [tokens.join(" ")]);
    const added = json.added_tokens ?? [];
    this.rawAdded = new AddedTokenMatcher(added.filter((t) => !t.normalized), (t) => t.content);
    const normalize = this.normalize ?? ((s) => s);
    this.normalizedAdded = new AddedTokenMatcher(added.filter((t) => t.normalized), (t) => normalize(t.content));
    this.addedIds = new Map(added.map((t) => [t.content, t.id]));
    this.tokens = [];
    for (const [token, id] of this.model.vocab) this.tokens[id] = token;
    // Decoding sees normalized added tokens in their normalized form, as in `tokenizers`.
    for (const t of added) this.tokens[t.id] = t.normalized ? normalize(t.content) : t.content;
    this.special = new Set(added.filter((t) => t.special).map((t) => t.content));
  }

  get vocabSize() {
    return this.tokens.length;
  }

  tokenToId(token) {
    return this.addedIds.get(token) ?? this.model.vocab.get(token);
  }

  idToToken(id) {
    return this.tokens[id];
  }

  encode(text, { addSpecialTokens = true } = {}) {
    if (typeof text !== "string") throw new TypeError(`Tokenizer.encode: text must be a string, got ${typeof text}`);
    const ids = [];
    for (const part of this.rawAdded.split(text)) {
      if (part.id !== undefined) {
        ids.push(part.id);
        continue;
      }
      const normalized = this.normalize ? this.normalize(part.text) : part.text;
      for (const sub of this.normalizedAdded.split(normalized)) {
        if (sub.id !== undefined) ids.push(sub.id);
        else for (const piece of this.preTokenize({ text: sub.text, atStart: part.start === 0 && sub.start === 0 })) ids.push(...this.model.tokenize(piece.text));
      }
    }
    return addSpecialTokens ? this.postProcess(ids) : ids;
  }

  /** Unknown ids are skipped, as in `tokenizers`. */
  decode(ids, { skipSpecialTokens = true } = {}) {
    const tokens = [];
    for (const id of ids) {
      const token = this.tokens[id];
      if (token !== undefined && !(skipSpecialTokens && this.special.has(token))) tokens.push(token);
    }
    return this.decodeTokens(tokens).join("");
  }

  // Incremental detokenization (the algorithm of tokenizers' DecodeStream): decode a window that
  // starts with the tokens of the previous piece, emit only once the text grew and does not end
  // in U+FFFD, so a character split over several byte tokens is held back until complete.
  // Invalid byte runs can rewrite text already emitted (ByteFallback turns a whole run into
  // U+FFFD); where `tokenizers` raises, this carries on from the length already emitted.
  createStreamDecoder({ skipSpecialTokens = true } = {}) {
    const options = { skipSpecialTokens };
    let window = [], prefix = "", context = 0;
    return {
      push: (id) => {
        window.push(id);
        const text = this.decode(window, options);
        if (text.length <= prefix.length || text.endsWith("\uFFFD")) return "";
        const piece = text.slice(prefix.length);
        window = window.slice(context);
        context = window.length;
        prefix = this.decode(window, options);
        return piece;
      },
      // The rest that was held back (a truncated character at the end of generation).
      flush: () => {
        const text = this.decode(window, options);
        const rest = text.slice(prefix.length);
        window = [];
        prefix = "";
        context = 0;
        return rest;
      },
    };
  }
}
