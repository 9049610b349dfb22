/**
 * `quarry attn bench`: dense vs sparse attention on one layer — prefill
 * patterns and decode selectors, each with its speedup over dense, attention
 * recall, output error and density — on a real-model dump or synthetic Q/K/V.
 * @internal
 * @module
 */
import type { Command } from 'commander';
import * as attention from './attention.js';
import { lastQuery, medianMs, readDumpLayer, syntheticLayer, table, type LayerTensors } from './cli-tensors.js';

function intOption(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${v}`);
  return n;
}

/** One method's figures. */
export interface AttnBenchRow {
  phase: 'prefill' | 'decode';
  method: string;
  ms: number;
  speedup: number;
  density: number;
  recall: number;
  error: number;
}

type Method = { label: string; opts: attention.SparseMethod };

/** Prefill patterns with budgets that scale with the sequence (MInference uses ~1000 columns and ~6000 diagonals at 128k). */
export function prefillMethods(tokens: number): Method[] {
  const scaled = (x: number, min: number) => Math.max(min, Math.round((x * tokens) / 131072));
  return [
    { label: 'a-shape (64 + 1024)', opts: { pattern: 'a-shape', sink: 64, window: 1024 } },
    {
      label: `vertical-slash (${scaled(1000, 256)} × ${scaled(6096, 512)})`,
      opts: { pattern: 'vertical-slash', vertical: scaled(1000, 256), slash: scaled(6096, 512), lastQ: 64 },
    },
    { label: 'block-topk (γ 0.9)', opts: { pattern: 'block-topk', gamma: 0.9 } },
    { label: 'block-topk (γ 0.9, i4 estimate)', opts: { pattern: 'block-topk', gamma: 0.9, estimate: 'i4' } },
    { label: 'block-topk (γ 0.95, mean-query estimate)', opts: { pattern: 'block-topk', gamma: 0.95, estimate: 'mean-query' } },
  ];
}

/** Decode selectors at a key budget of `budget` keys. */
export function decodeMethods(tokens: number, budget: number): Method[] {
  return [
    { label: `streaming (4 + ${budget})`, opts: { pattern: 'streaming', sink: 4, recent: budget } },
    { label: `quest (${budget} keys, page 16)`, opts: { pattern: 'quest', budget, pageSize: 16 } },
    { label: `squeezed (${budget} keys, ${Math.ceil(tokens / 16)} clusters)`, opts: { pattern: 'squeezed', budget } },
    { label: `retrieval (${budget} keys, IVF, 10% of lists)`, opts: { pattern: 'retrieval', budget } },
    { label: `top-k oracle (${budget} keys)`, opts: { pattern: 'top-k', budget } },
  ];
}

/** Runs dense and each method on `t`; prefill over all positions, decode at the last. */
export function benchAttention(t: LayerTensors, o: { reps: number; budget: number; prefill: boolean }): AttnBenchRow[] {
  const shape = { heads: t.heads, kvHeads: t.kvHeads, headDim: t.headDim };
  const rows: AttnBenchRow[] = [];
  const run = (phase: AttnBenchRow['phase'], q: Float32Array, methods: Method[]) => {
    let dense!: attention.DenseOutput;
    const denseMs = medianMs(() => (dense = attention.dense(q, t.k, t.v, shape)), o.reps);
    rows.push({ phase, method: 'dense', ms: denseMs, speedup: 1, density: 1, recall: 1, error: 0 });
    for (const m of methods) {
      const opts = { ...shape, ...m.opts } as attention.SparseOptions;
      let r!: attention.AttentionResult;
      const ms = medianMs(() => (r = attention.sparse(q, t.k, t.v, opts)), o.reps);
      rows.push({
        phase,
        method: m.label,
        ms,
        speedup: denseMs / ms,
        density: r.density,
        recall: attention.recall(q, t.k, opts as attention.RecallOptions),
        error: attention.relativeError(r.output, dense),
      });
    }
  };
  if (o.prefill) run('prefill', t.q, prefillMethods(t.tokens));
  run('decode', lastQuery(t), decodeMethods(t.tokens, o.budget));
  return rows;
}

export function addAttnCommands(program: Command) {
  const attn = program.command('attn').description('dense and sparse attention: MInference, FlexPrefill, Quest, Squeezed, DuoAttention');
  attn
    .command('bench')
    .description('speedup, attention recall, output error and density of each sparse method vs dense attention')
    .option('--dump <dir>', 'Q/K/V dump directory (meta.json + L{nn}.{q,k,v}.f32, as benches/model/ writes)')
    .option('--layer <n>', 'dump layer', intOption, 0)
    .option('--tokens <n>', 'sequence length (dump: first n positions)', intOption)
    .option('--heads <n>', 'synthetic: query heads', intOption, 9)
    .option('--kv-heads <n>', 'synthetic: KV heads', intOption, 3)
    .option('--head-dim <n>', 'synthetic: head dimension', intOption, 64)
    .option('--needle <pos>', 'synthetic: plant a key at this position that the last query must find', intOption)
    .option('--budget <n>', 'decode key budget (default 5% of the tokens)', intOption)
    .option('--no-prefill', 'decode only')
    .option('--reps <n>', 'timed runs per method (median)', intOption, 3)
    .option('--json', 'print JSON')
    .action(
      (o: {
        dump?: string;
        layer: number;
        tokens?: number;
        heads: number;
        kvHeads: number;
        headDim: number;
        needle?: number;
        budget?: number;
        prefill: boolean;
        reps: number;
        json?: boolean;
      }) => {
        const t = o.dump
          ? readDumpLayer(o.dump, o.layer, o.tokens)
          : syntheticLayer({ heads: o.heads, kvHeads: o.kvHeads, headDim: o.headDim, tokens: o.tokens ?? 4096, seed: 1, needle: o.needle });
        const budget = o.budget ?? Math.max(16, Math.round(t.tokens * 0.05));
        const rows = benchAttention(t, { reps: Math.max(1, o.reps), budget, prefill: o.prefill });
        if (o.json) {
          console.log(JSON.stringify({ source: t.source, tokens: t.tokens, heads: t.heads, kvHeads: t.kvHeads, headDim: t.headDim, rows }, null, 2));
          return;
        }
        console.log(`${t.source}: ${t.tokens} tokens, ${t.heads} query / ${t.kvHeads} KV heads, head_dim ${t.headDim}`);
        console.log(
          table([
            ['phase', 'method', 'ms', 'speedup', 'density', 'recall', 'rel err'],
            ...rows.map((r) => [r.phase, r.method, r.ms.toFixed(2), `${r.speedup.toFixed(2)}×`, r.density.toFixed(3), r.recall.toFixed(4), r.error.toExponential(2)]),
          ], 2),
        );
      },
    );
}
