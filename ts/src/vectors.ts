/**
 * Vector indexes (`quarry-ann`): exact and compressed nearest-neighbour
 * search over `Float32Array` vectors.
 *
 * Kinds: `flat` (exact), `sq8` (8-bit scalar codes), `pq` (product
 * quantization; 4-bit codes are scanned with SIMD byte shuffles,
 * "fast-scan"), `binary` (sign bits or multi-bit residual binarisation), and
 * the inverted-file forms `ivf-flat`, `ivf-sq8`, `ivf-pq` (residual PQ codes)
 * and `ivf-binary`, which scan only the `nprobe` lists nearest the query.
 * Compressed kinds keep the full vectors (unless `storeVectors: false`) so
 * `rerank` can re-score the best candidates exactly.
 *
 * Ids are the caller's (default: insertion order). Results hold `k` slots per
 * query, best first; slots with no match have id `-1` (all bits set:
 * `0xFFFFFFFF` or `2n ** 64n - 1n`) and a `NaN` distance. Distances are
 * squared L2 for `l2`, similarities (larger is nearer) for `ip` and `cosine`.
 *
 * ```ts
 * const index = await VectorIndex.build(vectors, { dim: 100, metric: 'cosine', kind: 'ivf-pq', nlist: 1024, pq: { m: 50, bits: 4 } });
 * const { ids, distances } = await index.search(queries, { k: 10, nprobe: 16, rerank: 100 });
 * ```
 * @module
 */
import type * as Native from '../native/binding.cjs';
import { AbortedError, InvalidArgumentError } from './errors.js';
import { f32, uint } from './args.js';
import { call, callAsync, native } from './native.js';

/** Metric an index ranks by. `cosine` normalises vectors once at add time. */
export type VectorMetric = 'l2' | 'ip' | 'cosine';

/** Index kinds (see the module docs). */
export type VectorIndexKind = 'flat' | 'ivf-flat' | 'sq8' | 'ivf-sq8' | 'pq' | 'ivf-pq' | 'binary' | 'ivf-binary';

/** User ids: 32-bit (default) or 64-bit. */
export type VectorIds = Uint32Array | BigUint64Array;

/** Progress of {@link VectorIndex.build}: a stage name and the fraction of it done. */
export interface VectorBuildProgress {
  stage: string;
  fraction: number;
}

/** Options of {@link VectorIndex.build}. */
export interface VectorBuildOptions {
  dim: number;
  metric: VectorMetric;
  kind: VectorIndexKind;
  /** Lists of an IVF kind (default 1024; at most the number of vectors). */
  nlist?: number;
  /** Product quantization: `m` sub-spaces (must divide `dim`; default dim/2), `bits` 4 (fast-scan, default) or 8. */
  pq?: { m?: number; bits?: 4 | 8 };
  /** Learn an OPQ rotation before product quantization (`true`, or the number of rounds; default 10). */
  opq?: boolean | number;
  /** Bits per dimension of binary codes (1 = sign bits; more = residual binarisation). */
  binaryLevels?: number;
  /** Keep the full vectors for exact re-ranking (default true; flat kinds always have them). */
  storeVectors?: boolean;
  /** Ids of the vectors (default 0..n-1). A `BigUint64Array` makes the index return 64-bit ids. */
  ids?: VectorIds;
  /** A label (tenant, category) per vector, for filtered search. */
  labels?: Uint32Array;
  /** k-means: iterations (default 10, as FAISS trains its IVF quantizer), training points per centroid (default 256), balanced list sizes (factor ≥ 1). */
  kmeans?: { iterations?: number; maxPointsPerCentroid?: number; balance?: number };
  /** SPANN-style posting-list closure: also store a vector in up to `maxCopies` lists whose centroid is within `(1 + ratio)×` the nearest one's squared distance. */
  closure?: { maxCopies: number; ratio?: number };
  /** Seed for training (default fixed: builds are deterministic). */
  seed?: number;
  onProgress?: (progress: VectorBuildProgress) => void;
  /** Stops the build with {@link AbortedError}. */
  signal?: AbortSignal;
}

/**
 * Filter applied inside the scan (results are the best matches among the
 * admitted vectors, so recall holds at low selectivity): an allow-list of
 * ids, or labels (a vector is admitted when its label is one of them).
 */
export type VectorFilter = { allow: VectorIds } | { label: number } | { labels: Uint32Array | readonly number[] };

