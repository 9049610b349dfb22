/**
 * Dense and sparse attention for long-context serving on CPU
 * (`quarry-attn`).
 *
 * Layout: queries `[heads, qLen, headDim]`, keys and values `[kvHeads,
 * kvLen, headDim]`, output `[heads, qLen, headDim]`, row-major. K/V are
 * `Float32Array`s or `Uint16Array`s holding f16 bits. `qLen` and `kvLen`
 * follow from the array lengths; query head `h` reads KV head `h / (heads /
 * kvHeads)` (grouped-query attention). Causal attention (the default) aligns
 * the queries to the end of the keys: prefill is `qLen == kvLen`, decode is
 * `qLen == 1`.
 *
 * Sparse methods (`pattern`):
 * - prefill (any `qLen`): `a-shape` (sinks + local window, StreamingLLM),
 *   `vertical-slash` (MInference: top columns and diagonals estimated from
 *   the last `lastQ` queries, plus `spreadQ` spread over the sequence),
 *   `block-topk` (FlexPrefill: query-aware blocks up to a cumulative share
 *   `gamma`; pooled, low-bit or mean-query estimate),
 *   `per-head` (one of those per head, e.g. from {@link searchPatterns});
 * - decode (`qLen == 1`): `streaming`, `quest` (page min/max bounds),
 *   `squeezed` (k-means key clusters), `retrieval` (RetrievalAttention: an
 *   ANN index over the keys searched with the query), `top-k` (exact, the
 *   oracle), `keys` (positions you give);
 * - both: `duo` (a DuoAttention policy from {@link duoCalibrate}).
 *
 * ```ts
 * const out = attention.dense(q, k, v, { heads: 9, kvHeads: 3, headDim: 64 });
 * const s = attention.sparse(q, k, v, { heads: 9, kvHeads: 3, headDim: 64, pattern: 'vertical-slash' });
 * attention.relativeError(s.output, out); s.density;
 * ```
 * @module
 */
import type * as Native from '../native/binding.cjs';
import { bool, f32, uint } from './args.js';
import { InvalidArgumentError } from './errors.js';
import { call, callAsync, native } from './native.js';

/** Keys or values: f32, or f16 bits in a `Uint16Array`. */
export type KvData = Float32Array | Uint16Array;

/** Head counts and size. */
export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Shape plus options shared by every call. */
export interface AttentionOptions extends AttentionShape {
  /** Causal mask, queries aligned to the end of the keys (default true). */
  causal?: boolean;
  /** Softmax scale (default 1/sqrt(headDim)). */
  scale?: number;
  /** Tile and sparse block size in tokens: a multiple of 16 in 16..256 (default 64). */
  block?: number;
}

/** Prefill pattern names. */
export type PrefillPatternName = 'dense' | 'a-shape' | 'vertical-slash' | 'block-topk';

/** A prefill pattern and its parameters. */
export interface PrefillPattern {
  pattern: PrefillPatternName;
  /** a-shape: first keys every query sees (default 64). */
  sink?: number;
  /** a-shape: keys before each query (default 1024). */
  window?: number;
  /** vertical-slash: key columns kept (default 1000). */
  vertical?: number;
  /** vertical-slash: diagonals kept (default 6096). */
  slash?: number;
  /** vertical-slash: last queries the estimate uses (default 64). */
  lastQ?: number;
  /**
   * vertical-slash: queries spaced evenly over the rest of the sequence added to the estimate
   * (default 0, MInference's: the last queries only). Heads that attend to different keys
   * along the sequence need them; the end alone misses their columns and diagonals.
   */
  spreadQ?: number;
  /**
   * vertical-slash: compute a diagonal as a line (the one key per row it names) where that is
   * cheaper than its block-wide band, i.e. where diagonals are scattered (default false,
   * MInference's blocks: every diagonal becomes a band of `block` keys per query block).
   */
  slashLines?: boolean;
  /**
   * vertical-slash: split the queries into segments of this many rows, each estimated from its
   * own last `lastQ` queries (and `spreadQ` spread over it) with its own budgets (default 0:
   * one estimate for the whole sequence, MInference's). For heads whose attended diagonals
   * drift along the sequence (e.g. a model run past its trained window).
   */
  segment?: number;
  /** block-topk: cumulative share of estimated attention kept per query block (default 0.9). */
  gamma?: number;
  /**
   * block-topk: block scores from f32 pooled blocks, an 8-/4-bit estimate of them (SALE), or
   * `mean-query`: each query block's mean query against every key, a block's score its share
   * of that attention (finer than pooled keys, at 1/block of the dense Q·Kᵀ cost).
   */
  estimate?: 'pooled' | 'i8' | 'i4' | 'mean-query';
}

