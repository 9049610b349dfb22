/**
 * `quarry vectors ...`: build, query and measure vector indexes from the shell.
 *
 * Vector files: `.fvecs` (each vector prefixed by its dimension as i32),
 * `.npy` (2-D little-endian float32), or raw little-endian f32 (`.f32`,
 * `.bin`; needs `--dim`).
 * @internal
 * @module
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { distance } from './index.js';
import { VectorIndex, type VectorBuildOptions, type VectorIndexKind, type VectorMetric } from './vectors.js';

function intOption(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${v}`);
  return n;
}

function numOption(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`not a number: ${v}`);
  return n;
}

function intList(v: string): number[] {
  return v.split(',').map(intOption);
}

/** Reads a vector file as a `Float32Array` and its dimension. */
export function readVectors(path: string, dim?: number): { data: Float32Array; dim: number } {
  const buf = readFileSync(path);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const copy = (offset: number, count: number) => {
    const out = new Float32Array(count);
    new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + count * 4));
    return out;
  };
  if (path.endsWith('.fvecs')) {
    if (buf.length < 4) throw new Error(`${path}: empty .fvecs file`);
    const d = buf.readInt32LE(0);
    const row = 4 + d * 4;
    if (d <= 0 || buf.length % row !== 0) throw new Error(`${path}: not an .fvecs file of dimension ${d}`);
    const n = buf.length / row;
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      if (buf.readInt32LE(i * row) !== d) throw new Error(`${path}: vector ${i} has another dimension`);
      out.set(copy(i * row + 4, d), i * d);
    }
    return { data: out, dim: d };
  }
  if (path.endsWith('.npy')) {
    if (buf.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
    const major = buf[6];
    const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
    const start = (major === 1 ? 10 : 12) + headerLen;
    const header = buf.subarray(major === 1 ? 10 : 12, start).toString('latin1');
    if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
      throw new Error(`${path}: only C-ordered little-endian float32 .npy files are read`);
    }
    const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header);
    if (!shape) throw new Error(`${path}: expected a 2-D array`);
    const [n, d] = [Number(shape[1]), Number(shape[2])];
    if (buf.length - start < n * d * 4) throw new Error(`${path}: truncated`);
    return { data: copy(start, n * d), dim: d };
  }
  if (!dim) throw new Error(`${path}: raw f32 files need --dim`);
  if (buf.length % (dim * 4) !== 0) throw new Error(`${path}: ${buf.length} bytes are not whole ${dim}-dimensional f32 vectors`);
  return { data: copy(0, buf.length / 4), dim };
}

interface BuildFlags {
  dim?: number;
  metric: VectorMetric;
  kind: VectorIndexKind;
  nlist?: number;
  pqM?: number;
  pqBits?: number;
  opq?: boolean;
  binaryLevels?: number;
  storeVectors?: boolean;
  balance?: number;
  seed?: number;
}

function buildOptions(o: BuildFlags, dim: number): VectorBuildOptions {
  return {
    dim,
    metric: o.metric,
    kind: o.kind,
    nlist: o.nlist,
    pq: o.pqM !== undefined || o.pqBits !== undefined ? { m: o.pqM, bits: o.pqBits as 4 | 8 | undefined } : undefined,
    opq: o.opq,
    binaryLevels: o.binaryLevels,
    storeVectors: o.storeVectors,
    kmeans: o.balance !== undefined ? { balance: o.balance } : undefined,
    seed: o.seed,
  };
}

function addBuildFlags(cmd: Command): Command {
  return cmd
    .option('--dim <n>', 'dimension (raw f32 files)', intOption)
    .option('-m, --metric <metric>', 'l2, ip or cosine', 'cosine')
    .option('-k, --kind <kind>', 'flat, sq8, pq, binary, ivf-flat, ivf-sq8, ivf-pq, ivf-binary', 'ivf-pq')
    .option('--nlist <n>', 'lists of IVF kinds', intOption)
    .option('--pq-m <n>', 'PQ sub-spaces', intOption)
    .option('--pq-bits <n>', 'PQ bits per code: 4 (fast-scan) or 8', intOption)
    .option('--opq', 'learn an OPQ rotation')
    .option('--binary-levels <n>', 'bits per dimension of binary codes', intOption)
    .option('--no-store-vectors', 'do not keep full vectors (no re-ranking)')
    .option('--balance <f>', 'balanced k-means: list sizes at most f × the mean', numOption)
    .option('--seed <n>', 'training seed', intOption);
}

/** A one-line progress display on stderr. */
function progress() {
  const t0 = Date.now();
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    update(p: { stage: string; fraction: number }) {
      const bar = '#'.repeat(Math.round(p.fraction * 24)).padEnd(24, '-');
      const line = `[${bar}] ${p.stage.padEnd(10)} ${((Date.now() - t0) / 1000).toFixed(1)}s`;
      if (tty) process.stderr.write(`\r${line.padEnd(60)}`);
      else if (p.stage !== last) process.stderr.write(`${line}\n`);
      last = p.stage;
    },
    finish() {
      if (tty) process.stderr.write('\n');
      return (Date.now() - t0) / 1000;
    },
  };
}

