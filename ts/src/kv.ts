/**
 * A quantized KV cache for LLM decoding (`quarry-kv`), with decode attention
 * computed directly over the packed blocks (never the whole cache in f32).
 *
 * Methods: `f32`, `f16`; llama.cpp-style `q8_0` / `q4_0` (per token, blocks
 * of 32 channels, one f16 scale each); `kivi` (2/3/4/8-bit asymmetric, keys
 * per channel over groups of `groupSize` tokens, values per token, the newest
 * `residual` tokens unquantized); `kvquant` (per-layer non-uniform codebooks
 * from calibration, dense-and-sparse outliers, optional pre-RoPE keys via
 * `ropeTheta`); `gear` (uniform + low-rank error + outliers); `rotate`
 * (Walsh–Hadamard rotation, outlier-aware channel order, f32 sink tokens);
 * `mikv` (important tokens keep an f16 copy within `budget`, the rest stay
 * low-bit); and the `h2o` eviction baseline (heavy hitters + recent window).
 *
 * Tensors are `[kvHeads, tokens, headDim]` (keys/values) and `[heads,
 * headDim]` (decode queries; `heads` a multiple of `kvHeads`: grouped-query
 * attention), row-major `Float32Array`s.
 *
 * ```ts
 * const cache = new KvCache({ layers: 30, kvHeads: 3, headDim: 64, method: 'kivi', bits: 2 });
 * cache.append(0, keys, values);               // prefill chunk or one decode step
 * const out = cache.attend(0, queries);        // [9, 64] queries -> [9, 64] output
 * cache.bytes();                               // exact storage, scales and residual included
 * ```
 * @module
 */
import type * as Native from '../native/binding.cjs';
import { f32, uint } from './args.js';
import { InvalidArgumentError } from './errors.js';
import { call, callAsync, native } from './native.js';

/** How the cache stores keys and values (see the module docs). */
export type KvMethod = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'kivi' | 'kvquant' | 'gear' | 'rotate' | 'mikv' | 'h2o';

/** Options of `new KvCache`. Unset fields take the method's defaults (`cache.info()` shows them). */
export interface KvCacheOptions {
  layers: number;
  kvHeads: number;
  headDim: number;
  method: KvMethod;
  /** Code width: 2, 3, 4 or 8 for kivi/kvquant/gear/rotate/mikv (defaults 2, 3, 4, 2, 2). */
  bits?: number;
  /** KIVI/GEAR: tokens per key group and channels per value group; rotate/mikv: channels per group (default 32; must divide headDim). */
  groupSize?: number;
  /** Newest tokens kept unquantized (default 32 for kivi/gear/mikv/h2o). */
  residual?: number;
  /** First tokens kept unquantized forever (attention sinks; default 4 for rotate, 1 for kvquant). */
  sinks?: number;
  /** KVQuant/GEAR: share of each vector's channels stored exactly as outliers (default 0.01). */
  outlierFraction?: number;
  /** GEAR: rank of the quantization-error approximation (default 4). */
  rank?: number;
  /** MiKV: share of tokens with a high-precision copy; H2O: share of tokens kept (default 0.2). */
  budget?: number;
  /** KVQuant: keys are appended before RoPE and rotated at attention time with this base (e.g. 10000). */
  ropeTheta?: number;
  /** RoPE channel pairing: `half` (Hugging Face Llama, default) or `interleaved`. */
  ropeStyle?: 'half' | 'interleaved';
  /** Rotate: Walsh–Hadamard block size (default headDim). */
  rotationBlock?: number;
}

/** The configuration a cache runs with, defaults filled in. */
export interface KvCacheInfo {
  layers: number;
  kvHeads: number;
  headDim: number;
  method: KvMethod;
  bits: number;
  groupSize: number;
  residual: number;
  sinks: number;
  outlierFraction: number;
  rank: number;
  budget: number;
  ropeTheta?: number;
  rotationBlock: number;
}

/** Options of {@link KvCache.attend}. */
export interface KvAttendOptions {
  /** Softmax scale (default 1/sqrt(headDim)). */
  scale?: number;
}

