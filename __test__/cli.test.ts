import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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

  it('demo runs and its checks pass', () => {
    const res = spawnSync(process.execPath, [cli, 'demo'], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/All demo checks passed/);
  });

  it('an unknown command fails with a message', () => {
    const res = spawnSync(process.execPath, [cli, 'frobnicate'], { encoding: 'utf8' });
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/unknown command/);
  });
});
