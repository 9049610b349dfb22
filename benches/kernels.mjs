#!/usr/bin/env node
// `npm run bench:kernels`: quarry's distance kernels side by side with npm
// simsimd and a plain JS loop (one-to-one and one-to-many), exact k-NN side by
// side with FAISS flat search on GloVe-100, and the machine's memory bandwidth
// (Debian mbw) as the roof for out-of-cache scans. One run: this process sets
// everything up (benches/.data/), runs the children (one per thread count, one
// per system), prints a Markdown report and appends it to benches/RESULTS.md.
//
// Flags: --quick (small smoke run, not appended unless --append), --no-append,
//        --skip-scan, --skip-knn, --skip-faiss. See benches/README.md.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative } from 'node:path';
import { BENCH_DIR, DATA_DIR, GLOVE_DIR, ROOT, VENV_PY, fmtBytes, fmtNum, fmtRatio, fmtTime, loadQuarry, log, parseArgs } from './common.mjs';
import { setupAll } from './setup.mjs';

const argv = process.argv.slice(2);
const args = parseArgs(argv);
const quick = Boolean(args.quick);
const startedAt = new Date();
const t0 = Date.now();

const CFG = quick
  ? { dims: '100,768', rows: '1000,20000', repMs: 20, reps: 3, knnQueries: 100, knnMinReps: 1, knnMaxReps: 2, knnTargetS: 1, knnBudgetS: 2 }
  : { dims: '100,384,768,1536', rows: '1000,200000', repMs: 100, reps: 5, knnQueries: 1000, knnMinReps: 3, knnMaxReps: 5, knnTargetS: 6, knnBudgetS: 10 };
const THREADS = [1, 2];
const K = 10;
const KNN_METRICS = ['l2', 'ip', 'cosine'];
const MBW_MIB = 512;
const MBW_RUNS = 10;

const runDir = join(DATA_DIR, 'runs', startedAt.toISOString().replace(/[:.]/g, '-'));
mkdirSync(runDir, { recursive: true });

// ---------------------------------------------------------------------------
// Load accounting: CPU time of other processes during the run (the numbers
// are only as good as the machine was quiet).

function cpuSnapshot() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const own = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  // fields after "pid (comm) ": state=0 ... utime=11 stime=12 cutime=13 cstime=14
  const ownTicks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal, own: ownTicks, t: Date.now() };
}

function readLoadavg() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

function sh(cmd, argsList, opts = {}) {
  const r = spawnSync(cmd, argsList, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  return { ok: r.status === 0, out: r.stdout ?? '', err: r.stderr ?? '' };
}

function child(cmd, argsList, env) {
  log(`\n$ ${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}${cmd === process.execPath ? 'node' : relative(ROOT, cmd)} ${argsList.map((a) => relative(ROOT, a) || a).join(' ')}`);
  const r = spawnSync(cmd, argsList, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  return r.status === 0 ? { ok: true } : { ok: false, reason: `exit status ${r.status}${r.signal ? ` (${r.signal})` : ''}` };
}

// ---------------------------------------------------------------------------
// Setup and machine description

const cpuStart = cpuSnapshot();
const phases = {};
let phaseT = Date.now();
const phase = (name) => {
  phases[name] = (Date.now() - phaseT) / 1000;
  phaseT = Date.now();
};
const loadStart = readLoadavg();
log('== setup (benches/.data) ==');
const setup = setupAll({ glove: !args['skip-knn'], faiss: !args['skip-faiss'] && !args['skip-knn'] });
for (const [k, v] of Object.entries(setup)) log(`  ${k}: ${v.ok ? 'ok' : `not available: ${v.reason}`}`);

phase('setup');
const { info } = await loadQuarry();
const qinfo = info();

function fmtBytesBinary(n) {
  return n >= 1 << 20 ? `${+(n / (1 << 20)).toFixed(1)} MiB` : `${+(n / 1024).toFixed(0)} KiB`;
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name) => (cpuinfo.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm')) ?? [])[1]?.trim();
  const flags = new Set((field('flags') ?? '').split(/\s+/));
  let l3 = null;
  for (let i = 0; i < 8; i++) {
    const dir = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
    if (!existsSync(dir)) continue;
    if (readFileSync(`${dir}/level`, 'utf8').trim() === '3') l3 = readFileSync(`${dir}/size`, 'utf8').trim();
  }
  const toBytes = (s) => (s ? Number.parseInt(s, 10) * (/M/i.test(s) ? 1 << 20 : /K/i.test(s) ? 1024 : 1) : null);
  const git = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'crates', 'ts', 'Cargo.toml', 'Cargo.lock']);
  return {
    cpuModel: field('model name') ?? os.cpus()[0]?.model ?? 'unknown',
    logicalCpus: os.cpus().length,
    physicalCores: Number(field('cpu cores')) || null,
    simdFlags: ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_vpopcntdq'].filter((f) => flags.has(f)),
    l3: l3 ? fmtBytesBinary(toBytes(l3)) : null,
    l3Bytes: toBytes(l3),
    memGiB: os.totalmem() / 2 ** 30,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    commit: git.ok ? git.out.trim() + (dirty.out.trim() ? ' (+ uncommitted changes in crates/ or ts/)' : '') : 'unknown',
  };
}
const mach = machine();

