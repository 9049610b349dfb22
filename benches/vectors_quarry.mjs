// Child of `npm run bench:vectors`: quarry's VectorIndex on GloVe-100 (cosine),
// one configuration per process, at the thread count the parent set through
// RAYON_NUM_THREADS (one process per thread count, so threads and peak memory
// are the process's own). Same sweeps, recall rule and JSON shape as
// vectors_faiss.py.
//
//   RAYON_NUM_THREADS=T node benches/vectors_quarry.mjs --config NAME --data-dir D --out FILE
//        [--base-rows N] [--queries Q] [--modes batch,single] [--index-file F] [--filter] [--quick]
//
// --filter: also the filtered sweeps (the parent asks for them in the 2-thread child only).
//
// With --index-file: when the file exists (the 2-thread child saved it) the
// index is opened from it instead of built again; otherwise the index is built
// and, if VectorIndex has save(), saved there for the next child.
// When dist/ or VectorIndex is missing the child writes { unavailable } and exits 0.
import { existsSync, writeFileSync } from 'node:fs';
import { log, loadQuarry, parseArgs } from './common.mjs';
import {
  BINARY_R,
  K,
  NPROBE,
  NPROBE_QUICK,
  RERANK,
  RERANK_QUICK,
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
const configName = String(args.config);
const indexFile = args['index-file'] ? String(args['index-file']) : null;
const threads = Number(process.env.RAYON_NUM_THREADS ?? 0) || null;

// name -> build options and the search grid ('ivf': nprobe; 'ivf-rerank': nprobe x rerank; 'rerank': rerank only)
export const QUARRY_CONFIGS = {
  // exact search scans every row per query: 200 queries are plenty for its one point (as FAISS Flat)
  flat: { build: { kind: 'flat' }, grid: 'none', family: 'flat', like: 'Flat', maxQueries: 200 },
  'ivf-flat': { build: { kind: 'ivf-flat', nlist: 1024 }, grid: 'ivf', family: 'ivf-flat', like: 'IVF1024,Flat', filter: true },
  sq8: { build: { kind: 'ivf-sq8', nlist: 1024 }, grid: 'ivf', family: 'ivf-sq8', like: 'IVF1024,SQ8' },
  'ivf-pq8': { build: { kind: 'ivf-pq', nlist: 1024, pq: { m: 50, bits: 8 }, rerank: 0 }, grid: 'ivf', family: 'ivf-pq', like: 'IVF1024,PQ50' },
  'ivf-pq4fs': { build: { kind: 'ivf-pq', nlist: 1024, pq: { m: 50, bits: 4 }, rerank: 0 }, grid: 'ivf', family: 'ivf-pq', like: 'IVF1024,PQ50x4fs' },
  'ivf-pq4fs-rerank': {
    build: { kind: 'ivf-pq', nlist: 1024, pq: { m: 50, bits: 4 }, rerank: 160 },
    grid: 'ivf-rerank',
    family: 'ivf-pq',
    like: 'IVF1024,PQ50x4fs,RFlat',
    filter: true,
  },
  'opq-ivf-pq4fs': { build: { kind: 'ivf-pq', nlist: 1024, pq: { m: 50, bits: 4 }, opq: true, rerank: 0 }, grid: 'ivf', family: 'ivf-pq', like: 'OPQ50,IVF1024,PQ50x4fs' },
  'opq-ivf-pq4fs-rerank': {
    build: { kind: 'ivf-pq', nlist: 1024, pq: { m: 50, bits: 4 }, opq: true, rerank: 160 },
    grid: 'ivf-rerank',
    family: 'ivf-pq',
    like: 'OPQ50,IVF1024,PQ50x4fs,RFlat',
  },
  'binary-rerank': { build: { kind: 'binary', rerank: BINARY_R[BINARY_R.length - 1] }, grid: 'rerank', family: 'binary', like: 'BinaryFlat+rerank' },
};

const cfg = QUARRY_CONFIGS[configName];
if (!cfg) throw new Error(`unknown --config ${configName}`);

const out = {
  system: 'quarry',
  version: null,
  config: configName,
  like: cfg.like,
  family: cfg.family,
  threadsEnv: threads,
  base: null,
  queries: null,
  k: K,
  build: null,
  opened: false,
  bytes: null,
  memory: null,
  sweeps: [],
  filtered: [],
  notes: [],
};

let quarry;
try {
  quarry = await loadQuarry();
} catch (e) {
  out.unavailable = `quarry VectorIndex not built (${e.message})`;
}
if (quarry && typeof quarry.VectorIndex?.build !== 'function') {
  out.unavailable = 'quarry VectorIndex not built (dist/ has no VectorIndex.build)';
}
if (out.unavailable) {
  writeFileSync(opt.out, JSON.stringify(out));
  log(out.unavailable);
  process.exit(0);
}
const { VectorIndex } = quarry;
try {
  out.version = quarry.info?.().version ?? null;
} catch {
  /* info() is optional here */
}

const { dim, n, nq, base, queries } = loadGlove(opt.baseRows, Math.min(opt.nq, cfg.maxQueries ?? Infinity));
out.base = n;
out.queries = nq;
const truth = new Truth(opt.dataDir, n, nq);
const mem0 = vmStatus();

let idx;
if (indexFile && existsSync(indexFile) && typeof VectorIndex.open === 'function') {
  const t0 = process.hrtime.bigint();
  idx = await VectorIndex.open(indexFile, { mmap: false });
  out.opened = true;
  out.openSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  log(`quarry ${configName}: opened ${indexFile} in ${out.openSeconds.toFixed(2)} s`);
} else {
  const t0 = process.hrtime.bigint();
  idx = await VectorIndex.build(base, { dim, metric: 'cosine', seed: 1, ...cfg.build, ...(threads ? { threads } : {}) });
  const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
  out.build = { threads, seconds: buildS };
  log(`quarry ${configName}: built in ${buildS.toFixed(1)} s at ${threads ?? 'default'} threads`);
  if (indexFile && typeof idx.save === 'function') {
    try {
      await idx.save(indexFile);
    } catch (e) {
      out.notes.push(`save failed: ${e.message}`);
    }
  }
}
if (idx.size !== n) out.notes.push(`index size ${idx.size} != ${n}`);
out.bytes = { index: Number(idx.bytes), perVector: Number(idx.bytes) / n };

const nprobes = opt.quick ? NPROBE_QUICK : NPROBE;
const reranks = opt.quick ? RERANK_QUICK : RERANK;
let grid;
if (cfg.grid === 'ivf') grid = nprobes.map((nprobe) => ({ nprobe }));
else if (cfg.grid === 'ivf-rerank') grid = reranks.flatMap((rerank) => nprobes.map((nprobe) => ({ nprobe, rerank })));
else if (cfg.grid === 'rerank') grid = (opt.quick ? BINARY_R.filter((_, i) => i % 2 === 0).slice(1) : BINARY_R).map((rerank) => ({ rerank }));
else grid = [{}];
// Points of one sweep line share everything but the swept parameter (nprobe, or rerank alone).
const lineKey = (p) => (cfg.grid === 'ivf-rerank' ? `rerank=${p.rerank}` : 'line');

function searcher(p, filter) {
  const so = { k: K, ...p, ...(filter ? { filter } : {}) };
  return {
    batch: (m) => idx.searchSync(queries.subarray(0, m * dim), so).ids,
    single: (m) => {
      const ids = new Float64Array(m * K).fill(-1);
      for (let q = 0; q < m; q++) {
        const r = idx.searchSync(queries.subarray(q * dim, (q + 1) * dim), so).ids;
        for (let j = 0; j < Math.min(K, r.length); j++) ids[q * K + j] = Number(r[j]);
      }
      return ids;
    },
  };
}

try {
  for (const mode of opt.modes) {
    const stopped = new Set();
    const last = new Map();
    for (const p of grid) {
      const key = lineKey(p);
      if (stopped.has(key)) continue;
      const fn = searcher(p)[mode];
      fn(Math.min(50, nq));
      const { res, tm } = await timeSearch(() => fn(nq), nq, opt.minS, opt.maxReps);
      const recall = truth.recall(res, K, queries, base, dim);
      out.sweeps.push({ mode, threads, param: p, recall, ...tm });
      log(`quarry ${configName} ${mode} t=${threads} ${JSON.stringify(p)}: recall ${recall.toFixed(4)}, ${tm.qps.toFixed(0)} QPS`);
      const prev = last.get(key) ?? [];
      prev.push(recall);
      last.set(key, prev);
      const flat = prev.length >= 3 && prev.slice(-3).every((r) => r === recall);
      if (recall >= STOP_RECALL || flat || tm.seconds * tm.reps > opt.pointCapS) stopped.add(key);
    }
  }

  if (cfg.filter && !opt.noFilter && args.filter) {
    const fgrid = grid.filter((p) => (p.rerank ?? 40) === 40);
    for (const pct of [...SELECTIVITIES, 100]) {
      const ftruth = pct === 100 ? truth : new Truth(opt.dataDir, n, nq, pct);
      const filter = pct === 100 ? null : { allow: readU32(allowPath(opt.dataDir, n, pct)) };
      const points = [...fgrid, ...(pct < 100 && fgrid.length ? [{ ...fgrid[fgrid.length - 1], nprobe: 1024 }] : [])];
      for (const p of points) {
        const fn = searcher(p, filter).batch;
        fn(Math.min(50, nq));
        const { res, tm } = await timeSearch(() => fn(nq), nq, opt.minS, opt.maxReps);
        const recall = ftruth.recall(res, K, queries, base, dim);
        out.filtered.push({ selectivity: pct, mode: 'batch', threads, param: p, recall, ...tm });
        log(`quarry ${configName} filtered ${pct}% t=${threads} ${JSON.stringify(p)}: recall ${recall.toFixed(4)}, ${tm.qps.toFixed(0)} QPS`);
        if (recall >= STOP_RECALL) break;
      }
    }
  }
} catch (e) {
  out.notes.push(`search failed: ${e.code ?? ''} ${e.message}`);
  log(`quarry ${configName}: search failed: ${e.message}`);
}

const mem1 = vmStatus();
out.memory = { rssAfterLoad: mem0.VmRSS, hwm: mem1.VmHWM, peakOverData: mem1.VmHWM - mem0.VmRSS };
writeFileSync(opt.out, JSON.stringify(out));