function nativeOptions(o: KvCacheOptions): Native.NativeKvOptions {
  if (!o || typeof o !== 'object') throw new InvalidArgumentError('KvCache options ({ layers, kvHeads, headDim, method }) are required');
  return {
    layers: uint('layers', o.layers, 1) ?? 0,
    kvHeads: uint('kvHeads', o.kvHeads, 1) ?? 0,
    headDim: uint('headDim', o.headDim, 1) ?? 0,
    method: o.method,
    bits: uint('bits', o.bits, 1),
    groupSize: uint('groupSize', o.groupSize, 1),
    residual: uint('residual', o.residual),
    sinks: uint('sinks', o.sinks),
    outlierFraction: o.outlierFraction,
    rank: uint('rank', o.rank),
    budget: o.budget,
    ropeTheta: o.ropeTheta,
    ropeStyle: o.ropeStyle,
    rotationBlock: uint('rotationBlock', o.rotationBlock),
  };
}

/**
 * A KV cache of `layers` layers. Appends and attends are synchronous and
 * fast (a decode step over 32k tokens takes milliseconds); `attendAsync`
 * runs the same call off the event loop. Bad shapes, NaN/±inf (and, except
 * for `f32`, magnitudes above 60000, which f16 scales cannot hold) throw
 * typed errors and leave the cache unchanged.
 */
export class KvCache {
  readonly #native: Native.NativeKvCache;

  constructor(options: KvCacheOptions);
  /** @internal */
  constructor(options: KvCacheOptions | Native.NativeKvCache);
  constructor(options: KvCacheOptions | Native.NativeKvCache) {
    this.#native = options instanceof native.NativeKvCache ? options : call(() => new native.NativeKvCache(nativeOptions(options)));
  }

  /** Loads a cache written by {@link save} (validated: a damaged file throws `QUARRY_CORRUPT_INDEX`). */
  static load(path: string): KvCache {
    return new KvCache(call(() => native.NativeKvCache.load(path)));
  }

  /**
   * KVQuant: learns the layer's per-channel key ranges and codebooks; rotate:
   * its channel order — from sample keys/values. Call before the layer's
   * first append (otherwise the first appended chunk calibrates it).
   */
  calibrate(layer: number, keys: Float32Array, values: Float32Array): void {
    call(() => this.#native.calibrate(layer, f32('keys', keys), f32('values', values)));
  }

  /** Appends `[kvHeads, tokens, headDim]` keys and values (a prefill chunk or one decode step) to `layer`. */
  append(layer: number, keys: Float32Array, values: Float32Array): void {
    call(() => this.#native.append(layer, f32('keys', keys), f32('values', values)));
  }

  /** Decode attention: `[heads, headDim]` queries (one per head) over the layer's cache; returns `[heads, headDim]`. */
  attend(layer: number, queries: Float32Array, opts: KvAttendOptions = {}): Float32Array {
    return call(() => this.#native.attend(layer, f32('queries', queries), opts.scale));
  }

  /** {@link attend} on the libuv thread pool. */
  attendAsync(layer: number, queries: Float32Array, opts: KvAttendOptions = {}): Promise<Float32Array> {
    return callAsync(() => this.#native.attendAsync(layer, f32('queries', queries), opts.scale));
  }

  /** The layer's keys and values as attention sees them (`[kvHeads, tokens, headDim]` each; evicted H2O tokens are zero rows), for inspection. */
  dequantize(layer: number): { keys: Float32Array; values: Float32Array } {
    return call(() => this.#native.dequantize(layer));
  }

  /** `[kvHeads, tokens]`: 1 where the token is still attended (H2O evicts tokens per head; other methods keep all). */
  retained(layer: number): Uint8Array {
    return call(() => this.#native.retained(layer));
  }

  /** Tokens appended to layer 0 (all layers hold the same count in normal decoding). */
  get tokens(): number {
    return this.layerTokens(0);
  }

  /** Tokens appended to `layer`. */
  layerTokens(layer: number): number {
    return call(() => this.#native.layerTokens(layer));
  }

  /** Exact bytes stored for all layers: codes, scales, zero-points, outliers, calibration and unquantized tokens. */
  bytes(): number {
    return this.#native.bytes();
  }

  /** Exact bytes stored for one layer. */
  layerBytes(layer: number): number {
    return call(() => this.#native.layerBytes(layer));
  }

  /** Writes the cache to one file atomically (versioned, checksummed). */
  save(path: string): void {
    call(() => this.#native.save(path));
  }

  /** The configuration, defaults filled in. */
  info(): KvCacheInfo {
    return this.#native.info() as KvCacheInfo;
  }
}
