//! 4-bit product-quantization "fast-scan": approximate distances of many
//! PQ-coded vectors to one query, computed with SIMD byte shuffles.
//!
//! The idea follows FAISS's `IndexPQFastScan` / ScaNN's LUT16: with 4-bit
//! codes a sub-quantizer's lookup table has 16 entries, which fits one
//! 128-bit register once the entries are quantised to u8; a byte shuffle
//! (`pshufb`, `tbl`) then looks up 16 (or 32) codes at once.
//!
//! # Packed layout
//!
//! Vectors are grouped in blocks of [`BLOCK`] = 32; the last block is padded
//! with code 0. Sub-quantizers are taken in pairs `(2q, 2q + 1)`; for odd `m`
//! the last pair has a virtual sub-quantizer whose codes are 0 and whose
//! table is all zeros. A block is `pairs(m)` groups of 32 bytes, group `q`
//! being
//!
//! ```text
//! byte j      (j < 16): code[v = j][2q]     | code[v = j + 16][2q]     << 4
//! byte 16 + j         : code[v = j][2q + 1] | code[v = j + 16][2q + 1] << 4
//! ```
//!
//! so one 32-byte load holds the codes of 32 vectors for two sub-quantizers,
//! one per 128-bit lane, matching a 32-byte table register holding the two
//! 16-entry tables. Padding nibbles are always 0; [`append`] relies on it.
//!
//! # Table quantisation and error bound
//!
//! [`QuantizedLut::new`] maps the f32 tables (m × 16, smaller = nearer) to u8
//! with one shared `scale` and a per-table bias (the table's minimum):
//! `q[s][c] = round((lut[s][c] - min_s) · scale)`. The scale is the largest
//! that keeps every entry ≤ 255 *and* every possible sum of m entries
//! ≤ 65535, so the u16 accumulators never overflow for any `m` (for m ≤ 256
//! the first condition decides: `scale = 255 / max_s range_s`). A vector's
//! approximate distance is `to_f32(acc) = acc / scale + Σ_s min_s`, and
//!
//! ```text
//! |to_f32(acc) − Σ_s lut[s][code_s]|  ≤  m · (1/2 + 2^-15) / scale   (= error_bound())
//! ```
//!
//! (half a unit per table, plus the f32 arithmetic of the quantisation),
//! plus f32 rounding of the final multiply-add (relative 2^-23 of the
//! magnitudes involved).
//!
//! # Collecting
//!
//! [`scan_collect`] compares each block's 32 sums against the collector's
//! current threshold converted into the u16 domain
//! ([`QuantizedLut::from_f32_threshold`]) and offers only survivors, as f32.
//! The conversion is conservative (every sum whose f32 distance is ≤ the
//! threshold survives), so pruning never drops a vector the collector would
//! have kept. Filters and tombstones belong to the collector, so they are
//! applied inside the scan, before a vector can occupy a top-k slot.

//!
//! # Using it from an index
//!
//! Per IVF list keep the packed codes ([`pack`], [`append`]; [`unpack_all`]
//! and [`pack`] again to compact after removals). Per query build one
//! [`QuantizedLut`]; when the lists' distances differ only by a per-list
//! constant (inner product with residuals: `⟨q, c⟩ + ⟨q, r⟩`), set that
//! constant with [`QuantizedLut::set_offset`] before each list instead of
//! re-quantising. One [`TopKCollector`] spans all probed lists
//! ([`TopKCollector::set_base`] maps list positions to a global numbering,
//! its filter sees that number), so later lists are pruned by the best
//! results of earlier ones. [`scan_collect_batch`] serves several queries
//! that probe the same list in one pass over its codes.

use crate::error::{AnnError, Result, invalid};
use quarry_simd::SimdLevel;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

/// The intrinsics `neon.rs` uses (swapped for scalar models in its test).
#[cfg(target_arch = "aarch64")]
mod arch {
    pub(super) use core::arch::aarch64::*;
}

