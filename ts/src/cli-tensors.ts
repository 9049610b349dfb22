/**
 * Q/K/V tensors for `quarry kv bench` and `quarry attn bench`: read from a
 * real-model dump directory (the format `benches/model/` writes: `meta.json`
 * plus raw little-endian f32 `L{nn}.{q,k,v}.f32`, `[heads, tokens, headDim]`),
 * or generated with the structure real attention has (RoPE-rotated content
 * vectors, so scores depend on distance; an attention sink; a few outlier
 * key channels; an optional planted needle).
 * @internal
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Deterministic pseudo-random numbers (mulberry32), so demo runs are comparable. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One layer's tensors. */
export interface LayerTensors {
  heads: number;
  kvHeads: number;
  headDim: number;
  tokens: number;
  /** `[heads, qRows, headDim]` post-RoPE queries of the last `qRows` positions (all of them for a prefill). */
  q: Float32Array;
  qRows: number;
  /** `[kvHeads, tokens, headDim]` post-RoPE keys and values. */
  k: Float32Array;
  v: Float32Array;
  /** Where the tensors came from, for the report. */
  source: string;
}

interface DumpMeta {
  model?: string;
  layers: number;
  heads: number;
  kv_heads: number;
  head_dim: number;
  tokens: number;
}

/** Reads `meta.json` of a dump directory. */
export function readDumpMeta(dir: string): DumpMeta {
  const path = join(dir, 'meta.json');
  if (!existsSync(path)) throw new Error(`${dir} has no meta.json (not a Q/K/V dump directory)`);
  return JSON.parse(readFileSync(path, 'utf8')) as DumpMeta;
}

/** The first `tokens` positions of `[heads, total, d]` as `[heads, tokens, d]`. */
function prefix(x: Float32Array, heads: number, total: number, tokens: number, d: number): Float32Array {
  if (tokens === total) return x;
  const out = new Float32Array(heads * tokens * d);
  for (let h = 0; h < heads; h++) out.set(x.subarray(h * total * d, (h * total + tokens) * d), h * tokens * d);
  return out;
}

/** Layer `layer` of a dump, cut to its first `tokens` positions (default all). */
export function readDumpLayer(dir: string, layer: number, tokens?: number): LayerTensors {
  const m = readDumpMeta(dir);
  if (!Number.isInteger(layer) || layer < 0 || layer >= m.layers) throw new Error(`layer ${layer} not in 0..${m.layers - 1}`);
  const n = Math.min(tokens ?? m.tokens, m.tokens);
  const file = (name: string, heads: number) => {
    const buf = readFileSync(join(dir, `L${String(layer).padStart(2, '0')}.${name}.f32`));
    const want = heads * m.tokens * m.head_dim * 4;
    if (buf.byteLength !== want) throw new Error(`L${layer}.${name}.f32 has ${buf.byteLength} bytes, meta.json implies ${want}`);
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    return prefix(all, heads, m.tokens, n, m.head_dim);
  };
  return {
    heads: m.heads,
    kvHeads: m.kv_heads,
    headDim: m.head_dim,
    tokens: n,
    q: file('q', m.heads),
    qRows: n,
    k: file('k', m.kv_heads),
    v: file('v', m.kv_heads),
    source: `${m.model ?? dir} layer ${layer}`,
  };
}

/** Options of {@link syntheticLayer}. */
export interface SyntheticOptions {
  heads: number;
  kvHeads: number;
  headDim: number;
  tokens: number;
  seed: number;
  /** Plant a key far back that the last query strongly attends to. */
  needle?: number;
  /** Queries only for the last this many positions (default all: a prefill). */
  queryRows?: number;
}

/**
 * Attention-like synthetic tensors: per head a content direction rotated by
 * RoPE (θ = 10000) at each position plus noise, so scores fall off with
 * distance as in real heads (local window, diagonals); token 0 is an
 * attention sink (large on the slowest-rotating channel, on which every query
 * leans); two key channels carry large outliers (as real keys do).
 */
export function syntheticLayer(o: SyntheticOptions): LayerTensors {
  const r = rng(o.seed);
  const normal = () => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const { heads, kvHeads, headDim: d, tokens: n } = o;
  const half = d / 2;
  const rope = (x: Float32Array, pos: number) => {
    for (let i = 0; i < half; i++) {
      const w = pos * Math.pow(10000, (-2 * i) / d);
      const [c, s] = [Math.cos(w), Math.sin(w)];
      const [a, b] = [x[i], x[i + half]];
      x[i] = a * c - b * s;
      x[i + half] = b * c + a * s;
    }
  };
  const content = Array.from({ length: kvHeads }, () => Float32Array.from({ length: d }, normal));
  const k = new Float32Array(kvHeads * n * d);
  const v = new Float32Array(kvHeads * n * d);
  const row = new Float32Array(d);
  for (let g = 0; g < kvHeads; g++) {
    for (let j = 0; j < n; j++) {
      for (let c = 0; c < d; c++) row[c] = content[g][c] * 0.5 + normal() * 0.8;
      rope(row, j);
      // The sink: large on the slowest-rotating channel, which every query also leans on.
      if (j === 0) row[half - 1] += 4;
      row[1] += 3 * normal(); // outlier channels
      row[half + 3] += 2 * normal();
      k.set(row, (g * n + j) * d);
      for (let c = 0; c < d; c++) v[(g * n + j) * d + c] = normal();
    }
  }
  const rows = Math.min(o.queryRows ?? n, n);
  const q = new Float32Array(heads * rows * d);
  const group = heads / kvHeads;
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group);
    for (let i = 0; i < rows; i++) {
      for (let c = 0; c < d; c++) row[c] = content[g][c] * 0.5 + normal() * 0.8;
      rope(row, n - rows + i);
      row[half - 1] += 1.5;
      q.set(row, (h * rows + i) * d);
    }
  }
  if (o.needle !== undefined && o.needle < n) {
    // The last query of every head points at one far key.
    for (let g = 0; g < kvHeads; g++) {
      const dir = Float32Array.from({ length: d }, normal);
      const norm = Math.hypot(...dir);
      for (let c = 0; c < d; c++) k[(g * n + o.needle) * d + c] = (dir[c] / norm) * 12;
      for (let h = g * group; h < (g + 1) * group; h++) {
        for (let c = 0; c < d; c++) q[(h * rows + rows - 1) * d + c] = (dir[c] / norm) * 12;
      }
    }
  }
  return { heads, kvHeads, headDim: d, tokens: n, q, qRows: rows, k, v, source: `synthetic (seed ${o.seed}${o.needle !== undefined ? `, needle at ${o.needle}` : ''})` };
}

/** The decode query of the last position: `[heads, headDim]`. */
export function lastQuery(t: LayerTensors): Float32Array {
  const d = t.headDim;
  const out = new Float32Array(t.heads * d);
  for (let h = 0; h < t.heads; h++) out.set(t.q.subarray((h * t.qRows + t.qRows - 1) * d, (h * t.qRows + t.qRows) * d), h * d);
  return out;
}

/** Median wall time in ms of `reps` runs of `fn` (after one warm-up). */
export function medianMs(fn: () => void, reps: number): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** Table rows, first row the header; the first `left` columns left-aligned, the rest right-aligned. */
export function table(rows: (string | number)[][], left = 1): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0].map((_, c) => Math.max(...cells.map((r) => r[c]?.length ?? 0)));
  return cells.map((r) => r.map((x, c) => (c < left ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ')).join('\n');
}