/** Options of {@link VectorIndex.search}. */
export interface VectorSearchOptions {
  /** Neighbours per query (≥ 1). */
  k: number;
  /** Lists scanned per query (IVF kinds; 1..nlist; default min(8, nlist)). */
  nprobe?: number;
  /** Re-score this many approximate candidates exactly (0 = off). */
  rerank?: number;
  /** Query-aware pruning: skip probed lists whose centroid is more than `(1 + pruneEps)×` as far as the nearest one. */
  pruneEps?: number;
  filter?: VectorFilter;
}

/** Results of a batch search: `k` slots per query, row-major, best first. */
export interface VectorSearchResult<Id extends VectorIds = VectorIds> {
  k: number;
  ids: Id;
  distances: Float32Array;
}

/** Facts about an index. */
export interface VectorIndexInfo {
  dim: number;
  metric: VectorMetric;
  kind: VectorIndexKind;
  nlist: number;
  size: number;
  /** Bytes per vector in the lists. */
  codeBytes: number;
  /** Bytes held in memory, and in mapped files (`open(path, { mmap: true })`). */
  heapBytes: number;
  mappedBytes: number;
  storeVectors: boolean;
  wideIds: boolean;
  opq: boolean;
}

function ids(v: unknown): VectorIds | undefined {
  if (v === undefined || v === null) return undefined;
  if (v instanceof Uint32Array || v instanceof BigUint64Array) return v;
  throw new InvalidArgumentError('ids must be a Uint32Array or a BigUint64Array');
}

function nativeSearch(o: VectorSearchOptions): Native.NativeSearchOptions {
  if (!o || typeof o !== 'object') throw new InvalidArgumentError('search options ({ k }) are required');
  const k = uint('k', o.k, 1);
  if (k === undefined) throw new InvalidArgumentError('k is required');
  const out: Native.NativeSearchOptions = {
    k,
    nprobe: uint('nprobe', o.nprobe, 1),
    rerank: uint('rerank', o.rerank),
    pruneEps: o.pruneEps,
  };
  const f = o.filter;
  if (f !== undefined) {
    if ('allow' in f) out.allow = ids(f.allow);
    else if ('label' in f) out.labels = new Uint32Array([uint('filter.label', f.label) ?? 0]);
    else if ('labels' in f) out.labels = f.labels instanceof Uint32Array ? f.labels : Uint32Array.from(f.labels);
    else throw new InvalidArgumentError('filter must be { allow }, { label } or { labels }');
  }
  return out;
}

/** A vector index. Searches may run concurrently (also from worker threads); `add`/`remove` wait for running searches. */
export class VectorIndex {
  readonly #native: Native.NativeVectorIndex;

  private constructor(inner: Native.NativeVectorIndex) {
    this.#native = inner;
  }

