//! Primitive quantizers and transforms the cache methods are built from.
//! Each encoder has a matching decoder and a documented error bound; the
//! fused attention kernels call exactly these decoders (one row at a time),
//! so `dequantize()` and `attend()` see identical values.

use crate::kernels;
use crate::pack;
use half::f16;

/// Largest f16 not above `x` (finite `x` within the f16 range).
pub fn f16_down(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() > x { f16_step(h, false) } else { h }
}

/// Smallest f16 not below `x`.
pub fn f16_up(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() < x { f16_step(h, true) } else { h }
}

fn f16_step(h: f16, up: bool) -> f16 {
    let b = h.to_bits();
    let nb = if b & 0x7fff == 0 {
        if up { 0x0001 } else { 0x8001 }
    } else if (b & 0x8000 == 0) == up {
        b + 1
    } else {
        b - 1
    };
    f16::from_bits(nb)
}

/// Asymmetric (min/max) parameters for `bits`-bit codes: `zero` is `min`
/// rounded down to f16 and `scale` is `(max - zero)/(2^bits - 1)` rounded up,
/// so `[zero, zero + qmax·scale]` covers `[min, max]` and every value
/// decodes within `scale/2` (up to f32 rounding).
pub fn asym_params(min: f32, max: f32, bits: u8) -> (f16, f16) {
    let qmax = ((1u32 << bits) - 1) as f32;
    let z = f16_down(min);
    let s = f16_up(((max - z.to_f32()) / qmax).max(0.0));
    (z, s)
}

/// Code of `x` under asymmetric parameters (`z`, `s`), clamped to `[0, qmax]`.
#[inline]
pub fn asym_code(x: f32, z: f32, s: f32, qmax: u8) -> u8 {
    if s <= 0.0 {
        return 0;
    }
    ((x - z) / s).round().clamp(0.0, qmax as f32) as u8
}

/// Row length padded to whole 32-code blocks.
pub fn pad32(n: usize) -> usize {
    n.div_ceil(32) * 32
}

// ---------------------------------------------------------------- f16 rows

/// `f16` row: `d` little-endian IEEE half floats (2·d bytes). Error: f16
/// rounding, `|x - x̂| ≤ 2⁻¹¹·|x|` for normal values.
pub fn f16_encode(x: &[f32], out: &mut [u8]) {
    for (o, v) in out.chunks_exact_mut(2).zip(x) {
        o.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
    }
}

