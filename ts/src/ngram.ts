/**
 * N-gram search over large corpora with an FM-index (`quarry-fm`): exact
 * counts, occurrences, document extraction and the infini-gram query set.
 *
 * An index works on **symbols**: UTF-8 bytes (byte mode, the default) or
 * token ids of a Hugging Face `tokenizer.json` (token mode). Every query takes
 * a string (encoded the same way) or an array of symbols. Documents are
 * separated by a symbol outside the alphabet, so no match spans two
 * documents. Indexes are directories of memory-mapped, checksummed shard
 * files; opening validates them and rejects damaged files with
 * {@link CorruptIndexError}.
 * @module
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import type * as Native from '../native/binding.cjs';
import { AbortedError, InvalidArgumentError } from './errors.js';
import { call, callAsync, native } from './native.js';

/** A pattern: text, or symbols (bytes / token ids). */
export type NgramQuery = string | readonly number[] | Uint32Array;

/** An in-memory document: its text, or its text and metadata (kept with the document). */
export type NgramDocumentInput = string | { text: string; [field: string]: unknown };

/** Progress of {@link NgramIndex.build}. */
export interface NgramBuildProgress {
  /** `read`, `tokenize`, `suffix array`, `bwt`, `samples`, `wavelet matrix`, `write` or `done`. */
  stage: string;
  /** Shard being built (0-based). */
  shard: number;
  /** Documents read so far. */
  docs: number;
  /** Steps done and total within the stage. */
  done: number;
  total: number;
}

/** Options of {@link NgramIndex.build}. */
export interface NgramBuildOptions {
  /**
   * The corpus: a path (a `.jsonl` file with a string `text` field per line
   * — other fields become the document's metadata —, a plain text file, or a
   * directory of such files), `{ files: [...] }` for several, or an
   * (async) iterable of documents given as strings or `{ text, ...metadata }`.
   */
  input: string | { files: readonly string[] } | Iterable<NgramDocumentInput> | AsyncIterable<NgramDocumentInput>;
  /** Index directory to create (an index already there is replaced only once the new one is complete). */
  output: string;
  /** Path of a `tokenizer.json`: builds a token index (ids stored in 16 bits when the vocabulary fits). */
  tokenizer?: string;
  /** Text bytes per shard (default 256 MiB). Peak build memory is about 5× this for a byte index (the text plus its 32-bit suffix array) and about 6× for a token index, plus the process (measured on a 103.5 MB corpus). */
  shardBytes?: number;
  /** Suffix-array sampling rate: `locate` costs about this many steps per hit (default 32 for a byte index, 8 for a token index). */
  saSampleRate?: number;
  /** Inverse suffix-array sampling rate (default 64): extraction walks up to this many extra steps. */
  isaSampleRate?: number;
  /** `compressed` (RRR, default: about 0.42× English text) or `plain` (faster queries, larger). */
  bitvector?: 'compressed' | 'plain';
  /** How plain text files become documents: one per `file` (default), or one per blank-line separated `paragraphs`. */
  split?: 'file' | 'paragraphs';
  /** Called as the build advances. */
  onProgress?: (progress: NgramBuildProgress) => void;
  /** Stops the build ({@link AbortedError}); the previous index in `output`, if any, stays intact. */
  signal?: AbortSignal;
}

/** An occurrence: document id and offset (in symbols) within the document. */
export interface NgramHit {
  doc: number;
  offset: number;
}

/** A document or a window of it, recovered from the index. */
export interface NgramDocument {
  doc: number;
  /** Offset of the window in the document (symbols). */
  start: number;
  /** Length of the whole document (symbols). */
  docLength: number;
  /** The window decoded as text (bytes decoded as UTF-8, lossy at cut characters). */
  text: string;
  /** The window's symbols. */
  symbols: Uint32Array;
  /** Metadata kept at build time (the other JSONL fields), or null. */
  metadata: Record<string, unknown> | null;
}

