import { describe, expect, it } from 'vitest';
import { DimensionMismatchError, InvalidArgumentError, attention } from '../dist/esm/index.js';
import { randomF32 } from './helpers.js';

/**
 * Plain-JS attention (f64 softmax) over the keys `keep(h, i, j)` admits,
 * causal with queries aligned to the end of the keys; rows with no key are zero.
 */
function naive(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  s: { heads: number; kvHeads: number; headDim: number; causal?: boolean },
  keep: (h: number, i: number, j: number) => boolean = () => true,
): Float32Array {
  const d = s.headDim;
  const qLen = q.length / (s.heads * d);
  const n = k.length / (s.kvHeads * d);
  const out = new Float32Array(q.length);
  for (let h = 0; h < s.heads; h++) {
    const g = Math.floor(h / (s.heads / s.kvHeads));
    for (let i = 0; i < qLen; i++) {
      const end = s.causal === false ? n : n - qLen + i + 1;
      const js: number[] = [];
      for (let j = 0; j < end; j++) if (keep(h, i, j)) js.push(j);
      if (js.length === 0) continue;
      const sc = js.map((j) => {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(h * qLen + i) * d + c] * k[(g * n + j) * d + c];
        return dot / Math.sqrt(d);
      });
      const m = Math.max(...sc);
      const w = sc.map((x) => Math.exp(x - m));
      const z = w.reduce((a, b) => a + b, 0);
      for (let c = 0; c < d; c++) {
        let acc = 0;
        js.forEach((j, t) => (acc += w[t] * v[(g * n + j) * d + c]));
        out[(h * qLen + i) * d + c] = acc / z;
      }
    }
  }
  return out;
}

const shape = { heads: 4, kvHeads: 2, headDim: 32 };
const n = 256;
const q = randomF32(shape.heads * n * shape.headDim, 1);
const k = randomF32(shape.kvHeads * n * shape.headDim, 2);
const v = randomF32(shape.kvHeads * n * shape.headDim, 3);
const qDecode = randomF32(shape.heads * shape.headDim, 4);

/** f32 -> f16 bits (round to nearest even), for the Uint16Array K/V path. */
function f16Bits(x: Float32Array): Uint16Array {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return Uint16Array.from(x, (val) => {
    f[0] = val;
    const b = u[0];
    const sign = (b >>> 16) & 0x8000;
    const exp = ((b >>> 23) & 0xff) - 127 + 15;
    if (exp <= 0) return sign; // values here are never that small but zero
    let mant = (b >>> 13) & 0x3ff;
    const rest = b & 0x1fff;
    let e = exp;
    if (rest > 0x1000 || (rest === 0x1000 && mant & 1)) {
      mant++;
      if (mant === 0x400) {
        mant = 0;
        e++;
      }
    }
    return sign | (e << 10) | mant;
  });
}