/// Decode an `f16` row into `out[..d]`.
pub fn f16_decode(rec: &[u8], out: &mut [f32]) {
    let d = out.len();
    match bytemuck::try_cast_slice::<u8, f16>(&rec[..2 * d]) {
        Ok(h) => kernels::f16_to_f32(h, out),
        Err(_) => {
            for (o, b) in out.iter_mut().zip(rec.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
    }
}

// ---------------------------------------------------------------- q8_0 / q4_0

/// Bytes of a `q8_0` row of `d` values: per block of 32 (the last padded
/// with zeros) a little-endian f16 scale `Δ` then 32 signed bytes `qᵢ`;
/// `x̂ = Δ·qᵢ`. `Δ = max|x|/127` rounded up to f16, so
/// `|x - x̂| ≤ Δ/2`.
pub fn q8_0_bytes(d: usize) -> usize {
    d.div_ceil(32) * 34
}

/// Encode a `q8_0` row (see [`q8_0_bytes`]).
pub fn q8_0_encode(x: &[f32], out: &mut [u8]) {
    for (b, o) in out.chunks_exact_mut(34).enumerate() {
        let mut blk = [0f32; 32];
        let end = (b * 32 + 32).min(x.len());
        blk[..end - b * 32].copy_from_slice(&x[b * 32..end]);
        let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let dlt = f16_up(amax / 127.0);
        o[..2].copy_from_slice(&dlt.to_le_bytes());
        let df = dlt.to_f32();
        for (i, v) in blk.iter().enumerate() {
            let q = if df > 0.0 { (v / df).round().clamp(-127.0, 127.0) as i8 } else { 0 };
            o[2 + i] = q as u8;
        }
    }
}

/// Decode a `q8_0` row into `out` (length padded to 32).
pub fn q8_0_decode(rec: &[u8], out: &mut [f32]) {
    for (b, o) in out.chunks_exact_mut(32).enumerate() {
        let r = &rec[b * 34..b * 34 + 34];
        let dlt = f16::from_le_bytes([r[0], r[1]]).to_f32();
        pack::i8_to_f32(&r[2..34], o);
        kernels::affine1(o, dlt, 0.0);
    }
}

/// Bytes of a `q4_0` row of `d` values: per block of 32 a little-endian f16
/// `Δ` then 16 bytes of nibbles (byte `j`: value `j` low, value `j+16`
/// high); `x̂ = Δ·(q - 8)`. As in llama.cpp, `Δ = m/-8` where `m` is the
/// block's value of largest magnitude (|Δ| rounded up to f16), so `m` itself
/// is exact and `|x - x̂| ≤ |Δ|/2`, except values of the opposite sign near
/// `|m|` that clamp at `q = 15`: `|x - x̂| ≤ |Δ|` always.
pub fn q4_0_bytes(d: usize) -> usize {
    d.div_ceil(32) * 18
}

/// Encode a `q4_0` row (see [`q4_0_bytes`]).
pub fn q4_0_encode(x: &[f32], out: &mut [u8]) {
    for (b, o) in out.chunks_exact_mut(18).enumerate() {
        let mut blk = [0f32; 32];
        let end = (b * 32 + 32).min(x.len());
        blk[..end - b * 32].copy_from_slice(&x[b * 32..end]);
        let m = blk.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let mag = f16_up(m.abs() / 8.0).to_f32();
        let dlt = f16::from_f32(if m > 0.0 { -mag } else { mag });
        o[..2].copy_from_slice(&dlt.to_le_bytes());
        let df = dlt.to_f32();
        let mut codes = [8u8; 32];
        if df != 0.0 {
            for (c, v) in codes.iter_mut().zip(&blk) {
                *c = (v / df + 8.0).round().clamp(0.0, 15.0) as u8;
            }
        }
        pack::pack(4, &codes, &mut o[2..18]);
    }
}

/// Decode a `q4_0` row into `out` (length padded to 32).
pub fn q4_0_decode(rec: &[u8], out: &mut [f32]) {
    for (b, o) in out.chunks_exact_mut(32).enumerate() {
        let r = &rec[b * 18..b * 18 + 18];
        let dlt = f16::from_le_bytes([r[0], r[1]]).to_f32();
        pack::unpack_f32(4, &r[2..18], o);
        kernels::affine1(o, dlt, -8.0 * dlt);
    }
}

// ---------------------------------------------------------------- per-token asymmetric groups

/// Bytes of a per-token asymmetric row: `d/group` pairs of little-endian
/// f16 `(zero, scale)`, then the `bits`-bit codes of the row packed as in
/// [`crate::pack`] (padded to 32 codes). `x̂ = zero + scale·q`;
/// `|x - x̂| ≤ scale/2` with `scale = (max - min)/(2^bits - 1)` of the group
/// (rounded up to f16).
pub fn token_asym_bytes(d: usize, group: usize, bits: u8) -> usize {
    (d / group) * 4 + pack::row_bytes(bits, d)
}

/// Encode one row per-token with channel groups of `group` (see [`token_asym_bytes`]).
pub fn token_asym_encode(x: &[f32], group: usize, bits: u8, out: &mut [u8]) {
    let d = x.len();
    let ng = d / group;
    let qmax = ((1u32 << bits) - 1) as u8;
    let mut codes = vec![0u8; d];
    for g in 0..ng {
        let xs = &x[g * group..(g + 1) * group];
        let (mn, mx) = min_max(xs);
        let (z, s) = asym_params(mn, mx, bits);
        out[g * 4..g * 4 + 2].copy_from_slice(&z.to_le_bytes());
        out[g * 4 + 2..g * 4 + 4].copy_from_slice(&s.to_le_bytes());
        for (c, &v) in codes[g * group..(g + 1) * group].iter_mut().zip(xs) {
            *c = asym_code(v, z.to_f32(), s.to_f32(), qmax);
        }
    }
    pack::pack(bits, &codes, &mut out[ng * 4..]);
}

/// Decode a per-token asymmetric row into `out` (`pad32(d)` long; the
/// padding is left 0).
pub fn token_asym_decode(rec: &[u8], d: usize, group: usize, bits: u8, out: &mut [f32]) {
    let ng = d / group;
    pack::unpack_f32(bits, &rec[ng * 4..], out);
    for g in 0..ng {
        let z = f16::from_le_bytes([rec[g * 4], rec[g * 4 + 1]]).to_f32();
        let s = f16::from_le_bytes([rec[g * 4 + 2], rec[g * 4 + 3]]).to_f32();
        kernels::affine1(&mut out[g * group..(g + 1) * group], s, z);
    }
    out[d..].fill(0.0);
}

/// Bytes of a block of `t` per-token asymmetric rows stored parameters-first
/// (KIVI and GEAR values): `t × d/group` f16 `(zero, scale)` pairs ordered
/// group-major (the pair of group `g`, row `r` at byte `4·(g·t + r)`), then
/// the `t` rows of packed codes. The same bytes as `t` rows of
/// [`token_asym_bytes`]; the parameters of consecutive rows of one group lie
/// together so the fused kernel reads eight rows' pairs with one load.
pub fn token_asym_block_bytes(t: usize, d: usize, group: usize, bits: u8) -> usize {
    t * token_asym_bytes(d, group, bits)
}

/// Encode `x` (`t × d`, row-major) per token (see [`token_asym_block_bytes`]):
/// each row as [`token_asym_encode`], its pairs and codes then moved to their
/// places in the block.
pub fn token_asym_block_encode(x: &[f32], t: usize, group: usize, bits: u8, out: &mut [u8]) {
    let d = x.len() / t;
    let ng = d / group;
    let (rb, pbytes) = (pack::row_bytes(bits, d), 4 * ng * t);
    let mut row = vec![0u8; token_asym_bytes(d, group, bits)];
    for r in 0..t {
        token_asym_encode(&x[r * d..(r + 1) * d], group, bits, &mut row);
        for g in 0..ng {
            out[4 * (g * t + r)..4 * (g * t + r) + 4].copy_from_slice(&row[4 * g..4 * g + 4]);
        }
        out[pbytes + r * rb..pbytes + (r + 1) * rb].copy_from_slice(&row[4 * ng..]);
    }
}

/// Decode a parameters-first block of `t` rows into `out` (`t` rows of
/// stride `dp = pad32(d)`; the padding is set to 0): each row gathered back
/// into [`token_asym_decode`]'s layout.
pub fn token_asym_block_decode(rec: &[u8], t: usize, d: usize, group: usize, bits: u8, out: &mut [f32]) {
    let (ng, dp) = (d / group, pad32(d));
    let (rb, pbytes) = (pack::row_bytes(bits, d), 4 * ng * t);
    let mut row = vec![0u8; token_asym_bytes(d, group, bits)];
    for r in 0..t {
        for g in 0..ng {
            row[4 * g..4 * g + 4].copy_from_slice(&rec[4 * (g * t + r)..4 * (g * t + r) + 4]);
        }
        row[4 * ng..].copy_from_slice(&rec[pbytes + r * rb..pbytes + (r + 1) * rb]);
        token_asym_decode(&row, d, group, bits, &mut out[r * dp..(r + 1) * dp]);
    }
}

// ---------------------------------------------------------------- per-channel asymmetric (over a group of tokens)

/// Bytes of a per-channel asymmetric block of `t` tokens × `d` channels
/// (KIVI keys): `d` f16 zeros, `d` f16 scales (per channel over the `t`
/// tokens), then the `t × d` codes **channel-major** (code of token `r`,
/// channel `c` at index `c·t + r`) packed as one stream of `bits`-bit codes
/// ([`crate::pack`], padded to 32 codes). When `t` is a multiple of 32 every
/// channel starts a fresh pack block, so the fused decode kernel scores 8
/// tokens of one channel with one vector FMA. Error per element
/// `≤ scale_c/2`.
pub fn channel_asym_bytes(t: usize, d: usize, bits: u8) -> usize {
    4 * d + pack::row_bytes(bits, t * d)
}

/// Encode `x` (`t × d`, row-major) per channel (see [`channel_asym_bytes`]).
pub fn channel_asym_encode(x: &[f32], t: usize, d: usize, bits: u8, out: &mut [u8]) {
    let qmax = ((1u32 << bits) - 1) as u8;
    let mut codes = vec![0u8; t * d];
    for c in 0..d {
        let (mut mn, mut mx) = (f32::INFINITY, f32::NEG_INFINITY);
        for r in 0..t {
            mn = mn.min(x[r * d + c]);
            mx = mx.max(x[r * d + c]);
        }
        let (z, s) = asym_params(mn, mx, bits);
        out[2 * c..2 * c + 2].copy_from_slice(&z.to_le_bytes());
        out[2 * d + 2 * c..2 * d + 2 * c + 2].copy_from_slice(&s.to_le_bytes());
        let (zf, sf) = (z.to_f32(), s.to_f32());
        for r in 0..t {
            codes[c * t + r] = asym_code(x[r * d + c], zf, sf, qmax);
        }
    }
    pack::pack(bits, &codes, &mut out[4 * d..4 * d + pack::row_bytes(bits, t * d)]);
}

/// Per-channel parameters of a block as f32 (`pad32(d)` long, padding 0).
pub fn channel_asym_params(rec: &[u8], d: usize, zero: &mut [f32], scale: &mut [f32]) {
    for c in 0..d {
        zero[c] = f16::from_le_bytes([rec[2 * c], rec[2 * c + 1]]).to_f32();
        scale[c] = f16::from_le_bytes([rec[2 * d + 2 * c], rec[2 * d + 2 * c + 1]]).to_f32();
    }
    zero[d..].fill(0.0);
    scale[d..].fill(0.0);
}

/// Decode a whole per-channel block into `out` (`t` rows of stride
/// `dp ≥ d`; channels `d..dp` of each row are set to 0).
pub fn channel_asym_decode(rec: &[u8], t: usize, d: usize, dp: usize, bits: u8, out: &mut [f32]) {
    let (mut z, mut s) = (vec![0f32; pad32(d)], vec![0f32; pad32(d)]);
    channel_asym_params(rec, d, &mut z, &mut s);
    let mut codes = vec![0f32; pad32(t * d)];
    pack::unpack_f32(bits, &rec[4 * d..], &mut codes);
    for r in 0..t {
        let row = &mut out[r * dp..(r + 1) * dp];
        for c in 0..d {
            row[c] = codes[c * t + r].mul_add(s[c], z[c]);
        }
        row[d..].fill(0.0);
    }
}

// ---------------------------------------------------------------- outliers

/// Bytes of one sparse outlier entry: little-endian u16 channel, f32 value.
pub const OUTLIER_BYTES: usize = 6;

/// Channels of the `n` largest magnitudes of `x` (ties: lower channel first).
pub fn top_magnitudes(x: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    let order = |a: &usize, b: &usize| x[*b].abs().total_cmp(&x[*a].abs()).then(a.cmp(b));
    // a total order, so partitioning at n then sorting the first n gives the
    // same indices as a full sort, in O(d) instead of O(d log d)
    if n < idx.len() {
        idx.select_nth_unstable_by(n, order);
        idx.truncate(n);
    }
    idx.sort_unstable_by(order);
    idx
}

/// Write `n` outliers `(channel, exact value)` of `x` into `out`.
pub fn outliers_encode(x: &[f32], chans: &[usize], out: &mut [u8]) {
    for (k, &c) in chans.iter().enumerate() {
        out[k * 6..k * 6 + 2].copy_from_slice(&(c as u16).to_le_bytes());
        out[k * 6 + 2..k * 6 + 6].copy_from_slice(&x[c].to_le_bytes());
    }
}

/// The `n` outliers `(channel, exact value)` stored at `rec`, in order.
pub fn outliers(rec: &[u8], n: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
    rec[..n * OUTLIER_BYTES].chunks_exact(OUTLIER_BYTES).map(|e| {
        (u16::from_le_bytes([e[0], e[1]]) as usize, f32::from_le_bytes([e[2], e[3], e[4], e[5]]))
    })
}

/// Overwrite the outlier channels of `row` with their exact values.
pub fn outliers_apply(rec: &[u8], n: usize, row: &mut [f32]) {
    for (c, v) in outliers(rec, n) {
        if c < row.len() {
            row[c] = v;
        }
    }
}

// ---------------------------------------------------------------- non-uniform codebooks

/// 1-D k-means (Lloyd, quantile initialisation) of `samples` into `k`
/// sorted centroids. Deterministic. Fewer distinct samples than `k` leave
/// duplicated centroids (harmless: nearest-centroid still works).
pub fn kmeans_1d(samples: &[f32], k: usize, iters: usize) -> Vec<f32> {
    let mut s: Vec<f32> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if s.is_empty() {
        return (0..k).map(|i| -1.0 + 2.0 * (i as f32 + 0.5) / k as f32).collect();
    }
    s.sort_by(f32::total_cmp);
    let n = s.len();
    let mut c: Vec<f32> = (0..k).map(|i| s[((2 * i + 1) * n / (2 * k)).min(n - 1)]).collect();
    // Prefix sums make each Lloyd step O(k log n) on the sorted samples.
    let mut prefix = vec![0f64; n + 1];
    for i in 0..n {
        prefix[i + 1] = prefix[i] + s[i] as f64;
    }
    for _ in 0..iters {
        c.sort_by(f32::total_cmp);
        let mut changed = false;
        let mut lo = 0usize;
        for j in 0..k {
            let hi = if j + 1 == k {
                n
            } else {
                let mid = 0.5 * (c[j] + c[j + 1]);
                lo + s[lo..].partition_point(|&v| v <= mid)
            };
            if hi > lo {
                let m = ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32;
                if m != c[j] {
                    changed = true;
                    c[j] = m;
                }
            }
            lo = hi;
        }
        if !changed {
            break;
        }
    }
    c.sort_by(f32::total_cmp);
    c
}

/// Index of the centroid nearest to `x` in a sorted codebook.
#[inline]
pub fn nearest_code(cb: &[f32], x: f32) -> u8 {
    let p = cb.partition_point(|&c| c < x);
    if p == 0 {
        0
    } else if p == cb.len() || (x - cb[p - 1]) <= (cb[p] - x) {
        (p - 1) as u8
    } else {
        p as u8
    }
}

/// Largest distance from any point of `[-1, 1]` to its nearest centroid
/// (the codebook's error bound on normalized inliers).
pub fn codebook_max_gap(cb: &[f32]) -> f32 {
    let mut g = (cb[0] + 1.0).max(0.0).max(1.0 - cb[cb.len() - 1]);
    for w in cb.windows(2) {
        g = g.max(0.5 * (w[1] - w[0]));
    }
    g
}

// ---------------------------------------------------------------- transforms

/// In-place normalized fast Walsh–Hadamard transform of each block of
/// `block` values (a power of two); orthonormal and its own inverse.
pub fn fwht(x: &mut [f32], block: usize) {
    let norm = 1.0 / (block as f32).sqrt();
    for b in x.chunks_exact_mut(block) {
        let mut h = 1;
        while h < block {
            for i in (0..block).step_by(2 * h) {
                for j in i..i + h {
                    let (a, c) = (b[j], b[j + h]);
                    b[j] = a + c;
                    b[j + h] = a - c;
                }
            }
            h *= 2;
        }
        for v in b.iter_mut() {
            *v *= norm;
        }
    }
}

/// How RoPE pairs channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Channel `i` with `i + d/2` (Hugging Face Llama / GPT-NeoX `rotate_half`).
    Half,
    /// Channel `2i` with `2i + 1` (GPT-J, original Meta Llama).
    Interleaved,
}

/// Rotary position embedding parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    /// Base θ (10000 for Llama 2, 100000 for SmolLM2-135M, 500000 for Llama 3).
    pub theta: f32,
    pub style: RopeStyle,
}

