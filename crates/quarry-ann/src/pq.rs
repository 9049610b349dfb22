//! Product quantization: `dim` splits into `m` sub-spaces of `dsub = dim / m`
//! components, each quantized to one of `ksub = 2^nbits` centroids learned by
//! k-means. Codes are `m` bytes (8-bit) or `ceil(m / 2)` bytes (4-bit, sub-space
//! `2j` in the low nibble of byte `j`, `2j + 1` in the high nibble, the unused
//! high nibble of an odd `m` zero). Distances are asymmetric: the query stays
//! in float and is turned into a lookup table (`m × ksub`) that a code scan sums.

use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::control::Control;
use crate::error::{AnnError, Result, invalid};
use crate::kmeans::{self, KMeansConfig};
use crate::{Metric, check_finite};

/// Trained product quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantizer {
    pub dim: usize,
    /// Number of sub-spaces.
    pub m: usize,
    /// Bits per sub-space code: 4 or 8.
    pub nbits: u32,
    /// `m × ksub × dsub`: sub-space `s`, centroid `c` starts at `(s * ksub + c) * dsub`.
    pub centroids: Vec<f32>,
}

/// k-means iterations per sub-space.
const PQ_KMEANS_ITERATIONS: usize = 25;
/// Rows per parallel task in batch encode / decode / scan.
const ROWS_PER_TASK: usize = 256;

impl ProductQuantizer {
    /// Trains `m` sub-quantizers of `2^nbits` centroids on the `n × dim` rows
    /// of `data` (each sub-space sub-sampled to at most 256 points per centroid).
    ///
    /// Errors: `m` of 0 or not dividing `dim`, `nbits` other than 4 or 8,
    /// fewer training vectors than `2^nbits` (`InvalidArgument`); ragged data
    /// (`DimMismatch`); NaN/inf (`InvalidInput`); cancellation (`Aborted`).
    pub fn train(data: &[f32], dim: usize, m: usize, nbits: u32, seed: u64, ctl: Control) -> Result<Self> {
        Self::train_with_iterations(data, dim, m, nbits, seed, PQ_KMEANS_ITERATIONS, ctl)
    }

    /// [`ProductQuantizer::train`] with a chosen number of k-means iterations.
    pub fn train_with_iterations(
        data: &[f32],
        dim: usize,
        m: usize,
        nbits: u32,
        seed: u64,
        iterations: usize,
        ctl: Control,
    ) -> Result<Self> {
        check_shape(dim, m, nbits)?;
        check_finite(data, dim)?;
        let n = data.len() / dim;
        let ksub = 1usize << nbits;
        if n < ksub {
            return Err(invalid(format!("too few training vectors: {n} for {ksub} centroids per sub-space")));
        }
        let dsub = dim / m;
        let done = AtomicUsize::new(0);
        ctl.report("pq", 0.0);
        let parts: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|s| {
                ctl.check()?;
                let mut sub = Vec::with_capacity(n * dsub);
                for row in data.chunks_exact(dim) {
                    sub.extend_from_slice(&row[s * dsub..(s + 1) * dsub]);
                }
                let cfg = KMeansConfig {
                    k: ksub,
                    iterations,
                    seed: seed ^ (s as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    max_points_per_centroid: 256,
                    balance: None,
                    spherical: false,
                };
                let km = kmeans::train(&sub, dsub, &cfg, Control::none())?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                ctl.report("pq", d as f64 / m as f64);
                Ok(km.centroids)
            })
            .collect::<Result<_>>()?;
        ctl.check()?;
        Ok(ProductQuantizer { dim, m, nbits, centroids: parts.concat() })
    }

    /// Centroids per sub-space (`2^nbits`).
    pub fn ksub(&self) -> usize {
        1usize << self.nbits.min(16)
    }

    /// Components per sub-space.
    pub fn dsub(&self) -> usize {
        self.dim.checked_div(self.m).unwrap_or(0)
    }

    /// Bytes per code: `m` (8-bit) or `ceil(m / 2)` (4-bit).
    pub fn code_size(&self) -> usize {
        if self.nbits == 4 { self.m.div_ceil(2) } else { self.m }
    }

