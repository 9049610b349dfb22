// Child of `npm run bench:vectors`: the graph indexes a Node user would
// otherwise pick, npm `usearch` and npm `hnswlib-node`, on GloVe-100 (cosine
// as inner product over unit rows). Builds one index (M = 16,
// efConstruction = 100, as FAISS's HNSW16 row), sweeps ef, scores recall@10
// against the exact ground truth, and writes one JSON (same shape as
// vectors_faiss.py).
//
//   node benches/vectors_hnsw.mjs --system usearch|hnswlib --data-dir D --out FILE
//        [--base-rows N] [--queries Q] [--threads 1,2] [--build-threads 2] [--modes batch,single] [--quick]
//
// usearch: add() and search() take a thread count; its expansion_search is
// fixed when an Index is constructed, so each ef is a fresh Index that load()s
// the saved graph (load reads the graph, the constructor's expansion stays).
// hnswlib-node: one thread (no batch calls in its binding); points and queries
// are plain number[] (its binding takes no typed arrays), queries converted
// before timing, the base converted row by row inside the build time.
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { NPM_DIR, log, parseArgs } from './common.mjs';
import {
  HNSW_EF,
  HNSW_EF_CONSTRUCTION,
  HNSW_EF_QUICK,
  HNSW_M,
  K,
  SELECTIVITIES,
  STOP_RECALL,
  Truth,
  allowPath,
  childOptions,
  loadGlove,
  readU32,
  timeSearch,
  vmStatus,
} from './vectors_lib.mjs';

const args = parseArgs(process.argv.slice(2));
const opt = childOptions(args);
const system = String(args.system);
const require = createRequire(join(NPM_DIR, 'package.json'));

const { dim, n, nq, base, queries } = loadGlove(opt.baseRows, opt.nq);
const truth = new Truth(opt.dataDir, n, nq);
const mem0 = vmStatus();
const tmpDir = join(opt.dataDir, `tmp-${system}-${process.pid}`);
mkdirSync(tmpDir, { recursive: true });
const efs = opt.quick ? HNSW_EF_QUICK : HNSW_EF;

const out = {
  system,
  version: require(join(NPM_DIR, 'node_modules', system === 'usearch' ? 'usearch' : 'hnswlib-node', 'package.json')).version,
  config: `HNSW M=${HNSW_M} efC=${HNSW_EF_CONSTRUCTION}`,
  family: 'hnsw',
  base: n,
  queries: nq,
  k: K,
  build: null,
  bytes: null,
  memory: null,
  sweeps: [],
  filtered: [],
  notes: [],
};

async function sweep(threadsList, modes, searchers) {
  for (const t of threadsList) {
    for (const mode of modes) {
      for (const ef of efs) {
        const fn = searchers(ef, t, mode);
        if (!fn) continue;
        await fn(Math.min(50, nq)); // warm-up
        const { res, tm } = await timeSearch(() => fn(nq), nq, opt.minS, opt.maxReps);
        const recall = truth.recall(res, K, queries, base, dim);
        out.sweeps.push({ mode, threads: t, param: { ef }, recall, ...tm });
        log(`${system} ${mode} t=${t} ef=${ef}: recall ${recall.toFixed(4)}, ${tm.qps.toFixed(0)} QPS`);
        if (recall >= STOP_RECALL || tm.seconds * tm.reps > opt.pointCapS) break;
      }
    }
  }
}