/// Puts the Neon level's `#[target_feature]` on each item.
#[cfg(target_arch = "aarch64")]
macro_rules! neon_target {
    ($($item:item)*) => {$(
        #[target_feature(enable = "neon")]
        $item
    )*};
}

#[cfg(target_arch = "aarch64")]
mod neon;

/// Vectors per packed block.
pub const BLOCK: usize = 32;

/// Largest number of sub-quantizers a [`QuantizedLut`] accepts (the u16
/// headroom argument needs `m / 2 < 65535`; 4096 leaves ample precision).
pub const MAX_M: usize = 4096;

/// Table entries per sub-quantizer (4-bit codes).
pub const KSUB: usize = 16;

/// Number of sub-quantizer pairs (32-byte groups per block) for `m`.
#[inline]
pub fn pairs(m: usize) -> usize {
    m.div_ceil(2)
}

/// Bytes of one packed block of 32 vectors.
#[inline]
pub fn block_bytes(m: usize) -> usize {
    pairs(m) * 32
}

/// Bytes that `n` packed vectors of `m` 4-bit codes occupy.
#[inline]
pub fn packed_len(n: usize, m: usize) -> usize {
    n.div_ceil(BLOCK) * block_bytes(m)
}

/// Byte offset and nibble shift of vector `i`'s code for sub-quantizer `s`.
#[inline]
fn locate(i: usize, s: usize, m: usize) -> (usize, u32) {
    let j = i % BLOCK;
    let off = (i / BLOCK) * block_bytes(m) + (s / 2) * 32 + (s % 2) * 16 + (j % 16);
    (off, if j >= 16 { 4 } else { 0 })
}

fn check_codes(codes: &[u8], m: usize) -> Result<()> {
    if m == 0 {
        return Err(invalid("fast-scan needs m >= 1 sub-quantizers"));
    }
    if !codes.len().is_multiple_of(m) {
        return Err(AnnError::DimMismatch(format!("{} codes do not divide into vectors of m = {m}", codes.len())));
    }
    if let Some(p) = codes.iter().position(|&c| c >= 16) {
        return Err(AnnError::InvalidInput(format!(
            "code {} of vector {} is {}, not a 4-bit code",
            p % m,
            p / m,
            codes[p]
        )));
    }
    Ok(())
}

/// Writes codes (already checked) of vectors `first..first + codes.len() / m`
/// into `packed`, whose target nibbles must be zero.
fn scatter(packed: &mut [u8], first: usize, m: usize, codes: &[u8]) {
    for (k, row) in codes.chunks_exact(m).enumerate() {
        for (s, &c) in row.iter().enumerate() {
            let (off, shift) = locate(first + k, s, m);
            packed[off] |= c << shift;
        }
    }
}

/// Packs `codes` (n × m, one 4-bit code per byte, row-major) into the
/// blocked layout, replacing the contents of `out`.
pub fn pack(codes: &[u8], m: usize, out: &mut Vec<u8>) -> Result<()> {
    check_codes(codes, m)?;
    let n = codes.len() / m;
    out.clear();
    out.resize(packed_len(n, m), 0);
    scatter(out, 0, m, codes);
    Ok(())
}

/// Appends the vectors `new_codes` (k × m) after the `n_before` vectors
/// already in `packed`, filling the padding of the last partial block first.
/// Only the touched blocks are written.
pub fn append(packed: &mut Vec<u8>, n_before: usize, m: usize, new_codes: &[u8]) -> Result<()> {
    check_codes(new_codes, m)?;
    if packed.len() != packed_len(n_before, m) {
        return Err(AnnError::DimMismatch(format!(
            "packed buffer has {} bytes, {} vectors of m = {m} need {}",
            packed.len(),
            n_before,
            packed_len(n_before, m)
        )));
    }
    let n_after = n_before + new_codes.len() / m;
    packed.resize(packed_len(n_after, m), 0);
    scatter(packed, n_before, m, new_codes);
    Ok(())
}

