import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CorruptIndexError,
  DimensionMismatchError,
  InvalidArgumentError,
  InvalidInputError,
  KvCache,
  UnsupportedError,
  type KvCacheOptions,
} from '../dist/esm/index.js';
import { randomF32 } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'quarry-kv-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/**
 * Plain-JS decode attention (f64 softmax), GQA: query head h reads KV head
 * h / (heads / kvHeads). `keep` (`[kvHeads, tokens]`, 0 = evicted) drops tokens.
 */
function naiveDecode(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  heads: number,
  kvHeads: number,
  d: number,
  keep?: Uint8Array,
): Float32Array {
  const n = k.length / (kvHeads * d);
  const out = new Float32Array(heads * d);
  const scale = 1 / Math.sqrt(d);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / (heads / kvHeads));
    const s = new Float64Array(n);
    let m = -Infinity;
    for (let j = 0; j < n; j++) {
      if (keep && !keep[g * n + j]) {
        s[j] = -Infinity;
        continue;
      }
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[h * d + c] * k[(g * n + j) * d + c];
      s[j] = dot * scale;
      m = Math.max(m, s[j]);
    }
    let z = 0;
    for (let j = 0; j < n; j++) z += s[j] = Math.exp(s[j] - m);
    for (let c = 0; c < d; c++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc += s[j] * v[(g * n + j) * d + c];
      out[h * d + c] = acc / z;
    }
  }
  return out;
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

const kvHeads = 2;
const heads = 6;
const d = 64;
const tokens = 300;
const keys = randomF32(kvHeads * tokens * d, 1);
const values = randomF32(kvHeads * tokens * d, 2);
const queries = randomF32(heads * d, 3);

const methods: KvCacheOptions['method'][] = ['f32', 'f16', 'q8_0', 'q4_0', 'kivi', 'kvquant', 'gear', 'rotate', 'mikv', 'h2o'];