impl Rope {
    fn pair(&self, d: usize, i: usize) -> (usize, usize) {
        match self.style {
            RopeStyle::Half => (i, i + d / 2),
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
        }
    }

    fn inv_freq(&self, d: usize, i: usize) -> f64 {
        (self.theta as f64).powf(-2.0 * i as f64 / d as f64)
    }

    /// Rotate `x` (`d` values, `d` even) to position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let d = x.len();
        for i in 0..d / 2 {
            let (a, b) = self.pair(d, i);
            let (s, c) = (pos as f64 * self.inv_freq(d, i)).sin_cos();
            let (xa, xb) = (x[a] as f64, x[b] as f64);
            x[a] = (xa * c - xb * s) as f32;
            x[b] = (xb * c + xa * s) as f32;
        }
    }

    /// Rotate `n` rows (stride `stride`, first `d` values each) to positions
    /// `first_pos ..`: exact angles at the first row, then a complex
    /// recurrence in f64 (drift ~1e-15 per step), so a tile costs `d/2`
    /// sin/cos instead of `n·d/2`.
    pub fn apply_rows(&self, rows: &mut [f32], d: usize, stride: usize, first_pos: usize, n: usize) {
        for i in 0..d / 2 {
            let (a, b) = self.pair(d, i);
            let f = self.inv_freq(d, i);
            let (mut s, mut c) = (first_pos as f64 * f).sin_cos();
            let (ds, dc) = f.sin_cos();
            for r in 0..n {
                let row = &mut rows[r * stride..r * stride + d];
                let (xa, xb) = (row[a] as f64, row[b] as f64);
                row[a] = (xa * c - xb * s) as f32;
                row[b] = (xb * c + xa * s) as f32;
                let nc = c * dc - s * ds;
                s = s * dc + c * ds;
                c = nc;
            }
        }
    }
}