/// Reads the m codes of vector `i` (of `n`) into `out[..m]`.
pub fn unpack(packed: &[u8], n: usize, m: usize, i: usize, out: &mut [u8]) -> Result<()> {
    check_layout(packed, n, m)?;
    if i >= n {
        return Err(invalid(format!("vector {i} out of range (n = {n})")));
    }
    if out.len() < m {
        return Err(AnnError::DimMismatch(format!("output holds {} codes, m = {m}", out.len())));
    }
    for (s, o) in out[..m].iter_mut().enumerate() {
        let (off, shift) = locate(i, s, m);
        *o = (packed[off] >> shift) & 15;
    }
    Ok(())
}

/// Unpacks all n vectors back to n × m codes (compaction, tests).
pub fn unpack_all(packed: &[u8], n: usize, m: usize) -> Result<Vec<u8>> {
    check_layout(packed, n, m)?;
    let mut out = vec![0u8; n * m];
    for (i, row) in out.chunks_exact_mut(m).enumerate() {
        unpack(packed, n, m, i, row)?;
    }
    Ok(out)
}

fn check_layout(packed: &[u8], n: usize, m: usize) -> Result<()> {
    if m == 0 {
        return Err(invalid("fast-scan needs m >= 1 sub-quantizers"));
    }
    if packed.len() < packed_len(n, m) {
        return Err(AnnError::DimMismatch(format!(
            "packed buffer has {} bytes, {n} vectors of m = {m} need {}",
            packed.len(),
            packed_len(n, m)
        )));
    }
    Ok(())
}

/// A query's lookup tables quantised to u8 and laid out for the kernels:
/// pair `q` is 32 bytes, the 16 entries of table `2q` then those of `2q + 1`
/// (zeros for the virtual table of odd `m`).
#[derive(Debug, Clone)]
pub struct QuantizedLut {
    m: usize,
    tables: Vec<u8>,
    /// u8 units per unit of distance.
    scale: f64,
    inv_scale: f32,
    /// Σ_s min_s.
    sum_mins: f64,
    /// Σ_s min_s plus the caller's offset: the distance of an all-zero sum.
    bias: f32,
}