// ---------------------------------------------------------------------------
// Memory bandwidth: Debian mbw (MEMCPY), one process and two at once, plus a
// read-only cross-check with numpy (BLAS sdot) when the venv is there.

function parseMbw(text) {
  const m = text.match(/^AVG\s+Method:\s*MEMCPY.*?Copy:\s*([\d.]+)\s*MiB\/s/m);
  return m ? Number(m[1]) : null;
}

function measureBandwidth() {
  const res = { mbw1: null, mbw2: null, np1: null, np2: null, notes: [] };
  if (setup.mbw.ok) {
    log(`\n== memory bandwidth: mbw -q -n ${MBW_RUNS} -t0 ${MBW_MIB} ==`);
    const one = sh('mbw', ['-q', '-n', String(MBW_RUNS), '-t0', String(MBW_MIB)]);
    res.mbw1 = parseMbw(one.out);
    // Two at once: both start together; each one's average covers (nearly) the same span.
    const two = sh('sh', ['-c', `mbw -q -n ${MBW_RUNS} -t0 ${MBW_MIB} > "$1" & mbw -q -n ${MBW_RUNS} -t0 ${MBW_MIB} > "$2" & wait`, 'sh', join(runDir, 'mbw_a.txt'), join(runDir, 'mbw_b.txt')]);
    const a = parseMbw(readFileSync(join(runDir, 'mbw_a.txt'), 'utf8'));
    const b = parseMbw(readFileSync(join(runDir, 'mbw_b.txt'), 'utf8'));
    res.mbw2 = two.ok && a && b ? a + b : null;
    res.mbw1Raw = one.out.trim().split('\n').filter((l) => l.startsWith('AVG')).join(' / ');
    log(`  1 process: ${res.mbw1} MiB/s copied; 2 processes: ${a} + ${b} MiB/s`);
  } else {
    res.notes.push(`mbw not measured: ${setup.mbw.reason}`);
  }
  if (setup.venv.ok) {
    const code = `
import numpy as np, time, sys
a = np.ones(${MBW_MIB} << 18, dtype=np.float32); b = np.ones(${MBW_MIB} << 18, dtype=np.float32)
np.dot(a, b); ts = []
for _ in range(7):
    t = time.perf_counter(); np.dot(a, b); ts.append(time.perf_counter() - t)
print((a.nbytes + b.nbytes) / sorted(ts)[3] / 1e9)`;
    for (const t of THREADS) {
      const r = sh(VENV_PY, ['-c', code], { env: { ...process.env, OMP_NUM_THREADS: String(t), OPENBLAS_NUM_THREADS: String(t), MKL_NUM_THREADS: String(t) } });
      res[`np${t}`] = r.ok ? Number(r.out.trim()) : null;
    }
    log(`  numpy read-only sdot: ${fmtNum(res.np1)} GB/s (1 thread), ${fmtNum(res.np2)} GB/s (2 threads)`);
  }
  return res;
}
const bw = measureBandwidth();
phase('bandwidth');
const MIB = 1.048576e6;
// The roof: bytes that crossed the memory bus per second during mbw's memcpy
// = 2 × the figure it prints (it counts each copied byte once; the copy reads
// it once and writes it once). See benches/README.md.
const roof1 = bw.mbw1 ? (2 * bw.mbw1 * MIB) / 1e9 : null;
const roof2 = bw.mbw2 ? (2 * bw.mbw2 * MIB) / 1e9 : null;