    /// Checks that the public fields describe a usable quantizer (for models
    /// assembled by hand or loaded from a file).
    pub fn validate(&self) -> Result<()> {
        check_shape(self.dim, self.m, self.nbits)?;
        let want = self.m * self.ksub() * self.dsub();
        if self.centroids.len() != want {
            return Err(AnnError::DimMismatch(format!("PQ has {} centroid values, expected {want}", self.centroids.len())));
        }
        check_finite(&self.centroids, self.dim.max(1)).map_err(|_| invalid("PQ centroids are not finite"))
    }

    /// Encodes the `n × dim` rows of `data` into `codes` (`n × code_size()`),
    /// each sub-vector to its nearest centroid (ties to the smaller id).
    pub fn encode(&self, data: &[f32], codes: &mut [u8]) -> Result<()> {
        let n = self.check_batch(data)?;
        let cs = self.code_size();
        check_len("codes", codes.len(), n * cs)?;
        let tables = self.transposed();
        let (m, nbits) = (self.m, self.nbits);
        codes.par_chunks_mut(ROWS_PER_TASK * cs).zip(data.par_chunks(ROWS_PER_TASK * self.dim)).for_each(|(cc, dd)| {
            let mut scratch = vec![0f32; self.ksub()];
            let mut unpacked = vec![0u8; m];
            for (code, x) in cc.chunks_exact_mut(cs).zip(dd.chunks_exact(self.dim)) {
                self.encode_one(&tables, x, &mut unpacked, &mut scratch);
                if nbits == 8 {
                    code.copy_from_slice(&unpacked);
                } else {
                    pack_nibbles(&unpacked, code);
                }
            }
        });
        Ok(())
    }

    /// Sub-space codes, one byte each (`0..ksub`): `n × m`, row-major. The
    /// 4-bit fast-scan packer takes this layout.
    pub fn codes_unpacked(&self, data: &[f32], out: &mut [u8]) -> Result<()> {
        let n = self.check_batch(data)?;
        check_len("codes", out.len(), n * self.m)?;
        let tables = self.transposed();
        out.par_chunks_mut(ROWS_PER_TASK * self.m).zip(data.par_chunks(ROWS_PER_TASK * self.dim)).for_each(|(cc, dd)| {
            let mut scratch = vec![0f32; self.ksub()];
            for (code, x) in cc.chunks_exact_mut(self.m).zip(dd.chunks_exact(self.dim)) {
                self.encode_one(&tables, x, code, &mut scratch);
            }
        });
        Ok(())
    }