/** Key positions: one list for every query head, or one list per query head. */
export type KeyIndices = Uint32Array | readonly number[] | ReadonlyArray<Uint32Array | readonly number[]>;

/** A sparse method and its parameters (see the module docs). */
export type SparseMethod =
  | PrefillPattern
  | { pattern: 'per-head'; patterns: PrefillPattern[] }
  | { pattern: 'streaming'; sink?: number; recent?: number }
  | { pattern: 'quest'; pageSize?: number; budget?: number; sink?: number; recent?: number }
  | { pattern: 'squeezed'; clusters?: number; iterations?: number; budget?: number; sink?: number; recent?: number; seed?: number }
  | {
      pattern: 'retrieval';
      /** Keys retrieved per query head (default 2048). */
      budget?: number;
      /** Lists probed (default a tenth of them). */
      nprobe?: number;
      /** Lists of each KV head's index (default kvLen / 64, at most 1024). */
      nlist?: number;
      /** ANN index kind over the keys (default `ivf-flat`). */
      indexKind?: 'flat' | 'ivf-flat' | 'ivf-sq8' | 'ivf-pq';
      /** `centroid`: lists by query·centroid; `bound`: by an upper bound, stopping when no list can improve the top keys. */
      probeOrder?: 'centroid' | 'bound';
      /**
       * Each query head attends to the keys it retrieved (RetrievalAttention's per-head
       * retrieval); default false: the query heads of a GQA group share the union of theirs.
       */
      perHead?: boolean;
      sink?: number;
      recent?: number;
      seed?: number;
    }
  | { pattern: 'top-k'; budget?: number; sink?: number; recent?: number }
  | { pattern: 'duo'; retrievalHeads: boolean[]; sink?: number; window?: number }
  | { pattern: 'keys'; keys: KeyIndices };

/**
 * Options of {@link sparse}. Decode defaults: `sink` 4 and `recent` 64 keys
 * added to every selection (`streaming`: `recent` 1024), `budget` 2048 keys,
 * `pageSize` 16, squeezed `clusters` one per 16 keys with 8 k-means
 * iterations. Budgets larger than the sequence clamp (the method is then
 * dense).
 */
export type SparseOptions = AttentionOptions & SparseMethod;

/** Attention output. */
export interface AttentionResult {
  /** `[heads, qLen, headDim]`. */
  output: Float32Array;
  /** Log-sum-exp of each query row's scores over the keys it saw, `[heads, qLen]`. */
  lse: Float32Array;
  /** Share of the visible query-key pairs computed (1 for dense). */
  density: number;
  /** Decode methods: the key positions each query head attended. */
  selection?: Uint32Array[];
}

/**
 * Output of {@link dense}: the `[heads, qLen, headDim]` array itself, also
 * carrying `output` (the same array), `lse` and `density` so it reads like an
 * {@link AttentionResult}.
 */
export type DenseOutput = Float32Array & { readonly output: Float32Array; readonly lse: Float32Array; readonly density: number };

/** Recall of a selection: per query row, the share of its true softmax mass on the selected keys. */
export interface RecallStats {
  mean: number;
  /** Lowest single query row. */
  min: number;
  perHead: Float64Array;
}

function kv(name: string, v: unknown): KvData {
  if (v instanceof Float32Array || v instanceof Uint16Array) return v;
  throw new InvalidArgumentError(`${name} must be a Float32Array or a Uint16Array of f16 bits`);
}

function nativeOptions(o: AttentionOptions): Native.NativeAttnOptions {
  if (!o || typeof o !== 'object') throw new InvalidArgumentError('attention options ({ heads, kvHeads, headDim }) are required');
  return {
    heads: uint('heads', o.heads, 1) ?? 0,
    kvHeads: uint('kvHeads', o.kvHeads, 1) ?? 0,
    headDim: uint('headDim', o.headDim, 1) ?? 0,
    causal: o.causal,
    scale: o.scale,
    block: uint('block', o.block, 1),
  };
}

function nativePattern(p: PrefillPattern): Native.NativePrefillPattern {
  return {
    pattern: p.pattern,
    sink: uint('sink', p.sink),
    window: uint('window', p.window),
    vertical: uint('vertical', p.vertical),
    slash: uint('slash', p.slash),
    lastQ: uint('lastQ', p.lastQ, 1),
    spreadQ: uint('spreadQ', p.spreadQ),
    slashLines: bool('slashLines', p.slashLines),
    segment: uint('segment', p.segment),
    gamma: p.gamma,
    estimate: p.estimate,
  };
}