impl QuantizedLut {
    /// Quantises `lut` (m × 16 f32, row `s` = table of sub-quantizer `s`,
    /// smaller = nearer; callers negate similarities). Errors on a length
    /// mismatch, `m` of 0 or above [`MAX_M`], a NaN/infinite entry, or
    /// tables whose sums could leave the f32 range.
    pub fn new(lut: &[f32], m: usize) -> Result<Self> {
        if m == 0 || m > MAX_M {
            return Err(invalid(format!("fast-scan needs 1 <= m <= {MAX_M}, got {m}")));
        }
        if lut.len() != m * KSUB {
            return Err(AnnError::DimMismatch(format!(
                "lookup table has {} entries, m × 16 = {}",
                lut.len(),
                m * KSUB
            )));
        }
        // Branch-free scan first (vectorises); locate the culprit only on failure.
        let exponent_all_ones = lut.iter().fold(false, |bad, x| bad | (x.to_bits() & 0x7f80_0000 == 0x7f80_0000));
        if exponent_all_ones {
            let p = lut.iter().position(|x| !x.is_finite()).unwrap_or(0);
            return Err(AnnError::InvalidInput(format!("lookup table entry {p} is NaN or infinite")));
        }
        // f64 so that ranges of extreme f32 values neither overflow nor lose digits.
        // Minima and maxima are exact in f32; sums of ranges go to f64 so
        // extreme tables neither overflow nor lose digits.
        let mut mins = Vec::with_capacity(m);
        let mut max_range = 0f64;
        let mut sum_range = 0f64;
        for t in lut.chunks_exact(KSUB) {
            // Plain comparisons (entries are finite) over 4 lanes, so the folds vectorise.
            let (mut lo4, mut hi4) = ([t[0]; 4], [t[0]; 4]);
            for c in t.chunks_exact(4) {
                for l in 0..4 {
                    lo4[l] = if c[l] < lo4[l] { c[l] } else { lo4[l] };
                    hi4[l] = if c[l] > hi4[l] { c[l] } else { hi4[l] };
                }
            }
            let lo = lo4.into_iter().fold(lo4[0], |a, x| if x < a { x } else { a });
            let hi = hi4.into_iter().fold(hi4[0], |a, x| if x > a { x } else { a });
            mins.push(lo);
            let range = hi as f64 - lo as f64;
            max_range = max_range.max(range);
            sum_range += range;
        }
        let sum_mins = mins.iter().map(|&x| x as f64).sum::<f64>();
        let extreme = mins.iter().map(|&x| (x as f64).abs()).sum::<f64>() + sum_range;
        if extreme > f32::MAX as f64 {
            return Err(AnnError::InvalidInput("lookup table sums leave the f32 range".into()));
        }
        let scale = if max_range > 0.0 {
            // Entries ≤ 255, and Σ_s round(range_s · scale) ≤ scale · Σ range + m/2 ≤ 65535
            // (the rounding slack of the f32 arithmetic below is far below m/2).
            (255.0 / max_range).min((65535.0 - m as f64) / sum_range)
        } else {
            1.0
        };
        let scale_f32 = scale as f32;
        let mut tables = vec![0u8; block_bytes(m)];
        for (s, (t, &lo)) in lut.chunks_exact(KSUB).zip(&mins).enumerate() {
            let dst = &mut tables[(s / 2) * 32 + (s % 2) * 16..][..KSUB];
            for (d, &x) in dst.iter_mut().zip(t) {
                // Round half up; the value is in [0.5, 255.5] up to f32 rounding.
                let v = (x - lo) * scale_f32 + 0.5;
                let v = if v < 255.0 { v } else { 255.0 };
                // SAFETY: v is finite and in [0, 255] (x ≥ lo, all finite).
                *d = unsafe { v.to_int_unchecked::<i32>() } as u8;
            }
        }
        let mut q = QuantizedLut { m, tables, scale, inv_scale: (1.0 / scale) as f32, sum_mins, bias: 0.0 };
        q.set_offset(0.0);
        Ok(q)
    }

    /// Adds `offset` to every distance this table produces (e.g. a per-list
    /// term of an IVF index that the sub-tables do not carry).
    pub fn with_offset(mut self, offset: f32) -> Self {
        self.set_offset(offset);
        self
    }

    /// Sets the constant added to every distance (replacing any earlier
    /// offset), so one quantised table serves several IVF lists whose
    /// distances differ by a per-list constant.
    pub fn set_offset(&mut self, offset: f32) {
        self.bias = (self.sum_mins + offset as f64) as f32;
    }

    /// Number of sub-quantizers.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The quantised tables in kernel layout (`pairs(m) × 32` bytes).
    pub fn tables(&self) -> &[u8] {
        &self.tables
    }

    /// u8 units per unit of distance.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Distance of an all-zero sum (Σ of table minima, plus any offset).
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// Largest |to_f32(sum) − exact f32 ADC distance| from quantisation,
    /// `m · (1/2 + 2^-15) / scale` (half a unit per table plus the f32
    /// rounding of the quantisation; rounding of the conversion comes on top).
    pub fn error_bound(&self) -> f32 {
        ((0.5 + 1.0 / 32768.0) * self.m as f64 / self.scale) as f32
    }

    /// Approximate distance of a u16 sum. Monotone non-decreasing in `acc`.
    #[inline]
    pub fn to_f32(&self, acc: u16) -> f32 {
        acc as f32 * self.inv_scale + self.bias
    }