describe('KvCache', () => {
  it.each(methods)('%s: fused attend equals attention over dequantize()', (method) => {
    const cache = new KvCache({ layers: 2, kvHeads, headDim: d, method });
    // A prefill chunk then single decode steps.
    expect(cache.tokens).toBe(0);
    const first = 200;
    const chunk = (src: Float32Array, from: number, to: number) => {
      const out = new Float32Array(kvHeads * (to - from) * d);
      for (let g = 0; g < kvHeads; g++) out.set(src.subarray((g * tokens + from) * d, (g * tokens + to) * d), g * (to - from) * d);
      return out;
    };
    cache.append(1, chunk(keys, 0, first), chunk(values, 0, first));
    for (let t = first; t < tokens; t++) cache.append(1, chunk(keys, t, t + 1), chunk(values, t, t + 1));
    expect(cache.layerTokens(1)).toBe(tokens);
    const { keys: dk, values: dv } = cache.dequantize(1);
    expect(dk.length).toBe(keys.length);
    // Evicted (H2O) tokens are out of the softmax.
    const want = naiveDecode(queries, dk, dv, heads, kvHeads, d, cache.retained(1));
    const got = cache.attend(1, queries);
    expect(relErr(got, want)).toBeLessThan(1e-4);
    // Quantization error against the exact f32 attention is bounded per
    // method (H2O drops most of these evenly attended tokens: no bound).
    if (method !== 'h2o') {
      const exact = naiveDecode(queries, keys, values, heads, kvHeads, d);
      const bound = method === 'f32' ? 1e-5 : method === 'f16' ? 1e-3 : 0.9;
      expect(relErr(got, exact)).toBeLessThan(bound);
    }
  });

  it('counts bytes exactly for dense and block formats and shrinks with bits', () => {
    const mk = (o: Partial<KvCacheOptions> & { method: KvCacheOptions['method'] }) => {
      const c = new KvCache({ layers: 1, kvHeads, headDim: d, ...o });
      c.append(0, keys, values);
      return c;
    };
    expect(mk({ method: 'f32' }).bytes()).toBe(2 * keys.length * 4);
    expect(mk({ method: 'f16' }).bytes()).toBe(2 * keys.length * 2);
    // q8_0: 34 bytes per 32 values; q4_0: 18 bytes per 32 values.
    expect(mk({ method: 'q8_0' }).bytes()).toBe(2 * (keys.length / 32) * 34);
    expect(mk({ method: 'q4_0' }).bytes()).toBe(2 * (keys.length / 32) * 18);
    const k2 = mk({ method: 'kivi', bits: 2 }).bytes();
    const k4 = mk({ method: 'kivi', bits: 4 }).bytes();
    expect(k2).toBeLessThan(k4);
    // 4-bit codes plus f16 scale/zero per group, plus the unquantized residual, stay well under f16.
    expect(k4).toBeLessThan(mk({ method: 'f16' }).bytes() * 0.6);
    expect(mk({ method: 'kivi', bits: 2 }).layerBytes(0)).toBe(k2);
  });

  it('attendAsync equals attend, and a custom scale changes the result', async () => {
    const cache = new KvCache({ layers: 1, kvHeads, headDim: d, method: 'kivi', bits: 4 });
    cache.append(0, keys, values);
    const a = cache.attend(0, queries);
    expect(await cache.attendAsync(0, queries)).toEqual(a);
    expect(relErr(cache.attend(0, queries, { scale: 0.5 }), a)).toBeGreaterThan(1e-3);
  });

  it('saves and loads a cache that attends identically; damaged files are rejected', () => {
    const cache = new KvCache({ layers: 2, kvHeads, headDim: d, method: 'kvquant', bits: 3, ropeTheta: 10000 });
    cache.append(0, keys, values);
    const path = join(work, 'cache.qkv');
    cache.save(path);
    const back = KvCache.load(path);
    expect(back.info()).toEqual(cache.info());
    expect(back.bytes()).toBe(cache.bytes());
    expect(back.attend(0, queries)).toEqual(cache.attend(0, queries));
    const bytes = readFileSync(path);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)] ^= 0x40;
    writeFileSync(join(work, 'flipped.qkv'), flipped);
    expect(() => KvCache.load(join(work, 'flipped.qkv'))).toThrow(CorruptIndexError);
    writeFileSync(join(work, 'short.qkv'), bytes.subarray(0, bytes.length - 7));
    expect(() => KvCache.load(join(work, 'short.qkv'))).toThrow(CorruptIndexError);
  });

  it('rejects bad input with typed errors and leaves the cache unchanged', () => {
    const cache = new KvCache({ layers: 1, kvHeads, headDim: d, method: 'kivi' });
    expect(() => cache.append(1, keys, values)).toThrow(InvalidArgumentError);
    expect(() => cache.append(0, keys.subarray(1), values.subarray(1))).toThrow(DimensionMismatchError);
    const bad = keys.slice();
    bad[5] = Number.NaN;
    expect(() => cache.append(0, bad, values)).toThrow(InvalidInputError);
    bad[5] = Infinity;
    expect(() => cache.append(0, bad, values)).toThrow(InvalidInputError);
    expect(cache.tokens).toBe(0);
    cache.append(0, keys, values);
    expect(() => cache.attend(0, randomF32(5 * d, 4))).toThrow(DimensionMismatchError); // 5 heads over 2 KV heads
    expect(() => new KvCache({ layers: 1, kvHeads, headDim: d, method: 'kivi', bits: 5 })).toThrow(UnsupportedError);
    expect(() => new KvCache({ layers: 1, kvHeads, headDim: d, method: 'kivi', groupSize: 48 })).toThrow(InvalidArgumentError);
    expect(() => new KvCache({ layers: 1, kvHeads, headDim: d, method: 'zip' as 'f32' })).toThrow(UnsupportedError);
    expect(() => new KvCache({ layers: 0, kvHeads, headDim: d, method: 'f32' })).toThrow(InvalidArgumentError);
    expect(() => cache.append(0, [1, 2] as unknown as Float32Array, values)).toThrow(InvalidArgumentError);
  });
});
