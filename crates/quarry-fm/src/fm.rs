//! The FM-index core over a dense integer alphabet.
//!
//! The indexed sequence `R` (length `n`) ends with the unique smallest code 0 (`$`). Code 1 is the
//! document separator; codes `>= 2` are text symbols. `R` is the *reversed* concatenation of the
//! documents (see the shard module), so backward search over `R` consumes a pattern left to
//! right and the BWT symbol of a row is the symbol that *follows* the occurrence in the text.

use crate::bits::{IntVec, RankBv, prefetch};
use crate::buf::Buf;
use crate::error::{FmError, Result};
use crate::format::{SectionReader, SectionWriter};
use crate::sabuf::SaBuf;
use crate::wm::{AccessStep, WaveletTree};

pub(crate) struct FmCore<Bv> {
    n: usize,
    sigma: usize,
    c: Buf<u64>,
    wm: WaveletTree<Bv>,
    sa_rate: usize,
    isa_rate: usize,
    sa: IntVec,
    isa: IntVec,
    /// Pair table (small alphabets only, else empty): `pairs[c1 * sigma + c2]` = occurrences of
    /// `c2` in the BWT before row `C[c1]`, for `c1 <= sigma`. The rows of a two-symbol string are
    /// then two lookups instead of a backward step, which is a good share of a short count.
    pairs: Buf<u32>,
}

/// Largest alphabet whose pair table is stored: `(sigma + 1) * sigma` 32-bit counts, at most
/// 264 KB for a byte index (0.25% of a 100 MB text), and ~32k entries per extra symbol beyond.
const PAIR_TABLE_MAX_SIGMA: usize = 258;

/// The pair table of a wavelet tree over `sigma` symbols with C array `c` (empty when the
/// alphabet is larger than [`PAIR_TABLE_MAX_SIGMA`] or the counts may not fit in 32 bits).
fn pair_table<Bv: RankBv>(wm: &WaveletTree<Bv>, c: &[u64], sigma: usize) -> Vec<u32> {
    let n = c[sigma];
    if sigma > PAIR_TABLE_MAX_SIGMA || n > u32::MAX as u64 {
        return Vec::new();
    }
    let mut t = vec![0u32; (sigma + 1) * sigma];
    let mut out = Vec::new();
    for c1 in 0..sigma {
        // row c1 + 1 = row c1 + the symbols of the BWT range of c1
        t.copy_within(c1 * sigma..(c1 + 1) * sigma, (c1 + 1) * sigma);
        out.clear();
        wm.distinct(c[c1] as usize, c[c1 + 1] as usize, &mut out);
        for &(c2, k) in &out {
            t[(c1 + 1) * sigma + c2 as usize] += k as u32;
        }
    }
    t
}

/// Suffix array via libsais, using the narrowest text type the alphabet allows.
pub(crate) enum Sa {
    I32(SaBuf),
    I64(Vec<i64>),
}

/// A zeroed vector for the text being indexed, on transparent huge pages (see [`advise_huge`]).
pub(crate) fn big_vec<T: bytemuck::Zeroable + Clone>(n: usize) -> Vec<T> {
    let v = vec![T::zeroed(); n]; // calloc: fresh, untouched zero pages for large sizes
    advise_huge(v.as_ptr() as usize, n * std::mem::size_of::<T>());
    v
}

/// An empty vector with room for `cap` elements, on transparent huge pages (see [`advise_huge`]);
/// `None` when the allocator refuses that much address space.
pub(crate) fn huge_capacity_vec<T>(cap: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(cap).ok()?;
    advise_huge(v.as_ptr() as usize, v.capacity() * std::mem::size_of::<T>());
    Some(v)
}