// ---------------------------------------------------------------------------
// One-to-one and one-to-many: quarry vs simsimd vs JS (1 thread), quarry alone at 2 threads.

const scan = { t1: null, t2: null, notes: [] };
if (!args['skip-scan']) {
  const worker = join(BENCH_DIR, 'scan_worker.mjs');
  const common = ['--dims', CFG.dims, '--rows', CFG.rows, '--rep-ms', String(CFG.repMs), '--reps', String(CFG.reps)];
  if (args.kinds) common.push('--kinds', String(args.kinds));
  log('\n== one-to-one and one-to-many, 1 thread: quarry, simsimd, JS ==');
  const systems = setup.npm.ok ? 'quarry,simsimd,js' : 'quarry,js';
  if (!setup.npm.ok) scan.notes.push(`simsimd not measured: ${setup.npm.reason}`);
  const out1 = join(runDir, 'scan_t1.json');
  const r1 = child(process.execPath, [worker, '--out', out1, '--systems', systems, ...common], { RAYON_NUM_THREADS: '1' });
  if (r1.ok) scan.t1 = JSON.parse(readFileSync(out1, 'utf8'));
  else scan.notes.push(`1-thread scan worker failed: ${r1.reason}`);
  log('\n== one-to-many, 2 threads: quarry ==');
  const out2 = join(runDir, 'scan_t2.json');
  const r2 = child(process.execPath, [worker, '--out', out2, '--systems', 'quarry', '--no-pair', ...common], { RAYON_NUM_THREADS: '2' });
  if (r2.ok) scan.t2 = JSON.parse(readFileSync(out2, 'utf8'));
  else scan.notes.push(`2-thread scan worker failed: ${r2.reason}`);
}

phase('scans');

// ---------------------------------------------------------------------------
// k-NN on GloVe-100: quarry vs FAISS (default search path and forced BLAS path), 1 and 2 threads.

const knn = { quarry: {}, faiss: {}, faissBlas: {}, notes: [], meta: null };
if (!args['skip-knn']) {
  if (!setup.glove.ok) {
    knn.notes.push(`k-NN not measured: GloVe data unavailable (${setup.glove.reason})`);
  } else {
    knn.meta = setup.glove.meta;
    const repArgs = ['--min-reps', String(CFG.knnMinReps), '--max-reps', String(CFG.knnMaxReps), '--target-s', String(CFG.knnTargetS), '--budget-s', String(CFG.knnBudgetS), '--queries', String(CFG.knnQueries), '--k', String(K)];
    for (const t of THREADS) {
      const dir = join(runDir, `knn_t${t}`);
      log(`\n== k-NN, ${t} thread(s): quarry ==`);
      const rq = child(process.execPath, [join(BENCH_DIR, 'knn_quarry.mjs'), '--out-dir', dir, ...repArgs], { RAYON_NUM_THREADS: String(t) });
      if (rq.ok) knn.quarry[t] = { dir, ...JSON.parse(readFileSync(join(dir, 'quarry.json'), 'utf8')) };
      else knn.notes.push(`quarry k-NN (${t} threads) failed: ${rq.reason}`);
      if (!setup.venv.ok) continue;
      const penv = { OMP_NUM_THREADS: String(t), OPENBLAS_NUM_THREADS: String(t), MKL_NUM_THREADS: String(t) };
      for (const mode of ['blas', 'default']) {
        log(`\n== k-NN, ${t} thread(s): FAISS (${mode} search path) ==`);
        const fdir = join(dir, `faiss_${mode}`);
        const extra = mode === 'blas' ? ['--force-blas'] : [];
        const rf = child(VENV_PY, [join(BENCH_DIR, 'knn_faiss.py'), '--threads', String(t), '--out-dir', fdir, ...repArgs, ...extra], penv);
        const target = mode === 'blas' ? knn.faissBlas : knn.faiss;
        if (rf.ok) target[t] = { dir: fdir, ...JSON.parse(readFileSync(join(fdir, 'faiss.json'), 'utf8')) };
        else knn.notes.push(`FAISS ${mode} k-NN (${t} threads) failed: ${rf.reason}`);
      }
    }
    if (!setup.venv.ok) knn.notes.push(`FAISS not measured: ${setup.venv.reason}`);
  }
}

