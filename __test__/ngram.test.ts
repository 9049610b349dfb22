import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AbortedError,
  CorruptIndexError,
  InvalidArgumentError,
  IoError,
  NgramIndex,
  QuarryError,
  TokenizerError,
} from '../dist/esm/index.js';
import { rng } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'quarry-ngram-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Overlapping occurrences of `pat` in `text`, both as bytes. */
function naiveCount(docs: Buffer[], pat: Buffer): number {
  let n = 0;
  for (const d of docs) for (let i = d.indexOf(pat); i >= 0; i = d.indexOf(pat, i + 1)) n++;
  return n;
}

function naiveHits(docs: Buffer[], pat: Buffer) {
  const hits: { doc: number; offset: number }[] = [];
  docs.forEach((d, doc) => {
    for (let i = d.indexOf(pat); i >= 0; i = d.indexOf(pat, i + 1)) hits.push({ doc, offset: i });
  });
  return hits;
}

describe('NgramIndex, byte mode', () => {
  const r = rng(42);
  const words = ['the', 'cat', 'sat', 'on', 'mat', 'über', 'naïve', '日本', 'a', 'aa'];
  const texts: string[] = [];
  for (let d = 0; d < 60; d++) {
    const n = 1 + Math.floor(r() * 80);
    texts.push(Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' '));
  }
  texts.push('a'.repeat(500), '', 'x');
  const docs = texts.map((t) => Buffer.from(t, 'utf8'));
  let idx: NgramIndex;

  beforeAll(async () => {
    const progress: string[] = [];
    idx = await NgramIndex.build({
      input: texts.map((text, i) => (i % 7 === 0 ? { text, source: `doc-${i}` } : text)),
      output: join(work, 'bytes'),
      saSampleRate: 4,
      isaSampleRate: 8,
      shardBytes: 2000,
      onProgress: (p) => progress.push(p.stage),
    });
    expect(progress).toContain('done');
  });

  it('stats describe the corpus', () => {
    const s = idx.stats();
    expect(s.mode).toBe('bytes');
    expect(s.docs).toBe(texts.length);
    expect(s.bytes).toBe(docs.reduce((a, d) => a + d.length, 0));
    expect(s.shards).toBeGreaterThan(1);
  });

  it('count and locate equal a brute-force scan', async () => {
    const patterns = ['the', 'cat sat', 'a', 'aa', 'aaaa', ' ', 'über', '日本', 'naïve cat', 'e c', 'zzz', 'a'.repeat(499), 'a'.repeat(501)];
    // Random substrings of the corpus, some spanning word boundaries.
    for (let i = 0; i < 40; i++) {
      const d = docs[Math.floor(r() * 60)];
      const s = Math.floor(r() * d.length);
      patterns.push(d.subarray(s, s + 1 + Math.floor(r() * 12)).toString('latin1'));
    }
    for (const p of patterns) {
      const pat = Buffer.from(p, patterns.indexOf(p) >= 13 ? 'latin1' : 'utf8');
      const sym = Uint32Array.from(pat);
      expect(idx.count(sym)).toBe(naiveCount(docs, pat));
      expect(await idx.countAsync(sym)).toBe(naiveCount(docs, pat));
      const want = naiveHits(docs, pat);
      expect(idx.locate(sym, { limit: 1_000_000 })).toEqual(want);
      expect((await idx.locateAsync(sym, { limit: 3 })).length).toBe(Math.min(3, want.length));
    }
  });

  it('matches never span documents', () => {
    // Doc 61 is "" and doc 62 is "x": "aaax" would need the boundary.
    expect(idx.count('a'.repeat(500) + 'x')).toBe(0);
    expect(idx.count(texts[0].slice(-2) + texts[1].slice(0, 2))).toBe(naiveCount(docs, Buffer.from(texts[0].slice(-2) + texts[1].slice(0, 2))));
  });

  it('extracts documents, windows and metadata', () => {
    for (let d = 0; d < texts.length; d++) {
      const doc = idx.document(d);
      expect(doc.text).toBe(texts[d]);
      expect(doc.docLength).toBe(docs[d].length);
      expect(doc.metadata).toEqual(d % 7 === 0 ? { source: `doc-${d}` } : null);
    }
    const w = idx.document(3, { start: 2, length: 5 });
    expect(Buffer.from(w.symbols).equals(docs[3].subarray(2, 7))).toBe(true);
    expect(idx.document(3, { start: 10_000 }).symbols.length).toBe(0);
  });

  it('next-symbol distribution and prob equal naive counts', () => {
    const prefix = Buffer.from('the ');
    const want = new Map<number, number>();
    let end = 0;
    for (const d of docs) {
      for (let i = d.indexOf(prefix); i >= 0; i = d.indexOf(prefix, i + 1)) {
        if (i + prefix.length < d.length) want.set(d[i + prefix.length], (want.get(d[i + prefix.length]) ?? 0) + 1);
        else end++;
      }
    }
    const got = idx.nextTokens('the ', { limit: 1000 });
    expect(got.prefixCount).toBe(naiveCount(docs, prefix));
    expect(got.endOfDocument).toBe(end);
    expect(new Map(got.tokens.map((t) => [t.token, t.count]))).toEqual(want);
    const p = idx.prob('the c');
    expect(p.count).toBe(naiveCount(docs, Buffer.from('the c')));
    expect(p.prefixCount).toBe(naiveCount(docs, prefix));
    expect(idx.prob('qqq').prob).toBeNull();
  });

  it('searchDocuments and contamination', async () => {
    const res = idx.searchDocuments([['cat', 'mat'], ['über']], { limit: 1000 });
    const want = texts.flatMap((t, i) => ((t.includes('cat') || t.includes('mat')) && t.includes('über') ? [i] : []));
    expect(res.docs).toEqual(want);
    expect(res.approx).toBe(false);
    expect(await idx.searchDocumentsAsync([['cat', 'mat'], ['über']], { limit: 1000 })).toEqual(res);
    const [c] = idx.contamination([texts[5]], { n: 4 });
    if (docs[5].length >= 4) expect(c.share).toBe(1);
    expect((await idx.contaminationAsync(['qqqqqqqq'], { n: 4 }))[0].found).toBe(0);
  });

  it('reopens from disk with the same answers', () => {
    const again = NgramIndex.open(join(work, 'bytes'));
    expect(again.count('cat')).toBe(idx.count('cat'));
    expect(again.document(7).text).toBe(texts[7]);
  });

  it('rejects bad queries with typed errors', () => {
    expect(() => idx.count('')).toThrow(InvalidArgumentError);
    expect(() => idx.count([1.5])).toThrow(InvalidArgumentError);
    expect(() => idx.count([-1])).toThrow(InvalidArgumentError);
    expect(() => idx.count(42 as never)).toThrow(InvalidArgumentError);
    expect(() => idx.document(10_000)).toThrow(QuarryError);
    expect(() => idx.searchDocuments([])).toThrow(InvalidArgumentError);
  });
});

