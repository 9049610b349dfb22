import { describe, expect, it } from 'vitest';
import {
  DimensionMismatchError,
  DtypeMismatchError,
  InvalidArgumentError,
  QuarryError,
  distance,
  info,
} from '../dist/esm/index.js';
import {
  fromBf16Bits,
  fromF16Bits,
  jsCosine,
  jsDot,
  jsHamming,
  jsJaccard,
  jsKnn,
  jsL2sq,
  randomBytes,
  randomF32,
  rng,
  toBf16Bits,
  toF16Bits,
} from './helpers.js';

const close = (got: number, want: number, scale: number) =>
  expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, scale));

function expectCode(fn: () => unknown, cls: typeof QuarryError, code: string) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(cls);
    expect(e).toBeInstanceOf(QuarryError);
    expect((e as QuarryError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('info', () => {
  it('reports a SIMD level the CPU runs', () => {
    const i = info();
    expect(i.simdLevels).toContain('scalar');
    expect(i.simdLevels).toContain(i.simdLevel);
    expect(i.threads).toBeGreaterThan(0);
    expect(Array.isArray(i.features)).toBe(true);
  });
});

describe('one-to-one f32', () => {
  for (const dim of [1, 3, 8, 15, 16, 17, 31, 33, 64, 100, 257, 768, 1536]) {
    it(`matches plain JS at dim ${dim}`, () => {
      const a = randomF32(dim, dim);
      const b = randomF32(dim, dim + 1000);
      const scale = jsDot(a.map(Math.abs), b.map(Math.abs));
      close(distance.dot(a, b), jsDot(a, b), scale);
      close(distance.l2sq(a, b), jsL2sq(a, b), jsL2sq(a, b));
      close(distance.cosine(a, b), jsCosine(a, b), 1);
    });
  }

  it('accepts plain arrays and unaligned subarrays', () => {
    const buf = randomF32(70, 5);
    const a = buf.subarray(1, 34);
    const b = buf.subarray(37, 70);
    close(distance.l2sq(a, b), jsL2sq(a, b), jsL2sq(a, b));
    expect(distance.dot([1, 2, 3], [4, 5, 6])).toBe(32);
    // A Float32Array at an odd byte offset cannot exist, but a Uint8Array view can:
    const bytes = new Uint8Array(41);
    expect(distance.hamming(bytes.subarray(1, 21), bytes.subarray(21, 41))).toBe(0);
  });

  it('defines cosine of zero vectors', () => {
    const z = new Float32Array(8);
    expect(distance.cosine(z, z)).toBe(0);
    expect(distance.cosine(z, randomF32(8, 1))).toBe(1);
  });

  it('propagates NaN and infinity', () => {
    const a = new Float32Array([1, NaN, 3]);
    const b = new Float32Array([1, 2, 3]);
    expect(distance.dot(a, b)).toBeNaN();
    expect(distance.l2sq(a, b)).toBeNaN();
    expect(distance.cosine(a, b)).toBeNaN();
    expect(distance.l2sq(new Float32Array([Infinity, 0]), new Float32Array([0, 0]))).toBe(Infinity);
  });
});

describe('f16 / bf16 / i8 / u8 / binary', () => {
  const dim = 77;
  const af = randomF32(dim, 11);
  const bf = randomF32(dim, 12);

  it('f16 matches the decoded values', () => {
    const a = Uint16Array.from(af, toF16Bits);
    const b = Uint16Array.from(bf, toF16Bits);
    const da = Array.from(a, fromF16Bits);
    const db = Array.from(b, fromF16Bits);
    close(distance.dot(a, b, { dtype: 'f16' }), jsDot(da, db), dim);
    close(distance.l2sq(a, b, { dtype: 'f16' }), jsL2sq(da, db), dim);
    close(distance.cosine(a, b, { dtype: 'f16' }), jsCosine(da, db), 1);
  });

  it('bf16 matches the decoded values', () => {
    const a = Uint16Array.from(af, toBf16Bits);
    const b = Uint16Array.from(bf, toBf16Bits);
    const da = Array.from(a, fromBf16Bits);
    const db = Array.from(b, fromBf16Bits);
    close(distance.dot(a, b, { dtype: 'bf16' }), jsDot(da, db), dim);
    close(distance.l2sq(a, b, { dtype: 'bf16' }), jsL2sq(da, db), dim);
  });

  it('i8 and u8 are exact, including extremes', () => {
    const r = rng(3);
    const a = Int8Array.from({ length: 1000 }, () => Math.floor(r() * 256) - 128);
    const b = Int8Array.from({ length: 1000 }, () => Math.floor(r() * 256) - 128);
    expect(distance.dot(a, b)).toBe(jsDot(a, b));
    expect(distance.l2sq(a, b)).toBe(jsL2sq(a, b));
    const lo = new Int8Array(65536).fill(-128);
    const hi = new Int8Array(65536).fill(127);
    expect(distance.l2sq(lo, hi)).toBe(255 * 255 * 65536);
    expect(distance.dot(lo, lo)).toBe(128 * 128 * 65536);
    const u = new Uint8Array(65536).fill(255);
    expect(distance.dot(u, u, { dtype: 'u8' })).toBe(255 * 255 * 65536);
    const ua = randomBytes(300, 1);
    const ub = randomBytes(300, 2);
    expect(distance.l2sq(ua, ub)).toBe(jsL2sq(ua, ub));
    close(distance.cosine(ua, ub), jsCosine(ua, ub), 1);
  });

  it('hamming and jaccard on packed bits', () => {
    for (const n of [1, 7, 8, 9, 31, 32, 33, 64, 100, 129]) {
      const a = randomBytes(n, n);
      const b = randomBytes(n, n + 7);
      expect(distance.hamming(a, b)).toBe(jsHamming(a, b));
      close(distance.jaccard(a, b), jsJaccard(a, b), 1);
    }
    expect(distance.jaccard(new Uint8Array(4), new Uint8Array(4))).toBe(0);
  });
});

describe('oneToMany', () => {
  it('equals per-row distances, in and out of the parallel path', async () => {
    for (const [rows, dim] of [
      [10, 17],
      [3000, 100],
      [40_000, 8],
    ]) {
      const m = randomF32(rows * dim, rows);
      const q = randomF32(dim, 1);
      for (const metric of ['l2sq', 'ip', 'cosine'] as const) {
        const got = distance.oneToMany(q, m, { dim, metric });
        const gotAsync = await distance.oneToManyAsync(q, m, { dim, metric });
        expect(gotAsync).toEqual(got);
        const f = metric === 'l2sq' ? jsL2sq : metric === 'ip' ? jsDot : jsCosine;
        for (let r = 0; r < rows; r += Math.ceil(rows / 50)) {
          close(got[r], f(q, m.subarray(r * dim, (r + 1) * dim)), dim);
        }
      }
    }
  });

  it('works for binary rows with dim in bits', () => {
    const m = randomBytes(16 * 50, 9);
    const q = randomBytes(16, 10);
    const got = distance.oneToMany(q, m, { dim: 128, metric: 'hamming' });
    for (let r = 0; r < 50; r++) expect(got[r]).toBe(jsHamming(q, m.subarray(r * 16, (r + 1) * 16)));
  });
});

describe('knn', () => {
  for (const metric of ['l2sq', 'ip', 'cosine'] as const) {
    it(`matches brute force (${metric})`, async () => {
      const dim = 37;
      const nb = 500;
      const nq = 23;
      const k = 7;
      const base = randomF32(nb * dim, 100);
      const queries = randomF32(nq * dim, 200);
      const want = jsKnn(queries, base, dim, k, metric);
      for (const got of [distance.knn(queries, base, { dim, k, metric }), await distance.knnAsync(queries, base, { dim, k, metric })]) {
        expect(got.ids.length).toBe(nq * k);
        for (let q = 0; q < nq; q++) {
          expect(Array.from(got.ids.subarray(q * k, (q + 1) * k))).toEqual(want.ids[q]);
          for (let j = 0; j < k; j++) close(got.distances[q * k + j], want.dists[q][j], dim);
        }
      }
    });
  }

  it('k = base size returns every row, ties by smaller id', () => {
    const base = new Float32Array([1, 0, 1, 0, 0, 1, 1, 0]);
    const res = distance.knn(new Float32Array([1, 0]), base, { dim: 2, k: 4, metric: 'l2sq' });
    expect(Array.from(res.ids)).toEqual([0, 1, 3, 2]);
    expect(Array.from(res.distances)).toEqual([0, 0, 0, 2]);
  });

  it('runs on i8 and binary', () => {
    const r = rng(5);
    const base = Int8Array.from({ length: 200 * 16 }, () => Math.floor(r() * 256) - 128);
    const q = base.slice(16 * 42, 16 * 43);
    expect(distance.knn(q, base, { dim: 16, k: 1, metric: 'l2sq' }).ids[0]).toBe(42);
    const bits = randomBytes(8 * 300, 77);
    const qb = bits.slice(8 * 123, 8 * 124);
    const res = distance.knn(qb, bits, { dim: 64, k: 1, metric: 'hamming' });
    expect(res.ids[0]).toBe(123);
    expect(res.distances[0]).toBe(0);
  });
});

describe('bad input gives typed errors', () => {
  const a = new Float32Array(4);
  it('length and dim mismatches', () => {
    expectCode(() => distance.l2sq(a, new Float32Array(5)), DimensionMismatchError, 'QUARRY_DIM_MISMATCH');
    expectCode(() => distance.oneToMany(a, new Float32Array(10), { dim: 4, metric: 'l2sq' }), DimensionMismatchError, 'QUARRY_DIM_MISMATCH');
    expectCode(() => distance.oneToMany(new Float32Array(3), new Float32Array(8), { dim: 4, metric: 'l2sq' }), DimensionMismatchError, 'QUARRY_DIM_MISMATCH');
    expectCode(() => distance.knn(a, new Float32Array(9), { dim: 4, k: 1, metric: 'ip' }), DimensionMismatchError, 'QUARRY_DIM_MISMATCH');
  });
  it('k out of range', () => {
    const base = new Float32Array(40);
    expectCode(() => distance.knn(a, base, { dim: 4, k: 0, metric: 'l2sq' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.knn(a, base, { dim: 4, k: 11, metric: 'l2sq' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.knn(a, base, { dim: 4, k: 1.5, metric: 'l2sq' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.knn(a, base, { dim: 0, k: 1, metric: 'l2sq' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
  });
  it('mixed and unsupported dtypes', () => {
    expectCode(() => distance.dot(a, new Int8Array(4)), DtypeMismatchError, 'QUARRY_DTYPE_MISMATCH');
    expectCode(() => distance.knn(new Uint16Array(4), new Uint16Array(8), { dim: 4, k: 3, metric: 'l2sq', dtype: 'f16' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.dot(new Uint16Array(4), new Uint16Array(4)), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.dot(a, a, { dtype: 'i8' }), DtypeMismatchError, 'QUARRY_DTYPE_MISMATCH');
    expectCode(() => distance.dot('nope' as never, a), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.oneToMany(a, a, { dim: 4, metric: 'hamming' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.oneToMany(a, a, { dim: 4, metric: 'manhattan' as never }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.oneToMany(new Uint8Array(2), new Uint8Array(4), { dim: 12, metric: 'hamming' }), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
    expectCode(() => distance.dot(new Float32Array(0), new Float32Array(0)), InvalidArgumentError, 'QUARRY_INVALID_ARGUMENT');
  });
  it('async variants reject with the same codes', async () => {
    await expect(distance.knnAsync(a, new Float32Array(8), { dim: 4, k: 3, metric: 'l2sq' })).rejects.toMatchObject({
      code: 'QUARRY_INVALID_ARGUMENT',
    });
    await expect(distance.oneToManyAsync(a, new Float32Array(7), { dim: 4, metric: 'l2sq' })).rejects.toBeInstanceOf(
      DimensionMismatchError,
    );
  });
});