    /// Reconstructs `n` codes (`n × code_size()`) into `out` (`n × dim`).
    pub fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.validate()?;
        let cs = self.code_size();
        if !codes.len().is_multiple_of(cs) {
            return Err(AnnError::DimMismatch(format!("{} code bytes are not whole codes of {cs}", codes.len())));
        }
        let n = codes.len() / cs;
        check_len("output", out.len(), n * self.dim)?;
        let (dsub, ksub) = (self.dsub(), self.ksub());
        out.par_chunks_mut(ROWS_PER_TASK * self.dim).zip(codes.par_chunks(ROWS_PER_TASK * cs)).for_each(|(oo, cc)| {
            for (x, code) in oo.chunks_exact_mut(self.dim).zip(cc.chunks_exact(cs)) {
                for s in 0..self.m {
                    let c = sub_code(code, s, self.nbits) as usize;
                    let src = &self.centroids[(s * ksub + c) * dsub..(s * ksub + c + 1) * dsub];
                    x[s * dsub..(s + 1) * dsub].copy_from_slice(src);
                }
            }
        });
        Ok(())
    }

    /// Lookup table of `query` into `out` (`m × ksub`): `‖q_s − c‖²` for
    /// [`Metric::L2`], `⟨q_s, c⟩` for inner product and cosine (a cosine index
    /// normalises vectors before encoding and queries before this call).
    pub fn lut(&self, query: &[f32], metric: Metric, out: &mut [f32]) -> Result<()> {
        self.validate()?;
        check_len("query", query.len(), self.dim)?;
        check_len("lookup table", out.len(), self.m * self.ksub())?;
        if query.iter().any(|x| !x.is_finite()) {
            return Err(AnnError::InvalidInput("query has a NaN or infinite component".into()));
        }
        self.lut_from_tables(&self.transposed(), query, metric, out);
        Ok(())
    }

    /// [`ProductQuantizer::lut`] for callers that validated the quantizer and
    /// the query already and keep [`ProductQuantizer::transposed`] tables
    /// (an index computes them once, not per query or per probed list).
    pub(crate) fn lut_from_tables(&self, tables: &[f32], query: &[f32], metric: Metric, out: &mut [f32]) {
        let (dsub, ksub) = (self.dsub(), self.ksub());
        for s in 0..self.m {
            let t = &tables[s * dsub * ksub..(s + 1) * dsub * ksub];
            let q = &query[s * dsub..(s + 1) * dsub];
            let row = &mut out[s * ksub..(s + 1) * ksub];
            match metric {
                Metric::L2 => sub_l2(t, q, row),
                Metric::InnerProduct | Metric::Cosine => sub_ip(t, q, row),
            }
        }
    }

    /// Asymmetric distances: `out[i] = Σ_s lut[s][code_i[s]]` for the `n` codes
    /// in `codes` (`n × code_size()`), `lut` from [`ProductQuantizer::lut`].
    /// Four codes are summed at a time (independent dependency chains); 4-bit
    /// codes of long lists are scanned through one 256-entry table per byte.
    pub fn adc_scan(&self, codes: &[u8], lut: &[f32], out: &mut [f32]) -> Result<()> {
        check_shape(self.dim, self.m, self.nbits)?;
        let cs = self.code_size();
        if !codes.len().is_multiple_of(cs) {
            return Err(AnnError::DimMismatch(format!("{} code bytes are not whole codes of {cs}", codes.len())));
        }
        let n = codes.len() / cs;
        check_len("lookup table", lut.len(), self.m * self.ksub())?;
        check_len("output", out.len(), n)?;
        if self.nbits == 8 {
            scan_bytes(codes, lut, self.m, out);
        } else if n >= BYTE_TABLE_MIN_CODES {
            let pair = pair_tables(lut, self.m);
            scan_bytes(codes, &pair, cs, out);
        } else {
            scan_nibbles(codes, lut, self.m, out);
        }
        Ok(())
    }

    /// Mean squared reconstruction error per vector over the rows of `data`.
    pub fn reconstruction_error(&self, data: &[f32]) -> Result<f64> {
        let n = self.check_batch(data)?;
        if n == 0 {
            return Ok(0.0);
        }
        let mut codes = vec![0u8; n * self.code_size()];
        self.encode(data, &mut codes)?;
        let mut rec = vec![0f32; data.len()];
        self.decode(&codes, &mut rec)?;
        let total: f64 = data
            .par_chunks(self.dim * ROWS_PER_TASK)
            .zip(rec.par_chunks(self.dim * ROWS_PER_TASK))
            .map(|(a, b)| a.iter().zip(b).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum::<f64>())
            .collect::<Vec<_>>()
            .iter()
            .sum();
        Ok(total / n as f64)
    }

    fn check_batch(&self, data: &[f32]) -> Result<usize> {
        self.validate()?;
        if data.is_empty() {
            return Ok(0);
        }
        check_finite(data, self.dim)?;
        Ok(data.len() / self.dim)
    }

    /// Centroids of each sub-space transposed to `dsub × ksub`, so distance
    /// loops run over centroids (contiguous, vectorisable).
    pub(crate) fn transposed(&self) -> Vec<f32> {
        let (dsub, ksub) = (self.dsub(), self.ksub());
        let mut t = vec![0f32; self.centroids.len()];
        for s in 0..self.m {
            for c in 0..ksub {
                for d in 0..dsub {
                    t[s * dsub * ksub + d * ksub + c] = self.centroids[(s * ksub + c) * dsub + d];
                }
            }
        }
        t
    }

    fn encode_one(&self, tables: &[f32], x: &[f32], code: &mut [u8], scratch: &mut [f32]) {
        let (dsub, ksub) = (self.dsub(), self.ksub());
        for s in 0..self.m {
            let t = &tables[s * dsub * ksub..(s + 1) * dsub * ksub];
            code[s] = nearest_centroid(t, &x[s * dsub..(s + 1) * dsub], scratch) as u8;
        }
    }
}

/// 4-bit lists at least this long are scanned through per-byte pair tables
/// (building them costs `256 × m / 2` additions).
const BYTE_TABLE_MIN_CODES: usize = 512;

