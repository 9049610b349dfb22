// Child process of kernels.mjs: one-to-one and one-to-many timings of quarry,
// npm simsimd and a plain JS loop. The parent sets RAYON_NUM_THREADS (quarry's
// pool size is fixed when the pool starts, so each thread count is its own
// process) and reads the JSON this writes to --out.
//
//   node benches/scan_worker.mjs --out FILE [--systems quarry,simsimd,js]
//        [--dims 100,384,768,1536] [--rows 1000,200000] [--no-pair] [--rep-ms 100] [--reps 5]
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NPM_DIR, bench, loadQuarry, log, parseArgs, rng, sinkValue } from './common.mjs';

const args = parseArgs(process.argv.slice(2));
const systems = String(args.systems ?? 'quarry,simsimd,js').split(',');
const dims = String(args.dims ?? '100,384,768,1536').split(',').map(Number);
const rowsList = String(args.rows ?? '1000,200000').split(',').map(Number);
const doPair = !args['no-pair'];
const timing = { minRepMs: Number(args['rep-ms'] ?? 100), reps: Number(args.reps ?? 5) };
const kindsFilter = args.kinds ? String(args.kinds).split(',') : null;

const quarry = await loadQuarry();
const { distance, info } = quarry;

// simsimd: the package's own ESM entry (what `import * as simsimd from 'simsimd'` gives).
let simsimd = null;
let simsimdInfo = { loaded: false };
if (systems.includes('simsimd')) {
  const req = createRequire(join(NPM_DIR, 'package.json'));
  const pkgJson = JSON.parse(readFileSync(join(NPM_DIR, 'node_modules', 'simsimd', 'package.json'), 'utf8'));
  const entry = req.resolve('simsimd').replace(/cjs[/\\]simsimd\.js$/, 'esm/simsimd.js');
  simsimd = await import(pathToFileURL(entry).href);
  // The entry silently falls back to pure JS when its native module does not
  // load; check that the prebuilt binary itself loads, so the table says which.
  let nativePath = null;
  try {
    const gyp = req('node-gyp-build');
    nativePath = gyp.resolve(join(NPM_DIR, 'node_modules', 'simsimd'));
    gyp(join(NPM_DIR, 'node_modules', 'simsimd'));
  } catch (e) {
    nativePath = `NOT LOADED (${e.message}): simsimd is running its JS fallback`;
  }
  simsimdInfo = { loaded: true, version: pkgJson.version, native: nativePath, exports: Object.keys(simsimd).sort() };
}

// ---------------------------------------------------------------------------
// Plain JS kernels: the loop a Node user would write by hand. Each dtype has
// its own functions so V8 sees one array type per function (monomorphic).

function l2sqF32(a, ao, b, bo, n) {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = a[ao + i] - b[bo + i];
    s += d * d;
  }
  return s;
}
function ipF32(a, ao, b, bo, n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[ao + i] * b[bo + i];
  return s;
}
function cosF32(a, ao, b, bo, n) {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[ao + i];
    const y = b[bo + i];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa === 0 && bb === 0 ? 0 : aa === 0 || bb === 0 ? 1 : 1 - ab / Math.sqrt(aa * bb);
}
function l2sqI8(a, ao, b, bo, n) {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const d = a[ao + i] - b[bo + i];
    s += d * d;
  }
  return s;
}
function ipI8(a, ao, b, bo, n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[ao + i] * b[bo + i];
  return s;
}
function cosI8(a, ao, b, bo, n) {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[ao + i];
    const y = b[bo + i];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa === 0 && bb === 0 ? 0 : aa === 0 || bb === 0 ? 1 : 1 - ab / Math.sqrt(aa * bb);
}
const POPCNT8 = Uint8Array.from({ length: 256 }, (_, i) => {
  let c = 0;
  for (let v = i; v; v &= v - 1) c++;
  return c;
});
function hammingU8(a, ao, b, bo, n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += POPCNT8[a[ao + i] ^ b[bo + i]];
  return s;
}

// Each JS scan is its own function too (one call site per kernel).
function jsScanL2F32(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = l2sqF32(q, 0, m, o, n);
  return out;
}
function jsScanIpF32(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = ipF32(q, 0, m, o, n);
  return out;
}
function jsScanCosF32(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = cosF32(q, 0, m, o, n);
  return out;
}
function jsScanL2I8(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = l2sqI8(q, 0, m, o, n);
  return out;
}
function jsScanIpI8(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = ipI8(q, 0, m, o, n);
  return out;
}
function jsScanCosI8(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = cosI8(q, 0, m, o, n);
  return out;
}
function jsScanHamming(q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = hammingU8(q, 0, m, o, n);
  return out;
}

// simsimd one-to-many: its Node API is one-to-one only, so a Node user loops
// over rows and passes each row as a subarray view.
function simsimdScan(fn, q, m, n, rows) {
  const out = new Float32Array(rows);
  for (let r = 0, o = 0; r < rows; r++, o += n) out[r] = fn(q, m.subarray(o, o + n));
  return out;
}

// ---------------------------------------------------------------------------
// Cases

const KINDS = [
  { dtype: 'f32', metric: 'l2sq', js: l2sqF32, jsScan: jsScanL2F32, ss: 'sqeuclidean', q: 'l2sq' },
  { dtype: 'f32', metric: 'ip', js: ipF32, jsScan: jsScanIpF32, ss: 'inner', q: 'dot' },
  { dtype: 'f32', metric: 'cosine', js: cosF32, jsScan: jsScanCosF32, ss: 'cosine', q: 'cosine' },
  { dtype: 'i8', metric: 'l2sq', js: l2sqI8, jsScan: jsScanL2I8, ss: 'sqeuclidean', q: 'l2sq' },
  { dtype: 'i8', metric: 'ip', js: ipI8, jsScan: jsScanIpI8, ss: 'inner', q: 'dot' },
  { dtype: 'i8', metric: 'cosine', js: cosI8, jsScan: jsScanCosI8, ss: 'cosine', q: 'cosine' },
  { dtype: 'binary', metric: 'hamming', js: hammingU8, jsScan: jsScanHamming, ss: 'hamming', q: 'hamming' },
].filter((k) => !kindsFilter || kindsFilter.includes(`${k.dtype}-${k.metric}`));