/// On Linux, marks the pages of a large buffer for transparent huge pages (`madvise`) before first
/// touch: the suffix sort and the BWT pass read the text at random, and with 4 KiB pages much of
/// that time goes to TLB misses. The suffix array itself is left on 4 KiB pages: it is 4x larger,
/// and first-touch faults of huge pages (the kernel zeroes 2 MiB at a time) cost more there than
/// its TLB misses do (measured: 1.2 s vs 0.25 s to fault 400 MB on the 2-core benchmark VM, and
/// ~0.35 s faster builds of the 100 MB bench corpus).
fn advise_huge(addr: usize, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        if bytes >= 4 << 20 {
            let page = 4096usize;
            let start = addr.next_multiple_of(page);
            let end = (addr + bytes) & !(page - 1);
            if end > start {
                // SAFETY: [start, end) lies inside the caller's allocation; MADV_HUGEPAGE is
                // advisory and does not change the contents.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, bytes);
}

/// Division of 32-bit values by a fixed divisor without a hardware divide (Lemire, Kaser and
/// Kurz, "Faster remainder by direct computation", 2019): exact for every `u32` numerator.
struct FastDiv {
    d: u64,
    m: u64,
}

impl FastDiv {
    fn new(d: usize) -> Self {
        debug_assert!(d >= 1);
        FastDiv { d: d as u64, m: if d == 1 || d > u32::MAX as usize { 0 } else { u64::MAX / d as u64 + 1 } }
    }

    #[inline]
    fn divmod(&self, a: u32) -> (u64, u64) {
        if self.m == 0 {
            // d == 1, or a divisor beyond u32 (never hit by real sample rates)
            return (a as u64 / self.d, a as u64 % self.d);
        }
        let low = self.m.wrapping_mul(a as u64);
        let q = ((self.m as u128 * a as u128) >> 64) as u64;
        let r = ((low as u128 * self.d as u128) >> 64) as u64;
        (q, r)
    }
}

/// A raw pointer shared by the tasks of a parallel loop that write disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);
// SAFETY: only used where every task touches elements no other task touches (documented at
// each use).
unsafe impl<T> Send for SyncPtr<T> {}
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    #[inline]
    pub(crate) fn get(&self) -> *mut T {
        self.0
    }
}

/// Walks [`FmCore::lf_walks`] interleaves: enough to keep a core's outstanding cache misses
/// busy, few enough that the lanes' state and prefetched lines stay in L1.
const LF_LANES: usize = 16;

/// Rows per round of the in-place BWT: the gather of a round runs in parallel into a buffer of
/// this many symbols, which is then copied over suffix-array entries that are all read already.
#[cfg(not(test))]
const BWT_ROUND: usize = 1 << 22;
/// Rows per parallel task inside a round.
#[cfg(not(test))]
const BWT_TASK: usize = 1 << 16;
// small in unit tests, so that small inputs run many rounds and tasks
#[cfg(test)]
const BWT_ROUND: usize = 1 << 10;
#[cfg(test)]
const BWT_TASK: usize = 1 << 7;

/// Where one pass over the suffix array in row order (`bwt_rounds`) puts what it gathers.
struct BwtOut<T> {
    /// BWT element `i` goes to `bwt[i]`, written only after every row of its round is read.
    bwt: SyncPtr<T>,
    /// The round buffer: `round` elements that alias nothing else.
    tmp: SyncPtr<T>,
    round: usize,
    /// `sa_s[k]` = SA of row `k * sa_rate` (row-order SA samples).
    sa_s: SyncPtr<u32>,
    sa_rate: usize,
    /// `isa_s[q]` = row of text position `q * isa_rate` (`isa_len` slots).
    isa_s: SyncPtr<u32>,
    isa_len: usize,
    isa_rate: usize,
}

/// The BWT of `r` and the SA/ISA samples, gathered in one pass over the rows (`sa_at(i)` = SA of
/// row `i`) in parallel rounds of `out.round` rows: each round gathers into the round buffer,
/// which is then copied to `out.bwt`. The BWT may thus overwrite the suffix array it is read from,
/// as long as BWT elements `< b` only overlap entries of rows `< b`.
///
/// # Safety
/// `out`'s pointers are valid for their lengths (`bwt`: `n`, `sa_s`: `n.div_ceil(sa_rate)`) and
/// do not overlap each other, `r` or whatever `sa_at` reads except as allowed above.
unsafe fn bwt_rounds<T: Sym>(n: usize, sa_at: impl Fn(usize) -> usize + Sync, r: &[T], out: &BwtOut<T>) {
    use rayon::prelude::*;
    debug_assert_eq!(r.len(), n);
    let isa_div = FastDiv::new(out.isa_rate);
    let sa_div = FastDiv::new(out.sa_rate);
    let mut a = 0;
    while a < n {
        let b = (a + out.round).min(n);
        // SAFETY: the round buffer aliases nothing (caller), and is split into disjoint chunks.
        let tmp = unsafe { std::slice::from_raw_parts_mut(out.tmp.get(), b - a) };
        tmp.par_chunks_mut(BWT_TASK).enumerate().for_each(|(k, chunk)| {
            let lo = a + k * BWT_TASK;
            // the gather reads the text at random positions: prefetched some rows ahead, as
            // the loop is otherwise bound by memory latency
            const AHEAD: usize = 48;
            for (j, o) in chunk.iter_mut().enumerate() {
                let i = lo + j;
                if i + AHEAD < b {
                    let q = sa_at(i + AHEAD);
                    prefetch(r.as_ptr().wrapping_add(if q == 0 { n - 1 } else { q - 1 }));
                }
                let p = sa_at(i);
                *o = r[if p == 0 { n - 1 } else { p - 1 }];
                // no hardware division here: this runs once per symbol
                let (q, rem) = sa_div.divmod(i as u32);
                if rem == 0 {
                    // SAFETY: q < n.div_ceil(sa_rate); one row per slot.
                    unsafe { *out.sa_s.get().add(q as usize) = p as u32 };
                }
                let (q, rem) = isa_div.divmod(p as u32);
                if rem == 0 && (q as usize) < out.isa_len {
                    // SAFETY: in bounds (checked); the suffix array is a permutation, so each
                    // sample slot is written by exactly one row, in one task.
                    unsafe { *out.isa_s.get().add(q as usize) = i as u32 };
                }
            }
        });
        // SAFETY: every row < b is read; the caller guarantees that BWT elements [a, b) overlap
        // no entry of a later row.
        unsafe { std::ptr::copy_nonoverlapping(out.tmp.get() as *const T, out.bwt.get().add(a), b - a) };
        a = b;
    }
}

/// Packs the non-negative 32-bit values of `v` to `w < 32` bits each, in place, from the start
/// of the buffer (value `i` at bit `i * w`, little-endian); returns the number of `u32` words
/// written. Sequential: the word written at step `i` has index `< i`, i.e. was read already.
fn pack_in_place(v: &mut [i32], w: usize) -> usize {
    debug_assert!(w < 32);
    let (mut acc, mut fill, mut j) = (0u64, 0usize, 0usize);
    for i in 0..v.len() {
        acc |= (v[i] as u32 as u64) << fill;
        fill += w;
        if fill >= 32 {
            v[j] = acc as u32 as i32;
            j += 1;
            acc >>= 32;
            fill -= 32;
        }
    }
    if fill > 0 {
        v[j] = acc as u32 as i32;
        j += 1;
    }
    j
}

/// Value `i` of a [`pack_in_place`]d array at `bytes` (8 readable bytes past the value's first).
///
/// # Safety
/// As stated: the unaligned 8-byte read starting at byte `i * w / 8` must be in bounds.
#[inline]
unsafe fn packed_get(bytes: *const u8, w: usize, i: usize) -> usize {
    let bit = i * w;
    // SAFETY: caller.
    let x = unsafe { std::ptr::read_unaligned(bytes.add(bit / 8) as *const u64) };
    ((x >> (bit % 8)) & ((1u64 << w) - 1)) as usize
}

/// Symbol counts of `seq` (values `< sigma`), shifted by one: `counts[c + 1]` = occurrences of `c`.
fn shifted_counts<T: Sym>(seq: &[T], sigma: usize) -> Vec<u64> {
    use rayon::prelude::*;
    seq.par_chunks(1 << 20)
        .fold(
            || vec![0u64; sigma + 1],
            |mut acc, ch| {
                for &c in ch {
                    acc[c.into() as usize + 1] += 1;
                }
                acc
            },
        )
        .reduce(
            || vec![0u64; sigma + 1],
            |mut x, y| {
                for (a, b) in x.iter_mut().zip(&y) {
                    *a += b;
                }
                x
            },
        )
}

fn sais_err(e: libsais::LibsaisError) -> FmError {
    FmError::Internal(format!("libsais failed: {e:?}"))
}

/// Threads libsais sorts with: the size of the pool the build runs on (its OpenMP threads take
/// turns with rayon's: nothing else runs during the suffix sort), 1 without `parallel-sa`, and 1
/// when the machine is heavily oversubscribed (1-minute load average >= 1.5x the CPUs, Linux):
/// libsais meets at an OpenMP barrier after every block of a scan, and when other jobs keep
/// taking the cores each barrier waits out a descheduled thread (measured at load 8-12 on 2
/// cores: 38-68 s instead of 9-12 s single-threaded).
fn sais_threads() -> u16 {
    if !cfg!(feature = "parallel-sa") {
        return 1;
    }
    let pool = rayon::current_num_threads().clamp(1, u16::MAX as usize);
    #[cfg(target_os = "linux")]
    {
        let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
        let load1 = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()));
        if load1.is_some_and(|l| l >= 1.5 * cpus as f64) {
            return 1;
        }
    }
    pool as u16
}