if (system === 'usearch') {
  const { Index } = require('usearch');
  const config = (ef) => ({ dimensions: dim, metric: 'ip', quantization: 'f32', connectivity: HNSW_M, expansion_add: HNSW_EF_CONSTRUCTION, expansion_search: ef, multi: false });
  const keys = BigUint64Array.from({ length: n }, (_, i) => BigInt(i));
  const t0 = process.hrtime.bigint();
  const index = new Index(config(64));
  index.add(keys, base, opt.buildThreads);
  const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
  out.build = { threads: opt.buildThreads, seconds: buildS };
  const file = join(tmpDir, 'index.usearch');
  index.save(file);
  const bytes = statSync(file).size;
  out.bytes = { index: bytes, perVector: bytes / n, code: dim * 4 };
  log(`usearch: built in ${buildS.toFixed(1)} s, ${(bytes / n).toFixed(1)} B/vector (saved file)`);
  const byEf = new Map();
  const at = (ef) => {
    if (!byEf.has(ef)) {
      const idx = new Index(config(ef));
      idx.load(file);
      byEf.set(ef, idx);
    }
    return byEf.get(ef);
  };
  await sweep(opt.threads, opt.modes, (ef, t, mode) => {
    const idx = at(ef);
    if (mode === 'batch') {
      return (m) => idx.search(queries.subarray(0, m * dim), K, t).keys;
    }
    if (t !== 1) return null; // one query at a time is one thread in usearch
    return (m) => {
      const ids = new BigInt64Array(m * K).fill(-1n);
      for (let q = 0; q < m; q++) {
        const r = idx.search(queries.subarray(q * dim, (q + 1) * dim), K, 1);
        ids.set(BigInt64Array.from(r.keys, (v) => BigInt.asIntN(64, v)), q * K);
      }
      return ids;
    };
  });
  // Filtered search is not in usearch's Node API (its C++ filtered search is not bound).
  out.notes.push('filtered search: not exposed by the usearch Node binding');
} else if (system === 'hnswlib') {
  const { HierarchicalNSW } = require('hnswlib-node');
  const t0 = process.hrtime.bigint();
  const index = new HierarchicalNSW('ip', dim);
  index.initIndex({ maxElements: n, m: HNSW_M, efConstruction: HNSW_EF_CONSTRUCTION, randomSeed: 100 });
  for (let i = 0; i < n; i++) index.addPoint(Array.from(base.subarray(i * dim, (i + 1) * dim)), i);
  const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
  out.build = { threads: 1, seconds: buildS };
  const file = join(tmpDir, 'index.hnsw');
  index.writeIndexSync(file);
  const bytes = statSync(file).size;
  out.bytes = { index: bytes, perVector: bytes / n, code: dim * 4 };
  log(`hnswlib-node: built in ${buildS.toFixed(1)} s (1 thread), ${(bytes / n).toFixed(1)} B/vector (saved file)`);
  const qs = Array.from({ length: nq }, (_, q) => Array.from(queries.subarray(q * dim, (q + 1) * dim)));
  await sweep([1], ['single'], (ef) => {
    index.setEf(ef);
    return (m) => {
      const ids = new Int32Array(m * K).fill(-1);
      for (let q = 0; q < m; q++) {
        const r = index.searchKnn(qs[q], K);
        ids.set(r.neighbors, q * K);
      }
      return ids;
    };
  });
  out.notes.push('hnswlib-node: one thread, one query per call (its binding has neither batch search nor threads)');
  // Filtered search through its JS filter callback, at the largest ef swept, for the record.
  if (!opt.noFilter) {
    // The JS callback runs once per visited node: at 1% selectivity the graph walk visits
    // many, so this part uses the first 200 queries only.
    const nqF = Math.min(nq, 200);
    for (const pct of [...SELECTIVITIES, 100]) {
      const ftruth = new Truth(opt.dataDir, n, nqF, pct === 100 ? undefined : pct);
      const allowed = pct === 100 ? null : new Uint8Array(n);
      if (allowed) for (const id of readU32(allowPath(opt.dataDir, n, pct))) allowed[id] = 1;
      const filter = allowed ? (label) => allowed[label] === 1 : undefined;
      for (const ef of [64, 256]) {
        index.setEf(ef);
        const run = (m) => {
          const ids = new Int32Array(m * K).fill(-1);
          for (let q = 0; q < m; q++) ids.set(index.searchKnn(qs[q], K, filter).neighbors, q * K);
          return ids;
        };
        run(Math.min(20, nqF));
        const { res, tm } = await timeSearch(() => run(nqF), nqF, opt.minS, opt.maxReps);
        const recall = ftruth.recall(res, K, queries, base, dim);
        out.filtered.push({ selectivity: pct, mode: 'single', threads: 1, param: { ef }, recall, queries: nqF, ...tm });
        log(`hnswlib filtered ${pct}% ef=${ef} (${nqF} queries): recall ${recall.toFixed(4)}, ${tm.qps.toFixed(0)} QPS`);
      }
    }
  }
} else {
  throw new Error(`unknown --system ${system}`);
}

const mem1 = vmStatus();
out.memory = { rssAfterLoad: mem0.VmRSS, hwm: mem1.VmHWM, peakOverData: mem1.VmHWM - mem0.VmRSS };
rmSync(tmpDir, { recursive: true, force: true });
writeFileSync(opt.out, JSON.stringify(out));
