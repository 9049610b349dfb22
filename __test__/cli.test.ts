import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomF32 } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/esm/cli.js', import.meta.url));
const run = (...args: string[]) => execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

describe('quarry CLI', () => {
  it('--help lists the commands', () => {
    const out = run('--help');
    expect(out).toMatch(/Usage: quarry/);
    expect(out).toMatch(/info/);
    expect(out).toMatch(/demo/);
  });

  it('info --json reports the SIMD level and features', () => {
    const i = JSON.parse(run('info', '--json'));
    expect(i.simdLevels).toContain(i.simdLevel);
    expect(i.threads).toBeGreaterThan(0);
    expect(Array.isArray(i.features)).toBe(true);
    expect(i.package).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('QUARRY_SIMD=scalar forces the portable kernels', () => {
    const out = execFileSync(process.execPath, [cli, 'info', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, QUARRY_SIMD: 'scalar' },
    });
    expect(JSON.parse(out).simdLevel).toBe('scalar');
  });

  // The demo is the whole tour (n-gram builds, a vector index, attention): minutes on 2 busy cores.
  it('demo runs and its checks pass', { timeout: 300_000 }, () => {
    const res = spawnSync(process.execPath, [cli, 'demo'], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/All demo checks passed/);
  });

  it('kv bench measures every method it is given (synthetic and dump input)', () => {
    const kv = JSON.parse(run('kv', 'bench', '--tokens', '1024', '--methods', 'f32,f16,kivi-2', '--reps', '1', '--json'));
    expect(kv.summary.map((r: { method: string }) => r.method)).toEqual(['f32', 'f16', 'kivi-2']);
    expect(kv.summary[0].attnError).toBe(0);
    expect(kv.summary[1].vsF16).toBe(1);
    expect(kv.summary[2].vsF16).toBeLessThan(0.3); // 2-bit codes, scales and a 32-token f32 residual
    // A two-layer dump in the benches/model format.
    const dir = mkdtempSync(join(tmpdir(), 'quarry-dump-'));
    try {
      const [heads, kvHeads, d, n] = [4, 2, 32, 96];
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ model: 'tiny', layers: 2, heads, kv_heads: kvHeads, head_dim: d, tokens: n }));
      for (const l of ['00', '01']) {
        writeFileSync(join(dir, `L${l}.q.f32`), randomF32(heads * n * d, 1));
        writeFileSync(join(dir, `L${l}.k.f32`), randomF32(kvHeads * n * d, 2));
        writeFileSync(join(dir, `L${l}.v.f32`), randomF32(kvHeads * n * d, 3));
      }
      const r = JSON.parse(run('kv', 'bench', '--dump', dir, '--layers', '0,1', '--methods', 'q8_0', '--reps', '1', '--json'));
      expect(r.rows).toHaveLength(2);
      expect(r.summary[0].attnError).toBeLessThan(0.05);
      const a = JSON.parse(run('attn', 'bench', '--dump', dir, '--layer', '1', '--tokens', '64', '--reps', '1', '--json'));
      expect(a.tokens).toBe(64);
      writeFileSync(join(dir, 'L01.v.f32'), randomF32(10, 3));
      const bad = spawnSync(process.execPath, [cli, 'kv', 'bench', '--dump', dir, '--layers', '1'], { encoding: 'utf8' });
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toMatch(/meta.json implies/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('attn bench compares every method with dense attention', () => {
    const a = JSON.parse(run('attn', 'bench', '--tokens', '512', '--needle', '100', '--reps', '1', '--json'));
    const rows = a.rows as { phase: string; method: string; recall: number; density: number; error: number }[];
    expect(rows.filter((r) => r.method === 'dense').map((r) => r.phase)).toEqual(['prefill', 'decode']);
    for (const r of rows) {
      expect(r.recall).toBeGreaterThanOrEqual(0);
      expect(r.recall).toBeLessThanOrEqual(1 + 1e-9);
      expect(r.density).toBeLessThanOrEqual(1 + 1e-9);
    }
    // The exact top-k keeps the needle the last query points at.
    expect(rows.find((r) => r.method.startsWith('top-k'))!.recall).toBeGreaterThan(0.9);
  });

  it('an unknown command fails with a message', () => {
    const res = spawnSync(process.execPath, [cli, 'frobnicate'], { encoding: 'utf8' });
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/unknown command/);
  });
});
