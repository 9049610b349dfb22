import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortedError,
  CorruptIndexError,
  DimensionMismatchError,
  InvalidArgumentError,
  InvalidInputError,
  MuveraEncoder,
  VectorIndex,
  chamferSimilarity,
  distance,
} from '../dist/esm/index.js';
import { rng } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'quarry-vectors-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `n` points around `clusters` centres. */
function clustered(n: number, dim: number, clusters: number, seed: number): Float32Array {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-9))) * Math.cos(2 * Math.PI * r());
  const centres = Float32Array.from({ length: clusters * dim }, () => normal() * 3);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * clusters);
    for (let j = 0; j < dim; j++) out[i * dim + j] = centres[c * dim + j] + normal();
  }
  return out;
}

const dim = 32;
const base = clustered(3000, dim, 30, 1);
const queries = clustered(50, dim, 30, 2);
const truth = distance.knn(queries, base, { dim, k: 10, metric: 'l2sq' });

function recallOf(ids: ArrayLike<number | bigint>, k = 10): number {
  let hits = 0;
  for (let q = 0; q < 50; q++) {
    const want = new Set(Array.from(truth.ids.subarray(q * 10, q * 10 + k)));
    for (let j = 0; j < k; j++) if (want.has(Number(ids[q * k + j]))) hits++;
  }
  return hits / (50 * k);
}

describe('VectorIndex', () => {
  it('flat search equals exact k-NN', async () => {
    const index = await VectorIndex.build(base, { dim, metric: 'l2', kind: 'flat' });
    const r = index.searchSync(queries, { k: 10 });
    expect(Array.from(r.ids)).toEqual(Array.from(truth.ids));
    expect(r.ids).toBeInstanceOf(Uint32Array);
    for (let i = 0; i < r.distances.length; i++) expect(r.distances[i]).toBeCloseTo(truth.distances[i], 2);
    const a = await index.search(queries, { k: 10 });
    expect(a).toEqual(r);
    expect(index.size).toBe(3000);
  });

  it('IVF-PQ fast-scan with re-ranking reaches high recall; progress is reported', async () => {
    const stages = new Set<string>();
    const index = await VectorIndex.build(base, {
      dim,
      metric: 'l2',
      kind: 'ivf-pq',
      nlist: 32,
      pq: { m: 16, bits: 4 },
      onProgress: (p) => stages.add(p.stage),
    });
    expect(stages.size).toBeGreaterThan(0);
    expect(recallOf(index.searchSync(queries, { k: 10, nprobe: 16, rerank: 100 }).ids)).toBeGreaterThanOrEqual(0.95);
    expect(recallOf(index.searchSync(queries, { k: 10, nprobe: 16 }).ids)).toBeGreaterThanOrEqual(0.4);
    expect(index.info()).toMatchObject({ kind: 'ivf-pq', nlist: 32, codeBytes: 8, dim, metric: 'l2' });
  });

  it('every kind builds, searches and round-trips through save/open (also mmapped)', async () => {
    for (const kind of ['flat', 'ivf-flat', 'sq8', 'ivf-sq8', 'pq', 'ivf-pq', 'binary', 'ivf-binary'] as const) {
      const index = await VectorIndex.build(base, { dim, metric: 'cosine', kind, nlist: 16, pq: { m: 8, bits: 8 } });
      const r = index.searchSync(queries, { k: 5, nprobe: 8, rerank: kind.includes('flat') ? 0 : 50 });
      const path = join(work, `${kind}.qann`);
      index.save(path);
      for (const mmap of [false, true]) {
        const reopened = VectorIndex.open(path, { mmap });
        expect(reopened.searchSync(queries, { k: 5, nprobe: 8, rerank: kind.includes('flat') ? 0 : 50 })).toEqual(r);
        if (mmap) expect(reopened.info().mappedBytes).toBeGreaterThan(0);
      }
    }
  });

  it('filters by label and by allowed ids inside the scan', async () => {
    const labels = Uint32Array.from({ length: 3000 }, (_, i) => i % 100);
    const ids = BigUint64Array.from({ length: 3000 }, (_, i) => BigInt(i) * 10_000_000_000n);
    const index = await VectorIndex.build(base, { dim, metric: 'l2', kind: 'ivf-flat', nlist: 16, ids, labels });
    const byLabel = index.searchSync(queries, { k: 10, nprobe: 16, filter: { label: 7 } });
    expect(byLabel.ids).toBeInstanceOf(BigUint64Array);
    for (const id of byLabel.ids as BigUint64Array) expect(Number(id / 10_000_000_000n) % 100).toBe(7);
    const allow = ids.filter((_, i) => i % 50 === 0);
    const byId = index.searchSync(queries, { k: 3, nprobe: 16, filter: { allow } });
    const allowed = new Set(allow);
    for (const id of byId.ids as BigUint64Array) expect(allowed.has(id)).toBe(true);
  });

  it('add and remove', async () => {
    const index = await VectorIndex.build(base.subarray(0, 1000 * dim), { dim, metric: 'l2', kind: 'ivf-sq8', nlist: 8 });
    index.add(base.subarray(1000 * dim), { ids: Uint32Array.from({ length: 2000 }, (_, i) => 1000 + i) });
    expect(index.size).toBe(3000);
    expect(index.remove(Uint32Array.from([0, 1, 2, 99_999]))).toBe(3);
    expect(index.size).toBe(2997);
    const r = index.searchSync(base.subarray(0, 3 * dim), { k: 5, nprobe: 8 });
    expect(Array.from(r.ids).some((id) => id <= 2)).toBe(false);
    expect(() => index.add(base.subarray(0, dim), Uint32Array.from([5]))).toThrow(InvalidArgumentError);
  });

  it('rejects bad input with typed errors', async () => {
    const index = await VectorIndex.build(base, { dim, metric: 'l2', kind: 'ivf-flat', nlist: 8 });
    expect(() => index.searchSync(queries.subarray(0, 5), { k: 3 })).toThrow(DimensionMismatchError);
    expect(() => index.searchSync(new Float32Array(dim).fill(NaN), { k: 3 })).toThrow(InvalidInputError);
    expect(() => index.searchSync(queries, { k: 0 })).toThrow(InvalidArgumentError);
    expect(() => index.searchSync(queries, { k: 3, nprobe: 9 })).toThrow(InvalidArgumentError);
    await expect(VectorIndex.build(base, { dim, metric: 'l2', kind: 'pq', pq: { m: 5 } })).rejects.toThrow(InvalidArgumentError);
    await expect(VectorIndex.build(base, { dim: 33, metric: 'l2', kind: 'flat' })).rejects.toThrow(DimensionMismatchError);
    await expect(VectorIndex.build(base, { dim, metric: 'l2', kind: 'ivf-flat', nlist: 5000 })).rejects.toThrow(InvalidArgumentError);
    const ac = new AbortController();
    ac.abort();
    await expect(VectorIndex.build(base, { dim, metric: 'l2', kind: 'flat', signal: ac.signal })).rejects.toThrow(AbortedError);

    const path = join(work, 'bad.qann');
    index.save(path);
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    expect(() => VectorIndex.open(path, { mmap: true })).toThrow(CorruptIndexError);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(path, flipped);
    expect(() => VectorIndex.open(path)).toThrow(CorruptIndexError);
  });
});

