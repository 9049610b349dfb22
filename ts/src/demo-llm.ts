/**
 * `quarry demo` steps for LLM serving: a quantized KV cache and sparse
 * attention, on attention-like synthetic tensors (RoPE-rotated content,
 * an attention sink, outlier key channels, a planted needle), with checks
 * against dense f32 attention.
 * @internal
 * @module
 */
import * as attention from './attention.js';
import { lastQuery, medianMs, syntheticLayer } from './cli-tensors.js';
import { KvCache, type KvMethod } from './kv.js';

type Log = (line: string) => void;
type Check = (label: string, pass: boolean) => void;

export function kvDemo(log: Log, check: Check): void {
  const t = syntheticLayer({ heads: 9, kvHeads: 3, headDim: 64, tokens: 8192, seed: 7, queryRows: 1 });
  const shape = { heads: t.heads, kvHeads: t.kvHeads, headDim: t.headDim };
  log(`\n7. KV-cache quantization: one layer, ${t.tokens.toLocaleString()} cached tokens, 9 query / 3 KV heads (GQA), head_dim 64`);
  const q = lastQuery(t);
  const exact = attention.dense(q, t.k, t.v, shape);
  const f16Bytes = 2 * 2 * t.kvHeads * t.headDim;
  const results = new Map<string, { ratio: number; err: number }>();
  for (const [method, bits] of [['f32'], ['f16'], ['q8_0'], ['q4_0'], ['kivi', 4], ['kivi', 2]] as [KvMethod, number?][]) {
    const cache = new KvCache({ layers: 1, ...shape, method, bits });
    cache.append(0, t.k, t.v);
    const out = cache.attend(0, q);
    const msPerStep = medianMs(() => cache.attend(0, q), 5);
    const ratio = cache.bytes() / t.tokens / f16Bytes;
    const err = attention.relativeError(out, exact);
    const label = bits ? `${method}-${bits}` : method;
    results.set(label, { ratio, err });
    log(`  ${label.padEnd(7)} ${ratio.toFixed(3)}× f16 bytes   attention error ${err.toExponential(2)}   decode step ${msPerStep.toFixed(2)} ms`);
    if (label === 'kivi-2') {
      const { keys, values } = cache.dequantize(0);
      const overDequantized = attention.dense(q, keys, values, shape);
      check('fused 2-bit KIVI attention equals attention over its dequantized cache', attention.relativeError(out, overDequantized) < 1e-4);
    }
  }
  check('2-bit KIVI stores at most 0.21× the bytes of f16', results.get('kivi-2')!.ratio <= 0.21);
  // Per-channel keys absorb the outlier channels that per-token q4_0 blocks smear over every channel.
  check('4-bit KIVI attention error is below q4_0 at similar bytes', results.get('kivi-4')!.err < results.get('q4_0')!.err);
}

export function attentionDemo(log: Log, check: Check): void {
  log('\n8. Sparse attention');
  const p = syntheticLayer({ heads: 9, kvHeads: 3, headDim: 64, tokens: 4096, seed: 11 });
  const shape = { heads: p.heads, kvHeads: p.kvHeads, headDim: p.headDim };
  let dense!: attention.DenseOutput;
  const denseMs = medianMs(() => (dense = attention.dense(p.q, p.k, p.v, shape)), 1);
  // Sparse prefill pays off with length (MInference targets 100k+ tokens); at 4k the gains are modest.
  log(`  prefill, ${p.tokens.toLocaleString()} tokens: dense ${denseMs.toFixed(0)} ms`);
  for (const m of [
    { pattern: 'a-shape', sink: 64, window: 1024 },
    { pattern: 'vertical-slash', vertical: 256, slash: 1024 },
    // scattered diagonals computed as lines (one key per row) instead of block-wide bands
    { pattern: 'vertical-slash', vertical: 256, slash: 1024, slashLines: true },
    { pattern: 'block-topk', gamma: 0.9 },
  ] as attention.SparseMethod[]) {
    let r!: attention.AttentionResult;
    const ms = medianMs(() => (r = attention.sparse(p.q, p.k, p.v, { ...shape, ...m })), 1);
    const recall = attention.recall(p.q, p.k, { ...shape, ...m });
    const label = 'slashLines' in m && m.slashLines ? 'vs, lines' : m.pattern;
    log(
      `  ${label.padEnd(15)} ${(denseMs / ms).toFixed(2)}× faster, density ${r.density.toFixed(2)}, attention recall ${recall.toFixed(3)}, output error ${attention.relativeError(r.output, dense).toExponential(2)}`,
    );
  }

  const n = 16384;
  const needle = 1234;
  const d = syntheticLayer({ heads: 9, kvHeads: 3, headDim: 64, tokens: n, seed: 12, needle, queryRows: 1 });
  const q = lastQuery(d);
  let exact!: attention.DenseOutput;
  const denseMs2 = medianMs(() => (exact = attention.dense(q, d.k, d.v, shape)), 5);
  const budget = Math.round(n * 0.05);
  log(`  decode over ${n.toLocaleString()} cached keys with a needle at position ${needle}: dense ${denseMs2.toFixed(2)} ms`);
  for (const m of [
    { pattern: 'streaming', sink: 4, recent: budget },
    { pattern: 'quest', budget, pageSize: 16 },
    { pattern: 'retrieval', budget },
  ] as attention.SparseMethod[]) {
    const r = attention.sparse(q, d.k, d.v, { ...shape, ...m });
    const recall = attention.recall(q, d.k, { ...shape, indices: r.selection! });
    const found = r.selection!.every((keys) => keys.includes(needle));
    log(
      `  ${m.pattern.padEnd(9)} touches ${(r.density * 100).toFixed(1)}% of keys, attention recall ${recall.toFixed(3)}, needle ${found ? 'found' : 'missed'}, output error ${attention.relativeError(r.output, exact).toExponential(2)}`,
    );
    if (m.pattern === 'quest') check('Quest keeps the needle for every head with recall ≥ 0.9 at a 5% budget', found && recall >= 0.9);
    if (m.pattern === 'retrieval') check('retrieval (IVF over the keys) keeps the needle for every head', found);
    if (m.pattern === 'streaming') check('a sinks + window policy misses the far needle (why retrieval heads exist)', !found);
  }
}
