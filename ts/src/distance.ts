/**
 * SIMD distance kernels: one-to-one, one-to-many and exact k-NN.
 *
 * Accepted inputs and their element types (`dtype`):
 *
 * | array          | dtype                                  | accumulates in |
 * | -------------- | -------------------------------------- | -------------- |
 * | `Float32Array` | `f32` (also plain `number[]`)          | f32            |
 * | `Uint16Array`  | `f16` or `bf16` — must be given        | f32            |
 * | `Int8Array`    | `i8`                                   | i32 (exact)    |
 * | `Uint8Array`   | `u8`, or `binary` (packed bits) for `hamming`/`jaccard` | u32 (exact) |
 *
 * Results: `l2sq` is the squared Euclidean distance; `ip` the inner product
 * (a similarity: larger is nearer); `cosine` the cosine **distance**
 * `1 − cos(a, b)` — two zero vectors are at distance 0, a zero and a non-zero
 * vector at distance 1; `hamming` the count of differing bits; `jaccard` the
 * distance `1 − |a∧b| / |a∨b|` (0 for two empty sets). NaN in float inputs
 * gives NaN. Binary vectors are packed 8 bits per byte and their `dim` counts
 * bits. i8/u8 vectors are limited to 65,536 dimensions (exact integer sums).
 * @module
 */
import { DimensionMismatchError, DtypeMismatchError, InvalidArgumentError } from './errors.js';
import { call, callAsync, native } from './native.js';

/** Element type of vector data. */
export type DType = 'f32' | 'f16' | 'bf16' | 'i8' | 'u8' | 'binary';

/** Distance function. `l2` and `dot` are accepted as aliases of `l2sq` and `ip`. */
export type Metric = 'l2sq' | 'l2' | 'ip' | 'dot' | 'cosine' | 'hamming' | 'jaccard';

/** Typed arrays (or a plain number array, read as f32) accepted as vectors. */
export type VectorData = Float32Array | Uint16Array | Int8Array | Uint8Array | readonly number[];

/** Options of the one-to-one functions. */
export interface PairOptions {
  /** Element type; needed only for `Uint16Array` (`f16` or `bf16`). */
  dtype?: DType;
}

/** Options of {@link oneToMany}. */
export interface OneToManyOptions extends PairOptions {
  /** Dimensions per vector (bits, for `binary`). */
  dim: number;
  /** Distance function. */
  metric: Metric;
}

/** Options of {@link knn}. */
export interface KnnOptions extends OneToManyOptions {
  /** Neighbours per query, 1 ≤ k ≤ number of base vectors. */
  k: number;
}

/** Result of {@link knn}: `k` entries per query, best first, row-major (`ids[q * k + j]`). */
export interface KnnResult {
  /** Row numbers of the neighbours in `base`. */
  ids: Uint32Array;
  /** Their distances (for `ip`: inner products, largest first). Ties go to the smaller id; NaN ranks last. */
  distances: Float32Array;
}

const BIT_METRICS = new Set(['hamming', 'jaccard']);

/** Numeric codes the native functions take (numbers keep per-call overhead low). */
const DTYPE_CODES: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, i8: 3, u8: 4, binary: 5 };
const METRIC_CODES: Record<string, number> = { l2sq: 0, l2: 0, ip: 1, dot: 1, cosine: 2, hamming: 3, jaccard: 4 };

function metricCode(metric: string): number {
  const code = METRIC_CODES[metric];
  if (code === undefined) {
    throw new InvalidArgumentError(`unknown metric '${metric}' (expected l2sq, ip, cosine, hamming or jaccard)`);
  }
  return code;
}

interface Operand {
  arr: Float32Array | Uint16Array | Int8Array | Uint8Array;
  dtype: DType;
  code: number;
}

/** Turns a JS vector argument into a byte view plus the dtype the core reads it as. */
function operand(name: string, data: VectorData, dtype: DType | undefined, metric: string): Operand {
  const bits = BIT_METRICS.has(metric);
  let arr: Float32Array | Uint16Array | Int8Array | Uint8Array;
  let inferred: DType;
  if (Array.isArray(data)) {
    arr = Float32Array.from(data as readonly number[]);
    inferred = 'f32';
  } else if (data instanceof Float32Array) {
    arr = data;
    inferred = 'f32';
  } else if (data instanceof Int8Array) {
    arr = data;
    inferred = 'i8';
  } else if (data instanceof Uint8Array) {
    arr = data;
    inferred = dtype === 'u8' || dtype === 'binary' ? dtype : bits ? 'binary' : 'u8';
  } else if (data instanceof Uint16Array) {
    if (dtype !== 'f16' && dtype !== 'bf16') {
      throw new InvalidArgumentError(`${name} is a Uint16Array: pass { dtype: 'f16' } or { dtype: 'bf16' }`);
    }
    arr = data;
    inferred = dtype;
  } else {
    throw new InvalidArgumentError(
      `${name} must be a Float32Array, Uint16Array, Int8Array, Uint8Array or number[]`,
    );
  }
  if (dtype !== undefined && dtype !== inferred) {
    throw new DtypeMismatchError(`${name} is a ${arr.constructor.name}, which cannot hold dtype '${dtype}'`);
  }
  return { arr, dtype: inferred, code: DTYPE_CODES[inferred] };
}