/** Elements per row: floats/bytes, or for binary ceil(dim/8) bytes (dim bits rounded up to whole bytes). */
function rowLen(dtype, dim) {
  return dtype === 'binary' ? Math.ceil(dim / 8) : dim;
}

function makeData(dtype, len, seed) {
  const r = rng(seed);
  if (dtype === 'f32') {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = r() * 2 - 1;
    return a;
  }
  if (dtype === 'i8') {
    const a = new Int8Array(len);
    for (let i = 0; i < len; i++) a[i] = Math.floor(r() * 255) - 127; // -127..127
    return a;
  }
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = Math.floor(r() * 256);
  return a;
}

/** max |x − ref| / max |ref|: 0 when identical, ~1e-7 for f32 rounding. */
function relDiff(x, ref) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    num = Math.max(num, Math.abs(x[i] - ref[i]));
    den = Math.max(den, Math.abs(ref[i]));
  }
  return num === 0 ? 0 : num / (den || 1);
}

const result = {
  threadsEnv: process.env.RAYON_NUM_THREADS ?? null,
  quarry: info(),
  simsimd: simsimdInfo,
  timing,
  pair: [],
  scan: [],
};

// Data is generated once per (dim, dtype, rows) and shared by that dtype's metrics.
const DTYPES = ['f32', 'i8', 'binary'];
let memo = new Map();
function data(dtype, len, seed) {
  const key = `${dtype}:${len}:${seed}`;
  if (!memo.has(key)) memo.set(key, makeData(dtype, len, seed));
  return memo.get(key);
}

const t0 = Date.now();
for (const dim of dims) {
  memo = new Map();
  for (const kind of KINDS) {
    const n = rowLen(kind.dtype, dim);
    const qDim = kind.dtype === 'binary' ? n * 8 : dim; // quarry's dim counts bits for binary
    const bytesPerRow = kind.dtype === 'f32' ? n * 4 : n;
    const seedBase = dim * 131 + DTYPES.indexOf(kind.dtype) * 7;

    if (doPair) {
      const a = data(kind.dtype, n, seedBase + 1);
      const b = data(kind.dtype, n, seedBase + 2);
      const row = { dtype: kind.dtype, metric: kind.metric, dim, bytes: bytesPerRow, ns: {} };
      const qfn = distance[kind.q];
      if (systems.includes('quarry')) row.ns.quarry = bench(() => qfn(a, b), timing);
      if (simsimd) {
        const sfn = simsimd[kind.ss];
        row.ns.simsimd = bench(() => sfn(a, b), timing);
      }
      if (systems.includes('js')) {
        const jfn = kind.js;
        row.ns.js = bench(() => jfn(a, 0, b, 0, n), timing);
      }
      const vals = { quarry: qfn(a, b), js: kind.js(a, 0, b, 0, n) };
      if (simsimd) vals.simsimd = simsimd[kind.ss](a, b);
      row.values = vals;
      result.pair.push(row);
      log(
        `pair ${kind.dtype} ${kind.metric} d=${dim}: ` +
          Object.entries(row.ns).map(([s, v]) => `${s} ${v.medianNs.toFixed(1)} ns`).join(', '),
      );
    }

    for (const rows of rowsList) {
      const q = data(kind.dtype, n, seedBase + 3);
      const m = data(kind.dtype, n * rows, seedBase + 4 + rows);
      const opts = { dim: qDim, metric: kind.metric };
      const row = { dtype: kind.dtype, metric: kind.metric, dim, rows, matrixBytes: bytesPerRow * rows, ns: {}, check: {} };
      const outs = {};
      if (systems.includes('quarry')) {
        outs.quarry = distance.oneToMany(q, m, opts);
        row.ns.quarry = bench(() => {
          const out = distance.oneToMany(q, m, opts);
          return out[out.length - 1];
        }, timing);
      }
      if (simsimd) {
        const sfn = simsimd[kind.ss];
        outs.simsimd = simsimdScan(sfn, q, m, n, rows);
        row.ns.simsimd = bench(() => {
          const out = simsimdScan(sfn, q, m, n, rows);
          return out[out.length - 1];
        }, timing);
      }
      if (systems.includes('js')) {
        const scan = kind.jsScan;
        outs.js = scan(q, m, n, rows);
        row.ns.js = bench(() => {
          const out = scan(q, m, n, rows);
          return out[out.length - 1];
        }, timing);
      }
      // Agreement: every system against the plain JS loop (f64 accumulation),
      // or against quarry when the JS loop was not run.
      const ref = outs.js ?? outs.quarry;
      for (const [s, out] of Object.entries(outs)) if (out !== ref) row.check[s] = relDiff(out, ref);
      result.scan.push(row);
      log(
        `scan ${kind.dtype} ${kind.metric} d=${dim} rows=${rows}: ` +
          Object.entries(row.ns)
            .map(([s, v]) => `${s} ${(v.medianNs / 1e6).toFixed(3)} ms (${(row.matrixBytes / v.medianNs).toFixed(2)} GB/s)`)
            .join(', '),
      );
    }
  }
}
result.seconds = (Date.now() - t0) / 1000;
result.sink = sinkValue();
writeFileSync(args.out, JSON.stringify(result));
