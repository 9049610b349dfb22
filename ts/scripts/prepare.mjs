// Runs on `npm install` in a checkout (npm's `prepare`; never for users who
// install the published package). Builds the native addon from source unless
// a prebuilt platform package is installed, then compiles the facade.
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function platformSuffix() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime;
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function run(cmd) {
  console.log(`> ${cmd}`);
  execSync(cmd, { stdio: 'inherit' });
}

const prebuilt = `quarry-${platformSuffix()}`;
let havePrebuilt = false;
try {
  require.resolve(prebuilt);
  havePrebuilt = true;
} catch {
  havePrebuilt = false;
}

if (process.env.QUARRY_SKIP_NATIVE_BUILD) {
  console.log('quarry: QUARRY_SKIP_NATIVE_BUILD is set, not building the native addon');
} else if (havePrebuilt) {
  console.log(`quarry: using the prebuilt binary from ${prebuilt}`);
} else {
  try {
    execSync('cargo --version', { stdio: 'ignore' });
  } catch {
    console.error(
      `quarry: no prebuilt binary (${prebuilt}) and no Rust toolchain: install Rust (https://rustup.rs) to build from source`,
    );
    process.exit(1);
  }
  console.log(`quarry: no prebuilt binary for ${platformSuffix()}, building the native addon from source`);
  run('npm run build:native');
}
run('npm run build:ts');
