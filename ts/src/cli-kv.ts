/**
 * `quarry kv bench`: every KV-cache method on one set of K/V — storage per
 * token, reconstruction and attention error against f32, quantize
 * throughput and decode latency — on a real-model dump or synthetic tensors.
 * @internal
 * @module
 */
import type { Command } from 'commander';
import { relativeError } from './attention.js';
import { lastQuery, medianMs, readDumpLayer, readDumpMeta, syntheticLayer, table, type LayerTensors } from './cli-tensors.js';
import { KvCache, type KvMethod } from './kv.js';

const DEFAULT_METHODS = 'f32,f16,q8_0,q4_0,kivi-2,kivi-4,kvquant-3,gear-4,rotate-4,mikv-2,h2o';

function intOption(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${v}`);
  return n;
}

/** `kivi-2` -> kivi at 2 bits; `q4_0` -> q4_0 at its own width. */
function parseMethod(spec: string): { method: KvMethod; bits?: number; label: string } {
  const m = /^([a-z0-9_]+?)(?:-(\d+))?$/.exec(spec.trim());
  if (!m) throw new Error(`bad method '${spec}' (e.g. kivi-2, q4_0, f16)`);
  return { method: m[1] as KvMethod, bits: m[2] === undefined ? undefined : Number(m[2]), label: spec.trim() };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

/** One method on one layer. */
export interface KvBenchRow {
  method: string;
  layer: string;
  bytesPerToken: number;
  vsF16: number;
  keyError: number;
  valueError: number;
  attnError: number;
  attnCosine: number;
  quantizeGBps: number;
  attendMs: number;
}

/** Measures `specs` on the tensors of one layer. */
export function benchLayer(t: LayerTensors, specs: string[], reps: number): KvBenchRow[] {
  const q = lastQuery(t);
  const shape = { layers: 1, kvHeads: t.kvHeads, headDim: t.headDim };
  const exact = new KvCache({ ...shape, method: 'f32' });
  exact.append(0, t.k, t.v);
  const want = exact.attend(0, q);
  const f16Bytes = 2 * 2 * t.kvHeads * t.headDim;
  return specs.map((spec) => {
    const { method, bits, label } = parseMethod(spec);
    const cache = new KvCache({ ...shape, method, bits });
    const t0 = performance.now();
    cache.append(0, t.k, t.v);
    const secs = (performance.now() - t0) / 1000;
    const { keys, values } = cache.dequantize(0);
    // The first attend is the measured one (MiKV/H2O then update their importance ranking).
    const got = cache.attend(0, q);
    const attendMs = medianMs(() => cache.attend(0, q), reps);
    const bytesPerToken = cache.bytes() / t.tokens;
    return {
      method: label,
      layer: t.source,
      bytesPerToken,
      vsF16: bytesPerToken / f16Bytes,
      keyError: relativeError(keys, t.k),
      valueError: relativeError(values, t.v),
      attnError: relativeError(got, want),
      attnCosine: cosine(got, want),
      quantizeGBps: ((t.k.length + t.v.length) * 4) / secs / 1e9,
      attendMs,
    };
  });
}

/** Mean of each numeric column per method over layers. */
function meanByMethod(rows: KvBenchRow[]): KvBenchRow[] {
  const methods = [...new Set(rows.map((r) => r.method))];
  return methods.map((method) => {
    const rs = rows.filter((r) => r.method === method);
    const mean = (f: (r: KvBenchRow) => number) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    return {
      method,
      layer: `mean of ${rs.length}`,
      bytesPerToken: mean((r) => r.bytesPerToken),
      vsF16: mean((r) => r.vsF16),
      keyError: mean((r) => r.keyError),
      valueError: mean((r) => r.valueError),
      attnError: mean((r) => r.attnError),
      attnCosine: mean((r) => r.attnCosine),
      quantizeGBps: mean((r) => r.quantizeGBps),
      attendMs: mean((r) => r.attendMs),
    };
  });
}

export function addKvCommands(program: Command) {
  const kv = program.command('kv').description('KV-cache quantization: KIVI, KVQuant, GEAR, RotateKV, MiKV, llama.cpp blocks');
  kv.command('bench')
    .description('storage, error vs f32 and decode speed of each KV-cache method on real-model or synthetic K/V')
    .option('--dump <dir>', 'Q/K/V dump directory (meta.json + L{nn}.{q,k,v}.f32, as benches/model/ writes)')
    .option('--layers <list>', 'dump layers to use (comma-separated)', '0')
    .option('--tokens <n>', 'cached tokens (dump: first n positions; synthetic: length)', intOption)
    .option('--heads <n>', 'synthetic: query heads', intOption, 9)
    .option('--kv-heads <n>', 'synthetic: KV heads', intOption, 3)
    .option('--head-dim <n>', 'synthetic: head dimension', intOption, 64)
    .option('--methods <list>', 'method[-bits] list', DEFAULT_METHODS)
    .option('--reps <n>', 'timed decode steps per method (median)', intOption, 7)
    .option('--json', 'print JSON')
    .action(
      (o: { dump?: string; layers: string; tokens?: number; heads: number; kvHeads: number; headDim: number; methods: string; reps: number; json?: boolean }) => {
        const specs = o.methods.split(',').filter(Boolean);
        const layers: LayerTensors[] = o.dump
          ? o.layers.split(',').map((l) => readDumpLayer(o.dump!, intOption(l), o.tokens))
          : [syntheticLayer({ heads: o.heads, kvHeads: o.kvHeads, headDim: o.headDim, tokens: o.tokens ?? 4096, seed: 1 })];
        const rows = layers.flatMap((t) => benchLayer(t, specs, Math.max(1, o.reps)));
        const summary = meanByMethod(rows);
        const t = layers[0];
        if (o.json) {
          console.log(JSON.stringify({ source: o.dump ? readDumpMeta(o.dump) : t.source, tokens: t.tokens, rows, summary }, null, 2));
          return;
        }
        console.log(
          `${layers.map((l) => l.source).join(', ')}: ${t.tokens} tokens, ${t.heads} query / ${t.kvHeads} KV heads, head_dim ${t.headDim}; decode query = last position`,
        );
        console.log(
          table([
            ['method', 'B/token', '× f16', 'K err', 'V err', 'attn err', 'attn cos', 'quantize GB/s', 'attend ms'],
            ...summary.map((r) => [
              r.method,
              r.bytesPerToken.toFixed(1),
              r.vsF16.toFixed(3),
              r.keyError.toFixed(4),
              r.valueError.toFixed(4),
              r.attnError.toFixed(4),
              r.attnCosine.toFixed(4),
              r.quantizeGBps.toFixed(2),
              r.attendMs.toFixed(3),
            ]),
          ]),
        );
      },
    );
}
