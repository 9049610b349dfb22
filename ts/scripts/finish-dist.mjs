// After tsc: mark the module format of each output tree, put the native
// loader (and, in a checkout, the built addon) where both trees import it
// from, and make the CLI executable.
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = join(root, 'dist');
const nativeSrc = join(root, 'ts', 'native');
const nativeOut = join(dist, 'native');

writeFileSync(join(dist, 'esm', 'package.json'), '{ "type": "module" }\n');
writeFileSync(join(dist, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
mkdirSync(nativeOut, { recursive: true });
for (const f of readdirSync(nativeSrc)) {
  if (f === 'binding.cjs' || f === 'binding.d.cts' || f.endsWith('.node')) {
    copyFileSync(join(nativeSrc, f), join(nativeOut, f));
  }
}
const cli = join(dist, 'esm', 'cli.js');
if (existsSync(cli)) chmodSync(cli, 0o755);
