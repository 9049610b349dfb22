// Child process of kernels.mjs: quarry's exact k-NN on GloVe-100 (the files
// setup.mjs writes into benches/.data/glove100). The parent sets
// RAYON_NUM_THREADS; this reads the data, times distance.knn per metric and
// writes timings (JSON) plus the result ids (u32, queries × k) to --out-dir.
// knn_faiss.py is its twin on the FAISS side: same data, same protocol.
//
//   node benches/knn_quarry.mjs --out-dir DIR [--k 10] [--metrics l2,ip,cosine]
//        [--queries N] [--min-reps 3] [--max-reps 5] [--target-s 6] [--budget-s 10]
//
// Repetitions: after the warm-up, full runs until at least --min-reps runs and
// --target-s seconds, at most --max-reps runs; but stop as soon as the timed
// runs add up to --budget-s (so a single run longer than that is enough alone).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GLOVE_DIR, loadQuarry, log, median, parseArgs } from './common.mjs';

const args = parseArgs(process.argv.slice(2));
const k = Number(args.k ?? 10);
const metrics = String(args.metrics ?? 'l2,ip,cosine').split(',');
const minReps = Number(args['min-reps'] ?? 3);
const maxReps = Number(args['max-reps'] ?? 5);
const targetS = Number(args['target-s'] ?? 6);
const budgetS = Number(args['budget-s'] ?? 10);
const outDir = args['out-dir'];
mkdirSync(outDir, { recursive: true });

const { distance, info } = await loadQuarry();
const meta = JSON.parse(readFileSync(join(GLOVE_DIR, 'meta.json'), 'utf8'));
const dim = meta.dim;
const f32 = (name) => {
  const b = readFileSync(join(GLOVE_DIR, name));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const nq = Math.min(Number(args.queries ?? meta.queries), meta.queries);
const sets = {
  raw: { base: f32('base.f32'), queries: f32('queries.f32').subarray(0, nq * dim) },
  norm: { base: f32('base_norm.f32'), queries: f32('queries_norm.f32').subarray(0, nq * dim) },
};
// cosine = inner product over unit-normalised rows, on both sides (the files hold them).
const METRICS = { l2: ['l2sq', 'raw'], ip: ['ip', 'raw'], cosine: ['ip', 'norm'] };

const out = { system: 'quarry', info: info(), threadsEnv: process.env.RAYON_NUM_THREADS ?? null, k, queries: nq, base: meta.base, results: {} };
for (const name of metrics) {
  const [metric, set] = METRICS[name];
  const { base, queries } = sets[set];
  const opts = { dim, k, metric };
  // Warm-up: the first 100 queries (thread pool start, page faults, caches).
  distance.knn(queries.subarray(0, Math.min(100, nq) * dim), base, opts);
  const times = [];
  let res;
  let total = 0;
  while (times.length < maxReps && (times.length < minReps || total < targetS) && !(times.length > 0 && total >= budgetS)) {
    const t0 = process.hrtime.bigint();
    res = distance.knn(queries, base, opts);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    times.push(s);
    total += s;
  }
  const med = median(times);
  writeFileSync(join(outDir, `quarry_${name}_ids.u32`), new Uint8Array(res.ids.buffer, res.ids.byteOffset, res.ids.byteLength));
  writeFileSync(join(outDir, `quarry_${name}_dist.f32`), new Uint8Array(res.distances.buffer, res.distances.byteOffset, res.distances.byteLength));
  out.results[name] = { metric, data: set, times, medianS: med, qps: nq / med };
  log(`knn quarry ${name} threads=${info().threads}: ${med.toFixed(3)} s median of ${times.length} (${(nq / med).toFixed(0)} QPS)`);
}
writeFileSync(join(outDir, 'quarry.json'), JSON.stringify(out));