describe('NgramIndex files', () => {
  it('rejects truncated and altered shard files', async () => {
    const dir = join(work, 'corrupt');
    await NgramIndex.build({ input: ['some text to index', 'and another document'], output: dir });
    const shard = readdirSync(dir).find((f) => f.endsWith('.qfm'))!;
    const path = join(dir, shard);
    const good = readFileSync(path);
    const flipped = Buffer.from(good);
    flipped[Math.floor(good.length / 2)] ^= 0x10;
    writeFileSync(path, flipped);
    expect(() => NgramIndex.open(dir)).toThrow(CorruptIndexError);
    writeFileSync(path, good.subarray(0, good.length - 100));
    try {
      NgramIndex.open(dir);
      throw new Error('opened a truncated index');
    } catch (e) {
      expect((e as QuarryError).code).toBe('QUARRY_CORRUPT_INDEX');
    }
    writeFileSync(path, good);
    expect(NgramIndex.open(dir).count('text')).toBe(1);
  });

  it('missing index, bad input and abort', async () => {
    expect(() => NgramIndex.open(join(work, 'nope'))).toThrow(IoError);
    await expect(NgramIndex.build({ input: join(work, 'missing.jsonl'), output: join(work, 'x') })).rejects.toBeInstanceOf(IoError);
    const bad = join(work, 'bad.jsonl');
    writeFileSync(bad, '{"text": "ok"}\n{"title": "no text"}\n');
    await expect(NgramIndex.build({ input: bad, output: join(work, 'x') })).rejects.toMatchObject({ code: 'QUARRY_INVALID_INPUT' });
    const ac = new AbortController();
    ac.abort();
    await expect(NgramIndex.build({ input: ['a'], output: join(work, 'x'), signal: ac.signal })).rejects.toBeInstanceOf(AbortedError);
    const ac2 = new AbortController();
    const big = Array.from({ length: 2000 }, (_, i) => `document ${i} `.repeat(50));
    const pending = NgramIndex.build({ input: big, output: join(work, 'aborted'), shardBytes: 20_000, signal: ac2.signal, onProgress: () => ac2.abort() });
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('NgramIndex, token mode', () => {
  const vocab = ['the', 'cat', 'dog', 'sat', 'on', 'mat', 'ran', 'far'];
  let idx: NgramIndex;
  const texts: string[] = [];

  beforeAll(async () => {
    const r = rng(7);
    for (let d = 0; d < 40; d++) {
      texts.push(Array.from({ length: 1 + Math.floor(r() * 30) }, () => vocab[Math.floor(r() * vocab.length)]).join(' '));
    }
    const tok = join(work, 'tokenizer.json');
    writeFileSync(
      tok,
      JSON.stringify({
        version: '1.0',
        truncation: null,
        padding: null,
        added_tokens: [],
        normalizer: null,
        pre_tokenizer: { type: 'Whitespace' },
        post_processor: null,
        decoder: null,
        model: { type: 'WordLevel', vocab: Object.fromEntries([['[UNK]', 0], ...vocab.map((w, i) => [w, i + 1])]), unk_token: '[UNK]' },
      }),
    );
    idx = await NgramIndex.build({ input: texts, output: join(work, 'tokens'), tokenizer: tok });
  });

  const ids = (s: string) => s.split(' ').map((w) => vocab.indexOf(w) + 1);

  function naive(pat: number[]) {
    let count = 0;
    const next = new Map<number, number>();
    for (const t of texts) {
      const d = ids(t);
      for (let i = 0; i + pat.length <= d.length; i++) {
        if (pat.every((p, j) => d[i + j] === p)) {
          count++;
          if (i + pat.length < d.length) next.set(d[i + pat.length], (next.get(d[i + pat.length]) ?? 0) + 1);
        }
      }
    }
    return { count, next };
  }

  it('encodes with the tokenizer and counts n-grams', () => {
    expect(Array.from(idx.encode('the cat'))).toEqual(ids('the cat'));
    expect(idx.stats().mode).toBe('tokens');
    expect(idx.stats().tokens).toBe(texts.reduce((a, t) => a + t.split(' ').length, 0));
    for (const q of ['the', 'the cat', 'cat sat on', 'dog dog', 'far far far']) {
      expect(idx.count(q)).toBe(naive(ids(q)).count);
      expect(idx.count(ids(q))).toBe(naive(ids(q)).count);
    }
  });

  it('prob, nextTokens and the ∞-gram equal naive counts', async () => {
    for (const q of ['the', 'cat', 'the cat', 'on the']) {
      const want = naive(ids(q));
      const got = idx.nextTokens(q, { limit: 100 });
      expect(got.prefixCount).toBe(want.count);
      expect(new Map(got.tokens.map((t) => [t.token, t.count]))).toEqual(want.next);
      expect(await idx.nextTokensAsync(q, { limit: 100 })).toEqual(got);
      for (const t of got.tokens) expect(t.text).toBe(vocab[t.token - 1]);
      const p = idx.prob(`${q} sat`);
      expect(p.count).toBe(naive(ids(`${q} sat`)).count);
      expect(p.prob).toBeCloseTo(want.count ? naive(ids(`${q} sat`)).count / want.count : NaN, 12);
    }
    // "[UNK] the" never occurs: the ∞-gram backs off to "the".
    const inf = idx.infgramProb([0, ...ids('the')], 'cat');
    expect(inf.suffixLen).toBe(1);
    expect(inf.count).toBe(naive(ids('the cat')).count);
    expect(inf.prefixCount).toBe(naive(ids('the')).count);
  });

  it('rejects a tokenizer that does not parse', async () => {
    const bad = join(work, 'bad-tokenizer.json');
    writeFileSync(bad, '{ not json');
    await expect(NgramIndex.build({ input: ['x'], output: join(work, 'y'), tokenizer: bad })).rejects.toBeInstanceOf(TokenizerError);
  });
});

describe('quarry ngram CLI', () => {
  it('builds and queries an index', () => {
    const cli = fileURLToPath(new URL('../dist/esm/cli.js', import.meta.url));
    const input = join(work, 'cli.jsonl');
    writeFileSync(input, ['the quick brown fox', 'jumps over the lazy dog', 'the end'].map((text, i) => JSON.stringify({ text, i })).join('\n'));
    const out = join(work, 'cli-index');
    const run = (...a: string[]) => execFileSync(process.execPath, [cli, 'ngram', ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const built = JSON.parse(run('build', input, '-o', out, '--json'));
    expect(built.docs).toBe(3);
    expect(JSON.parse(run('count', out, 'the', '--json')).count).toBe(3);
    expect(JSON.parse(run('locate', out, 'lazy', '--json'))).toMatchObject([{ doc: 1, offset: 15 }]);
    expect(JSON.parse(run('doc', out, '2', '--json'))).toMatchObject({ text: 'the end', metadata: { i: 2 } });
    expect(run('next', out, 'the ')).toMatch(/3 times/);
  });
});