async function build(path: string, o: BuildFlags): Promise<{ index: VectorIndex; secs: number; n: number; dim: number }> {
  const { data, dim } = readVectors(path, o.dim);
  const bar = progress();
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const index = await VectorIndex.build(data, { ...buildOptions(o, dim), onProgress: (p) => bar.update(p), signal: ac.signal });
    return { index, secs: bar.finish(), n: data.length / dim, dim };
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** Adds the `vectors` command group to the CLI. */
export function addVectorCommands(program: Command) {
  const vectors = program.command('vectors').description('vector indexes: IVF, PQ (4-bit fast-scan), SQ8, binary codes');

  addBuildFlags(vectors.command('build').description('build an index from a vector file and save it'))
    .argument('<vectors>', '.fvecs, .npy or raw f32 file')
    .requiredOption('-o, --output <file>', 'index file')
    .option('--json', 'print the index info as JSON')
    .action(async (path: string, o: BuildFlags & { output: string; json?: boolean }) => {
      const { index, secs, n } = await build(path, o);
      index.save(o.output);
      const info = { ...index.info(), buildSeconds: secs, vectorsPerSecond: n / secs };
      if (o.json) console.log(JSON.stringify(info, null, 2));
      else
        console.log(
          `${info.kind} index of ${info.size.toLocaleString()} × ${info.dim} (${info.metric}) built in ${secs.toFixed(2)} s` +
            ` (${Math.round(info.vectorsPerSecond).toLocaleString()} vectors/s), ${info.codeBytes} code bytes per vector, saved to ${o.output}`,
        );
    });

  vectors
    .command('search')
    .description('k nearest neighbours of each query vector')
    .argument('<index>', 'index file')
    .argument('<queries>', '.fvecs, .npy or raw f32 file')
    .option('-n, --k <n>', 'neighbours per query', intOption, 10)
    .option('--nprobe <n>', 'lists scanned per query', intOption)
    .option('--rerank <n>', 're-rank this many candidates exactly', intOption)
    .option('--mmap', 'map the index instead of reading it')
    .option('--json', 'print JSON')
    .action((indexPath: string, queryPath: string, o: { k: number; nprobe?: number; rerank?: number; mmap?: boolean; json?: boolean }) => {
      const index = VectorIndex.open(indexPath, { mmap: o.mmap });
      const { data } = readVectors(queryPath, index.info().dim);
      const t0 = performance.now();
      const r = index.searchSync(data, { k: o.k, nprobe: o.nprobe, rerank: o.rerank });
      const ms = performance.now() - t0;
      const nq = r.ids.length / r.k;
      const rows = Array.from({ length: nq }, (_, q) => ({
        ids: Array.from(r.ids.subarray(q * r.k, (q + 1) * r.k) as ArrayLike<number | bigint>, (x) => (typeof x === 'bigint' ? x.toString() : x)),
        distances: Array.from(r.distances.subarray(q * r.k, (q + 1) * r.k)),
      }));
      if (o.json) console.log(JSON.stringify({ ms, results: rows }, null, 2));
      else {
        rows.forEach((row, q) => console.log(`${q}: ${row.ids.map((id, j) => `${id}:${row.distances[j].toFixed(4)}`).join(' ')}`));
        console.error(`${nq} queries in ${ms.toFixed(1)} ms (${((nq / ms) * 1000).toFixed(0)} QPS)`);
      }
    });

  addBuildFlags(vectors.command('bench').description('build an index, then measure recall@k against exact search and QPS over an nprobe sweep'))
    .argument('<vectors>', '.fvecs, .npy or raw f32 file (base)')
    .argument('<queries>', '.fvecs, .npy or raw f32 file')
    .option('-n, --k <n>', 'neighbours per query', intOption, 10)
    .option('--nprobe <list>', 'comma-separated nprobe values', intList, [1, 2, 4, 8, 16, 32, 64])
    .option('--rerank <n>', 're-rank this many candidates exactly', intOption, 0)
    .option('--json', 'print JSON')
    .action(async (basePath: string, queryPath: string, o: BuildFlags & { k: number; nprobe: number[]; rerank: number; json?: boolean }) => {
      const { index, secs, dim } = await build(basePath, o);
      const { data: base } = readVectors(basePath, dim);
      const { data: queries } = readVectors(queryPath, dim);
      const metric = o.metric === 'l2' ? 'l2sq' : o.metric;
      const truth = distance.knn(queries, base, { dim, k: o.k, metric });
      const nq = queries.length / dim;
      const info = index.info();
      const sweep = (info.nlist > 1 ? o.nprobe.filter((p) => p <= info.nlist) : [1]).map((nprobe) => {
        const t0 = performance.now();
        const r = index.searchSync(queries, { k: o.k, nprobe, rerank: o.rerank });
        const ms = performance.now() - t0;
        let hits = 0;
        for (let q = 0; q < nq; q++) {
          const want = new Set(truth.ids.subarray(q * o.k, (q + 1) * o.k));
          for (let j = 0; j < o.k; j++) if (want.has(Number(r.ids[q * o.k + j]))) hits++;
        }
        return { nprobe, recall: hits / (nq * o.k), qps: (nq / ms) * 1000 };
      });
      const out = { kind: info.kind, buildSeconds: secs, bytesPerVector: (info.heapBytes + info.mappedBytes) / info.size, codeBytes: info.codeBytes, sweep };
      if (o.json) console.log(JSON.stringify(out, null, 2));
      else {
        console.log(`${info.kind}: built in ${secs.toFixed(2)} s, ${out.bytesPerVector.toFixed(1)} bytes/vector in memory (${info.codeBytes} code bytes)`);
        console.log('nprobe  recall@' + String(o.k).padEnd(4) + '  QPS');
        for (const s of sweep) console.log(`${String(s.nprobe).padStart(6)}  ${s.recall.toFixed(4).padStart(9)}  ${s.qps.toFixed(0).padStart(8)}`);
      }
    });
}
