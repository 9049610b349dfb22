// Shared pieces of the Node children of `npm run bench:vectors`
// (vectors_hnsw.mjs, vectors_quarry.mjs): the data files, the ground truth and
// recall@10 (same rule as vectors_faiss.py), the timing of one sweep point,
// and peak memory from /proc/self/status. See benches/VECTORS.md.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GLOVE_DIR, median } from './common.mjs';

export const K = 10;
export const GT_K = 100;
export const SELECTIVITIES = [1, 10]; // percent; 100% is the unfiltered ground truth

// Sweep grids, mirrored from vectors_faiss.py so every system sees the same points.
export const NPROBE = [4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256];
export const NPROBE_QUICK = [2, 4, 8, 16, 32, 64];
export const RERANK = [20, 40, 80, 120, 160]; // = FAISS k_factor 2, 4, 8, 12, 16 at k = 10
export const RERANK_QUICK = [40, 160];
export const HNSW_EF = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384];
export const HNSW_EF_QUICK = [16, 32, 64, 128];
export const BINARY_R = [20, 40, 80, 160, 320, 640, 1280, 2560, 5120];
export const HNSW_M = 16;
/** A sweep line stops at the first point with recall@10 ≥ this: beyond the 0.90 target the next points only cost time. */
export const STOP_RECALL = 0.97;
export const HNSW_EF_CONSTRUCTION = 100;

function f32(path, count) {
  const b = readFileSync(path);
  const a = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return count === undefined ? a : a.subarray(0, count);
}
function i32(path) {
  const b = readFileSync(path);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
export function readU32(path) {
  const b = readFileSync(path);
  return new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Unit-normalised GloVe rows (cosine = inner product), the first `baseRows` of the base and `nq` queries. */
export function loadGlove(baseRows, nq) {
  const meta = JSON.parse(readFileSync(join(GLOVE_DIR, 'meta.json'), 'utf8'));
  const dim = meta.dim;
  const n = baseRows > 0 ? Math.min(baseRows, meta.base) : meta.base;
  const q = Math.min(nq, meta.queries);
  // Copies, so the arrays own exactly their rows (bindings may take .buffer whole).
  const base = f32(join(GLOVE_DIR, 'base_norm.f32'), n * dim).slice();
  const queries = f32(join(GLOVE_DIR, 'queries_norm.f32'), q * dim).slice();
  return { dim, n, nq: q, base, queries };
}

export function allowPath(dataDir, n, pct) {
  return join(dataDir, `allow_n${n}_p${pct}.u32`);
}

/** Ground truth written by `vectors_faiss.py gt`; pct = selectivity of a filtered set, or undefined. */
export class Truth {
  constructor(dataDir, n, nq, pct) {
    const stem = pct === undefined ? `gt_n${n}` : `gt_n${n}_p${pct}`;
    const kk = pct === undefined ? GT_K : K;
    const ids = i32(join(dataDir, `${stem}.ids.i32`));
    const sims = f32(join(dataDir, `${stem}.sims.f32`));
    this.nq = nq;
    this.ids = [];
    this.kth = new Float32Array(nq);
    for (let q = 0; q < nq; q++) {
      this.ids.push(new Set(ids.subarray(q * kk, q * kk + K)));
      this.kth[q] = sims[q * kk + K - 1];
    }
  }

  /**
   * recall@10: |returned ∩ true top-10| / 10, averaged over queries. A returned
   * id outside the true top-10 still counts when its exact similarity ties the
   * 10th (≥ kth − 1e-6); duplicates and missing slots (id < 0 or ≥ n) do not count.
   * `ids` holds k per query row (numbers or bigints).
   */
  recall(ids, k, queries, base, dim) {
    const n = base.length / dim;
    let hits = 0;
    for (let q = 0; q < this.nq; q++) {
      const truth = this.ids[q];
      const seen = new Set();
      for (let j = 0; j < Math.min(k, K); j++) {
        const v = ids[q * k + j];
        const r = typeof v === 'bigint' ? (v > 0xffffffffn ? -1 : Number(v)) : v;
        if (!(r >= 0 && r < n) || seen.has(r)) continue;
        seen.add(r);
        if (truth.has(r)) {
          hits++;
          continue;
        }
        let s = 0;
        for (let d = 0; d < dim; d++) s += base[r * dim + d] * queries[q * dim + d];
        if (s >= this.kth[q] - 1e-6) hits++;
      }
    }
    return hits / (this.nq * K);
  }
}

/** VmRSS / VmHWM of this process in bytes. */
export function vmStatus() {
  const out = {};
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = line.match(/^(VmHWM|VmRSS):\s+(\d+)\s+kB/);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

/** Median of up to maxReps full passes (at least one; no more once minS is spent). `fn` returns the result ids. */
export async function timeSearch(fn, nq, minS, maxReps) {
  const times = [];
  let res;
  let total = 0;
  while (times.length < maxReps && (times.length === 0 || total < minS)) {
    const t0 = process.hrtime.bigint();
    res = await fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    times.push(s);
    total += s;
  }
  const med = median(times);
  return { res, tm: { seconds: med, qps: nq / med, reps: times.length } };
}

/** Command-line options common to the Node children. */
export function childOptions(args) {
  return {
    dataDir: String(args['data-dir']),
    out: String(args.out),
    baseRows: Number(args['base-rows'] ?? 0),
    nq: Number(args.queries ?? 1000),
    threads: String(args.threads ?? '1,2').split(',').map(Number),
    buildThreads: Number(args['build-threads'] ?? 2),
    modes: String(args.modes ?? 'batch,single').split(','),
    minS: Number(args['min-s'] ?? 0.5),
    maxReps: Number(args['max-reps'] ?? 2),
    pointCapS: Number(args['point-cap-s'] ?? 20),
    quick: Boolean(args.quick),
    noFilter: Boolean(args['no-filter']),
  };
}
