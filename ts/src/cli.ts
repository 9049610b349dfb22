#!/usr/bin/env node
/**
 * The `quarry` command-line tool.
 * @internal
 * @module
 */
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { runDemo } from './demo.js';
import { info, QuarryError } from './index.js';
import { addNgramCommands } from './cli-ngram.js';
import { addVectorCommands } from './cli-vectors.js';
import { addKvCommands } from './cli-kv.js';
import { addAttnCommands } from './cli-attn.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command()
  .name('quarry')
  .description('Retrieval and long-context serving kernels: SIMD distances, vector indexes, n-gram search, KV-cache quantization, sparse attention')
  .version(pkg.version);

program
  .command('info')
  .description('print the version, detected SIMD level, threads and compiled-in cargo features')
  .option('--json', 'print JSON')
  .action((opts: { json?: boolean }) => {
    const i = { package: pkg.version, ...info() };
    if (opts.json) {
      console.log(JSON.stringify(i, null, 2));
      return;
    }
    console.log(`quarry      ${i.package} (addon ${i.version}, ${i.target})`);
    console.log(`simd        ${i.simdLevel} (this CPU runs: ${i.simdLevels.join(', ')})`);
    console.log(`threads     ${i.threads}`);
    console.log(`features    ${i.features.length ? i.features.join(', ') : '(none)'}`);
  });

program
  .command('demo')
  .description('a short tour of every capability on generated data, with checks')
  .action(async () => {
    const ok = await runDemo();
    if (!ok) process.exitCode = 1;
  });

addNgramCommands(program);
addVectorCommands(program);
addKvCommands(program);
addAttnCommands(program);

program.parseAsync().catch((err: unknown) => {
  if (err instanceof QuarryError) {
    console.error(`quarry: ${err.code}: ${err.message}`);
  } else {
    console.error(err);
  }
  process.exitCode = 1;
});