    /// The largest sum `a` with `to_f32(a) <= t` (65535 for +inf or NaN,
    /// 0 when even `to_f32(0) > t`). Sums ≤ the result are the ones a
    /// collector with threshold `t` may keep; a sum of 0 that is still above
    /// `t` gets offered and rejected by the collector.
    pub fn from_f32_threshold(&self, t: f32) -> u16 {
        if t.is_nan() || t >= self.to_f32(u16::MAX) {
            return u16::MAX;
        }
        if t < self.to_f32(0) {
            return 0;
        }
        // t − bias ≥ 0 here (to_f32(0) ≤ t), so truncation is floor.
        let guess = (((t - self.bias) * self.scale as f32) as u32).min(65535);
        let fits = |a: u32| self.to_f32(a as u16) <= t;
        // The guess is within a unit or two unless f32 rounding merges many
        // sums into one distance (huge bias, tiny range); then bisect.
        let mut a = guess;
        for _ in 0..3 {
            if fits(a) {
                if a == 65535 || !fits(a + 1) {
                    return a as u16;
                }
                a += 1;
            } else {
                a -= 1; // a > 0: fits(0) holds
            }
        }
        // Invariant: fits(lo), !fits(hi + 1) with hi = 65535 meaning unbounded above.
        let (mut lo, mut hi) = (0u32, 65535u32);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo as u16
    }
}

/// Receives the survivors of [`scan_collect`].
pub trait Collector {
    /// Distances above this cannot enter the collection (non-increasing
    /// while a scan runs; +inf while anything may enter).
    fn threshold(&self) -> f32;
    /// A vector at list position `pos` with approximate distance `dist`
    /// (≤ the threshold at the time, positions in increasing order).
    fn offer(&mut self, pos: usize, dist: f32);
    /// Which vectors of block `block` (positions `32·block + j`, bit `j`)
    /// may be offered at all: a filter known before the scan. Blocks with
    /// none are skipped without computing their sums, and only the others'
    /// vectors are offered. Default: every vector.
    #[inline]
    fn block_allowed(&self, _block: usize) -> u32 {
        u32::MAX
    }
}

/// Keeps the `k` best `(dist, pos)` pairs, ordered by distance then
/// position (so ties go to the earlier position, deterministically). An
/// optional filter (allow-list, tombstones) is consulted for every vector
/// that would otherwise enter, so filtered-out vectors never hold a slot.
pub struct TopKCollector<'a> {
    k: usize,
    base: usize,
    heap: std::collections::BinaryHeap<Entry>,
    filter: Option<&'a dyn Fn(usize) -> bool>,
}

/// Heap entry ordered by (dist, pos); the heap's top is the worst kept.
#[derive(Clone, Copy, Debug)]
struct Entry {
    dist: f32,
    pos: usize,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.dist.total_cmp(&o.dist).then(self.pos.cmp(&o.pos))
    }
}

impl<'a> TopKCollector<'a> {
    /// Keeps the k best (k may be 0: keeps nothing).
    pub fn new(k: usize) -> Self {
        TopKCollector { k, base: 0, heap: std::collections::BinaryHeap::with_capacity(k + 1), filter: None }
    }

    /// Keeps only positions (after adding the base) for which `filter` is true.
    pub fn with_filter(k: usize, filter: &'a dyn Fn(usize) -> bool) -> Self {
        TopKCollector { filter: Some(filter), ..Self::new(k) }
    }

    /// Offset added to every offered position, so one collector can span
    /// several lists (set it before scanning each list).
    pub fn set_base(&mut self, base: usize) {
        self.base = base;
    }

    /// Number of entries kept so far (≤ k).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The kept `(dist, pos)` pairs, best first.
    pub fn into_sorted(self) -> Vec<(f32, usize)> {
        self.heap.into_sorted_vec().into_iter().map(|e| (e.dist, e.pos)).collect()
    }
}

impl Collector for TopKCollector<'_> {
    #[inline]
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.k { f32::INFINITY } else { self.heap.peek().map_or(f32::NEG_INFINITY, |e| e.dist) }
    }

    #[inline]
    fn offer(&mut self, pos: usize, dist: f32) {
        let e = Entry { dist, pos: pos + self.base };
        let full = self.heap.len() >= self.k;
        if full && self.heap.peek().is_none_or(|w| e >= *w) {
            return;
        }
        if let Some(f) = self.filter
            && !f(e.pos)
        {
            return;
        }
        if full {
            // Replacing the top sifts once, where pop + push would sift twice.
            if let Some(mut worst) = self.heap.peek_mut() {
                *worst = e;
            }
        } else {
            self.heap.push(e);
        }
    }
}