/// Runs a libsais builder `$b` on [`sais_threads`] threads: binds it (single- or multi-threaded,
/// two different builder types) to `$x` and evaluates `$run`.
macro_rules! sais_run {
    ($b:expr, $x:ident => $run:expr) => {{
        let threads = sais_threads();
        #[cfg(feature = "parallel-sa")]
        {
            if threads > 1 {
                let $x = $b.multi_threaded(libsais::ThreadCount::fixed(threads));
                $run
            } else {
                let $x = $b.single_threaded();
                $run
            }
        }
        #[cfg(not(feature = "parallel-sa"))]
        {
            let _ = threads;
            let $x = $b.single_threaded();
            $run
        }
    }};
}

/// Element type of a dense-coded text during the build: `u8` (alphabet <= 256), `u16`
/// (<= 65536) or `u32`. The narrowest one keeps the build's peak memory near 5 bytes per symbol
/// (text + 32-bit suffix array) for byte and 16-bit token corpora.
pub(crate) trait Sym: bytemuck::Pod + Default + Send + Sync + Into<u32> + 'static {
    fn from_u32(x: u32) -> Self;
    /// Suffix array of `t` (values `< sigma`); `t` is restored before returning. `buf`: a zeroed
    /// buffer of `t.len()` entries to sort into (one is allocated when `None`).
    fn suffix_array(t: &mut [Self], sigma: usize, buf: Option<SaBuf>) -> Result<Sa>;
}

/// `buf` when it holds exactly `n` entries, else a new zeroed heap array.
fn sa_buf(buf: Option<SaBuf>, n: usize) -> SaBuf {
    match buf {
        Some(b) if b.len() == n => b,
        _ => SaBuf::Heap(vec![0i32; n]),
    }
}