/** n-gram probability `count(ngram) / count(ngram without its last symbol)`; null when the prefix never occurs. */
export interface NgramProb {
  prob: number | null;
  count: number;
  prefixCount: number;
}

/** Distribution of the symbol that follows a prefix. */
export interface NgramNextTokens {
  /** Occurrences of the prefix. */
  prefixCount: number;
  /** Occurrences of the prefix at the end of a document (no next symbol). */
  endOfDocument: number;
  /** Number of distinct next symbols. */
  distinct: number;
  /** The most frequent next symbols, most frequent first. */
  tokens: { token: number; text: string; count: number; prob: number }[];
}

/** ∞-gram probability: the longest suffix of the context that occurs is used. */
export interface NgramInfgramProb {
  prob: number | null;
  /** Length (symbols) of the context suffix used. */
  suffixLen: number;
  count: number;
  prefixCount: number;
}

/** Result of {@link NgramIndex.searchDocuments}. */
export interface NgramDocSearch {
  /** Number of matching documents found. */
  count: number;
  /** Matching document ids, ascending, at most `limit`. */
  docs: number[];
  /** True when a clause had more than `maxClauseFreq` occurrences and was sampled. */
  approx: boolean;
}

/** Benchmark contamination of one text. */
export interface NgramContamination {
  /** n-grams in the text. */
  ngrams: number;
  /** Of which found in the corpus. */
  found: number;
  /** `found / ngrams` (0 for a text shorter than n). */
  share: number;
}

/** Size and shape of an index. */
export interface NgramStats {
  mode: 'bytes' | 'tokens';
  bitvector: 'compressed' | 'plain';
  docs: number;
  /** Input text bytes. */
  bytes: number;
  /** Tokens (token mode). */
  tokens: number | null;
  /** Bytes of the index files. */
  indexBytes: number;
  shards: number;
  saSampleRate: number;
  isaSampleRate: number;
  vocabSize: number | null;
}

function toQuery(name: string, q: NgramQuery): string | Uint32Array {
  if (typeof q === 'string' || q instanceof Uint32Array) return q;
  if (Array.isArray(q)) {
    for (const s of q) {
      if (!Number.isInteger(s) || s < 0 || s > 0xffff_ffff) {
        throw new InvalidArgumentError(`${name} must hold non-negative integer symbols, found ${String(s)}`);
      }
    }
    return Uint32Array.from(q);
  }
  throw new InvalidArgumentError(`${name} must be a string, number[] or Uint32Array`);
}