/// Implementation levels of the scan kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanLevel {
    /// Portable scalar reference.
    Scalar,
    /// x86-64 AVX2 (`vpshufb` on 256 bits).
    Avx2,
    /// x86-64 AVX-512BW (`vpshufb` on 512 bits: four sub-quantizers per lookup).
    Avx512,
    /// AArch64 Neon (`tbl`).
    Neon,
}

impl ScanLevel {
    /// True when this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            ScanLevel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            ScanLevel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            ScanLevel::Avx2 => false,
            #[cfg(target_arch = "x86_64")]
            ScanLevel::Avx512 => std::arch::is_x86_feature_detected!("avx512bw"),
            #[cfg(not(target_arch = "x86_64"))]
            ScanLevel::Avx512 => false,
            #[cfg(target_arch = "aarch64")]
            ScanLevel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(not(target_arch = "aarch64"))]
            ScanLevel::Neon => false,
        }
    }

    /// The fastest level this CPU runs, capped by the level `quarry-simd`
    /// dispatches to (so `QUARRY_SIMD=avx2` also lowers the scans).
    pub fn best() -> Self {
        static BEST: std::sync::OnceLock<ScanLevel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let cap = quarry_simd::simd_level();
            [(ScanLevel::Avx512, SimdLevel::Avx512), (ScanLevel::Avx2, SimdLevel::Avx2), (ScanLevel::Neon, SimdLevel::Neon)]
                .into_iter()
                .find(|&(l, needs)| needs <= cap && l.available())
                .map_or(ScanLevel::Scalar, |(l, _)| l)
        })
    }

    /// Every level this CPU runs (for tests and benches).
    pub fn all_available() -> Vec<Self> {
        [ScanLevel::Scalar, ScanLevel::Avx2, ScanLevel::Avx512, ScanLevel::Neon].into_iter().filter(|l| l.available()).collect()
    }
}

fn check_scan(packed: &[u8], n: usize, lut: &QuantizedLut, level: ScanLevel) -> Result<()> {
    check_layout(packed, n, lut.m)?;
    if !level.available() {
        return Err(AnnError::Unsupported(format!("scan level {level:?} is not available on this CPU")));
    }
    Ok(())
}

/// All n approximate distances as u16 sums (`lut.to_f32` converts), at the
/// best level this CPU runs. `out` must hold at least n values.
pub fn scan(packed: &[u8], n: usize, lut: &QuantizedLut, out: &mut [u16]) -> Result<()> {
    scan_with_level(ScanLevel::best(), packed, n, lut, out)
}

/// [`scan`] at a given level (errors with `Unsupported` if the CPU lacks it).
pub fn scan_with_level(level: ScanLevel, packed: &[u8], n: usize, lut: &QuantizedLut, out: &mut [u16]) -> Result<()> {
    check_scan(packed, n, lut, level)?;
    if out.len() < n {
        return Err(AnnError::DimMismatch(format!("output holds {} sums, n = {n}", out.len())));
    }
    let (packed, out) = (&packed[..packed_len(n, lut.m)], &mut out[..n]);
    match level {
        ScanLevel::Scalar => scan_by_blocks(packed, n, lut, out, |b| scalar::block_sums(b, &lut.tables, lut.m)),
        // SAFETY: check_scan confirmed AVX2 at runtime; lengths checked above.
        #[cfg(target_arch = "x86_64")]
        ScanLevel::Avx2 => unsafe { avx2::scan(packed, n, lut, out) },
        // SAFETY: check_scan confirmed AVX-512BW at runtime; lengths checked above.
        #[cfg(target_arch = "x86_64")]
        ScanLevel::Avx512 => unsafe { avx512::scan(packed, n, lut, out) },
        #[cfg(not(target_arch = "x86_64"))]
        ScanLevel::Avx2 | ScanLevel::Avx512 => unreachable!("x86 levels are never available off x86-64"),
        // SAFETY: check_scan confirmed Neon at runtime; blocks and tables hold pairs × 32 bytes.
        #[cfg(target_arch = "aarch64")]
        ScanLevel::Neon => scan_by_blocks(packed, n, lut, out, |b| unsafe {
            neon::block_sums(b.as_ptr(), lut.tables.as_ptr(), pairs(lut.m))
        }),
        #[cfg(not(target_arch = "aarch64"))]
        ScanLevel::Neon => unreachable!("Neon is never available off AArch64"),
    }
    Ok(())
}

