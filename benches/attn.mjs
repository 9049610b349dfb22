// `npm run bench:attn`: sparse attention on real-model heads (SmolLM2-135M
// Q/K/V dumps; `--model smollm2-yarn8`: the same model with YaRN RoPE scaling ×8;
// `--model gemma3`: Gemma 3 270M's global-attention layers, a model trained on
// a 32k window). Sets up what it needs
// (benches/model/setup.sh, the long 64k-token dump), builds quarry-attn's
// examples, then
//   * prefill table at 8k / 32k / 64k tokens: quarry dense vs PyTorch CPU
//     scaled_dot_product_attention (same heads, same threads, same run) and
//     every sparse method (speedup over quarry dense, recall, error, density);
//   * decode table at 32k (real) and 128k (tiled real + planted needle)
//     cached tokens: dense decode, Quest, RetrievalAttention, Squeezed, exact
//     top-k oracle;
// and writes the tables to benches/RESULTS.md ("Sparse attention" section,
// or "Sparse attention, Gemma 3 270M", replaced on each run). See benches/ATTN.md.
//
//   node benches/attn.mjs [--model smollm2|smollm2-yarn8|gemma3] [--lengths 8192,32768,65536] [--long-layers 0,2,10,18]
//                         [--no-long-dump] [--skip-setup] [--no-write] [--threads 2]
//                         [--layers 2] [--append-run benches/.data/runs/attn-...] [--h2h-rounds 5]
//                         [--report-only --append-run DIR]
// --layers restricts the long-dump layers measured; --append-run starts from
// the JSON lines of an earlier run (e.g. one over layers dumped before), so
// the report covers both.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { BENCH_DIR, DATA_DIR, ROOT, log, parseArgs } from './common.mjs';

const args = parseArgs(process.argv.slice(2));
// The models whose long dumps the bench can measure. SmolLM2 is the main one
// (its 4096-token dump of all layers also serves the KV bench); Gemma 3 270M
// was trained on a 32k window, so 32k is inside it; only its global layers
// (every sixth) attend beyond a 512-token sliding window.
const MODELS = {
  smollm2: {
    label: 'SmolLM2-135M-Instruct (Q4_1 GGUF, f32 forward)', gguf: 'SmolLM2-135M-Instruct.Q4_1.gguf',
    name: 'smollm2-135m-instruct-q4_1', longPrefix: 'smollm2-long', longLayers: '0,2,10,18', setupArgs: [],
    // all 9 query / 3 KV heads at 8k; the first GQA group beyond (2 cores)
    headsFor: (n) => (n <= 8192 ? 9 : 3), h2hRounds: 5, decode4k: true, marker: 'attn',
  },
  // The same model run 8× past its window with YaRN RoPE scaling (transformers' 'yarn'
  // rope type, factor 8, no fine-tuning): 64k tokens at the relative distances it was
  // trained on, the way long-context models reach 64k+. Prefill only, 32k and 64k.
  'smollm2-yarn8': {
    label: 'SmolLM2-135M-Instruct (Q4_1 GGUF, f32 forward) with YaRN RoPE scaling ×8', gguf: 'SmolLM2-135M-Instruct.Q4_1.gguf',
    name: 'smollm2-135m-instruct-q4_1', longPrefix: 'smollm2-yarn8', longLayers: '0,2,10,18', setupArgs: [], dumpArgs: ['--yarn', '8'],
    title: 'SmolLM2-135M-Instruct with YaRN ×8',
    headsFor: () => 3, h2hRounds: 0, decode4k: false, decodeLong: false, lengths: '32768,65536', marker: 'attn-yarn8',
  },
  gemma3: {
    label: 'Gemma 3 270M (Q4_K_M GGUF, f32 forward), global-attention layers', gguf: 'gemma-3-270m-q4_k_m.gguf',
    name: 'gemma-3-270m-q4_k_m', longPrefix: 'gemma3-long', longLayers: '5,11,17', setupArgs: ['--gemma3'],
    // 4 query heads over 1 KV head of 256 channels: one GQA group, all heads
    headsFor: () => 4, h2hRounds: 4, decode4k: false, marker: 'attn-gemma3',
  },
};
const modelKey = String(args.model ?? 'smollm2');
const MODEL = MODELS[modelKey];
if (!MODEL) throw new Error(`--model ${modelKey}: one of ${Object.keys(MODELS).join(', ')}`);
const threads = Number(args.threads ?? 2);
const lengths = String(args.lengths ?? MODEL.lengths ?? '8192,32768,65536').split(',').map(Number);
const longLayers = String(args['long-layers'] ?? MODEL.longLayers);
const PY = join(DATA_DIR, 'venv-model', 'bin', 'python');
const MODEL_DIR = join(DATA_DIR, 'model');
const SHORT = join(MODEL_DIR, 'smollm2-135m-instruct-q4_1');
// --long-tokens picks the long dump (default 65536; e.g. 32768 for deeper
// layers at a quarter of the forward-pass cost).
const longTokens = Number(args['long-tokens'] ?? 65536);
const LONG = join(MODEL_DIR, `${MODEL.longPrefix}-${longTokens}`);
const startedAt = new Date();
const runDir = join(DATA_DIR, 'runs', `attn-${startedAt.toISOString().replace(/[:.]/g, '-')}`);
mkdirSync(runDir, { recursive: true });
if (args['append-run']) {
  for (const name of ['prefill.jsonl', 'torch.jsonl', 'decode.jsonl', ...(args['report-only'] ? ['h2h.jsonl'] : [])]) {
    const src = join(args['append-run'], name);
    if (existsSync(src)) writeFileSync(join(runDir, name), readFileSync(src));
  }
}
const env = { ...process.env, RAYON_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
const loadSamples = [];
const sample = (what) => loadSamples.push({ what, t: new Date().toISOString(), load: loadavg().map((x) => +x.toFixed(2)) });

function run(cmd, argv, what) {
  log(`$ ${cmd} ${argv.join(' ')}`);
  sample(`${what} start`);
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, { cwd: ROOT, env, stdio: 'inherit' });
  sample(`${what} end`);
  if (r.status !== 0) throw new Error(`${what} failed (${cmd} exit ${r.status})`);
  return (Date.now() - t0) / 1e3;
}