fn check_shape(dim: usize, m: usize, nbits: u32) -> Result<()> {
    if dim == 0 {
        return Err(AnnError::DimMismatch("dim must be at least 1".into()));
    }
    if m == 0 || !dim.is_multiple_of(m) {
        return Err(invalid(format!("PQ m = {m} must divide dim = {dim}")));
    }
    if nbits != 4 && nbits != 8 {
        return Err(invalid(format!("PQ supports 4- and 8-bit codes, got {nbits}")));
    }
    Ok(())
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(AnnError::DimMismatch(format!("{what} has length {got}, expected {want}")));
    }
    Ok(())
}

/// Code of sub-space `s` in a packed code.
#[inline]
pub(crate) fn sub_code(code: &[u8], s: usize, nbits: u32) -> u8 {
    if nbits == 8 {
        code[s]
    } else if s.is_multiple_of(2) {
        code[s / 2] & 0x0f
    } else {
        code[s / 2] >> 4
    }
}

/// Packs one-byte 4-bit sub-codes two per byte (even sub-space low).
pub fn pack_nibbles(unpacked: &[u8], packed: &mut [u8]) {
    for (j, p) in packed.iter_mut().enumerate() {
        let lo = unpacked[2 * j] & 0x0f;
        let hi = unpacked.get(2 * j + 1).map_or(0, |&h| h & 0x0f);
        *p = lo | (hi << 4);
    }
}

fn argmin(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x < v[best] {
            best = i;
        }
    }
    best
}

/// Index of the nearest centroid (squared L2; ties to the smaller index) of
/// sub-vector `q` in a transposed sub-space table; `scratch` holds `ksub` floats.
pub(crate) fn nearest_centroid(t: &[f32], q: &[f32], scratch: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if avx2() && scratch.len().is_multiple_of(8) {
        // SAFETY: AVX2 was detected at run time; ksub is a multiple of 8.
        return unsafe { nearest_centroid_avx2(t, q, scratch.len()) };
    }
    nearest_centroid_portable(t, q, scratch)
}

/// The portable reference of [`nearest_centroid`].
#[doc(hidden)]
pub fn nearest_centroid_portable(t: &[f32], q: &[f32], scratch: &mut [f32]) -> usize {
    sub_l2_generic(t, q, scratch);
    argmin(scratch)
}

/// Distances 8 centroids at a time (mul then add, as the portable loop, so
/// the values are bitwise the same) with a running per-lane minimum and its
/// index; lanes keep their first minimum and the final reduction takes the
/// smallest index among equal minima, so the result equals the portable one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nearest_centroid_avx2(t: &[f32], q: &[f32], ksub: usize) -> usize {
    use std::arch::x86_64::*;
    let dsub = q.len();
    debug_assert!(t.len() >= dsub * ksub);
    let mut best_v = _mm256_set1_ps(f32::INFINITY);
    let mut best_i = _mm256_set1_epi32(0);
    let mut idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let eight = _mm256_set1_epi32(8);
    let mut first = true;
    for c in (0..ksub).step_by(8) {
        let mut acc = _mm256_setzero_ps();
        for (d, &qd) in q.iter().enumerate() {
            // SAFETY: c + 8 <= ksub and d < dsub, inside the dsub × ksub table.
            let cv = unsafe { _mm256_loadu_ps(t.as_ptr().add(d * ksub + c)) };
            let diff = _mm256_sub_ps(_mm256_set1_ps(qd), cv);
            acc = _mm256_add_ps(acc, _mm256_mul_ps(diff, diff));
        }
        if first {
            // The first block seeds every lane (also when distances are inf).
            best_v = acc;
            best_i = idx;
            first = false;
        } else {
            let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(acc, best_v);
            best_v = _mm256_blendv_ps(best_v, acc, lt);
            best_i = _mm256_blendv_epi8(best_i, idx, _mm256_castps_si256(lt));
        }
        idx = _mm256_add_epi32(idx, eight);
    }
    let mut v = [0f32; 8];
    let mut i = [0i32; 8];
    // SAFETY: 8-lane stores into 8-element arrays.
    unsafe {
        _mm256_storeu_ps(v.as_mut_ptr(), best_v);
        _mm256_storeu_si256(i.as_mut_ptr() as *mut __m256i, best_i);
    }
    let mut b = 0;
    for l in 1..8 {
        if v[l] < v[b] || (v[l] == v[b] && i[l] < i[b]) {
            b = l;
        }
    }
    i[b] as usize
}

/// `out[c] = Σ_d (q[d] − t[d][c])²` over a transposed sub-space table.
fn sub_l2(t: &[f32], q: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected at run time.
        return unsafe { sub_l2_avx2(t, q, out) };
    }
    sub_l2_generic(t, q, out)
}