describe('attention', () => {
  it('dense matches plain-JS attention: causal, non-causal, decode, f16 K/V', () => {
    const d = attention.dense(q, k, v, shape);
    expect(d).toBeInstanceOf(Float32Array);
    expect(d.output).toBe(d);
    expect(d.density).toBe(1);
    expect(d.lse.length).toBe(shape.heads * n);
    expect(attention.relativeError(d, naive(q, k, v, shape))).toBeLessThan(1e-5);
    const nc = attention.dense(q, k, v, { ...shape, causal: false });
    expect(attention.relativeError(nc, naive(q, k, v, { ...shape, causal: false }))).toBeLessThan(1e-5);
    const dec = attention.dense(qDecode, k, v, shape);
    expect(attention.relativeError(dec, naive(qDecode, k, v, shape))).toBeLessThan(1e-5);
    const kh = f16Bits(k);
    const vh = f16Bits(v);
    const half = attention.dense(q, kh, vh, shape);
    expect(attention.relativeError(half, d)).toBeLessThan(2e-3);
    expect(attention.relativeError(half, d)).toBeGreaterThan(0);
  });

  it('denseAsync and sparseAsync equal their sync twins', async () => {
    expect(await attention.denseAsync(q, k, v, shape)).toEqual(attention.dense(q, k, v, shape));
    const o = { ...shape, pattern: 'a-shape' as const, sink: 16, window: 64 };
    expect((await attention.sparseAsync(q, k, v, o)).output).toEqual(attention.sparse(q, k, v, o).output);
  });

  it('every sparse method at full budget equals dense', () => {
    const full = 1 << 20;
    const dense = attention.dense(q, k, v, shape);
    for (const m of [
      { pattern: 'a-shape', sink: full, window: full },
      { pattern: 'vertical-slash', vertical: full, slash: full },
      { pattern: 'vertical-slash', vertical: full, slash: full, lastQ: 8, spreadQ: 16 },
      { pattern: 'vertical-slash', vertical: full, slash: full, slashLines: true },
      { pattern: 'vertical-slash', vertical: full, slash: full, slashLines: true, segment: 32 },
      { pattern: 'block-topk', gamma: 1 },
      { pattern: 'block-topk', gamma: 1, estimate: 'mean-query' },
      { pattern: 'per-head', patterns: Array.from({ length: 4 }, () => ({ pattern: 'dense' as const })) },
      { pattern: 'duo', retrievalHeads: [true, true] },
    ] as const) {
      const s = attention.sparse(q, k, v, { ...shape, ...m });
      expect(attention.relativeError(s.output, dense), m.pattern).toBeLessThan(1e-5);
      expect(s.density).toBeCloseTo(1, 9);
    }
    const denseDecode = attention.dense(qDecode, k, v, shape);
    for (const m of [
      { pattern: 'streaming', sink: full, recent: full },
      { pattern: 'quest', budget: full },
      { pattern: 'squeezed', clusters: 8, budget: full },
      { pattern: 'top-k', budget: full },
      { pattern: 'retrieval', budget: full, nprobe: full, probeOrder: 'bound' },
    ] as const) {
      const s = attention.sparse(qDecode, k, v, { ...shape, ...m });
      expect(attention.relativeError(s.output, denseDecode), m.pattern).toBeLessThan(1e-5);
      expect(s.selection?.[0].length).toBe(n);
    }
  });

  it('slashLines computes scattered diagonals as lines: fewer pairs than their bands', () => {
    const vs = { ...shape, pattern: 'vertical-slash', vertical: 8, slash: 110 } as const;
    const bands = attention.sparse(q, k, v, vs);
    const lines = attention.sparse(q, k, v, { ...vs, slashLines: true });
    expect(lines.density).toBeGreaterThan(0);
    expect(lines.density).toBeLessThan(bands.density);
    expect(lines.output.every(Number.isFinite)).toBe(true);
  });

  it('segment gives each segment of queries its own vertical-slash estimate', () => {
    const vs = { ...shape, pattern: 'vertical-slash', vertical: 8, slash: 110, slashLines: true } as const;
    const one = attention.sparse(q, k, v, vs);
    // a segment at least as long as the sequence is the one estimate
    expect(attention.sparse(q, k, v, { ...vs, segment: 100_000 })).toEqual(one);
    const segs = attention.sparse(q, k, v, { ...vs, segment: 64 });
    expect(segs.density).toBeGreaterThan(0);
    expect(segs.density).toBeLessThan(1);
    expect(segs.output.every(Number.isFinite)).toBe(true);
  });

  it('partial selections equal plain-JS attention over exactly those keys', () => {
    const s = attention.sparse(qDecode, k, v, { ...shape, pattern: 'quest', pageSize: 16, budget: 64, sink: 4, recent: 16 });
    expect(s.selection).toHaveLength(shape.heads);
    expect(s.density).toBeLessThan(0.5);
    const sets = s.selection!.map((sel) => new Set(sel));
    expect(attention.relativeError(s.output, naive(qDecode, k, v, shape, (h, _i, j) => sets[h].has(j)))).toBeLessThan(1e-5);
    // Recall of those keys is below 1, of all keys 1, of the exact top keys above quest's.
    const r = attention.recallStats(qDecode, k, { ...shape, indices: s.selection! });
    expect(r.mean).toBeGreaterThan(0);
    expect(r.mean).toBeLessThan(1);
    expect(r.perHead).toHaveLength(shape.heads);
    expect(attention.recall(qDecode, k, { ...shape, indices: Uint32Array.from({ length: n }, (_, i) => i) })).toBeCloseTo(1, 6);
    const oracle = attention.recall(qDecode, k, { ...shape, pattern: 'top-k', budget: s.selection![0].length - 20, sink: 4, recent: 16 });
    expect(oracle).toBeGreaterThanOrEqual(r.mean - 1e-9);
    // A-shape prefill: only sinks and a local window (tile granularity: the window may widen by a block).
    const a = attention.sparse(q, k, v, { ...shape, pattern: 'a-shape', sink: 16, window: 64, block: 16 });
    expect(a.density).toBeLessThan(0.8);
    expect(attention.recall(q, k, { ...shape, pattern: 'a-shape', sink: 16, window: 64, block: 16 })).toBeLessThan(1);
  });

  it('retrieval finds a far key every query head points at', () => {
    const d = shape.headDim;
    const kk = k.slice();
    const qq = qDecode.slice();
    const needle = 37;
    for (let g = 0; g < shape.kvHeads; g++) for (let c = 0; c < d; c++) kk[(g * n + needle) * d + c] = c % 2 ? -3 : 3;
    for (let h = 0; h < shape.heads; h++) for (let c = 0; c < d; c++) qq[h * d + c] = c % 2 ? -2 : 2;
    for (const probeOrder of ['centroid', 'bound'] as const) {
      const r = attention.sparse(qq, kk, v, { ...shape, pattern: 'retrieval', budget: 16, sink: 2, recent: 8, probeOrder });
      expect(r.selection!.every((s) => s.includes(needle))).toBe(true);
      expect(r.density).toBeLessThan(0.2);
      const sets = r.selection!.map((sel) => new Set(sel));
      expect(attention.relativeError(r.output, naive(qq, kk, v, shape, (h, _i, j) => sets[h].has(j)))).toBeLessThan(1e-5);
    }
    // Per query head: each head attends to its own keys, a subset of the group's union.
    const union = attention.sparse(qq, k, v, { ...shape, pattern: 'retrieval', budget: 16, sink: 2, recent: 8 });
    const own = attention.sparse(qq, k, v, { ...shape, pattern: 'retrieval', budget: 16, sink: 2, recent: 8, perHead: true });
    own.selection!.forEach((sel, h) => expect(sel.every((j) => union.selection![h].includes(j))).toBe(true));
    expect(own.density).toBeLessThanOrEqual(union.density);
    expect(() => attention.sparse(qq, kk, v, { ...shape, pattern: 'retrieval', indexKind: 'hnsw' as 'flat' })).toThrow();
    expect(() => attention.sparse(qq, kk, v, { ...shape, pattern: 'retrieval', perHead: 1 as unknown as boolean })).toThrow(InvalidArgumentError);
  });

  it('pattern search, DuoAttention and TidalDecode work end to end', () => {
    const choice = attention.searchPatterns(q, k, { ...shape, target: 0.9 });
    expect(choice.patterns).toHaveLength(shape.heads);
    choice.recall.forEach((r) => expect(r).toBeGreaterThanOrEqual(0.9));
    // recall measured on a few query blocks only: same shape of answer, same guarantee on those blocks
    const sampled = attention.searchPatterns(q, k, { ...shape, target: 0.9, sampleTiles: 2 });
    expect(sampled.patterns).toHaveLength(shape.heads);
    sampled.recall.forEach((r) => expect(r).toBeGreaterThanOrEqual(0.9));
    expect(() => attention.searchPatterns(q, k, { ...shape, sampleTiles: -1 })).toThrow(InvalidArgumentError);
    const ph = attention.sparse(q, k, v, { ...shape, pattern: 'per-head', patterns: choice.patterns });
    expect(ph.density).toBeLessThanOrEqual(1);
    const policy = attention.duoCalibrate(q, k, { ...shape, sink: 8, window: 32, target: 0.99 });
    expect(policy.retrievalHeads).toHaveLength(shape.kvHeads);
    const duo = attention.sparse(qDecode, k, v, { ...shape, pattern: 'duo', ...policy });
    const sets = duo.selection!.map((sel) => new Set(sel));
    expect(attention.relativeError(duo.output, naive(qDecode, k, v, shape, (h, _i, j) => sets[h].has(j)))).toBeLessThan(1e-5);
    const tidal = new attention.TidalDecoder({ selectionLayers: [1], budget: 32 });
    const l0 = tidal.attend(0, qDecode, k, v, shape);
    expect(l0.density).toBe(1);
    const l1 = tidal.attend(1, qDecode, k, v, shape);
    const l2 = tidal.attend(2, qDecode, k, v, shape);
    expect(l1.density).toBeLessThan(1);
    expect(l2.selection).toEqual(l1.selection);
    tidal.reset();
    expect(tidal.attend(0, qDecode, k, v, shape).density).toBe(1);
  });

  it('rejects bad shapes and arguments with typed errors', () => {
    expect(() => attention.dense(q, k, v, { heads: 3, kvHeads: 2, headDim: 32 })).toThrow(InvalidArgumentError);
    expect(() => attention.dense(q.subarray(1), k, v, shape)).toThrow(DimensionMismatchError);
    expect(() => attention.dense(q, k, v.subarray(32), shape)).toThrow(DimensionMismatchError);
    expect(() => attention.dense(q, k, v, { ...shape, block: 17 })).toThrow(InvalidArgumentError);
    expect(() => attention.dense(q, k, v, { ...shape, headDim: 0 })).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'quest' })).toThrow(InvalidArgumentError); // decode-only method
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'nope' } as never)).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'block-topk', estimate: 'nope' } as never)).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'vertical-slash', spreadQ: -1 })).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'vertical-slash', spreadQ: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'vertical-slash', slashLines: 'yes' } as never)).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'vertical-slash', segment: -64 })).toThrow(InvalidArgumentError);
    expect(() => attention.sparse(q, k, v, { ...shape, pattern: 'duo', retrievalHeads: [true] })).toThrow(DimensionMismatchError);
    expect(() => attention.recall(qDecode, k, { ...shape, indices: [n + 5] })).toThrow(InvalidArgumentError);
    expect(() => attention.dense([1, 2] as unknown as Float32Array, k, v, shape)).toThrow(InvalidArgumentError);
    // Causal with more queries than keys; empty queries give an empty output.
    expect(() => attention.dense(q, k.subarray(0, 2 * 10 * 32), v.subarray(0, 2 * 10 * 32), shape)).toThrow(InvalidArgumentError);
    expect(attention.dense(new Float32Array(0), k, v, shape).length).toBe(0);
  });
});