function keyLists(keys: KeyIndices, heads: number): Uint32Array[] {
  const one = (k: Uint32Array | readonly number[]) => (k instanceof Uint32Array ? k : Uint32Array.from(k));
  if (keys instanceof Uint32Array || (Array.isArray(keys) && (keys.length === 0 || typeof keys[0] === 'number'))) {
    const shared = one(keys as Uint32Array | readonly number[]);
    return Array.from({ length: heads }, () => shared);
  }
  return (keys as ReadonlyArray<Uint32Array | readonly number[]>).map(one);
}

function nativeMethod(o: SparseMethod & { heads?: number }): Native.NativeSparseMethod {
  const m = o as Record<string, unknown> & { pattern: string };
  if (typeof m.pattern !== 'string') throw new InvalidArgumentError('pattern is required (e.g. "vertical-slash", "quest")');
  const num = (name: string, min = 0) => uint(name, m[name] as number | undefined, min);
  return {
    ...nativePattern(m as unknown as PrefillPattern),
    pattern: m.pattern,
    recent: num('recent'),
    pageSize: num('pageSize', 1),
    budget: num('budget'),
    clusters: num('clusters', 1),
    iterations: num('iterations', 1),
    seed: m.seed as number | undefined,
    patterns: Array.isArray(m.patterns) ? (m.patterns as PrefillPattern[]).map(nativePattern) : undefined,
    retrievalHeads: m.retrievalHeads as boolean[] | undefined,
    keys: m.keys === undefined ? undefined : keyLists(m.keys as KeyIndices, o.heads ?? 0),
    nprobe: num('nprobe', 1),
    nlist: num('nlist'),
    indexKind: m.indexKind as string | undefined,
    probeOrder: m.probeOrder as string | undefined,
    perHead: bool('perHead', m.perHead as boolean | undefined),
  };
}

function denseOutput(r: Native.NativeAttnResult): DenseOutput {
  const out = r.output as Float32Array & { output?: Float32Array; lse?: Float32Array; density?: number };
  Object.defineProperties(out, {
    output: { value: out, enumerable: false },
    lse: { value: r.lse, enumerable: false },
    density: { value: r.density, enumerable: false },
  });
  return out as DenseOutput;
}

/** Dense attention (tiled, online softmax, parallel over heads and query tiles), on the calling thread. */
export function dense(q: Float32Array, k: KvData, v: KvData, opts: AttentionOptions): DenseOutput {
  return denseOutput(call(() => native.attentionDense(f32('q', q), kv('k', k), kv('v', v), nativeOptions(opts))));
}

/** {@link dense} on the libuv thread pool. */
export async function denseAsync(q: Float32Array, k: KvData, v: KvData, opts: AttentionOptions): Promise<DenseOutput> {
  return denseOutput(await callAsync(() => native.attentionDenseAsync(f32('q', q), kv('k', k), kv('v', v), nativeOptions(opts))));
}

/** Attention over the keys a sparse method selects only. */
export function sparse(q: Float32Array, k: KvData, v: KvData, opts: SparseOptions): AttentionResult {
  return call(() => native.attentionSparse(f32('q', q), kv('k', k), kv('v', v), nativeOptions(opts), nativeMethod(opts)));
}

/** {@link sparse} on the libuv thread pool. */
export function sparseAsync(q: Float32Array, k: KvData, v: KvData, opts: SparseOptions): Promise<AttentionResult> {
  return callAsync(() => native.attentionSparseAsync(f32('q', q), kv('k', k), kv('v', v), nativeOptions(opts), nativeMethod(opts)));
}

/** Options of {@link recall}: the keys as `indices` (decode: attended keys; prefill: key columns every query row sees), or a sparse method. */
export type RecallOptions = AttentionOptions & ({ indices: KeyIndices } | SparseMethod);

function recallMethod(opts: RecallOptions): Native.NativeSparseMethod {
  if ('indices' in opts) return nativeMethod({ pattern: 'keys', keys: opts.indices, heads: opts.heads });
  return nativeMethod(opts as SparseMethod & { heads?: number });
}

/** Attention recall of the chosen keys (mean over heads and query rows): the share of the true attention mass they cover. */
export function recall(q: Float32Array, k: KvData, opts: RecallOptions): number {
  return recallStats(q, k, opts).mean;
}

