/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform random f32 matrix in [-1, 1). */
export function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/** Random bytes. */
export function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

type Num = ArrayLike<number>;

export function jsDot(a: Num, b: Num): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function jsL2sq(a: Num, b: Num): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s;
}

export function jsCosine(a: Num, b: Num): number {
  const na = jsDot(a, a);
  const nb = jsDot(b, b);
  if (na === 0 && nb === 0) return 0;
  if (na === 0 || nb === 0) return 1;
  return Math.max(0, 1 - jsDot(a, b) / Math.sqrt(na * nb));
}

export function jsHamming(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i] ^ b[i];
    while (x) {
      n += x & 1;
      x >>= 1;
    }
  }
  return n;
}

export function popcount(x: number): number {
  let n = 0;
  while (x) {
    n += x & 1;
    x >>>= 1;
  }
  return n;
}

export function jsJaccard(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += popcount(a[i] & b[i]);
    union += popcount(a[i] | b[i]);
  }
  return union === 0 ? 0 : 1 - inter / union;
}

/** f32 → IEEE half bits (round to nearest even), for building f16 inputs. */
export function toF16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

/** IEEE half bits → number. */
export function fromF16Bits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 → bf16 bits (truncation; exact for values already representable). */
export function toBf16Bits(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0];
  return u >>> 16;
}

export function fromBf16Bits(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0];
}

/** Brute-force k-NN in JS (f64 sums), same ordering rules as quarry. */
export function jsKnn(
  queries: Float32Array,
  base: Float32Array,
  dim: number,
  k: number,
  metric: 'l2sq' | 'ip' | 'cosine',
): { ids: number[][]; dists: number[][] } {
  const nq = queries.length / dim;
  const nb = base.length / dim;
  const f = metric === 'l2sq' ? jsL2sq : metric === 'ip' ? jsDot : jsCosine;
  const sign = metric === 'ip' ? -1 : 1;
  const ids: number[][] = [];
  const dists: number[][] = [];
  for (let q = 0; q < nq; q++) {
    const qv = queries.subarray(q * dim, (q + 1) * dim);
    const all = Array.from({ length: nb }, (_, b) => ({ b, d: f(qv, base.subarray(b * dim, (b + 1) * dim)) }));
    all.sort((x, y) => sign * (x.d - y.d) || x.b - y.b);
    ids.push(all.slice(0, k).map((e) => e.b));
    dists.push(all.slice(0, k).map((e) => e.d));
  }
  return { ids, dists };
}