function readJsonl(f) {
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// --report-only (with --append-run): no measurements, the report of that run
// is written again (e.g. after a change to the report itself).
const measure = !args['report-only'];
if (!measure && !args['append-run']) throw new Error('--report-only needs --append-run DIR');
const timings = {};
sample('start');
if (measure && !args['skip-setup']) timings.setup = run('sh', ['benches/model/setup.sh', ...MODEL.setupArgs], 'model setup');
const gguf = join(MODEL_DIR, 'dl', MODEL.gguf);
let sotu = join(ROOT, 'node_modules', '@stdlib', 'datasets-sotu', 'data');
if (!existsSync(join(sotu, '2021_joseph_r_biden_d.txt'))) sotu = join(MODEL_DIR, 'dl', 'sotu', 'package', 'data');
if (measure && !args['no-long-dump']) {
  // Idempotent: returns at once when the dump with these layers is complete.
  // SmolLM2's first 4096 tokens are checked against its 4096-token dump.
  const prefix = modelKey === 'smollm2' ? ['--prefix-dump', SHORT] : [];
  timings.longDump = run(PY, ['benches/model/dump_long.py', '--gguf', gguf, '--name', MODEL.name, '--sotu-dir', sotu, '--tokens', String(longTokens),
    '--layers', longLayers, '--threads', String(threads), ...prefix, ...(MODEL.dumpArgs ?? []), '--out', LONG], 'long dump');
}
if (measure) timings.build = run('cargo', ['build', '--release', '-p', 'quarry-attn', '--examples'], 'cargo build');
const EX = (name) => join(ROOT, 'target', 'release', 'examples', name);

const longMeta = existsSync(join(LONG, 'meta.json')) ? JSON.parse(readFileSync(join(LONG, 'meta.json'), 'utf8')) : null;
const onlyLayers = args.layers ? String(args.layers).split(',').map(Number) : null;
const layers = longMeta ? longMeta.dumped_layers.filter((l) => !onlyLayers || onlyLayers.includes(l)) : [];
if (!longMeta || !layers.length) log('no long dump: the prefill table and the 32k/128k decode rows need it');

// ---- prefill ----
const prefillJson = join(runDir, 'prefill.jsonl');
const torchJson = join(runDir, 'torch.jsonl');
const headsFor = MODEL.headsFor;
for (const n of lengths) {
  if (!measure || !longMeta || longMeta.tokens < n || !layers.length) continue;
  const common = ['--tokens', String(n), '--heads', String(headsFor(n)), '--layers', layers.join(',')];
  timings[`torch ${n}`] = run(PY, ['benches/attn_torch_real.py', LONG, ...common, '--threads', String(threads), '--json', torchJson], `torch sdpa ${n}`);
  timings[`prefill ${n}`] = run(EX('prefill'), [LONG, ...common, '--calib', '8192', '--json', prefillJson], `quarry prefill ${n}`);
}

// ---- dense vs torch, head to head ----
// One timed call per system and process, alternating, several rounds: on a
// shared machine a single pair can land in a busy spell for one side only.
const h2hJson = join(runDir, 'h2h.jsonl');
const H2H_ROUNDS = Number(args['h2h-rounds'] ?? MODEL.h2hRounds);
for (const n of lengths.filter((x) => x <= 32768)) {
  if (!measure || !longMeta || longMeta.tokens < n || !layers.length || !H2H_ROUNDS) continue;
  const common = ['--tokens', String(n), '--heads', String(headsFor(n)), '--layers', layers.join(',')];
  const rounds = n <= 8192 ? H2H_ROUNDS : Math.max(1, Math.ceil(H2H_ROUNDS / 2));
  for (let r = 0; r < rounds; r++) {
    const tj = join(runDir, `h2h-torch-${n}-${r}.jsonl`);
    const qj = join(runDir, `h2h-quarry-${n}-${r}.jsonl`);
    timings[`h2h ${n} torch ${r}`] = run(PY, ['benches/attn_torch_real.py', LONG, ...common, '--threads', String(threads), '--json', tj], `h2h torch ${n} round ${r}`);
    timings[`h2h ${n} quarry ${r}`] = run(EX('prefill'), [LONG, ...common, '--dense-only', '--json', qj], `h2h quarry ${n} round ${r}`);
    const sum = (rows) => rows.reduce((a, x) => a + x.seconds, 0);
    const row = { tokens: n, round: r, torch_s: sum(readJsonl(tj)), quarry_s: sum(readJsonl(qj)) };
    writeFileSync(h2hJson, JSON.stringify(row) + '\n', { flag: 'a' });
  }
}

// ---- decode ----
const decodeJson = join(runDir, 'decode.jsonl');
if (!args['append-run'] && MODEL.decode4k) timings['decode 4k'] = run(EX('decode'), [SHORT, '--layers', '2,10,18,26', '--json', decodeJson], 'decode 4k (depth)');
if (measure && longMeta && layers.length && MODEL.decodeLong !== false) {
  if (longMeta.tokens >= 32768) timings['decode 32k'] = run(EX('decode'), [LONG, '--tokens', '32768', '--layers', layers.join(','), '--json', decodeJson], 'decode 32k');
  timings['decode 128k'] = run(EX('decode'), [LONG, '--tokens', String(longMeta.tokens), '--tile-to', '131072', '--needle', '1000',
    '--layers', layers.join(','), '--reps', '3', '--json', decodeJson], 'decode 128k');
}
sample('end');
let wallS = (Date.now() - startedAt.getTime()) / 1e3;
if (!measure && existsSync(join(args['append-run'], 'summary.json'))) {
  // the measured run's own figures
  const old = JSON.parse(readFileSync(join(args['append-run'], 'summary.json'), 'utf8'));
  wallS = old.wallS;
  Object.assign(timings, old.timings);
  loadSamples.splice(0, loadSamples.length, ...old.loadSamples);
}

// ---- report ----
const pre = readJsonl(prefillJson);
const tor = readJsonl(torchJson);
const dec = readJsonl(decodeJson);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
const f = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '—');
const pct = (x) => `${(100 * x).toFixed(2)}%`;
let cpuModel = cpus()[0]?.model ?? 'unknown';
try {
  const m = /Model name:\s*(.+)/.exec(execFileSync('lscpu', { encoding: 'utf8' }));
  if (m) cpuModel = m[1].trim();
} catch {}
const L = [];
const p = (s = '') => L.push(s);
const command = `node benches/attn.mjs ${process.argv.slice(2).join(' ')}`.trim();
p(`## Sparse attention${modelKey === 'smollm2' ? '' : `, ${MODEL.title ?? MODEL.label.split(' (')[0]}`} — ${startedAt.toISOString().replace(/\.\d+Z$/, 'Z')}`);
p();
p(`Command: \`npm run bench:attn\` (\`${command}\`), ${f(wallS / 60, 1)} min wall. Machine: ${cpuModel}, ${cpus().length} cores, ${threads} threads for quarry (rayon) and torch. ` +
  `Load average (1/5/15 min) at start ${loadSamples[0].load.join(' / ')}, at end ${loadSamples.at(-1).load.join(' / ')}; ` +
  `the machine is shared with other jobs, so absolute times are contended; ratios within one step (quarry vs torch, sparse vs dense) ran back to back.`);
