// Shared helpers of the side-by-side benches: paths, a seeded PRNG, the timing
// loop and number formatting. No dependencies beyond Node itself.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = dirname(BENCH_DIR);
/** Git-ignored cache: npm baselines, the Python venv, converted data, run outputs. */
export const DATA_DIR = join(BENCH_DIR, '.data');
export const NPM_DIR = join(DATA_DIR, 'npm');
export const VENV_DIR = join(DATA_DIR, 'venv');
export const VENV_PY = join(VENV_DIR, 'bin', 'python');
export const GLOVE_DIR = join(DATA_DIR, 'glove100');
export const QUARRY_ENTRY = join(ROOT, 'dist', 'esm', 'index.js');

/** Imports the built quarry package (dist/), with a clear message when it is missing. */
export async function loadQuarry() {
  if (!existsSync(QUARRY_ENTRY)) {
    throw new Error(`${QUARRY_ENTRY} is missing: run \`npm run build\` first`);
  }
  return import(pathToFileURL(QUARRY_ENTRY).href);
}

/** mulberry32: small, fast, deterministic 32-bit PRNG. Returns floats in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The timing loop writes every result here, so no call can be dropped as dead code.
let sink = 0;
export function sinkValue() {
  return sink;
}

/**
 * Times `fn` (which must return a number derived from its work).
 * Warm-up doubles as calibration: the iteration count grows until one
 * repetition takes at least `minRepMs`; then `reps` repetitions of that many
 * calls are timed and the median time per call is reported.
 * @returns {{ medianNs: number, minNs: number, maxNs: number, iters: number, reps: number }}
 */
export function bench(fn, { minRepMs = 100, reps = 5 } = {}) {
  let iters = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) sink += fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= minRepMs) break;
    const want = Math.ceil((iters * minRepMs * 1.15) / Math.max(ms, 0.001));
    iters = Math.min(Math.max(want, iters * 2), iters * 1000);
  }
  const per = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) sink += fn();
    per.push(Number(process.hrtime.bigint() - t0) / iters);
  }
  per.sort((x, y) => x - y);
  return { medianNs: median(per), minNs: per[0], maxNs: per[per.length - 1], iters, reps };
}

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Formats a duration given in nanoseconds with a fitting unit. */
export function fmtTime(ns) {
  if (!Number.isFinite(ns)) return '—';
  if (ns < 1e3) return `${ns.toFixed(ns < 100 ? 1 : 0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

export function fmtNum(x, digits = 2) {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

export function fmtRatio(x) {
  if (!Number.isFinite(x)) return '—';
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

export function fmtBytes(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

/** Parses `--name value` / `--flag` arguments into an object. */
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      out[key] = next;
      i++;
    } else {
      out[key] = true;
    }
  }
  return out;
}

export function log(...args) {
  process.stderr.write(`${args.join(' ')}\n`);
}