  /** Trains the index's quantizers on `vectors` (`n × dim`, row-major) and adds them, off the event loop. */
  static async build(vectors: Float32Array, opts: VectorBuildOptions): Promise<VectorIndex> {
    f32('vectors', vectors);
    if (!opts || typeof opts !== 'object') throw new InvalidArgumentError('build options ({ dim, metric, kind }) are required');
    const { signal } = opts;
    if (signal?.aborted) throw new AbortedError('aborted');
    const opqRounds = typeof opts.opq === 'number' ? opts.opq : undefined;
    const nativeOpts: Native.NativeVectorBuildOptions = {
      dim: uint('dim', opts.dim, 1) ?? 0,
      metric: opts.metric,
      kind: opts.kind,
      nlist: uint('nlist', opts.nlist, 1),
      pqM: uint('pq.m', opts.pq?.m, 1),
      pqBits: uint('pq.bits', opts.pq?.bits, 1),
      opq: opts.opq === undefined ? undefined : opts.opq !== false,
      opqIterations: uint('opq', opqRounds, 1),
      binaryLevels: uint('binaryLevels', opts.binaryLevels, 1),
      storeVectors: opts.storeVectors,
      kmeansIterations: uint('kmeans.iterations', opts.kmeans?.iterations, 1),
      maxPointsPerCentroid: uint('kmeans.maxPointsPerCentroid', opts.kmeans?.maxPointsPerCentroid),
      balance: opts.kmeans?.balance,
      closureCopies: uint('closure.maxCopies', opts.closure?.maxCopies, 1),
      closureRatio: opts.closure?.ratio,
      seed: opts.seed,
    };
    const token = new native.CancelToken();
    const onAbort = () => token.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const inner = await callAsync(() =>
        native.vectorBuild(
          vectors,
          ids(opts.ids),
          opts.labels,
          nativeOpts,
          opts.onProgress ? (p) => opts.onProgress!(p) : undefined,
          token,
        ),
      );
      return new VectorIndex(inner);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Opens a saved index, validating it. With `mmap`, lists and codes stay in the mapped file instead of the heap. */
  static open(path: string, opts: { mmap?: boolean } = {}): VectorIndex {
    return new VectorIndex(call(() => native.vectorOpen(path, opts.mmap ?? false)));
  }

  /** k nearest neighbours of each query (`nq × dim`, row-major), off the event loop. */
  async search(queries: Float32Array, opts: VectorSearchOptions): Promise<VectorSearchResult> {
    const o = nativeSearch(opts);
    return callAsync(() => this.#native.search(f32('queries', queries), o));
  }

  /** {@link search} on the calling thread. */
  searchSync(queries: Float32Array, opts: VectorSearchOptions): VectorSearchResult {
    const o = nativeSearch(opts);
    return call(() => this.#native.searchSync(f32('queries', queries), o));
  }

  /** Adds vectors (ids must be new; default ids continue from the insertion count). */
  add(vectors: Float32Array, idsOrOptions?: VectorIds | { ids?: VectorIds; labels?: Uint32Array }): void {
    const o = idsOrOptions instanceof Uint32Array || idsOrOptions instanceof BigUint64Array ? { ids: idsOrOptions } : (idsOrOptions ?? {});
    call(() => this.#native.add(f32('vectors', vectors), ids(o.ids), o.labels));
  }

  /** Removes vectors by id (unknown ids are ignored); returns how many were removed. Space is reclaimed by {@link save}. */
  remove(idsToRemove: VectorIds): number {
    return call(() => this.#native.remove(ids(idsToRemove) ?? new Uint32Array()));
  }

  /** Writes the index to one file, atomically (temp file + rename), dropping removed vectors. */
  save(path: string): void {
    call(() => this.#native.save(path));
  }

  /** Live vectors. */
  get size(): number {
    return this.#native.size;
  }

  /** Bytes the index holds (heap + mapped). */
  get bytes(): number {
    const i = this.info();
    return i.heapBytes + i.mappedBytes;
  }

  /** Dimensions, kind, sizes. */
  info(): VectorIndexInfo {
    return call(() => this.#native.info()) as VectorIndexInfo;
  }
}

/** Options of {@link MuveraEncoder}. */
export interface MuveraOptions {
  /** Dimension of the input vectors. */
  dim: number;
  /** SimHash hyperplanes per repetition: 2^bits partitions (default 4). */
  simhashBits?: number;
  /** Independent repetitions, concatenated (default 20). */
  repetitions?: number;
  /** Random projection of each vector to this many dimensions (default: none). */
  projectionDim?: number;
  /** Count-sketch the encoding down to this many dimensions (default: none). */
  finalDim?: number;
  /** Fill a document's empty partitions from its nearest vector (default true). */
  fillEmptyPartitions?: boolean;
  seed?: number;
}

/**
 * MUVERA fixed-dimensional encodings for multi-vector retrieval (ColBERT-style
 * token vectors): `encodeQuery` / `encodeDocument` turn a set of vectors
 * (`n × dim`) into one vector whose inner products approximate the Chamfer
 * similarity, so multi-vector documents can be searched with any
 * single-vector index (`metric: 'ip'`); re-rank the candidates with
 * {@link chamferSimilarity}.
 */
export class MuveraEncoder {
  readonly #native: Native.NativeMuvera;

  constructor(opts: MuveraOptions) {
    this.#native = call(() => new native.NativeMuvera(opts));
  }

  /** Dimension of the encodings. */
  get outputDim(): number {
    return this.#native.outputDim;
  }

  encodeQuery(vectors: Float32Array): Float32Array {
    return call(() => this.#native.encodeQuery(f32('vectors', vectors)));
  }

  encodeDocument(vectors: Float32Array): Float32Array {
    return call(() => this.#native.encodeDocument(f32('vectors', vectors)));
  }
}

/** Exact Chamfer (MaxSim) similarity Σ_q max_d ⟨q, d⟩ of two vector sets (`n × dim` each). */
export function chamferSimilarity(query: Float32Array, doc: Float32Array, dim: number): number {
  return call(() => native.chamferSimilarity(f32('query', query), f32('doc', doc), dim));
}