/// `Sym::suffix_array` for the 8- and 16-bit texts libsais sorts directly.
macro_rules! small_alphabet_sa {
    ($t:ty) => {
        impl Sym for $t {
            #[inline]
            fn from_u32(x: u32) -> Self {
                x as $t
            }
            fn suffix_array(t: &mut [$t], _sigma: usize, buf: Option<SaBuf>) -> Result<Sa> {
                use libsais::SuffixArrayConstruction as S;
                if t.len() >= i32::MAX as usize {
                    let sa = sais_run!(S::for_text(t).in_owned_buffer64(), b => b.run());
                    Ok(Sa::I64(sa.map_err(sais_err)?.into_vec()))
                } else {
                    let mut sa = sa_buf(buf, t.len());
                    sais_run!(S::for_text(t).in_borrowed_buffer(&mut sa[..]), b => b.run().map(|_| ())).map_err(sais_err)?;
                    Ok(Sa::I32(sa))
                }
            }
        }
    };
}
small_alphabet_sa!(u8);
small_alphabet_sa!(u16);

impl Sym for u32 {
    #[inline]
    fn from_u32(x: u32) -> Self {
        x
    }
    fn suffix_array(t: &mut [u32], sigma: usize, buf: Option<SaBuf>) -> Result<Sa> {
        use libsais::SuffixArrayConstruction as S;
        use libsais::suffix_array::AlphabetSize;
        if t.len() < i32::MAX as usize && sigma <= i32::MAX as usize {
            // dense codes are < sigma <= i32::MAX: the same bits read as non-negative i32
            let mut sa = sa_buf(buf, t.len());
            let ti: &mut [i32] = bytemuck::cast_slice_mut(t);
            sais_run!(S::for_text_mut(ti).in_borrowed_buffer(&mut sa[..]), b => {
                // SAFETY: all values are in [0, sigma) by construction (dense codes).
                let b = unsafe { b.with_alphabet_size(AlphabetSize::new(sigma as i32)) };
                b.run().map(|_| ())
            })
            .map_err(sais_err)?;
            Ok(Sa::I32(sa))
        } else {
            let mut ti: Vec<i64> = t.iter().map(|&x| x as i64).collect();
            let sa = sais_run!(S::for_text_mut(&mut ti).in_owned_buffer64(), b => {
                // SAFETY: as above.
                let b = unsafe { b.with_alphabet_size(AlphabetSize::new(sigma as i64)) };
                b.run()
            });
            Ok(Sa::I64(sa.map_err(sais_err)?.into_vec()))
        }
    }
}

pub(crate) type Range = (usize, usize);

