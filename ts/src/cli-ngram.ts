/**
 * `quarry ngram ...`: build and query n-gram indexes from the shell.
 * @internal
 * @module
 */
import type { Command } from 'commander';
import { readFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { NgramIndex, type NgramBuildProgress } from './ngram.js';

function intOption(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`not a non-negative integer: ${v}`);
  return n;
}

/** Total bytes under the input paths (for the throughput figure). */
function inputBytes(paths: string[]): number {
  let total = 0;
  for (const p of paths) {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const f of readdirSync(p)) {
        const fst = statSync(join(p, f));
        if (fst.isFile()) total += fst.size;
      }
    } else total += st.size;
  }
  return total;
}

/** A one-line progress bar on stderr (only when it is a terminal, else one line per stage). */
function progressBar(totalBytes: number) {
  const t0 = Date.now();
  let lastStage = '';
  const tty = process.stderr.isTTY;
  return {
    update(p: NgramBuildProgress) {
      const secs = (Date.now() - t0) / 1000;
      const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
      const width = 24;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '-');
      const line = `[${bar}] shard ${p.shard} ${p.stage.padEnd(14)} ${p.done}/${p.total}  docs ${p.docs.toLocaleString()}  ${secs.toFixed(1)}s  ${(totalBytes / 1e6 / Math.max(secs, 1e-3)).toFixed(1)} MB/s overall`;
      if (tty) process.stderr.write(`\r${line.padEnd(110)}`);
      else if (p.stage !== lastStage) process.stderr.write(`${line}\n`);
      lastStage = p.stage;
    },
    finish() {
      const secs = (Date.now() - t0) / 1000;
      if (tty) process.stderr.write('\n');
      return { secs, mbPerSec: totalBytes / 1e6 / Math.max(secs, 1e-3) };
    },
  };
}

function print(json: boolean, value: unknown, text: () => string) {
  console.log(json ? JSON.stringify(value, null, 2) : text());
}

/** Adds the `ngram` command group to the CLI. */
export function addNgramCommands(program: Command) {
  const ngram = program.command('ngram').description('exact n-gram search over large corpora (FM-index)');

  ngram
    .command('build')
    .description('build an index from .jsonl / text files or directories of them')
    .argument('<input...>', 'input files or directories')
    .requiredOption('-o, --output <dir>', 'index directory')
    .option('-t, --tokenizer <tokenizer.json>', 'token mode with a Hugging Face tokenizer')
    .option('--shard-bytes <n>', 'text bytes per shard (peak build memory is about 5-6x this)', intOption)
    .option('--sa-sample <n>', 'suffix-array sampling rate (default 32 bytes, 8 tokens)', intOption)
    .option('--isa-sample <n>', 'inverse suffix-array sampling rate', intOption)
    .option('--plain', 'plain bitvectors: faster queries, larger index')
    .option('--paragraphs', 'split text files into documents at blank lines')
    .option('--json', 'print the index stats as JSON')
    .action(async (inputs: string[], o) => {
      const bar = progressBar(inputBytes(inputs));
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      try {
        const idx = await NgramIndex.build({
          input: { files: inputs },
          output: o.output,
          tokenizer: o.tokenizer,
          shardBytes: o.shardBytes,
          saSampleRate: o.saSample,
          isaSampleRate: o.isaSample,
          bitvector: o.plain ? 'plain' : 'compressed',
          split: o.paragraphs ? 'paragraphs' : 'file',
          onProgress: (p) => bar.update(p),
          signal: ac.signal,
        });
        const { secs, mbPerSec } = bar.finish();
        const s = idx.stats();
        print(o.json, { ...s, buildSeconds: secs }, () =>
          [
            `built ${o.output}: ${s.docs.toLocaleString()} documents, ${(s.bytes / 1e6).toFixed(1)} MB of text${s.tokens != null ? `, ${s.tokens.toLocaleString()} tokens` : ''}, ${s.shards} shard(s)`,
            `index ${(s.indexBytes / 1e6).toFixed(1)} MB = ${(s.indexBytes / Math.max(1, s.bytes)).toFixed(3)} x text, in ${secs.toFixed(1)} s (${mbPerSec.toFixed(1)} MB/s)`,
          ].join('\n'),
        );
      } finally {
        process.off('SIGINT', onSigint);
      }
    });

  ngram
    .command('count')
    .description('count occurrences of a query')
    .argument('<index>', 'index directory')
    .argument('<query>', 'text to count')
    .option('--json', 'print JSON')
    .action((dir: string, query: string, o) => {
      const n = NgramIndex.open(dir).count(query);
      print(o.json, { query, count: n }, () => String(n));
    });

  ngram
    .command('locate')
    .description('list occurrences as document id and offset')
    .argument('<index>', 'index directory')
    .argument('<query>', 'text to find')
    .option('-l, --limit <n>', 'at most this many', intOption, 20)
    .option('-c, --context <n>', 'symbols of context to print around each hit', intOption, 30)
    .option('--json', 'print JSON')
    .action((dir: string, query: string, o) => {
      const idx = NgramIndex.open(dir);
      const qlen = idx.encode(query).length;
      const hits = idx.locate(query, { limit: o.limit }).map((h) => {
        const start = Math.max(0, h.offset - o.context);
        const win = idx.document(h.doc, { start, length: h.offset - start + qlen + o.context });
        return { ...h, context: win.text };
      });
      print(o.json, hits, () => hits.map((h) => `doc ${h.doc} @ ${h.offset}: ${h.context.replace(/\s+/g, ' ')}`).join('\n'));
    });

  ngram
    .command('doc')
    .description('print a document (or a window of it)')
    .argument('<index>', 'index directory')
    .argument('<docId>', 'document id', intOption)
    .option('--start <n>', 'first symbol', intOption)
    .option('--length <n>', 'number of symbols', intOption)
    .option('--json', 'print JSON')
    .action((dir: string, docId: number, o) => {
      const d = NgramIndex.open(dir).document(docId, { start: o.start, length: o.length });
      print(o.json, { ...d, symbols: undefined }, () => d.text);
    });

  ngram
    .command('next')
    .description('distribution of the symbol that follows a prefix')
    .argument('<index>', 'index directory')
    .argument('<prefix>', 'prefix text')
    .option('-l, --limit <n>', 'top k', intOption, 10)
    .option('--json', 'print JSON')
    .action((dir: string, prefix: string, o) => {
      const r = NgramIndex.open(dir).nextTokens(prefix, { limit: o.limit });
      print(o.json, r, () =>
        [
          `prefix occurs ${r.prefixCount} times (${r.endOfDocument} at a document end), ${r.distinct} distinct next symbols`,
          ...r.tokens.map((t) => `${JSON.stringify(t.text).padEnd(12)} ${String(t.count).padStart(8)}  ${t.prob.toFixed(4)}`),
        ].join('\n'),
      );
    });

  ngram
    .command('contamination')
    .description('share of each text file\'s n-grams found in the corpus')
    .argument('<index>', 'index directory')
    .argument('<files...>', 'text files to check (one text each)')
    .option('-n <n>', 'n-gram length in symbols', intOption, 13)
    .option('--json', 'print JSON')
    .action((dir: string, files: string[], o) => {
      const texts = files.map((f) => readFileSync(f, 'utf8'));
      const r = NgramIndex.open(dir).contamination(texts, { n: o.n });
      print(o.json, r.map((c, i) => ({ file: files[i], ...c })), () =>
        r.map((c, i) => `${files[i]}: ${(c.share * 100).toFixed(2)}% of ${c.ngrams} ${o.n}-grams found`).join('\n'),
      );
    });
}