// ---------------------------------------------------------------- low rank

/// Rank-`r` approximation `E ≈ A·Bᵀ` of `e` (`t × d`) by power iteration
/// with deflation: `A` is `t × r`, `B` is `d × r` (unit columns), both
/// row-major. Each rank-1 step removes the projection `E·b·bᵀ`, so
/// `‖E - A·Bᵀ‖_F ≤ ‖E‖_F` whatever the convergence.
pub fn low_rank(e: &[f32], t: usize, d: usize, r: usize, iters: usize) -> (Vec<f32>, Vec<f32>) {
    let mut res: Vec<f64> = e.iter().map(|&v| v as f64).collect();
    let mut a = vec![0f32; t * r];
    let mut bm = vec![0f32; d * r];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for k in 0..r {
        let mut v: Vec<f64> = (0..d)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect();
        normalize(&mut v);
        let mut u = vec![0f64; t];
        for _ in 0..iters {
            for i in 0..t {
                u[i] = dot_f64(&res[i * d..(i + 1) * d], &v);
            }
            let mut nv = vec![0f64; d];
            for (row, &ui) in res.chunks_exact(d).zip(&u) {
                for (x, &rv) in nv.iter_mut().zip(row) {
                    *x += rv * ui;
                }
            }
            if !normalize(&mut nv) {
                break;
            }
            v = nv;
        }
        for i in 0..t {
            u[i] = dot_f64(&res[i * d..(i + 1) * d], &v);
        }
        for (i, row) in res.chunks_exact_mut(d).enumerate() {
            for (x, &vj) in row.iter_mut().zip(&v) {
                *x -= u[i] * vj;
            }
            a[i * r + k] = u[i] as f32;
        }
        for j in 0..d {
            bm[j * r + k] = v[j] as f32;
        }
    }
    (a, bm)
}

/// `Σ aᵢ·bᵢ` with four running sums (one sequential sum would be bound by
/// the latency of its additions; this one vectorises).
fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let mut s = [0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..4 {
            s[l] += x[l] * y[l];
        }
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

fn normalize(v: &mut [f64]) -> bool {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n <= 1e-300 {
        return false;
    }
    for x in v {
        *x /= n;
    }
    true
}

/// `(min, max)` of a slice.
pub fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
}