p();
if (longMeta) {
  const prefixNote = longMeta.prefix_check ? `; first 4096 tokens match the 4096-token dump to ${JSON.stringify(longMeta.prefix_check.max_rel_err)} relative` : '';
  const headCounts = [...new Set(lengths.map((n) => headsFor(n)))];
  const group = longMeta.heads / longMeta.kv_heads;
  const headsNote = headCounts.length === 1 && headCounts[0] >= longMeta.heads
    ? `all ${longMeta.heads} query / ${longMeta.kv_heads} KV heads (head_dim ${longMeta.head_dim}) at every length`
    : headCounts.length === 1
    ? `the first ${headCounts[0] / group} GQA group(s) (${headCounts[0]} query heads, head_dim ${longMeta.head_dim}) at every length`
    : `all ${longMeta.heads} query / ${longMeta.kv_heads} KV heads at 8k, the first GQA group (${longMeta.heads / longMeta.kv_heads} query heads, 1 KV head) at 32k and 64k`;
  p(`Data: ${MODEL.label} Q/K/V of layers ${[...new Set(pre.map((r) => r.layer))].join(', ')} over the first ${longMeta.tokens} tokens of State of the Union addresses ` +
    `(\`benches/model/dump_long.py\`; 8k and 32k are prefixes; the model's trained window is ${longMeta.context_length}, ${longMeta.yarn_factor ? `RoPE scaled by YaRN ×${longMeta.yarn_factor} (${longMeta.rope})` : 'RoPE extrapolated beyond it'}${prefixNote}). ` +
    `Heads: ${headsNote}.`);
  p();
}
if (pre.length) {
  p('### Prefill (causal): quarry dense vs torch SDPA, sparse methods vs quarry dense');
  p();
  p('| tokens | layer | method | seconds | speedup vs quarry dense | recall | worst head | output rel. err | density |');
  p('| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const n of lengths) {
    for (const layer of [...new Set(pre.filter((r) => r.tokens === n).map((r) => r.layer))]) {
      const t = tor.find((r) => r.tokens === n && r.layer === layer);
      const rows = pre.filter((r) => r.tokens === n && r.layer === layer);
      if (!rows.length) continue;
      const dense = rows[0].dense_seconds;
      if (t) p(`| ${n} | ${layer} | torch SDPA (flash, enable_gqa; check vs f64 ${t.check_rel_err_f64.toExponential(1)}) | ${f(t.seconds, 2)} | ${f(dense / t.seconds, 2)}× | 1 | 1 | — | 1 |`);
      for (const r of rows) {
        if (r.extra?.oracle) {
          p(`| ${n} | ${layer} | ${r.method} | — | ≤ ${f(1 / r.density, 2)}× | ${f(r.recall, 2)} | — | — | ${f(r.density, 3)} |`);
          continue;
        }
        p(`| ${n} | ${layer} | ${r.method}${r.extra?.choice ? ` → ${r.extra.choice.join(', ')}` : ''} | ${f(r.seconds, 2)} | ${f(r.speedup, 2)}× | ${f(r.recall, 4)} | ${f(r.recall_min_head, 4)} | ${r.out_err.toExponential(2)} | ${f(r.density, 3)} |`);
      }
    }
  }
  p();
  p('Mean over layers:');
  p();
  p('| tokens | method | speedup vs quarry dense | recall | worst head | output rel. err | density |');
  p('| ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const n of lengths) {
    const rows = pre.filter((r) => r.tokens === n);
    const t = tor.filter((r) => r.tokens === n);
    if (t.length) {
      const qd = rows.filter((r) => r.method === 'quarry dense');
      p(`| ${n} | torch SDPA (quarry dense ${f(mean(qd.map((r) => r.seconds)), 2)} s, torch ${f(mean(t.map((r) => r.seconds)), 2)} s) | ${f(mean(qd.map((r) => r.seconds)) / mean(t.map((r) => r.seconds)), 2)}× | | | | |`);
    }
    const methods = [...new Set(rows.map((r) => r.method))];
    for (const m of methods) {
      const rs = rows.filter((r) => r.method === m);
      if (rs[0].extra?.oracle) {
        p(`| ${n} | ${m} | ≤ ${f(1 / mean(rs.map((r) => r.density)), 2)}× | ${f(rs[0].recall, 2)} | — | — | ${f(mean(rs.map((r) => r.density)), 3)} |`);
        continue;
      }
      const sp = mean(rs.map((r) => r.dense_seconds)) / mean(rs.map((r) => r.seconds));
      p(`| ${n} | ${m} | ${f(sp, 2)}× | ${f(mean(rs.map((r) => r.recall)), 4)} | ${f(Math.min(...rs.map((r) => r.recall_min_head)), 4)} | ${mean(rs.map((r) => r.out_err)).toExponential(2)} | ${f(mean(rs.map((r) => r.density)), 3)} |`);
    }
  }
  p();
}
if (dec.length) {
  p(`### Decode: one query per head against the cache (${longMeta?.heads ?? 9} query heads / ${longMeta?.kv_heads ?? 3} KV heads)`);
  p();
  p('"attended" = share of (query head, key) pairs the attention reads (retrieved ∪ sinks 4 ∪ recent 64, GQA union for retrieval); ' +
    '"scanned" = keys (or page/centroid summaries) the selector scored, as a share of all keys per query head. Latency = selection + sparse attention, median.');
  p();
  p('| cached tokens | data | layers | method | latency ms | speedup | attended | scanned | recall | worst head | output rel. err | needle found |');
  p('| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  const groups = [...new Set(dec.map((r) => `${r.tokens}|${r.tiled}|${r.real_tokens}`))];
  for (const gkey of groups) {
    const rows = dec.filter((r) => `${r.tokens}|${r.tiled}|${r.real_tokens}` === gkey);
    const data = rows[0].tiled ? `real ${rows[0].real_tokens} tokens tiled ×${rows[0].tokens / rows[0].real_tokens}, needle at ${rows[0].needle_pos}` : `real (${rows[0].real_tokens === 4096 ? '4k dump' : 'long dump'})`;
    // Rows of different long dumps (e.g. 64k layer 0, 32k layer 2) group by data and layer set.
    const ls = [...new Set(rows.map((r) => r.layer))].join(',');
    for (const m of [...new Set(rows.map((r) => r.method))]) {
      const rs = rows.filter((r) => r.method === m);
      const needle = rs[0].needle_found === null || rs[0].needle_found === undefined ? '—' : `${rs.filter((r) => r.needle_found).length}/${rs.length}`;
      p(`| ${rows[0].tokens} | ${data} | ${ls} | ${m} | ${f(mean(rs.map((r) => r.ms)), 3)} | ${f(mean(rs.map((r) => r.dense_ms)) / mean(rs.map((r) => r.ms)), 1)}× | ${pct(mean(rs.map((r) => r.attended)))} | ${pct(mean(rs.map((r) => r.scanned)))} | ${f(mean(rs.map((r) => r.recall)), 4)} | ${f(Math.min(...rs.map((r) => r.recall_min_head)), 4)} | ${mean(rs.map((r) => r.out_err)).toExponential(2)} | ${needle} |`);
    }
  }
  p();
}
// Goals
p('### Goals (measured, met or not)');
p();
const h2h = readJsonl(join(runDir, 'h2h.jsonl'));
for (const n of lengths) {
  const qd = pre.filter((r) => r.tokens === n && r.method === 'quarry dense');
  const t = tor.filter((r) => r.tokens === n);
  const rounds = h2h.filter((r) => r.tokens === n);
  if (rounds.length) {
    // The head-to-head rounds decide: median of the per-round ratios.
    const ratios = rounds.map((r) => r.torch_s / r.quarry_s);
    const med = [...ratios].sort((a, b) => a - b)[Math.floor(ratios.length / 2)];
    const best = Math.min(...rounds.map((r) => r.torch_s)) / Math.min(...rounds.map((r) => r.quarry_s));
    p(`- quarry dense at least as fast as torch SDPA at ${n}: ${rounds.length} alternating rounds (one call each, layers ${layers.join(',')} summed), torch/quarry time per round ${ratios.map((x) => f(x, 2)).join(', ')}; median ${f(med, 2)}, fastest torch / fastest quarry ${f(best, 2)} → ${med >= 1 ? 'met' : 'not met'}.`);
  } else if (qd.length && t.length) {
    const ratio = mean(t.map((r) => r.seconds)) / mean(qd.map((r) => r.seconds));
    p(`- quarry dense at least as fast as torch SDPA at ${n}: torch/quarry time = ${f(ratio, 2)} (one pair) → ${ratio >= 1 ? 'met' : 'not met'}.`);
  }
}
{
  const n = Math.max(...lengths);
  const vs = pre.filter((r) => r.tokens === n && (r.method.startsWith('vertical-slash') || r.method.startsWith('per-head')));
  const byM = [...new Set(vs.map((r) => r.method))].map((m) => {
    const rs = vs.filter((r) => r.method === m);
    return { m, recall: mean(rs.map((r) => r.recall)), worst: Math.min(...rs.map((r) => r.recall)), sp: mean(rs.map((r) => r.dense_seconds)) / mean(rs.map((r) => r.seconds)) };
  });
  for (const x of byM) p(`- ${x.m} at ${n}: ${f(x.sp, 2)}× over quarry dense at recall ${f(x.recall, 4)} (worst layer ${f(x.worst, 4)}) → goal (≥ 5× at ≥ 0.95) ${x.sp >= 5 && x.worst >= 0.95 ? 'met' : 'not met'}.`);
  // The oracle: fewest pairs any selector needs for the target recall, per layer.
  const orc = pre.filter((r) => r.tokens === n && r.extra?.oracle);
  if (orc.length) {
    p(`  Bound for any selector (\`oracle_density\`: the largest probabilities of 256 rows per head taken until their mean recall reaches ${orc[0].recall}): ` +
      orc.map((r) => `layer ${r.layer} needs ${pct(r.density)} of the pairs (≤ ${f(1 / r.density, 2)}× over dense)`).join('; ') +
      `; ≥ 5× at ≥ 0.95 needs ≤ 20% on every layer → ${orc.every((r) => r.density <= 0.2) ? 'possible on these heads' : 'impossible on these heads for any selector computing pairs at the dense kernel\'s cost'}.`);
  }
  // Any sparse prefill method, per layer: where does the engine reach the bar at all?
  const perLayer = [...new Set(pre.filter((r) => r.tokens === n).map((r) => r.layer))].map((layer) => {
    const rs = pre.filter((r) => r.tokens === n && r.layer === layer && r.dense_seconds && !r.extra?.oracle && r.method !== 'quarry dense' && !r.method.startsWith('torch'));
    const ok = rs.filter((r) => r.recall >= 0.95 && r.dense_seconds / r.seconds >= 5).sort((a, b) => b.dense_seconds / b.seconds - a.dense_seconds / a.seconds)[0];
    const best = [...rs].filter((r) => r.recall >= 0.95).sort((a, b) => b.dense_seconds / b.seconds - a.dense_seconds / a.seconds)[0];
    return `layer ${layer}: ${ok ? `${ok.method}, ${f(ok.dense_seconds / ok.seconds, 2)}× at recall ${f(ok.recall, 4)}` : `none (fastest at ≥ 0.95: ${best ? `${best.method}, ${f(best.dense_seconds / best.seconds, 2)}×` : '—'})`}`;
  });
  if (perLayer.length) p(`  Any prefill method at ${n} reaching ≥ 5× at ≥ 0.95, per layer (not the goal's pattern, for reference): ${perLayer.join('; ')}.`);
  // The goal's pattern per layer: any vertical-slash row (fixed budgets or per-head budgets).
  const vsPerLayer = [...new Set(pre.filter((r) => r.tokens === n).map((r) => r.layer))].map((layer) => {
    const rs = pre.filter((r) => r.tokens === n && r.layer === layer && r.method.startsWith('vertical-slash') && r.recall >= 0.95);
    const best = [...rs].sort((a, b) => b.dense_seconds / b.seconds - a.dense_seconds / a.seconds)[0];
    const orc = pre.find((r) => r.tokens === n && r.layer === layer && r.extra?.oracle);
    const sp = best ? best.dense_seconds / best.seconds : NaN;
    return `layer ${layer}: ${best ? `${best.method}, ${f(sp, 2)}× at recall ${f(best.recall, 4)} → ${sp >= 5 ? 'met' : 'not met'}` : 'no vertical-slash row reaches 0.95 → not met'}${orc ? ` (any selector ≤ ${f(1 / orc.density, 1)}×)` : ''}`;
  });
  if (vsPerLayer.length) p(`  Vertical-slash at ${n} reaching ≥ 5× at ≥ 0.95, per layer (fastest vertical-slash row at ≥ 0.95): ${vsPerLayer.join('; ')}.`);
}
for (const n of [...new Set(dec.map((r) => r.tokens))]) {
  const rs = dec.filter((r) => r.tokens === n && r.method.startsWith('retrieval'));
  const methods = [...new Set(rs.map((r) => r.method))].map((m) => {
    const x = rs.filter((r) => r.method === m);
    return { m, att: mean(x.map((r) => r.attended)), scan: mean(x.map((r) => r.scanned)), rec: mean(x.map((r) => r.recall)) };
  });
  const ok = methods.filter((x) => x.att <= 0.05 && x.rec >= 0.95).sort((a, b) => a.att - b.att);
  const best = ok[0] ?? methods.filter((x) => x.att <= 0.05).sort((a, b) => b.rec - a.rec)[0];
  if (best) p(`- retrieval at ${n} cached tokens (mean over layers): ${best.m} attends ${pct(best.att)} of keys (scans ${pct(best.scan)}) at recall ${f(best.rec, 4)} → goal (≤ 5% at ≥ 0.95) ${ok.length ? 'met' : 'not met'}.`);
  // Per layer: the cheapest retrieval setting meeting the goal, and the exact
  // top-k ceiling at a similar budget (no selector attending that many keys can do better).
  const per = [];
  for (const layer of [...new Set(rs.map((r) => r.layer))]) {
    const x = rs.filter((r) => r.layer === layer && r.attended <= 0.05 && r.recall >= 0.95).sort((a, b) => a.attended - b.attended)[0];
    const o = dec.find((r) => r.tokens === n && r.layer === layer && r.method === 'oracle top-k 4%');
    const bestAny = rs.filter((r) => r.layer === layer && r.attended <= 0.05).sort((a, b) => b.recall - a.recall)[0];
    per.push(`layer ${layer}: ${x ? `met (${x.method}, ${pct(x.attended)} attended, ${pct(x.scanned)} scanned, recall ${f(x.recall, 4)})` : `not met (best ${f(bestAny?.recall, 4)} at ${pct(bestAny?.attended ?? NaN)})`}; exact top-4% ceiling ${f(o?.recall, 4)} at ${pct(o?.attended ?? NaN)}${o && o.recall < 0.95 && o.attended <= 0.05 ? ' (below 0.95: out of reach for any selector attending as many keys)' : ''}`);
  }
  if (per.length) p(`  Per layer: ${per.join('; ')}.`);
}
p();
p(`Step times (s): ${Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}. Load average samples: ${loadSamples.map((s) => `${s.what} ${s.load[0]}`).join('; ')}.`);
p(`Raw JSON of this run: \`${relative(ROOT, runDir)}/\` (git-ignored).`);
if (!measure) p(`Report written again (\`--report-only\`) from the measurements of \`${relative(ROOT, args['append-run'])}/\`${existsSync(join(args['append-run'], 'summary.json')) ? '' : ' (no summary.json there: wall time, step times and load averages above are of the rewrite, not of the measurement)'}.`);
const report = L.join('\n');
writeFileSync(join(runDir, 'report.md'), report);
writeFileSync(join(runDir, 'summary.json'), JSON.stringify({ command, startedAt, wallS, timings, loadSamples }));
process.stdout.write(`\n${report}\n`);
if (!args['no-write']) {
  const file = join(BENCH_DIR, 'RESULTS.md');
  let cur = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const begin = `<!-- ${MODEL.marker}:begin -->`;
  const end = `<!-- ${MODEL.marker}:end -->`;
  const block = `${begin}\n${report}\n${end}`;
  const a = cur.indexOf(begin);
  const b = cur.indexOf(end);
  cur = a >= 0 && b > a ? cur.slice(0, a) + block + cur.slice(b + end.length) : `${cur.replace(/\n*$/, '\n\n')}${block}\n`;
  writeFileSync(file, cur);
  log(`benches/RESULTS.md: "Sparse attention" section written (${MODEL.marker})`);
}