describe('MUVERA multi-vector search', () => {
  it('FDE inner products rank documents like Chamfer similarity; chamfer re-ranking recovers the best', async () => {
    const d = 16;
    const r = rng(9);
    const set = (n: number) => Float32Array.from({ length: n * d }, () => r() * 2 - 1);
    const docs = Array.from({ length: 200 }, () => set(8));
    const enc = new MuveraEncoder({ dim: d, simhashBits: 3, repetitions: 10, seed: 1 });
    const fde = new Float32Array(200 * enc.outputDim);
    docs.forEach((doc, i) => fde.set(enc.encodeDocument(doc), i * enc.outputDim));
    const index = await VectorIndex.build(fde, { dim: enc.outputDim, metric: 'ip', kind: 'flat' });
    let found = 0;
    for (let t = 0; t < 10; t++) {
      // A query made of noisy copies of a document's vectors.
      const target = docs[t * 17];
      const query = target.map((x) => x + (r() - 0.5) * 0.2);
      const cands = index.searchSync(enc.encodeQuery(query), { k: 20 }).ids as Uint32Array;
      let best = -1;
      let bestScore = -Infinity;
      for (const c of cands) {
        const s = chamferSimilarity(query, docs[c], d);
        if (s > bestScore) [best, bestScore] = [c, s];
      }
      if (best === t * 17) found++;
    }
    expect(found).toBeGreaterThanOrEqual(9);
    expect(() => chamferSimilarity(new Float32Array(3), new Float32Array(4), 2)).toThrow(DimensionMismatchError);
  });
});
