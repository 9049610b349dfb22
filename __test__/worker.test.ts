import { describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';

// The addon must load and run inside worker threads (napi-rs context-aware
// module), several at once, next to a copy in the main thread.
describe('worker_threads', () => {
  it('loads the addon and computes in several workers', async () => {
    const { distance } = await import('../dist/esm/index.js');
    const main = distance.l2sq(new Float32Array([1, 2]), new Float32Array([3, 5]));
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { distance, info } = require(workerData.entry);
      const base = new Float32Array(1000 * 16).map((_, i) => Math.sin(i + workerData.id));
      const q = base.slice(16 * 7, 16 * 8);
      const res = distance.knn(q, base, { dim: 16, k: 1, metric: 'l2sq' });
      parentPort.postMessage({
        l2: distance.l2sq(new Float32Array([1, 2]), new Float32Array([3, 5])),
        top: res.ids[0],
        simd: info().simdLevel,
      });
    `;
    const entry = new URL('../dist/cjs/index.js', import.meta.url).pathname;
    const results = await Promise.all(
      [0, 1, 2].map(
        (id) =>
          new Promise<{ l2: number; top: number; simd: string }>((resolve, reject) => {
            const w = new Worker(source, { eval: true, workerData: { entry, id } });
            w.once('message', (m) => {
              resolve(m);
              void w.terminate();
            });
            w.once('error', reject);
          }),
      ),
    );
    for (const r of results) {
      expect(r.l2).toBe(main);
      expect(r.top).toBe(7);
      expect(typeof r.simd).toBe('string');
    }
  });
});