phase('knn');

/** A file of little-endian u32 (copied: small Buffers are slices of a shared pool). */
function readU32(path) {
  const b = readFileSync(path);
  return new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Mean over queries of |quarry top-k ∩ FAISS top-k| / k. */
function recallAt(dirA, prefixA, dirB, prefixB, name) {
  const pa = join(dirA, `${prefixA}_${name}_ids.u32`);
  const pb = join(dirB, `${prefixB}_${name}_ids.u32`);
  if (!existsSync(pa) || !existsSync(pb)) return null;
  const a = readU32(pa);
  const b = readU32(pb);
  if (a.length !== b.length) return null;
  let hit = 0;
  let top1 = 0;
  for (let q = 0; q < a.length; q += K) {
    const s = new Set(b.subarray(q, q + K));
    for (let j = 0; j < K; j++) if (s.has(a[q + j])) hit++;
    if (a[q] === b[q]) top1++;
  }
  return { recall: hit / a.length, top1: top1 / (a.length / K) };
}

// ---------------------------------------------------------------------------
// Report

const cpuEnd = cpuSnapshot();
const loadEnd = readLoadavg();
const wallS = (Date.now() - t0) / 1000;
const dBusy = cpuEnd.busy - cpuStart.busy;
const dAll = dBusy + (cpuEnd.idle - cpuStart.idle);
const dOwn = cpuEnd.own - cpuStart.own;
const otherCoreS = Math.max(0, dBusy - dOwn) / 100; // USER_HZ = 100
const otherPct = dAll > 0 ? (100 * Math.max(0, dBusy - dOwn)) / dAll : 0;
const stealPct = dAll > 0 ? (100 * (cpuEnd.steal - cpuStart.steal)) / (dAll + cpuEnd.steal - cpuStart.steal) : 0;

const command = process.env.npm_lifecycle_event === 'bench:kernels'
  ? `npm run bench:kernels${argv.length ? ` -- ${argv.join(' ')}` : ''}`
  : `node benches/kernels.mjs${argv.length ? ` ${argv.join(' ')}` : ''}`;

const L = [];
const p = (s = '') => L.push(s);

p(`## ${startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} — \`${command}\`${quick ? ' (quick smoke run)' : ''}`);
p();
p(`- **Machine**: ${mach.cpuModel} (/proc/cpuinfo), ${mach.logicalCpus} logical CPUs${mach.physicalCores ? ` / ${mach.physicalCores} cores` : ''}, ${mach.simdFlags.join(' ')}, L3 ${mach.l3 ?? '?'}, ${mach.memGiB.toFixed(1)} GiB RAM, ${mach.kernel}, Node ${mach.node}`);
p(`- **quarry** ${qinfo.version} at ${mach.commit}: SIMD level \`${qinfo.simdLevel}\` (available: ${qinfo.simdLevels.join(', ')}), features [${qinfo.features.join(', ')}]; thread count set per child process with RAYON_NUM_THREADS`);
const ss = scan.t1?.simsimd;
p(`- **Baselines**: simsimd ${ss?.loaded ? `${ss.version} (${ss.native?.startsWith('NOT') ? ss.native : `native ${relative(ROOT, ss.native)}`})` : 'not loaded'}; ` +
  `faiss-cpu ${knn.faissBlas[1]?.faiss ?? knn.faiss[1]?.faiss ?? 'n/a'} (${(knn.faissBlas[1]?.compile ?? '').trim() || 'n/a'}), numpy ${knn.faissBlas[1]?.numpy ?? 'n/a'}; plain JS loops on Node ${process.version}`);
p(`- **Load from other processes during the run**: ${otherCoreS.toFixed(0)} core-seconds = ${otherPct.toFixed(0)}% of the machine's CPU time over ${wallS.toFixed(0)} s (VM steal ${stealPct.toFixed(1)}%); loadavg ${loadStart} at start, ${loadEnd} at end. ${otherPct > 10 ? '**The machine was not quiet: figures below are depressed and noisy, 2-thread figures most.**' : 'The machine was quiet.'}`);
p(`- **Timing**: each case warms up while calibrating the iteration count to ≥ ${CFG.repMs} ms per repetition, then ${CFG.reps} repetitions; the median per call is reported (≥ ${CFG.repMs * CFG.reps} ms measured per case). Every result feeds a checksum that is written out, so no call is dead code. k-NN: warm-up on 100 queries, then full runs until ≥ ${CFG.knnMinReps} runs and ≥ ${CFG.knnTargetS} s (at most ${CFG.knnMaxReps}; no more once the runs add up to ${CFG.knnBudgetS} s, so one long run can stand alone; run counts are in the k-NN table), median.`);
p(`- **Total runtime**: ${(wallS / 60).toFixed(1)} min (${Object.entries(phases).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')}).`);
p();

// Bandwidth
p('### Memory bandwidth (the roof for out-of-cache scans)');
p();
p('| measure | 1 thread / process | 2 at once |');
p('| --- | ---: | ---: |');
p(`| mbw MEMCPY average (\`mbw -q -n ${MBW_RUNS} -t0 ${MBW_MIB}\`), as printed: MiB copied per second | ${bw.mbw1 ? `${bw.mbw1.toFixed(0)} MiB/s` : '—'} | ${bw.mbw2 ? `${bw.mbw2.toFixed(0)} MiB/s (sum of 2 processes)` : '—'} |`);
p(`| **roof used below**: memory traffic of that copy (read + write = 2 × printed), GB/s | **${fmtNum(roof1)}** | **${fmtNum(roof2)}** |`);
p(`| cross-check, read-only: numpy \`np.dot\` (BLAS sdot) over 2 × ${MBW_MIB} MiB f32, GB/s | ${fmtNum(bw.np1)} | ${fmtNum(bw.np2)} (2 BLAS threads) |`);
p();
for (const n of bw.notes) p(`- ${n}`);
if (bw.notes.length) p();

// One-to-one
const systemsOf = (row) => ['quarry', 'simsimd', 'js'].map((s) => row.ns[s]?.medianNs ?? NaN);
if (scan.t1?.pair?.length) {
  p('### One-to-one: time per call (1 thread)');
  p();
  p('One call on two vectors through each library\'s public Node API (quarry `distance.l2sq/dot/cosine/hamming`, simsimd `sqeuclidean/inner/cosine/hamming`, a JS loop). Speedup = other ÷ quarry (> 1: quarry faster).');
  p();
  p('| dtype | metric | dim | quarry | simsimd | JS loop | quarry vs simsimd | quarry vs JS |');
  p('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of scan.t1.pair) {
    const [q, s, j] = systemsOf(r);
    p(`| ${r.dtype} | ${r.metric} | ${r.dim}${r.dtype === 'binary' ? ` bits (${r.bytes} B)` : ''} | ${fmtTime(q)} | ${fmtTime(s)} | ${fmtTime(j)} | ${fmtRatio(s / q)} | ${fmtRatio(j / q)} |`);
  }
  p();
}

// One-to-many
const llcOf = (bytes) => {
  if (!mach.l3Bytes) return '?';
  if (bytes <= mach.l3Bytes) return 'in';
  if (bytes >= 2 * mach.l3Bytes) return 'out';
  return '~';
};
const t2Of = (r) => scan.t2?.scan.find((x) => x.dtype === r.dtype && x.metric === r.metric && x.dim === r.dim && x.rows === r.rows);
const goalsScan = { vsSimsimd: [], roof1: [], roof2: [] };
if (scan.t1?.scan?.length) {
  p('### One-to-many: one query against every row of a matrix');
  p();
  p(`Time per full scan and GB/s = matrix bytes ÷ time. quarry: \`distance.oneToMany\` (1 thread; the "2 thr" column is the same call with RAYON_NUM_THREADS=2). simsimd: its Node API is one-to-one only, so this is a JS loop calling simsimd once per row on \`matrix.subarray(...)\` views — how a Node user runs it — into a new Float32Array. JS: a plain loop over the rows into a new Float32Array. LLC: matrix fits the ${mach.l3 ?? '?'} L3 (in), is ≥ 2× it (out), or between (~). % roof: quarry GB/s ÷ the mbw roof above, out-of-cache rows only. err: max |quarry − JS| ÷ max |JS| (the JS loop accumulates in f64).`);
  p();
  p('| dtype | metric | dim | rows | matrix | LLC | quarry | GB/s | simsimd loop | GB/s | JS loop | GB/s | vs simsimd | vs JS | quarry 2 thr GB/s | % roof 1 / 2 thr | err |');
  p('| --- | --- | ---: | ---: | ---: | :-: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of scan.t1.scan) {
    const [q, s, j] = systemsOf(r);
    const gb = (ns) => r.matrixBytes / ns;
    const r2 = t2Of(r);
    const q2 = r2?.ns.quarry?.medianNs ?? NaN;
    const llc = llcOf(r.matrixBytes);
    const pct1 = llc === 'out' && roof1 ? (100 * gb(q)) / roof1 : NaN;
    const pct2 = llc === 'out' && roof2 ? (100 * gb(q2)) / roof2 : NaN;
    if ((r.dtype === 'f32' || r.dtype === 'i8') && Number.isFinite(s)) goalsScan.vsSimsimd.push({ r, ratio: s / q });
    if (Number.isFinite(pct1)) goalsScan.roof1.push({ r, pct: pct1 });
    if (Number.isFinite(pct2)) goalsScan.roof2.push({ r, pct: pct2 });
    const err = r.check.quarry;
    p(`| ${r.dtype} | ${r.metric} | ${r.dim} | ${r.rows.toLocaleString('en-US')} | ${fmtBytes(r.matrixBytes)} | ${llc} | ${fmtTime(q)} | ${fmtNum(gb(q))} | ${fmtTime(s)} | ${fmtNum(gb(s))} | ${fmtTime(j)} | ${fmtNum(gb(j))} | ${fmtRatio(s / q)} | ${fmtRatio(j / q)} | ${fmtNum(gb(q2))} | ${Number.isFinite(pct1) ? `${pct1.toFixed(0)}% / ${Number.isFinite(pct2) ? pct2.toFixed(0) : '—'}%` : '—'} | ${err === undefined ? '—' : err === 0 ? '0' : err.toExponential(0)} |`);
  }
  p();
}
for (const n of scan.notes) p(`- ${n}`);
if (scan.notes.length) p();

// k-NN
const goalsKnn = [];
if (Object.keys(knn.quarry).length || Object.keys(knn.faissBlas).length) {
  const m = knn.meta;
  p(`### Exact k-NN on GloVe-100: quarry \`distance.knn\` vs FAISS IndexFlatL2 / IndexFlatIP`);
  p();
  p(`${m.source}: ${m.words.toLocaleString('en-US')} words × ${m.dim}; ${CFG.knnQueries.toLocaleString('en-US')} of the ${m.queries.toLocaleString('en-US')} held-out query words (seeded sample, seed ${m.seed}) against the other ${m.base.toLocaleString('en-US')}; k = ${K}. Both read the same f32 files (benches/.data/glove100). cosine = inner product over unit-normalised rows on both sides. FAISS picks its search path by \`nq × d < distance_compute_blas_threshold\` (128,000 in 1.15): with these shapes its **default** is the per-query SIMD scan; **BLAS** forces the sgemm path (threshold 0). The goal compares quarry with the faster of the two. FAISS's index.add is not timed. Times are medians, with the number of timed runs in brackets. recall@10: overlap of quarry's ids with FAISS's (default path; BLAS path in brackets); near-ties may swap.`);
  p();
  p('| metric | threads | quarry | QPS | FAISS default | QPS | FAISS BLAS | QPS | quarry ÷ best FAISS (QPS) | recall@10 | top-1 agree |');
  p('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const name of KNN_METRICS) {
    for (const t of THREADS) {
      const q = knn.quarry[t]?.results[name];
      const fd = knn.faiss[t]?.results[name];
      const fb = knn.faissBlas[t]?.results[name];
      const best = Math.max(fd?.qps ?? 0, fb?.qps ?? 0) || NaN;
      const ratio = q ? q.qps / best : NaN;
      if (Number.isFinite(ratio)) goalsKnn.push({ name, t, ratio });
      const rd = knn.quarry[t] && knn.faiss[t] ? recallAt(knn.quarry[t].dir, 'quarry', knn.faiss[t].dir, 'faiss', name) : null;
      const rb = knn.quarry[t] && knn.faissBlas[t] ? recallAt(knn.quarry[t].dir, 'quarry', knn.faissBlas[t].dir, 'faiss', name) : null;
      const sec = (x) => (x ? `${fmtTime(x.medianS * 1e9)} (${x.times.length}×)` : '—');
      const qps = (x) => (x ? x.qps.toFixed(0) : '—');
      p(`| ${name} | ${t} | ${sec(q)} | ${qps(q)} | ${sec(fd)} | ${qps(fd)} | ${sec(fb)} | ${qps(fb)} | ${fmtRatio(ratio)} | ${rd ? rd.recall.toFixed(4) : '—'}${rb ? ` (${rb.recall.toFixed(4)})` : ''} | ${rd ? rd.top1.toFixed(3) : rb ? rb.top1.toFixed(3) : '—'} |`);
    }
  }
  p();
  // A readable sanity check: neighbours of a held-out word.
  try {
    const qd = knn.quarry[1] ?? knn.quarry[2];
    if (qd) {
      const words = JSON.parse(readFileSync(join(GLOVE_DIR, 'words.json'), 'utf8'));
      const held = new Set(m.queryWordIndex);
      const baseWord = [];
      for (let i = 0; i < words.length; i++) if (!held.has(i)) baseWord.push(i);
      const ids = readU32(join(qd.dir, 'quarry_cosine_ids.u32'));
      const qi = m.queryWords.findIndex((w, i) => i < CFG.knnQueries && /^[a-z]{5,}$/.test(w));
      if (qi >= 0) {
        const nn = Array.from(ids.subarray(qi * K, qi * K + K), (b) => words[baseWord[b]]);
        p(`Sanity check — quarry's cosine neighbours of the held-out word "${m.queryWords[qi]}": ${nn.join(', ')}.`);
        p();
      }
    }
  } catch {
    /* cosmetic only */
  }
}
for (const n of knn.notes) p(`- ${n}`);
if (knn.notes.length) p();

// Goals
p('### Goals (measured figures, met or not)');
p();
const verdict = (met, n) => (met === n ? 'MET' : 'NOT MET');
const worst = (xs, key) => xs.reduce((a, b) => (b[key] < a[key] ? b : a), xs[0]);
const caseName = (r) => `${r.dtype} ${r.metric} d=${r.dim} rows=${r.rows}`;
if (goalsScan.vsSimsimd.length) {
  const met = goalsScan.vsSimsimd.filter((x) => x.ratio >= 1).length;
  const w = worst(goalsScan.vsSimsimd, 'ratio');
  p(`- **one-to-many f32 and i8 at least as fast as simsimd** (1 thread each): ${verdict(met, goalsScan.vsSimsimd.length)} — met in ${met} of ${goalsScan.vsSimsimd.length} cases; slowest: ${fmtRatio(w.ratio)} (${caseName(w.r)}).`);
} else p('- one-to-many vs simsimd: not measured.');
for (const [key, roof, label] of [['roof1', roof1, '1 thread vs mbw, 1 process'], ['roof2', roof2, '2 threads vs mbw, 2 processes']]) {
  const xs = goalsScan[key];
  if (!xs.length || !roof) {
    p(`- out-of-cache scans ≥ 80% of memory bandwidth (${label}): not measured.`);
    continue;
  }
  const met = xs.filter((x) => x.pct >= 80).length;
  const w = worst(xs, 'pct');
  const f = xs.filter((x) => x.r.dtype === 'f32');
  const fMet = f.filter((x) => x.pct >= 80).length;
  const readRoof = key === 'roof1' ? bw.np1 : bw.np2;
  const vsRead = readRoof ? xs.filter((x) => (x.pct * roof) / readRoof >= 80).length : null;
  p(`- **out-of-cache scans ≥ 80% of measured memory bandwidth** (${label}, roof ${fmtNum(roof)} GB/s): ${verdict(met, xs.length)} — met in ${met} of ${xs.length} out-of-LLC cases (f32: ${fMet} of ${f.length}); lowest ${w.pct.toFixed(0)}% (${caseName(w.r)}).` +
    (vsRead === null ? '' : ` Against the read-only cross-check (${fmtNum(readRoof)} GB/s) instead: ${vsRead} of ${xs.length}.`));
}
if (goalsKnn.length) {
  const met = goalsKnn.filter((x) => x.ratio >= 1).length;
  const w = worst(goalsKnn, 'ratio');
  p(`- **exact k-NN at least as fast as FAISS flat search** (vs the faster FAISS path): ${verdict(met, goalsKnn.length)} — met in ${met} of ${goalsKnn.length} (metric, threads) cases; lowest ${fmtRatio(w.ratio)} (${w.name}, ${w.t} thread${w.t > 1 ? 's' : ''}).`);
} else p('- k-NN vs FAISS: not measured.');
p();
p('Notes: the binary rows pack `dim` bits into ⌈dim/8⌉ bytes (100 → 13 B = 104 bits, so all three systems see whole bytes); quarry gets `dim` = bytes × 8. i8 data is uniform in [−127, 127], f32 uniform in [−1, 1), seeded. simsimd exports (checked at run time): ' +
  `${ss?.exports?.filter((e) => e !== 'default').join(', ') ?? 'n/a'} — all one-to-one. Raw JSON of this run: \`${relative(ROOT, runDir)}/\` (git-ignored).`);
p();

const report = L.join('\n');
writeFileSync(join(runDir, 'report.md'), report);
writeFileSync(join(runDir, 'summary.json'), JSON.stringify({ command, startedAt, wallS, mach, qinfo, bw, roof1, roof2, scan, knn, setup, load: { otherCoreS, otherPct, stealPct, loadStart, loadEnd } }));
process.stdout.write(`\n${report}\n`);

const resultsPath = join(BENCH_DIR, 'RESULTS.md');
if (!args['no-append'] && (!quick || args.append)) {
  if (!existsSync(resultsPath)) {
    writeFileSync(resultsPath, '# Benchmark results\n\nAppended by `npm run bench:kernels` (benches/kernels.mjs); newest last. See benches/README.md for what each table measures.\n\n');
  }
  appendFileSync(resultsPath, `${report}\n`);
  log(`appended to ${relative(ROOT, resultsPath)}`);
} else {
  log(`not appended to ${relative(ROOT, resultsPath)} (${quick ? 'quick run; pass --append to keep it' : '--no-append'})`);
}