/// `out[c] = Σ_d q[d] · t[d][c]`.
fn sub_ip(t: &[f32], q: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: AVX2 was detected at run time.
        return unsafe { sub_ip_avx2(t, q, out) };
    }
    sub_ip_generic(t, q, out)
}

#[inline(always)]
fn sub_l2_generic(t: &[f32], q: &[f32], out: &mut [f32]) {
    let ksub = out.len();
    out.fill(0.0);
    for (row, &qd) in t.chunks_exact(ksub).zip(q) {
        for (o, &c) in out.iter_mut().zip(row) {
            let d = qd - c;
            *o += d * d;
        }
    }
}

#[inline(always)]
fn sub_ip_generic(t: &[f32], q: &[f32], out: &mut [f32]) {
    let ksub = out.len();
    out.fill(0.0);
    for (row, &qd) in t.chunks_exact(ksub).zip(q) {
        for (o, &c) in out.iter_mut().zip(row) {
            *o += qd * c;
        }
    }
}

// The same loops compiled with AVX2 enabled: the compiler vectorises them 8
// wide. Rust never contracts a*b+c into an FMA, so the results are bitwise
// those of the generic loops (the operations per element are the same).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sub_l2_avx2(t: &[f32], q: &[f32], out: &mut [f32]) {
    sub_l2_generic(t, q, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sub_ip_avx2(t: &[f32], q: &[f32], out: &mut [f32]) {
    sub_ip_generic(t, q, out)
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    // `QUARRY_SIMD=scalar` forces the portable paths (as in quarry-simd).
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::env::var_os("QUARRY_SIMD").is_none_or(|v| !v.eq_ignore_ascii_case("scalar"))
    })
}

/// One 256-entry table per code byte: entry `b` is the sum of the two
/// nibbles' entries.
fn pair_tables(lut: &[f32], m: usize) -> Vec<f32> {
    let bytes = m.div_ceil(2);
    let mut out = vec![0f32; bytes * 256];
    for j in 0..bytes {
        let lo = &lut[2 * j * 16..2 * j * 16 + 16];
        let hi = lut.get((2 * j + 1) * 16..(2 * j + 2) * 16);
        let table = &mut out[j * 256..(j + 1) * 256];
        for (b, v) in table.iter_mut().enumerate() {
            *v = lo[b & 15] + hi.map_or(0.0, |h| h[b >> 4]);
        }
    }
    out
}

/// `out[i] = Σ_j table[j][code_i[j]]` with 256-entry tables, `width` bytes per code.
fn scan_bytes(codes: &[u8], tables: &[f32], width: usize, out: &mut [f32]) {
    let tables: Vec<&[f32; 256]> =
        tables.chunks_exact(256).map(|t| t.try_into().expect("chunks_exact(256) yields 256 values")).collect();
    let mut quads = codes.chunks_exact(4 * width);
    let mut outs = out.chunks_exact_mut(4);
    for (c, o) in (&mut quads).zip(&mut outs) {
        let (c0, rest) = c.split_at(width);
        let (c1, rest) = rest.split_at(width);
        let (c2, c3) = rest.split_at(width);
        let (mut a0, mut a1, mut a2, mut a3) = (0f32, 0f32, 0f32, 0f32);
        // Zipped iterators: no bounds checks (u8 indices into 256-entry arrays).
        for ((((t, &b0), &b1), &b2), &b3) in tables.iter().zip(c0).zip(c1).zip(c2).zip(c3) {
            a0 += t[b0 as usize];
            a1 += t[b1 as usize];
            a2 += t[b2 as usize];
            a3 += t[b3 as usize];
        }
        o.copy_from_slice(&[a0, a1, a2, a3]);
    }
    for (c, o) in quads.remainder().chunks_exact(width).zip(outs.into_remainder()) {
        *o = tables.iter().zip(c).map(|(t, &b)| t[b as usize]).sum();
    }
}

/// 4-bit scan straight from the 16-entry tables (short lists).
fn scan_nibbles(codes: &[u8], lut: &[f32], m: usize, out: &mut [f32]) {
    let cs = m.div_ceil(2);
    for (c, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
        let mut acc = 0f32;
        for s in 0..m {
            acc += lut[s * 16 + sub_code(c, s, 4) as usize];
        }
        *o = acc;
    }
}