function count(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  if (!Number.isSafeInteger(x) || x < 0 || x > 0xffff_ffff) {
    throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${String(x)}`);
  }
  return x;
}

function abortedError(): AbortedError {
  return new AbortedError('the build was aborted');
}

/** Streams in-memory documents to a temporary JSONL file, so the native build reads them with bounded memory. */
async function writeJsonl(docs: Iterable<NgramDocumentInput> | AsyncIterable<NgramDocumentInput>, path: string, signal?: AbortSignal) {
  const out = createWriteStream(path);
  try {
    for await (const doc of docs as AsyncIterable<NgramDocumentInput>) {
      if (signal?.aborted) throw abortedError();
      const record = typeof doc === 'string' ? { text: doc } : doc;
      if (typeof record !== 'object' || record === null || typeof record.text !== 'string') {
        throw new InvalidArgumentError('each document must be a string or an object with a string `text`');
      }
      if (!out.write(JSON.stringify(record) + '\n')) await once(out, 'drain');
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
}

/** An FM-index over a corpus. Create with {@link NgramIndex.build} or {@link NgramIndex.open}. */
export class NgramIndex {
  readonly #native: Native.NativeNgramIndex;

  private constructor(inner: Native.NativeNgramIndex) {
    this.#native = inner;
  }

  /**
   * Builds an index of `input` into the directory `output` off the event
   * loop, then opens it.
   */
  static async build(opts: NgramBuildOptions): Promise<NgramIndex> {
    if (!opts || typeof opts.output !== 'string' || opts.output === '') {
      throw new InvalidArgumentError('options.output (the index directory) is required');
    }
    const { input, signal } = opts;
    if (signal?.aborted) throw abortedError();
    const nativeOpts: Native.NativeBuildOptions = {
      tokenizer: opts.tokenizer,
      shardBytes: opts.shardBytes,
      saSampleRate: opts.saSampleRate === undefined ? undefined : count('saSampleRate', opts.saSampleRate, 32),
      isaSampleRate: opts.isaSampleRate === undefined ? undefined : count('isaSampleRate', opts.isaSampleRate, 64),
      bitvector: opts.bitvector,
      split: opts.split,
    };
    let files: string[];
    let scratch: string | undefined;
    if (typeof input === 'string') {
      files = [input];
    } else if (input && typeof input === 'object' && 'files' in input && Array.isArray(input.files)) {
      files = [...input.files];
    } else if (input && (Symbol.iterator in Object(input) || Symbol.asyncIterator in Object(input))) {
      scratch = await mkdtemp(join(tmpdir(), 'quarry-ngram-'));
      files = [join(scratch, 'documents.jsonl')];
    } else {
      throw new InvalidArgumentError('options.input must be a path, { files }, or an iterable of documents');
    }
    const token = new native.CancelToken();
    const onAbort = () => token.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (scratch) {
        await writeJsonl(input as Iterable<NgramDocumentInput>, files[0], signal);
        nativeOpts.split = 'file';
      }
      const inner = await callAsync(() =>
        native.ngramBuild(files, opts.output, nativeOpts, opts.onProgress ? (p) => opts.onProgress!(p) : undefined, token),
      );
      return new NgramIndex(inner);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (scratch) await rm(scratch, { recursive: true, force: true });
    }
  }

  /** Opens an index directory: maps its files and validates every header, checksum and structure. */
  static open(dir: string): NgramIndex {
    return new NgramIndex(call(() => native.ngramOpen(dir)));
  }

  /** The index directory. */
  get dir(): string {
    return this.#native.dir;
  }

  /** Size and shape of the index. */
  stats(): NgramStats {
    const s = call(() => this.#native.stats());
    return { ...s, tokens: s.tokens ?? null, vocabSize: s.vocabSize ?? null } as NgramStats;
  }

  /** Text to symbols, as queries see it (token ids, or UTF-8 bytes). */
  encode(text: string): Uint32Array {
    return call(() => this.#native.encode(text));
  }

  /** Symbols back to text. */
  decode(symbols: NgramQuery): string {
    const q = toQuery('symbols', symbols);
    return call(() => this.#native.decode(typeof q === 'string' ? this.encode(q) : q));
  }

  /** Number of (overlapping) occurrences of `query`. An empty query is an error. */
  count(query: NgramQuery): number {
    return call(() => this.#native.count(toQuery('query', query)));
  }

  /** {@link count} off the event loop. */
  countAsync(query: NgramQuery): Promise<number> {
    return callAsync(async () => this.#native.countAsync(toQuery('query', query)));
  }

  /** Up to `limit` (default 100) occurrences, sorted by document and offset. */
  locate(query: NgramQuery, opts: { limit?: number } = {}): NgramHit[] {
    return call(() => this.#native.locate(toQuery('query', query), count('limit', opts.limit, 100)));
  }

  /** {@link locate} off the event loop. */
  locateAsync(query: NgramQuery, opts: { limit?: number } = {}): Promise<NgramHit[]> {
    return callAsync(async () => this.#native.locateAsync(toQuery('query', query), count('limit', opts.limit, 100)));
  }

  /** A whole document, or the window `[start, start + length)` of it (symbols; clamped to the document). */
  document(docId: number, opts: { start?: number; length?: number } = {}): NgramDocument {
    const d = call(() => this.#native.document(docId, opts.start, opts.length));
    return { ...d, metadata: d.metadata == null ? null : (JSON.parse(d.metadata) as Record<string, unknown>) };
  }

  /** `count(ngram) / count(prefix)`, the prefix being `ngram` without its last symbol. */
  prob(ngram: NgramQuery): NgramProb {
    const p = call(() => this.#native.prob(toQuery('ngram', ngram)));
    return { ...p, prob: p.prob ?? null };
  }

  /** Distribution of the symbol after `prefix`, the `limit` (default 10) most frequent first. */
  nextTokens(prefix: NgramQuery, opts: { limit?: number } = {}): NgramNextTokens {
    return call(() => this.#native.nextTokens(toQuery('prefix', prefix), count('limit', opts.limit, 10)));
  }

  /** {@link nextTokens} off the event loop. */
  nextTokensAsync(prefix: NgramQuery, opts: { limit?: number } = {}): Promise<NgramNextTokens> {
    return callAsync(async () => this.#native.nextTokensAsync(toQuery('prefix', prefix), count('limit', opts.limit, 10)));
  }

  /**
   * ∞-gram probability of `token` after `context`: backs off to the longest
   * suffix of the context that occurs in the corpus.
   * @param token - a symbol id, or text that encodes to exactly one symbol
   */
  infgramProb(context: NgramQuery, token: number | string): NgramInfgramProb {
    let id = token;
    if (typeof id === 'string') {
      const ids = this.encode(id);
      if (ids.length !== 1) throw new InvalidArgumentError(`token '${id}' encodes to ${ids.length} symbols, not one`);
      id = ids[0];
    }
    const sym = count('token', id, 0);
    const r = call(() => this.#native.infgramProb(toQuery('context', context), sym));
    return { ...r, prob: r.prob ?? null };
  }

  /**
   * Documents matching a CNF query: an AND of clauses, each an OR of
   * patterns, e.g. `[['natural language', 'NLP'], ['deep learning']]`. A
   * clause with more than `maxClauseFreq` (default 50,000) occurrences is
   * sampled and the result flagged `approx`.
   */
  searchDocuments(cnf: NgramQuery[][], opts: { limit?: number; maxClauseFreq?: number } = {}): NgramDocSearch {
    const q = this.#cnf(cnf);
    return call(() => this.#native.searchDocuments(q, count('limit', opts.limit, 100), count('maxClauseFreq', opts.maxClauseFreq, 50_000)));
  }

  /** {@link searchDocuments} off the event loop. */
  searchDocumentsAsync(cnf: NgramQuery[][], opts: { limit?: number; maxClauseFreq?: number } = {}): Promise<NgramDocSearch> {
    return callAsync(async () =>
      this.#native.searchDocumentsAsync(this.#cnf(cnf), count('limit', opts.limit, 100), count('maxClauseFreq', opts.maxClauseFreq, 50_000)),
    );
  }

  /** For each text, the share of its `n`-grams (default 13, in symbols) present in the corpus. */
  contamination(texts: readonly string[], opts: { n?: number } = {}): NgramContamination[] {
    return call(() => this.#native.contamination([...texts], count('n', opts.n, 13)));
  }

  /** {@link contamination} off the event loop. */
  contaminationAsync(texts: readonly string[], opts: { n?: number } = {}): Promise<NgramContamination[]> {
    return callAsync(async () => this.#native.contaminationAsync([...texts], count('n', opts.n, 13)));
  }

  #cnf(cnf: NgramQuery[][]): (string | Uint32Array)[][] {
    if (!Array.isArray(cnf) || cnf.some((c) => !Array.isArray(c))) {
      throw new InvalidArgumentError('cnf must be an array of clauses, each an array of patterns');
    }
    return cnf.map((clause) => clause.map((p) => toQuery('pattern', p)));
  }
}
