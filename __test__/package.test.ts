import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync, execSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Installs the package the way a user gets it: `npm pack` of the root and of
// this platform's binary package, both tarballs installed into a fresh
// project, imported from ESM and from CJS, and the `quarry` bin run.
const root = fileURLToPath(new URL('..', import.meta.url));
const nativeDir = join(root, 'ts', 'native');
const nodeFile = readdirSync(nativeDir).find((f) => f.endsWith('.node'));
const platform = nodeFile?.replace(/^quarry\./, '').replace(/\.node$/, '');

describe('packed package', () => {
  let project = '';

  beforeAll(() => {
    // `npm test` builds the addon first; without it there is nothing to pack.
    if (!nodeFile || !existsSync(join(root, 'npm', platform!))) {
      throw new Error(`no built addon in ${nativeDir} or no npm/${platform} package: run npm run build`);
    }
    const work = mkdtempSync(join(tmpdir(), 'quarry-pack-'));
    const platformPkg = join(work, 'platform');
    cpSync(join(root, 'npm', platform!), platformPkg, { recursive: true });
    cpSync(join(nativeDir, nodeFile!), join(platformPkg, nodeFile!));
    const pack = (dir: string) =>
      execSync(`npm pack --ignore-scripts --silent --pack-destination ${work}`, { cwd: dir, encoding: 'utf8' }).trim().split('\n').pop()!;
    const rootTgz = join(work, pack(root));
    const platformTgz = join(work, pack(platformPkg));
    project = join(work, 'app');
    execSync(`mkdir -p ${project}`);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    execSync(`npm install --no-audit --no-fund --prefer-offline --silent ${rootTgz} ${platformTgz}`, { cwd: project });
    return () => rmSync(work, { recursive: true, force: true });
  }, 600_000);

  it('ships no native binary in the root package and no build scripts', () => {
    const files = readdirSync(join(project, 'node_modules', 'quarry', 'dist', 'native'));
    expect(files.some((f) => f.endsWith('.node'))).toBe(false);
    const pkg = JSON.parse(execFileSync('cat', [join(project, 'node_modules', 'quarry', 'package.json')], { encoding: 'utf8' }));
    expect(pkg.scripts?.install).toBeUndefined();
    expect(pkg.scripts?.postinstall).toBeUndefined();
  });

  it('imports from ESM', () => {
    const out = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "import { distance, info } from 'quarry'; console.log(distance.l2sq([1, 2], [3, 5]), info().simdLevel)"],
      { cwd: project, encoding: 'utf8' },
    );
    expect(out).toMatch(/^13 \w+/);
  });

  it('requires from CJS, with typed errors', () => {
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        "const q = require('quarry'); try { q.distance.l2sq([1], [1, 2]) } catch (e) { console.log(e instanceof q.QuarryError, e.code) }",
      ],
      { cwd: project, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('true QUARRY_DIM_MISMATCH');
  });

  it('ships types and runs the bin', () => {
    expect(existsSync(join(project, 'node_modules', 'quarry', 'dist', 'esm', 'index.d.ts'))).toBe(true);
    expect(existsSync(join(project, 'node_modules', 'quarry', 'dist', 'cjs', 'index.d.ts'))).toBe(true);
    const out = execFileSync(join(project, 'node_modules', '.bin', 'quarry'), ['info'], { cwd: project, encoding: 'utf8' });
    expect(out).toMatch(/simd/);
  });
});