/// Scans n vectors and offers those whose sum passes the collector's
/// current threshold, at the best level this CPU runs.
pub fn scan_collect(packed: &[u8], n: usize, lut: &QuantizedLut, c: &mut impl Collector) -> Result<()> {
    scan_collect_with_level(ScanLevel::best(), packed, n, lut, c)
}

/// [`scan_collect`] at a given level.
pub fn scan_collect_with_level(
    level: ScanLevel,
    packed: &[u8],
    n: usize,
    lut: &QuantizedLut,
    c: &mut impl Collector,
) -> Result<()> {
    check_scan(packed, n, lut, level)?;
    let packed = &packed[..packed_len(n, lut.m)];
    match level {
        ScanLevel::Scalar => collect_by_blocks(packed, n, lut, c, |b| scalar::block_sums(b, &lut.tables, lut.m)),
        // SAFETY: check_scan confirmed AVX2 at runtime and the buffer length.
        #[cfg(target_arch = "x86_64")]
        ScanLevel::Avx2 => unsafe { avx2::collect(packed, n, lut, c) },
        // SAFETY: check_scan confirmed AVX-512BW at runtime and the buffer length.
        #[cfg(target_arch = "x86_64")]
        ScanLevel::Avx512 => unsafe { avx512::collect(packed, n, lut, c) },
        #[cfg(not(target_arch = "x86_64"))]
        ScanLevel::Avx2 | ScanLevel::Avx512 => unreachable!("x86 levels are never available off x86-64"),
        // SAFETY: check_scan confirmed Neon at runtime; blocks and tables hold pairs × 32 bytes.
        #[cfg(target_arch = "aarch64")]
        ScanLevel::Neon => collect_by_blocks(packed, n, lut, c, |b| unsafe {
            neon::block_sums(b.as_ptr(), lut.tables.as_ptr(), pairs(lut.m))
        }),
        #[cfg(not(target_arch = "aarch64"))]
        ScanLevel::Neon => unreachable!("Neon is never available off AArch64"),
    }
    Ok(())
}

/// [`scan_collect`] for several queries over the same list: query `i` uses
/// `luts[i]` and `collectors[i]`. The SIMD level loads and splits each
/// block's codes once for up to four queries, which saves work and memory
/// traffic when a batch of queries probes the same list. Results are
/// identical to one [`scan_collect`] per query.
pub fn scan_collect_batch<C: Collector>(
    packed: &[u8],
    n: usize,
    luts: &[&QuantizedLut],
    collectors: &mut [C],
) -> Result<()> {
    scan_collect_batch_with_level(ScanLevel::best(), packed, n, luts, collectors)
}