impl<Bv: RankBv> FmCore<Bv> {
    /// Build from the dense-coded sequence `r` (last value must be the unique 0).
    ///
    /// Memory: the peak is the suffix sort's, `r` and the 32-bit suffix array (5 bytes per
    /// symbol for a byte text). With the default sample rates nothing is allocated beyond it
    /// afterwards: the suffix array is packed in place, the samples and the BWT take the space
    /// that frees, `r` is dropped, and the wavelet tree partitions inside the same buffer.
    pub(crate) fn build<T: Sym>(
        mut r: Vec<T>,
        sigma: usize,
        sa_rate: usize,
        isa_rate: usize,
        sa_buf: Option<SaBuf>,
        check: &mut dyn FnMut(&'static str, usize, usize) -> Result<()>,
    ) -> Result<Self> {
        let n = r.len();
        debug_assert!(n >= 1 && r[n - 1].into() == 0);
        check("suffix array", 0, 1)?;
        let sa = T::suffix_array(&mut r, sigma, sa_buf)?;
        check("bwt", 0, 1)?;
        let width = crate::bits::bits_for(n as u64);
        let s = std::mem::size_of::<T>();
        let mut wave = |cur: &mut [T], next: &mut [T]| -> Result<(WaveletTree<Bv>, Vec<u64>)> {
            let mut counts = shifted_counts(&cur[..n], sigma);
            for c in 1..=sigma {
                counts[c] += counts[c - 1];
            }
            check("samples", 0, 1)?;
            let cnt: Vec<usize> = counts.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
            let wm = WaveletTree::build_in(cur, next, &cnt, |l, nl| check("wavelet matrix", l, nl))?;
            Ok((wm, counts))
        };
        let (ns, ni) = (n.div_ceil(sa_rate), n.div_ceil(isa_rate));
        // Packed layout (n < 2^31, so width < 32): the suffix array packed to `width` bits at the
        // start of its buffer ([0, pw) in u32 words, 2 words of slack for unaligned reads), the SA
        // samples, the ISA samples and the round buffer in the words this frees. The BWT
        // (n * s bytes <= n * width / 8) then overwrites the packed array as its rows are read,
        // and the wavelet tree is built in the same buffer: the build never needs more memory
        // than the suffix sort (text + suffix array).
        let pw = (n * width).div_ceil(32) + 2;
        let free_words = n.saturating_sub(pw + ns + ni);
        let round = BWT_ROUND.min(n).min(free_words * 4 / s);
        let (wm, counts, sa_iv, isa_iv) = match sa {
            Sa::I32(mut v) if width >= 8 * s && round >= BWT_TASK.min(n) => {
                let packed_words = pack_in_place(&mut v, width);
                debug_assert!(packed_words + 2 <= pw);
                let base = v.as_mut_ptr() as *mut u32;
                // SAFETY: all regions lie inside v (pw + ns + ni + round * s / 4 <= n words) and
                // are disjoint; the slack words are zeroed so the unaligned reads see defined bits.
                let (sa_s, isa_s, tmp) = unsafe {
                    std::ptr::write_bytes(base.add(packed_words), 0, pw - packed_words);
                    (base.add(pw), base.add(pw + ns), base.add(pw + ns + ni) as *mut T)
                };
                let bytes = SyncPtr(base as *mut u8);
                let out = BwtOut {
                    bwt: SyncPtr(base as *mut T),
                    tmp: SyncPtr(tmp),
                    round,
                    sa_s: SyncPtr(sa_s),
                    sa_rate,
                    isa_s: SyncPtr(isa_s),
                    isa_len: ni,
                    isa_rate,
                };
                // SAFETY: BWT elements [0, b) take bytes [0, b * s), which hold packed bits of
                // rows < b * s * 8 / width <= b (width >= 8 s); every read of row i starts at
                // byte i * width / 8 >= i * s and ends inside the packed words.
                unsafe { bwt_rounds(n, |i| packed_get(bytes.get(), width, i), &r, &out) };
                drop(r);
                // SAFETY: sample regions, fully written by `bwt_rounds` (each slot by one row).
                let (sa_iv, isa_iv) = unsafe {
                    (
                        IntVec::with_width(std::slice::from_raw_parts(sa_s, ns), width),
                        IntVec::with_width(std::slice::from_raw_parts(isa_s, ni), width),
                    )
                };
                // the wavelet tree partitions between two (n + 1)-element buffers: the BWT with its
                // spare slot, and the rest of the suffix-array buffer where it is large enough
                let t = base as *mut T;
                let total = n * 4 / s;
                let (wm, counts) = if 2 * (n + 1) <= total {
                    // SAFETY: [0, 2n + 2) elements of T lie inside v and the halves are disjoint;
                    // the samples were copied out above.
                    let (cur, next) = unsafe {
                        (std::slice::from_raw_parts_mut(t, n + 1), std::slice::from_raw_parts_mut(t.add(n + 1), n + 1))
                    };
                    wave(cur, next)?
                } else {
                    let mut next = vec![T::default(); n + 1];
                    // SAFETY: the BWT and its spare slot ((n + 1) * s <= 4 pw bytes) inside v.
                    wave(unsafe { std::slice::from_raw_parts_mut(t, n + 1) }, &mut next)?
                };
                drop(v);
                (wm, counts, sa_iv, isa_iv)
            }
            Sa::I32(mut v) => {
                // Unpacked (sample rates too small for the freed space, or 16-bit symbols of a
                // short text): the samples and the round buffer are allocated, the BWT goes over
                // the suffix array in place.
                let mut sa_s = vec![0u32; ns];
                let mut isa_s = vec![0u32; ni];
                let mut tmp = vec![T::default(); BWT_ROUND.min(n)];
                let base = v.as_mut_ptr();
                let out = BwtOut {
                    bwt: SyncPtr(base as *mut T),
                    tmp: SyncPtr(tmp.as_mut_ptr()),
                    round: tmp.len(),
                    sa_s: SyncPtr(sa_s.as_mut_ptr()),
                    sa_rate,
                    isa_s: SyncPtr(isa_s.as_mut_ptr()),
                    isa_len: ni,
                    isa_rate,
                };
                let sa_ptr = SyncPtr(base);
                // SAFETY: BWT elements [0, b) take bytes [0, b * s) (s <= 4), over entries < b.
                unsafe { bwt_rounds(n, |i| *sa_ptr.get().add(i) as usize, &r, &out) };
                drop(tmp);
                drop(r);
                // SAFETY: the first n elements of type T were all written by `bwt_rounds`.
                let bwt = unsafe { std::slice::from_raw_parts(base as *const T, n) };
                // one spare slot for the wavelet tree's partition
                let mut cur = Vec::with_capacity(n + 1);
                cur.extend_from_slice(bwt);
                cur.push(T::default());
                drop(v);
                let mut next = vec![T::default(); n + 1];
                let (wm, counts) = wave(&mut cur, &mut next)?;
                (wm, counts, IntVec::with_width(&sa_s, width), IntVec::with_width(&isa_s, width))
            }
            Sa::I64(v) => {
                let mut sa_s: Vec<u64> = Vec::with_capacity(ns);
                let mut isa_s = vec![0u64; ni];
                let mut cur = vec![T::default(); n + 1];
                for i in 0..n {
                    let p = v[i] as usize;
                    if i % sa_rate == 0 {
                        sa_s.push(p as u64);
                    }
                    if p.is_multiple_of(isa_rate) {
                        isa_s[p / isa_rate] = i as u64;
                    }
                    cur[i] = r[if p == 0 { n - 1 } else { p - 1 }];
                }
                drop(v);
                drop(r);
                let mut next = vec![T::default(); n + 1];
                let (wm, counts) = wave(&mut cur, &mut next)?;
                (wm, counts, IntVec::with_width(&sa_s, width), IntVec::with_width(&isa_s, width))
            }
        };
        let pairs = pair_table(&wm, &counts, sigma).into();
        Ok(FmCore { n, sigma, c: counts.into(), wm, sa_rate, isa_rate, sa: sa_iv, isa: isa_iv, pairs })
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    pub(crate) fn sigma(&self) -> usize {
        self.sigma
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.c.len() * 8 + self.wm.size_bytes() + self.sa.size_bytes() + self.isa.size_bytes() + self.pairs.len() * 4
    }

    pub(crate) fn wm_levels(&self) -> usize {
        self.wm.num_levels()
    }

    #[inline]
    pub(crate) fn full(&self) -> Range {
        (0, self.n)
    }

    /// Rows whose suffix starts with `code` followed by the strings of `r`.
    #[inline]
    pub(crate) fn extend(&self, r: Range, code: u32) -> Range {
        if code as usize >= self.sigma || r.0 >= r.1 {
            return (0, 0);
        }
        if r == (0, self.n) {
            // the first symbol of a search: its rows are read off the C array
            return (self.c[code as usize] as usize, self.c[code as usize + 1] as usize);
        }
        let (ra, rb) = self.wm.rank_pair(code, r.0, r.1);
        let base = self.c[code as usize] as usize;
        (base + ra, base + rb)
    }

    /// Rows of the two-symbol string `c1 c2`: `extend(extend(full, c1), c2)`, read off the pair
    /// table when the index has one.
    #[inline]
    pub(crate) fn extend_pair(&self, c1: u32, c2: u32) -> Range {
        let (c1, c2, s) = (c1 as usize, c2 as usize, self.sigma);
        if self.pairs.is_empty() || c1 >= s || c2 >= s {
            return self.extend(self.extend(self.full(), c1 as u32), c2 as u32);
        }
        let base = self.c[c2] as usize;
        (base + self.pairs[c1 * s + c2] as usize, base + self.pairs[(c1 + 1) * s + c2] as usize)
    }

    /// One LF step from row `i`: (its BWT symbol, the row of the preceding suffix).
    #[cfg(test)]
    fn lf(&self, i: usize) -> (u32, usize) {
        let (c, r) = self.wm.access_rank(i);
        (c, self.c[c as usize] as usize + r)
    }

    /// `SA[i]`: position in `R` of the suffix of row `i`, one LF step at a time (the reference
    /// for [`sa_at_many`](Self::sa_at_many)).
    #[cfg(test)]
    pub(crate) fn sa_at(&self, mut i: usize) -> usize {
        let mut steps = 0;
        // `steps <= n` only guards against crafted files whose LF cycles miss every sample.
        while !i.is_multiple_of(self.sa_rate) && steps <= self.n {
            i = self.lf(i).1;
            steps += 1;
        }
        (self.sa.get(i / self.sa_rate) as usize + steps) % self.n
    }

    /// `SA[rows[k]]` into `out[k]` for every `k`.
    pub(crate) fn sa_at_many(&self, rows: &[usize], out: &mut [usize]) {
        debug_assert_eq!(rows.len(), out.len());
        let sample = |row: usize, steps: usize| (self.sa.get(row / self.sa_rate) as usize + steps) % self.n;
        for (o, &row) in out.iter_mut().zip(rows) {
            if row.is_multiple_of(self.sa_rate) {
                *o = sample(row, 0);
            }
        }
        let walks = rows.iter().enumerate().filter(|(_, r)| !r.is_multiple_of(self.sa_rate)).map(|(k, &r)| (r, (k, 0usize)));
        self.lf_walks(walks, |(slot, steps), _, row| {
            // stop as `sa_at` does: at a sample, or after n steps (crafted files whose LF
            // cycles miss every sample)
            *steps += 1;
            if row.is_multiple_of(self.sa_rate) || *steps > self.n {
                out[*slot] = sample(row, *steps);
                return false;
            }
            true
        });
    }

    /// LF walks, interleaved: each of `walks` is a start row and a state; after every LF step
    /// (from a row whose BWT symbol is `c` to row `next`) `step(state, c, next)` says whether the
    /// walk goes on. A single walk is a chain of dependent cache misses (one or more per
    /// wavelet-tree level of every step); here up to [`LF_LANES`] walks advance in turn, one
    /// level each, with each one's next bitvector block prefetched, so that their misses overlap.
    fn lf_walks<S>(&self, mut walks: impl Iterator<Item = (usize, S)>, mut step: impl FnMut(&mut S, u32, usize) -> bool) {
        struct Lane<S> {
            node: usize,
            i: usize,
            state: S,
        }
        let mut lanes: Vec<Lane<S>> = Vec::with_capacity(LF_LANES);
        loop {
            while lanes.len() < LF_LANES {
                let Some((row, state)) = walks.next() else { break };
                self.wm.prefetch_step(0, row);
                lanes.push(Lane { node: 0, i: row, state });
            }
            if lanes.is_empty() {
                return;
            }
            let mut k = 0;
            while k < lanes.len() {
                let l = &mut lanes[k];
                match self.wm.access_step(l.node, l.i) {
                    AccessStep::Node(v, i) => (l.node, l.i) = (v, i),
                    AccessStep::Leaf(c, r) => {
                        let row = self.c[c as usize] as usize + r;
                        if !step(&mut l.state, c, row) {
                            lanes.swap_remove(k);
                            continue;
                        }
                        (l.node, l.i) = (0, row);
                    }
                }
                self.wm.prefetch_step(l.node, l.i);
                k += 1;
            }
        }
    }

    /// `R[x..y)` in reverse order (that is, in text order), `x <= y <= n`.
    pub(crate) fn extract_rev(&self, x: usize, y: usize) -> Vec<u32> {
        if x >= y {
            return Vec::new();
        }
        let mut out = vec![0u32; y - x];
        // one walk per stretch between ISA samples, from the sample at or after its end down to
        // its start: the walks are independent, so they run interleaved
        let rate = self.isa_rate;
        let stretches = (x / rate..y.div_ceil(rate)).map(|k| {
            let (s, e) = ((k * rate).max(x), ((k + 1) * rate).min(y));
            let j = e.next_multiple_of(rate);
            let (pos, row) = if j >= self.n { (self.n, self.isa.get(0) as usize) } else { (j, self.isa.get(j / rate) as usize) };
            (row, (pos, s))
        });
        self.lf_walks(stretches, |(pos, stop), c, _| {
            *pos -= 1;
            if *pos < y {
                out[y - 1 - *pos] = c;
            }
            *pos > *stop
        });
        out
    }

    /// Distinct BWT codes in the rows `r` with counts (the symbols that follow the occurrences).
    pub(crate) fn distinct(&self, r: Range) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        self.wm.distinct(r.0, r.1, &mut out);
        out
    }

    pub(crate) fn write<'a>(&'a self, w: &mut SectionWriter<'a>) {
        w.add_u64s(
            "fm.h",
            &[self.n as u64, self.sigma as u64, self.sa_rate as u64, self.isa_rate as u64],
        );
        w.add("fm.c", self.c.as_bytes());
        self.wm.write("wt", w);
        self.sa.write("sa", w);
        self.isa.write("isa", w);
        if !self.pairs.is_empty() {
            w.add("fm.pair", self.pairs.as_bytes());
        }
    }