/** {@link recall} with the per-head means and the lowest row. */
export function recallStats(q: Float32Array, k: KvData, opts: RecallOptions): RecallStats {
  return call(() => native.attentionRecall(f32('q', q), kv('k', k), nativeOptions(opts), recallMethod(opts)));
}

/** `‖out − reference‖₂ / ‖reference‖₂` (0 when both are zero). */
export function relativeError(out: Float32Array, reference: Float32Array): number {
  return call(() => native.attentionRelativeError(f32('out', out), f32('reference', reference)));
}

/** Result of {@link searchPatterns}. */
export interface PatternChoice {
  /** Cheapest candidate per query head meeting the target (`dense` where none did); pass as `{ pattern: 'per-head', patterns }`. */
  patterns: PrefillPattern[];
  recall: Float64Array;
  density: Float64Array;
}

/**
 * MInference's offline step: on calibration Q/K (prefill), picks for each
 * head the candidate with the lowest cost (density, pairs on diagonal lines
 * weighted by their higher cost per pair) whose attention recall reaches
 * `target` (default 0.95). Default candidates: a-shape windows 256/1024/4096,
 * vertical-slash 500×1000 / 1000×3000 / 2000×6000 (`spreadQ` 0 and 64, and
 * `slashLines` with `spreadQ` 0, and `segment` 4096 with `lastQ` 32 + `spreadQ` 32), block-topk γ 0.8/0.9/0.95
 * (pooled) and γ 0.95/0.98 (mean-query). `sampleTiles`: measure recall on
 * that many query blocks spread over the sequence instead of all of them,
 * so a search at a long calibration length stays cheap.
 */
export function searchPatterns(
  q: Float32Array,
  k: KvData,
  opts: AttentionOptions & { candidates?: PrefillPattern[]; target?: number; sampleTiles?: number },
): PatternChoice {
  const tiles = uint('sampleTiles', opts.sampleTiles);
  const c = call(() =>
    native.attentionSearchPatterns(f32('q', q), kv('k', k), nativeOptions(opts), opts.candidates?.map(nativePattern), opts.target ?? 0.95, tiles),
  );
  return c as PatternChoice;
}

/** A DuoAttention policy; pass it to {@link sparse} as `{ pattern: 'duo', ...policy }`. */
export interface DuoPolicy {
  /** Per KV head: true = retrieval head (full attention), false = streaming (sinks + window). */
  retrievalHeads: boolean[];
  sink: number;
  window: number;
  /** Calibration recall of sinks + window per query head. */
  streamingRecall: Float64Array;
}

/**
 * Calibrates a DuoAttention policy on prefill Q/K: a KV head becomes
 * streaming when every query head of its group keeps `target` (default 0.95)
 * attention recall with `sink` (default 64) + `window` (default 1024) keys.
 */
export function duoCalibrate(
  q: Float32Array,
  k: KvData,
  opts: AttentionOptions & { sink?: number; window?: number; target?: number },
): DuoPolicy {
  return call(() =>
    native.attentionDuoCalibrate(
      f32('q', q),
      kv('k', k),
      nativeOptions(opts),
      uint('sink', opts.sink) ?? 64,
      uint('window', opts.window) ?? 1024,
      opts.target ?? 0.95,
    ),
  );
}

/**
 * TidalDecode-style position reuse across layers within one decode step:
 * layers in `selectionLayers` pick their exact top-`budget` keys (plus `sink`
 * and `recent`), later layers reuse that selection, earlier ones attend
 * densely. Call `attend` for the layers of a step in order, then `reset`.
 */
export class TidalDecoder {
  readonly #native: Native.NativeTidalDecoder;

  constructor(opts: { selectionLayers: number[]; budget: number; sink?: number; recent?: number }) {
    this.#native = call(
      () =>
        new native.NativeTidalDecoder(
          opts.selectionLayers.map((l) => uint('selectionLayers[]', l) ?? 0),
          uint('budget', opts.budget) ?? 0,
          uint('sink', opts.sink) ?? 4,
          uint('recent', opts.recent) ?? 64,
        ),
    );
  }

  /** Decode attention of `layer` (`qLen == 1`). */
  attend(layer: number, q: Float32Array, k: KvData, v: KvData, opts: AttentionOptions): AttentionResult {
    return call(() => this.#native.attend(layer, f32('q', q), kv('k', k), kv('v', v), nativeOptions(opts)));
  }

  /** Starts a new decode step. */
  reset(): void {
    this.#native.reset();
  }
}