/// [`scan_collect_batch`] at a given level.
pub fn scan_collect_batch_with_level<C: Collector>(
    level: ScanLevel,
    packed: &[u8],
    n: usize,
    luts: &[&QuantizedLut],
    collectors: &mut [C],
) -> Result<()> {
    if luts.len() != collectors.len() {
        return Err(AnnError::DimMismatch(format!("{} tables for {} collectors", luts.len(), collectors.len())));
    }
    let Some(first) = luts.first() else { return Ok(()) };
    if let Some(other) = luts.iter().find(|l| l.m != first.m) {
        return Err(AnnError::DimMismatch(format!("tables of m = {} and m = {} in one batch", first.m, other.m)));
    }
    check_scan(packed, n, first, level)?;
    let packed = &packed[..packed_len(n, first.m)];
    match level {
        ScanLevel::Scalar | ScanLevel::Neon => {
            for (lut, c) in luts.iter().zip(collectors.iter_mut()) {
                scan_collect_with_level(level, packed, n, lut, c)?;
            }
        }
        // SAFETY: check_scan confirmed AVX2 at runtime and the buffer length;
        // all tables share m.
        #[cfg(target_arch = "x86_64")]
        ScanLevel::Avx2 => unsafe { avx2::collect_batch(packed, n, luts, collectors) },
        // SAFETY: as for AVX2, with AVX-512BW confirmed.
        #[cfg(target_arch = "x86_64")]
        ScanLevel::Avx512 => unsafe { avx512::collect_batch(packed, n, luts, collectors) },
        #[cfg(not(target_arch = "x86_64"))]
        ScanLevel::Avx2 | ScanLevel::Avx512 => unreachable!("x86 levels are never available off x86-64"),
    }
    Ok(())
}

/// [`scan`] over a kernel that returns each block's 32 sums as an array.
fn scan_by_blocks(
    packed: &[u8],
    n: usize,
    lut: &QuantizedLut,
    out: &mut [u16],
    mut block_sums: impl FnMut(&[u8]) -> [u16; BLOCK],
) {
    for (b, block) in packed.chunks_exact(block_bytes(lut.m)).enumerate() {
        let sums = block_sums(block);
        let start = b * BLOCK;
        let len = (n - start).min(BLOCK);
        out[start..start + len].copy_from_slice(&sums[..len]);
    }
}

/// [`scan_collect`] over a kernel that returns each block's 32 sums as an array.
fn collect_by_blocks(
    packed: &[u8],
    n: usize,
    lut: &QuantizedLut,
    c: &mut impl Collector,
    mut block_sums: impl FnMut(&[u8]) -> [u16; BLOCK],
) {
    let mut pruner = Pruner::new(lut, c);
    for (b, block) in packed.chunks_exact(block_bytes(lut.m)).enumerate() {
        let allowed = c.block_allowed(b);
        if allowed == 0 {
            continue;
        }
        let sums = block_sums(block);
        let start = b * BLOCK;
        let len = (n - start).min(BLOCK);
        let mut mask = 0u32;
        for (j, &s) in sums[..len].iter().enumerate() {
            mask |= ((s <= pruner.bound) as u32) << j;
        }
        pruner.offer_mask(mask & allowed, &sums, start, lut, c);
    }
}

/// Threshold state shared by the kernels' collect loops: the u16 bound is
/// recomputed only after an offer, since only offers can lower it.
pub(crate) struct Pruner {
    pub(crate) bound: u16,
    threshold: f32,
}

impl Pruner {
    pub(crate) fn new(lut: &QuantizedLut, c: &impl Collector) -> Self {
        let threshold = c.threshold();
        Pruner { bound: lut.from_f32_threshold(threshold), threshold }
    }

    /// Offers the sums whose bit is set in `mask` (bit j = vector base + j).
    #[inline]
    pub(crate) fn offer_mask(
        &mut self,
        mut mask: u32,
        sums: &[u16; BLOCK],
        base: usize,
        lut: &QuantizedLut,
        c: &mut impl Collector,
    ) {
        if mask == 0 {
            return;
        }
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            // Re-check against the bound lowered by earlier offers in this block.
            if sums[j] <= self.bound {
                c.offer(base + j, lut.to_f32(sums[j]));
                let t = c.threshold();
                if t.to_bits() != self.threshold.to_bits() {
                    self.threshold = t;
                    self.bound = lut.from_f32_threshold(t);
                }
            }
        }
    }
}
