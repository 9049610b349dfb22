import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    include: ['__test__/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 600_000,
  },
});
