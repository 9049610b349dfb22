/**
 * quarry: retrieval and long-context serving kernels for Node.js, in Rust.
 *
 * ```ts
 * import { distance, VectorIndex, NgramIndex, KvCache, attention, info, QuarryError } from 'quarry';
 * const d = distance.l2sq(new Float32Array([1, 2]), new Float32Array([3, 4])); // 8
 * ```
 * @module
 */
import { call, native } from './native.js';

export * as distance from './distance.js';
export type { DType, Metric, VectorData, PairOptions, OneToManyOptions, KnnOptions, KnnResult } from './distance.js';
export {
  NgramIndex,
  type NgramQuery,
  type NgramDocumentInput,
  type NgramBuildOptions,
  type NgramBuildProgress,
  type NgramHit,
  type NgramDocument,
  type NgramProb,
  type NgramNextTokens,
  type NgramInfgramProb,
  type NgramDocSearch,
  type NgramContamination,
  type NgramStats,
} from './ngram.js';
export {
  VectorIndex,
  MuveraEncoder,
  chamferSimilarity,
  type MuveraOptions,
  type VectorMetric,
  type VectorIndexKind,
  type VectorIds,
  type VectorBuildOptions,
  type VectorBuildProgress,
  type VectorFilter,
  type VectorSearchOptions,
  type VectorSearchResult,
  type VectorIndexInfo,
} from './vectors.js';
export { KvCache, type KvMethod, type KvCacheOptions, type KvCacheInfo, type KvAttendOptions } from './kv.js';
export * as attention from './attention.js';
export type {
  KvData,
  AttentionShape,
  AttentionOptions,
  AttentionResult,
  DenseOutput,
  PrefillPattern,
  PrefillPatternName,
  SparseMethod,
  SparseOptions,
  KeyIndices,
  RecallOptions,
  RecallStats,
  PatternChoice,
  DuoPolicy,
} from './attention.js';
export {
  QuarryError,
  CorruptIndexError,
  IoError,
  AbortedError,
  InvalidInputError,
  TokenizerError,
  UnsupportedError,
  InvalidArgumentError,
  DimensionMismatchError,
  DtypeMismatchError,
  type QuarryErrorCode,
} from './errors.js';

/** Build and runtime facts of the loaded native addon. */
export interface Info {
  /** Version of the native addon. */
  version: string;
  /** SIMD level the kernels run: `avx512`, `avx2`, `neon` or `scalar` (`QUARRY_SIMD` can lower it). */
  simdLevel: string;
  /** Every level this CPU can run, lowest first. */
  simdLevels: string[];
  /** Threads in the compute pool (`RAYON_NUM_THREADS` sets it). */
  threads: number;
  /** Cargo features compiled in (e.g. `cuda`). */
  features: string[];
  /** `os-arch` the addon was built for. */
  target: string;
}

/** Reports version, SIMD dispatch level, compute threads and compiled-in features. */
export function info(): Info {
  return call(() => native.info());
}