function positiveInteger(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new InvalidArgumentError(`${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

function metricOf(opts: { metric?: unknown } | undefined): Metric {
  if (!opts || typeof opts.metric !== 'string') {
    throw new InvalidArgumentError('options.metric is required (l2sq, ip, cosine, hamming or jaccard)');
  }
  return opts.metric as Metric;
}

function pair(metric: Metric, a: VectorData, b: VectorData, opts?: PairOptions): number {
  const x = operand('a', a, opts?.dtype, metric);
  const y = operand('b', b, opts?.dtype, metric);
  if (x.dtype === y.dtype && x.arr.length !== y.arr.length) {
    throw new DimensionMismatchError(`vectors have different lengths (${x.arr.length} and ${y.arr.length})`);
  }
  return call(() => native.distancePair(METRIC_CODES[metric], x.arr, x.code, y.arr, y.code));
}

/** Inner product `Σ aᵢbᵢ`. */
export function dot(a: VectorData, b: VectorData, opts?: PairOptions): number {
  return pair('ip', a, b, opts);
}

/** Squared Euclidean distance `Σ (aᵢ − bᵢ)²`. */
export function l2sq(a: VectorData, b: VectorData, opts?: PairOptions): number {
  return pair('l2sq', a, b, opts);
}

/** Cosine distance `1 − a·b / (|a||b|)` (zero-vector convention in the module docs). */
export function cosine(a: VectorData, b: VectorData, opts?: PairOptions): number {
  return pair('cosine', a, b, opts);
}

/** Number of differing bits between two packed bit vectors. */
export function hamming(a: Uint8Array, b: Uint8Array): number {
  return pair('hamming', a, b, { dtype: 'binary' });
}

/** Jaccard distance `1 − |a∧b| / |a∨b|` between two packed bit vectors. */
export function jaccard(a: Uint8Array, b: Uint8Array): number {
  return pair('jaccard', a, b, { dtype: 'binary' });
}

function prepareMany(query: VectorData, matrix: VectorData, opts: OneToManyOptions, queryName: string, matrixName: string) {
  const metric = metricOf(opts);
  const code = metricCode(metric);
  const dim = positiveInteger('dim', opts.dim);
  const q = operand(queryName, query, opts.dtype, metric);
  const m = operand(matrixName, matrix, opts.dtype, metric);
  return { code, dim, q, m };
}

/**
 * Distances from `query` to every row of the row-major `matrix` (`rows × dim`).
 * Large matrices are scanned on all compute threads.
 * @returns one value per row
 */
export function oneToMany(query: VectorData, matrix: VectorData, opts: OneToManyOptions): Float32Array {
  const { code, dim, q, m } = prepareMany(query, matrix, opts, 'query', 'matrix');
  return call(() => native.distanceOneToMany(code, q.arr, q.code, m.arr, m.code, dim));
}

/** {@link oneToMany} off the event loop (inputs are copied first). */
export function oneToManyAsync(query: VectorData, matrix: VectorData, opts: OneToManyOptions): Promise<Float32Array> {
  return callAsync(async () => {
    const { code, dim, q, m } = prepareMany(query, matrix, opts, 'query', 'matrix');
    return native.distanceOneToManyAsync(code, q.arr, q.code, m.arr, m.code, dim);
  });
}

/**
 * Exact k nearest neighbours of every query row among the base rows (both
 * row-major, `dim` values per row). f32/f16/bf16 with `l2sq`, `ip` and
 * `cosine` run a blocked matrix-multiply kernel; other types a blocked scan.
 */
export function knn(queries: VectorData, base: VectorData, opts: KnnOptions): KnnResult {
  const { code, dim, q, m } = prepareMany(queries, base, opts, 'queries', 'base');
  const k = positiveInteger('k', opts.k);
  return call(() => native.distanceKnn(code, q.arr, q.code, m.arr, m.code, dim, k));
}

/** {@link knn} off the event loop (inputs are copied first). */
export function knnAsync(queries: VectorData, base: VectorData, opts: KnnOptions): Promise<KnnResult> {
  return callAsync(async () => {
    const { code, dim, q, m } = prepareMany(queries, base, opts, 'queries', 'base');
    const k = positiveInteger('k', opts.k);
    return native.distanceKnnAsync(code, q.arr, q.code, m.arr, m.code, dim, k);
  });
}