    pub(crate) fn read(r: &SectionReader) -> Result<Self> {
        let h = r.u64s("fm.h", 4)?;
        let (n, sigma, sa_rate, isa_rate) = (h[0] as usize, h[1] as usize, h[2] as usize, h[3] as usize);
        let bad = |m: &str| r.corrupt(format!("fm core: {m}"));
        if n == 0 || sigma < 2 || sigma > (u32::MAX as usize) || sa_rate == 0 || isa_rate == 0 {
            return Err(bad("bad parameters"));
        }
        let c = r.get::<u64>("fm.c")?;
        if c.len() != sigma + 1 || c[0] != 0 || c[sigma] != n as u64 || c.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("bad C array"));
        }
        // exactly one `$`, and it sorts first
        if c[1] != 1 {
            return Err(bad("bad sentinel count"));
        }
        let cnt: Vec<usize> = c.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
        // validates the wavelet tree against these counts (so the C array agrees with the BWT)
        let wm = WaveletTree::read("wt", r, n, &cnt)?;
        let sa = IntVec::read("sa", r)?;
        let isa = IntVec::read("isa", r)?;
        if sa.len() != n.div_ceil(sa_rate) || isa.len() != n.div_ceil(isa_rate) {
            return Err(bad("sample counts mismatch"));
        }
        if (0..sa.len()).any(|i| sa.get(i) >= n as u64) || (0..isa.len()).any(|i| isa.get(i) >= n as u64) {
            return Err(bad("sample out of range"));
        }
        // optional (indexes written before it existed have none); when present, every column
        // runs from 0 up to its symbol's count and every row step adds up to its symbol's rows,
        // so a lookup never leaves the rows of its second symbol (the checksum covers the rest)
        let pairs = match r.get_opt::<u32>("fm.pair")? {
            None => Buf::owned(Vec::new()),
            Some(p) => {
                if p.len() != (sigma + 1) * sigma || sigma > PAIR_TABLE_MAX_SIGMA {
                    return Err(bad("pair table size"));
                }
                let row = |k: usize| &p[k * sigma..(k + 1) * sigma];
                let ends_ok = row(0).iter().all(|&x| x == 0)
                    && row(sigma).iter().zip(&cnt).all(|(&x, &k)| x as usize == k);
                let steps_ok = (0..sigma).all(|c1| {
                    let mut sum = 0usize;
                    for (&a, &b) in row(c1).iter().zip(row(c1 + 1)) {
                        if b < a {
                            return false;
                        }
                        sum += (b - a) as usize;
                    }
                    sum == cnt[c1]
                });
                if !(ends_ok && steps_ok) {
                    return Err(bad("bad pair table"));
                }
                p
            }
        };
        Ok(FmCore { n, sigma, c, wm, sa_rate, isa_rate, sa, isa, pairs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{PlainBv, RrrBv};

    /// Every row's SA value, every symbol's range and a few extractions against a naive suffix
    /// sort, over inputs long enough for many parallel BWT rounds and wavelet-tree chunks.
    fn check_core<T: Sym, Bv: RankBv>(codes: &[u32], sigma: usize) {
        check_core_rates::<T, Bv>(codes, sigma, 4, 8);
    }

    fn check_core_rates<T: Sym, Bv: RankBv>(codes: &[u32], sigma: usize, sa_rate: usize, isa_rate: usize) {
        let n = codes.len();
        let r: Vec<T> = codes.iter().map(|&c| T::from_u32(c)).collect();
        let core = FmCore::<Bv>::build(r, sigma, sa_rate, isa_rate, None, &mut |_, _, _| Ok(())).unwrap();
        let mut sa: Vec<usize> = (0..n).collect();
        sa.sort_by(|&a, &b| codes[a..].cmp(&codes[b..]));
        for (i, &p) in sa.iter().enumerate() {
            assert_eq!(core.sa_at(i), p, "SA[{i}]");
        }
        // the interleaved walks: all rows in a scrambled order (so lanes finish out of order and
        // are refilled mid-batch), with repeats, in batches of several sizes
        let rows: Vec<usize> = (0..n + n / 4).map(|k| (k * 7919 + 13) % n).collect();
        for batch in [5, rows.len()] {
            for ch in rows.chunks(batch) {
                let mut out = vec![usize::MAX; ch.len()];
                core.sa_at_many(ch, &mut out);
                for (&i, &p) in ch.iter().zip(&out) {
                    assert_eq!(p, sa[i], "sa_at_many SA[{i}], batch {batch}");
                }
            }
        }
        for c in 0..sigma as u32 {
            let rows = core.extend(core.full(), c);
            let first = sa.partition_point(|&p| codes[p] < c);
            let occ = codes.iter().filter(|&&x| x == c).count();
            assert_eq!(rows, (first, first + occ), "rows of {c}");
        }
        for c1 in 0..sigma as u32 {
            for c2 in 0..sigma as u32 {
                let two = core.extend(core.extend(core.full(), c1), c2);
                let pair = core.extend_pair(c1, c2);
                // equal, or both empty (an empty range's bounds are unspecified)
                assert!(pair == two || (pair.0 >= pair.1 && two.0 >= two.1), "pair {c1} {c2}: {pair:?} vs {two:?}");
            }
        }
        // windows starting and ending on and off the ISA samples, running into the end of `R`
        let windows = (0..24).map(|k| {
            let x = (k * 7919) % n;
            (x, (x + (k * 131) % 300).min(n))
        });
        for (x, y) in [(0, n), (0, 1), (n - 1, n), (n / 3, n / 3 + 777), (5, 5)].into_iter().chain(windows) {
            let mut want = codes[x..y].to_vec();
            want.reverse();
            assert_eq!(core.extract_rev(x, y), want, "extract {x}..{y}");
        }
    }

    fn text(n: usize, sigma: u32, seed: u64) -> Vec<u32> {
        let mut x = seed;
        let mut v: Vec<u32> = (0..n - 1)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // repetitive stretches next to random ones; separators (1) now and then
                if (i / 500) % 2 == 0 {
                    (i % 7) as u32 + 2
                } else if x.is_multiple_of(97) {
                    1
                } else {
                    2 + (x % (sigma as u64 - 2)) as u32
                }
            })
            .collect();
        v.push(0);
        v
    }

    #[test]
    fn core_matches_naive_u8() {
        let t = text(20_000, 200, 42);
        check_core::<u8, RrrBv>(&t, 200);
        check_core::<u8, PlainBv>(&t, 200);
    }

    /// The build's three layouts: the suffix array packed in place with the samples in the space
    /// it frees (8-bit symbols; 16-bit ones once the text needs >= 16-bit positions), and the
    /// unpacked one (sample rates too dense for the freed space, 16-bit symbols of short texts).
    #[test]
    fn core_matches_naive_every_build_layout() {
        let t = text(70_000, 300, 5); // 17-bit positions: packed for u16
        check_core_rates::<u16, RrrBv>(&t, 300, 16, 32);
        let t = text(9_000, 200, 3);
        check_core_rates::<u8, PlainBv>(&t, 200, 1, 1); // samples of every row: unpacked
        check_core_rates::<u8, RrrBv>(&t, 200, 3, 5); // packed, a small round buffer
        check_core_rates::<u8, RrrBv>(&t, 200, 5, 1);
    }

    #[test]
    fn huge_capacity_vec_reserves_or_declines() {
        let v = huge_capacity_vec::<u8>(5 << 20).unwrap();
        assert!(v.is_empty() && v.capacity() >= 5 << 20);
        assert!(huge_capacity_vec::<u64>(usize::MAX / 8).is_none());
    }

    #[test]
    fn core_matches_naive_u16_u32() {
        let t = text(12_000, 1000, 7);
        check_core::<u16, RrrBv>(&t, 1000);
        check_core::<u32, PlainBv>(&t, 1000);
    }
}
