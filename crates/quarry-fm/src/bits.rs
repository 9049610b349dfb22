//! Succinct building blocks: packed integer vectors and two rank-capable bitvectors.
//!
//! * [`PlainBv`]: uncompressed bits with a rank9-style directory (64-bit absolute count per
//!   512 bits plus seven packed 9-bit relative counts): +25% space, O(1) rank.
//! * [`RrrBv`]: RRR-style compressed bits. Blocks of 127 bits are stored as (class = popcount,
//!   7 bits) + (enumerative offset among the C(127, class) blocks of that class,
//!   ceil(log2 C(127, class)) bits). Every 32 blocks a superblock stores the absolute rank and
//!   the bit position of the next offset. Runs of equal bits (typical in BWTs) cost 7 bits per 127.

use std::sync::OnceLock;

use crate::buf::Buf;
use crate::error::Result;
use crate::format::{SectionReader, SectionWriter};

/// A bitvector with rank support, as used by the wavelet tree.
pub trait RankBv: Send + Sync + Sized {
    /// Build from `n` bits stored LSB-first in `words`.
    fn from_words(words: &[u64], n: usize) -> Self;
    /// Number of bits.
    fn len(&self) -> usize;
    /// Number of ones in `[0, i)`, for `i <= len`.
    fn rank1(&self, i: usize) -> usize;
    /// Bit `i` and the number of ones in `[0, i)`, for `i < len`.
    fn get_rank1(&self, i: usize) -> (bool, usize);
    /// `(rank1(a), rank1(b))` for `a <= b <= len`; implementations share work when `a` and `b`
    /// are close.
    #[inline]
    fn rank1_pair(&self, a: usize, b: usize) -> (usize, usize) {
        let ra = self.rank1(a);
        (ra, if a == b { ra } else { self.rank1(b) })
    }
    /// Starts loading what `rank1(i)` / `get_rank1(i)` read first (a hint; never faults).
    #[inline]
    fn prefetch_rank(&self, i: usize) {
        let _ = i;
    }
    /// Bytes used.
    fn size_bytes(&self) -> usize;
    #[doc(hidden)]
    fn write<'a>(&'a self, p: &str, w: &mut SectionWriter<'a>);
    #[doc(hidden)]
    fn read(p: &str, r: &SectionReader, n: usize) -> Result<Self>;
}

/// Prefetch hint for the cache line holding `p` (no-op where unsupported; never faults).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline]
fn get_bits(words: &[u64], pos: usize, w: usize) -> u64 {
    debug_assert!(w <= 64);
    if w == 0 {
        return 0;
    }
    let i = pos / 64;
    let o = pos % 64;
    let mut v = words[i] >> o;
    if o + w > 64 {
        v |= words[i + 1] << (64 - o);
    }
    if w == 64 { v } else { v & ((1u64 << w) - 1) }
}

fn set_bits(words: &mut [u64], pos: usize, w: usize, v: u64) {
    if w == 0 {
        return;
    }
    let i = pos / 64;
    let o = pos % 64;
    words[i] |= v << o;
    if o + w > 64 {
        words[i + 1] |= v >> (64 - o);
    }
}

/// Fixed-width packed unsigned integers.
pub(crate) struct IntVec {
    len: usize,
    width: usize,
    words: Buf<u64>,
}

pub(crate) fn bits_for(max: u64) -> usize {
    (64 - max.leading_zeros()) as usize
}

impl IntVec {
    #[cfg(test)]
    pub(crate) fn from_slice(vals: &[u64]) -> Self {
        let width = bits_for(vals.iter().copied().max().unwrap_or(0));
        Self::with_width(vals, width)
    }

    pub(crate) fn with_width<V: Copy + Into<u64>>(vals: &[V], width: usize) -> Self {
        let nw = (vals.len() * width).div_ceil(64) + 1;
        let mut words = vec![0u64; nw];
        for (i, &v) in vals.iter().enumerate() {
            set_bits(&mut words, i * width, width, v.into());
        }
        IntVec { len: vals.len(), width, words: words.into() }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        get_bits(&self.words, i * self.width, self.width)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.words.len() * 8
    }

    pub(crate) fn write<'a>(&'a self, p: &str, w: &mut SectionWriter<'a>) {
        w.add_u64s(format!("{p}.h"), &[self.len as u64, self.width as u64]);
        w.add(format!("{p}.d"), self.words.as_bytes());
    }

    pub(crate) fn read(p: &str, r: &SectionReader) -> Result<Self> {
        let h = r.u64s(&format!("{p}.h"), 2)?;
        let (len, width) = (h[0] as usize, h[1] as usize);
        let words = r.get::<u64>(&format!("{p}.d"))?;
        let need = (len as u128 * width as u128).div_ceil(64) + 1;
        if width > 64 || words.len() as u128 != need {
            return Err(r.corrupt(format!("{p}: packed vector size mismatch")));
        }
        Ok(IntVec { len, width, words })
    }
}

// ---------------------------------------------------------------------------------------------
// Plain bitvector with rank9 directory

/// Uncompressed bitvector with a rank9-style directory.
pub struct PlainBv {
    n: usize,
    words: Buf<u64>,
    dir: Buf<u64>,
}

fn rank9_dir(words: &[u64]) -> Vec<u64> {
    let nb = words.len() / 8 + 1;
    let mut dir = vec![0u64; 2 * nb];
    let mut total = 0u64;
    for b in 0..nb {
        dir[2 * b] = total;
        let mut rel = 0u64;
        let mut packed = 0u64;
        for k in 0..8 {
            let wi = b * 8 + k;
            if k > 0 {
                packed |= rel << (9 * (k - 1));
            }
            if wi < words.len() {
                rel += words[wi].count_ones() as u64;
            }
        }
        dir[2 * b + 1] = packed;
        total += rel;
    }
    dir
}

impl RankBv for PlainBv {
    fn from_words(words: &[u64], n: usize) -> Self {
        let nw = n.div_ceil(64);
        let mut w = words[..nw].to_vec();
        if !n.is_multiple_of(64) {
            w[nw - 1] &= (1u64 << (n % 64)) - 1;
        }
        let dir = rank9_dir(&w);
        PlainBv { n, words: w.into(), dir: dir.into() }
    }

    fn len(&self) -> usize {
        self.n
    }

    #[inline]
    fn rank1(&self, i: usize) -> usize {
        let w = i >> 6;
        let b = w >> 3;
        let k = w & 7;
        let mut r = self.dir[2 * b];
        if k > 0 {
            r += (self.dir[2 * b + 1] >> (9 * (k - 1))) & 511;
        }
        let o = i & 63;
        if o != 0 {
            r += (self.words[w] & ((1u64 << o) - 1)).count_ones() as u64;
        }
        r as usize
    }

    #[inline]
    fn get_rank1(&self, i: usize) -> (bool, usize) {
        ((self.words[i >> 6] >> (i & 63)) & 1 == 1, self.rank1(i))
    }

    #[inline]
    fn prefetch_rank(&self, i: usize) {
        prefetch(self.dir.as_ptr().wrapping_add(2 * (i >> 9)));
        prefetch(self.words.as_ptr().wrapping_add(i >> 6));
    }

    fn size_bytes(&self) -> usize {
        (self.words.len() + self.dir.len()) * 8
    }

    fn write<'a>(&'a self, p: &str, w: &mut SectionWriter<'a>) {
        w.add(format!("{p}.w"), self.words.as_bytes());
        w.add(format!("{p}.r"), self.dir.as_bytes());
    }

    fn read(p: &str, r: &SectionReader, n: usize) -> Result<Self> {
        let words = r.get::<u64>(&format!("{p}.w"))?;
        let dir = r.get::<u64>(&format!("{p}.r"))?;
        if words.len() != n.div_ceil(64) || dir.len() != 2 * (words.len() / 8 + 1) {
            return Err(r.corrupt(format!("{p}: bitvector size mismatch")));
        }
        if !n.is_multiple_of(64) && words[words.len() - 1] >> (n % 64) != 0 {
            return Err(r.corrupt(format!("{p}: padding bits set")));
        }
        if rank9_dir(&words) != *dir {
            return Err(r.corrupt(format!("{p}: rank directory inconsistent")));
        }
        Ok(PlainBv { n, words, dir })
    }
}

// ---------------------------------------------------------------------------------------------
// RRR compressed bitvector

const B: usize = 127;
const SB: usize = 32;
/// Blocks encoded per parallel task (few in unit tests, so that small inputs use many tasks).
#[cfg(not(test))]
const RRR_TASK: usize = 1 << 13;
#[cfg(test)]
const RRR_TASK: usize = 4;

struct Tables {
    binom: Vec<[u128; B + 1]>, // binom[n][k], n in 0..=B
    /// bk[k][n] = C(n, k): the decoder walks n downwards at a fixed or decreasing k, so this
    /// layout keeps its loads sequential within a row (L1) instead of 2 KiB apart (L2).
    bk: Vec<[u128; B + 1]>,
    /// bk truncated to 64 bits: exact wherever the block's offsets fit 64 bits
    /// (every C(n, k) <= C(B, k) < 2^64 for those classes).
    bk64: Vec<[u64; B + 1]>,
    width: [u8; B + 1],
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut binom = vec![[0u128; B + 1]; B + 1];
        for n in 0..=B {
            binom[n][0] = 1;
            for k in 1..=n {
                binom[n][k] = binom[n - 1][k - 1] + if k < n { binom[n - 1][k] } else { 0 };
            }
        }
        let mut width = [0u8; B + 1];
        for k in 0..=B {
            let c = binom[B][k];
            width[k] = if c <= 1 { 0 } else { (128 - (c - 1).leading_zeros()) as u8 };
        }
        let mut bk = vec![[0u128; B + 1]; B + 1];
        let mut bk64 = vec![[0u64; B + 1]; B + 1];
        for n in 0..=B {
            for k in 0..=B {
                bk[k][n] = binom[n][k];
                bk64[k][n] = binom[n][k] as u64;
            }
        }
        Tables { binom, bk, bk64, width }
    })
}

/// u32 words per superblock record: rank and offset pointer (relative to the coarse entry),
/// then the 32 classes of 7 bits (224 bits).
const REC: usize = 9;
/// Superblocks per coarse (absolute, u64) rank/pointer entry; 2^16 superblocks span < 2^32 bits.
const HI: usize = 1 << 16;

/// RRR-style compressed bitvector (block 127, superblock every 32 blocks).
///
/// A superblock's rank, offset pointer and block classes share one 36-byte record, so a rank
/// touches two places in memory (record, offsets) rather than four.
pub struct RrrBv {
    n: usize,
    /// `nblocks / SB + 1` records of [`REC`] words, then one zero word.
    sb: Buf<u32>,
    /// Per [`HI`] superblocks: absolute rank and pointer at its first superblock.
    hi: Buf<u64>,
    offsets: Buf<u64>,
}

#[inline]
fn read_u128(words: &[u64], pos: usize, w: usize) -> u128 {
    if w <= 64 {
        get_bits(words, pos, w) as u128
    } else {
        get_bits(words, pos, 64) as u128 | (get_bits(words, pos + 64, w - 64) as u128) << 64
    }
}

/// Enumerative decoding of the first `upto` bits of a block of `B` bits with `k` ones and offset
/// `off` (its rank among such blocks, bit 0 = most significant choice: blocks whose first bit is 0
/// come first, `C(B - 1, k)` of them). Returns the ones in the first `mark` and `upto` bits and
/// bit `upto`. `bk[k][n] = C(n, k)`.
///
/// With `m` positions and `kr` ones left, bit `j` is 1 iff `off >= C(m - 1, kr)`. Where ones are
/// sparse (`8 kr <= m`) the next one is found by binary search, since `C(B - 1 - j', kr)` falls as
/// `j'` grows and `off` does not change over zeros. Where zeros are sparse (`8 z <= m`, `z = m - kr`)
/// a run of ones is skipped the same way: by the hockey-stick identity, after `i` ones
/// `off_i = C(m - i, kr - i) - D` with `D = C(m, kr) - off`, and the next bit is 1 iff
/// `C(m - 1 - i, z) >= D`, which falls with `i`. Otherwise one step per bit.
#[inline]
fn decode_prefix<N>(mut off: N, k: usize, mark: usize, upto: usize, bk: &[[N; B + 1]]) -> (usize, usize, bool)
where
    N: Copy + PartialOrd + Default + std::ops::Sub<Output = N>,
{
    debug_assert!(0 < k && k < B && mark <= upto && upto <= B);
    const UNSET: usize = usize::MAX;
    let mut kr = k;
    let mut at_mark = if mark == 0 { 0 } else { UNSET };
    let mut j = 0;
    while j < upto {
        let m = B - j;
        if kr == 0 {
            // only zeros left
            return (if at_mark == UNSET { k } else { at_mark }, k, false);
        }
        if kr == m {
            // only ones left
            let at = |x: usize| k - kr + (x - j);
            return (if at_mark == UNSET { at(mark) } else { at_mark }, at(upto), upto < B);
        }
        let z = m - kr;
        if 8 * kr <= m {
            // sparse ones: jump to the next one (or to `upto`)
            let row = &bk[kr];
            let pp = row[B - upto..=B - 1 - j].partition_point(|&c| c <= off);
            let jn = upto - pp;
            if at_mark == UNSET && mark <= jn {
                at_mark = k - kr;
            }
            j = jn;
            if j < upto {
                off = off - row[B - 1 - j];
                kr -= 1;
                j += 1;
                if j == mark {
                    at_mark = k - kr;
                }
            }
        } else if 8 * z <= m {
            // sparse zeros: skip the run of ones
            let d = bk[kr][m] - off;
            let lim = (upto - j).min(kr);
            let r = lim - bk[z][m - lim..m].partition_point(|&c| c < d);
            if at_mark == UNSET && mark <= j + r {
                at_mark = k - kr + (mark - j);
            }
            j += r;
            kr -= r;
            off = bk[kr][B - j] - d;
            if r < lim {
                // bit j is the zero that ended the run
                j += 1;
                if j == mark {
                    at_mark = k - kr;
                }
            }
        } else {
            // mid density: one bit per step, as selects rather than an unpredictable branch
            let c = bk[kr][m - 1];
            let one = off >= c;
            off = off - if one { c } else { N::default() };
            kr -= one as usize;
            j += 1;
            if j == mark {
                at_mark = k - kr;
            }
        }
    }
    let bit = upto < B && kr > 0 && (kr == B - upto || off >= bk[kr][B - 1 - upto]);
    (if at_mark == UNSET { k - kr } else { at_mark }, k - kr, bit)
}

impl RrrBv {
    /// For a block of class `k` whose offset starts at bit `ptr`: the number of ones among its
    /// first `mark` bits, among its first `upto` bits (`mark <= upto <= B`), and bit `upto`
    /// (false when `upto == B`).
    #[inline]
    fn block_rank(&self, k: usize, ptr: usize, mark: usize, upto: usize) -> (usize, usize, bool) {
        if k == 0 {
            return (0, 0, false);
        }
        if k == B {
            return (mark, upto, upto < B);
        }
        let t = tables();
        let w = t.width[k] as usize;
        if w <= 64 {
            decode_prefix(get_bits(&self.offsets, ptr, w), k, mark, upto, &t.bk64)
        } else {
            decode_prefix(read_u128(&self.offsets, ptr, w), k, mark, upto, &t.bk)
        }
    }

    #[inline]
    fn class(&self, blk: usize) -> usize {
        let bit = 64 + 7 * (blk % SB);
        let w = (blk / SB) * REC + bit / 32;
        let v = self.sb[w] as u64 | (self.sb[w + 1] as u64) << 32;
        ((v >> (bit % 32)) & 127) as usize
    }

    #[inline]
    fn locate_block(&self, blk: usize) -> (usize, usize) {
        let t = tables();
        let s = blk / SB;
        let h = s / HI;
        let rec = &self.sb[s * REC..s * REC + REC];
        let mut r = self.hi[2 * h] as usize + rec[0] as usize;
        let mut p = self.hi[2 * h + 1] as usize + rec[1] as usize;
        let (mut acc, mut have, mut wi) = (0u64, 0usize, 2usize);
        for _ in 0..blk % SB {
            if have < 7 {
                acc |= (rec[wi] as u64) << have;
                wi += 1;
                have += 32;
            }
            let k = (acc & 127) as usize;
            acc >>= 7;
            have -= 7;
            r += k;
            p += t.width[k] as usize;
        }
        (r, p)
    }

    /// Rank of the block start, offset pointer, class (0 when `i` starts a block) and offset of
    /// `i` in its block.
    #[inline]
    fn prep(&self, i: usize) -> (usize, usize, usize, usize) {
        let blk = i / B;
        let rem = i % B;
        let (r, p) = self.locate_block(blk);
        if rem == 0 {
            return (r, p, 0, 0);
        }
        (r, p, self.class(blk), rem)
    }

    #[inline]
    fn prefetch_block(&self, blk: usize) {
        let s = blk / SB;
        let rec = self.sb.as_ptr().wrapping_add(s * REC);
        prefetch(rec);
        prefetch(rec.wrapping_add(REC - 1));
    }

    /// Records and coarse entries for the given classes (all `<= B`), and the offset bits.
    fn records(cls: &[u8]) -> (Vec<u32>, Vec<u64>, usize) {
        let t = tables();
        let nblocks = cls.len();
        let nsb = nblocks / SB + 1;
        let mut sb = vec![0u32; nsb * REC + 1];
        let mut hi = vec![0u64; 2 * nsb.div_ceil(HI)];
        let (mut r, mut p) = (0u64, 0u64);
        for s in 0..nsb {
            let h = s / HI;
            if s % HI == 0 {
                hi[2 * h] = r;
                hi[2 * h + 1] = p;
            }
            sb[s * REC] = (r - hi[2 * h]) as u32;
            sb[s * REC + 1] = (p - hi[2 * h + 1]) as u32;
            for i in 0..SB.min(nblocks.saturating_sub(s * SB)) {
                let k = cls[s * SB + i] as u64;
                let bit = (s * REC + 2) * 32 + 7 * i;
                let (w, o) = (bit / 32, bit % 32);
                sb[w] |= (k << o) as u32;
                if o > 25 {
                    sb[w + 1] |= (k >> (32 - o)) as u32;
                }
                r += k;
                p += t.width[k as usize] as u64;
            }
        }
        (sb, hi, p as usize)
    }
}

impl RankBv for RrrBv {
    fn from_words(words: &[u64], n: usize) -> Self {
        use rayon::prelude::*;
        let t = tables();
        let nblocks = n.div_ceil(B);
        // classes and enumerative offsets of the blocks in parallel (the offsets, a table sum
        // per one bit, are the costly part), then the offsets' bit stream in one cheap pass
        let mut cls = vec![0u8; nblocks];
        let mut offs = vec![0u128; nblocks];
        cls.par_chunks_mut(RRR_TASK).zip(offs.par_chunks_mut(RRR_TASK)).enumerate().for_each(|(ti, (cl, of))| {
            for (j, (k_out, off_out)) in cl.iter_mut().zip(of.iter_mut()).enumerate() {
                let start = (ti * RRR_TASK + j) * B;
                let len = B.min(n - start);
                let mut v = read_u128(words, start, len);
                if len < 128 {
                    v &= (1u128 << len) - 1;
                }
                let k = v.count_ones() as usize;
                *k_out = k as u8;
                if t.width[k] > 0 {
                    let mut off = 0u128;
                    let mut kr = k;
                    let mut bits = v;
                    while bits != 0 {
                        let j = bits.trailing_zeros() as usize;
                        off += t.binom[B - 1 - j][kr];
                        kr -= 1;
                        bits &= bits - 1;
                    }
                    *off_out = off;
                }
            }
        });
        let total_bits: usize = cls.iter().map(|&k| t.width[k as usize] as usize).sum();
        let mut ow = vec![0u64; total_bits.div_ceil(64) + 2];
        let mut pos = 0;
        for (&k, &off) in cls.iter().zip(&offs) {
            let w = t.width[k as usize] as usize;
            if w == 0 {
                continue;
            }
            let lo = w.min(64);
            set_bits(&mut ow, pos, lo, off as u64);
            if w > 64 {
                set_bits(&mut ow, pos + 64, w - 64, (off >> 64) as u64);
            }
            pos += w;
        }
        drop(offs);
        let (sb, hi, _) = Self::records(&cls);
        RrrBv { n, sb: sb.into(), hi: hi.into(), offsets: ow.into() }
    }

    fn len(&self) -> usize {
        self.n
    }

    #[inline]
    fn rank1(&self, i: usize) -> usize {
        let blk = i / B;
        let rem = i % B;
        let (r, p) = self.locate_block(blk);
        if rem == 0 {
            return r;
        }
        let k = self.class(blk);
        r + self.block_rank(k, p, rem, rem).1
    }

    #[inline]
    fn prefetch_rank(&self, i: usize) {
        self.prefetch_block(i / B);
    }

    #[inline]
    fn get_rank1(&self, i: usize) -> (bool, usize) {
        let blk = i / B;
        let rem = i % B;
        let (r, p) = self.locate_block(blk);
        let k = self.class(blk);
        let (_, c, bit) = self.block_rank(k, p, rem, rem);
        (bit, r + c)
    }

    #[inline]
    fn rank1_pair(&self, a: usize, b: usize) -> (usize, usize) {
        let blk = a / B;
        if a == b {
            let r = self.rank1(a);
            return (r, r);
        }
        if blk != b / B || b == self.n {
            // two independent ranks, each a chain of cache misses (superblock -> classes ->
            // offset): start b's loads before walking a's chain, and both offsets' loads before
            // decoding either, so the misses overlap
            self.prefetch_block(b / B);
            let (r1, p1, k1, m1) = self.prep(a);
            let (r2, p2, k2, m2) = self.prep(b);
            prefetch(self.offsets.as_ptr().wrapping_add(p1 / 64));
            prefetch(self.offsets.as_ptr().wrapping_add(p2 / 64));
            let c1 = self.block_rank(k1, p1, m1, m1).1;
            let c2 = self.block_rank(k2, p2, m2, m2).1;
            return (r1 + c1, r2 + c2);
        }
        // same block: one decoding pass answers both
        let (r, p) = self.locate_block(blk);
        let (ra, rb) = (a % B, b % B);
        if rb == 0 {
            return (r, r);
        }
        let k = self.class(blk);
        let (ca, cb, _) = self.block_rank(k, p, ra, rb);
        (r + ca, r + cb)
    }

    fn size_bytes(&self) -> usize {
        self.sb.len() * 4 + self.hi.len() * 8 + self.offsets.len() * 8
    }

    fn write<'a>(&'a self, p: &str, w: &mut SectionWriter<'a>) {
        w.add(format!("{p}.s"), self.sb.as_bytes());
        w.add(format!("{p}.hi"), self.hi.as_bytes());
        w.add(format!("{p}.o"), self.offsets.as_bytes());
    }

    fn read(p: &str, r: &SectionReader, n: usize) -> Result<Self> {
        let sb = r.get::<u32>(&format!("{p}.s"))?;
        let hi = r.get::<u64>(&format!("{p}.hi"))?;
        let offsets = r.get::<u64>(&format!("{p}.o"))?;
        let nblocks = n.div_ceil(B);
        let nsb = nblocks / SB + 1;
        let bad = || r.corrupt(format!("{p}: compressed bitvector inconsistent"));
        if sb.len() != nsb * REC + 1 {
            return Err(bad());
        }
        // the classes are the only free fields: each <= B (and the last block's <= its length);
        // the records and coarse entries must then be exactly the ones they imply
        let probe = RrrBv { n, sb, hi, offsets };
        let cls: Vec<u8> = (0..nblocks).map(|b| probe.class(b) as u8).collect();
        if cls.iter().any(|&k| k as usize > B) {
            return Err(bad());
        }
        if nblocks > 0 && cls[nblocks - 1] as usize > n - (nblocks - 1) * B {
            // a class larger than the last block's real length would make rank exceed n
            return Err(bad());
        }
        let (sb2, hi2, total) = Self::records(&cls);
        if *probe.sb != *sb2 || *probe.hi != *hi2 || probe.offsets.len() != total.div_ceil(64) + 2 {
            return Err(bad());
        }
        Ok(probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<Bv: RankBv>(bits: &[bool]) {
        let n = bits.len();
        let mut words = vec![0u64; n.div_ceil(64) + 1];
        for (i, &b) in bits.iter().enumerate() {
            if b {
                words[i / 64] |= 1 << (i % 64);
            }
        }
        let bv = Bv::from_words(&words, n);
        let mut r = 0;
        for (i, &bit) in bits.iter().enumerate() {
            assert_eq!(bv.rank1(i), r, "rank at {i}");
            assert_eq!(bv.get_rank1(i), (bit, r), "get_rank at {i}");
            r += bit as usize;
        }
        assert_eq!(bv.rank1(n), r);
        // pairs: same block, neighbouring blocks, far apart, and the end
        let mut pre = vec![0usize; n + 1];
        for i in 0..n {
            pre[i + 1] = pre[i] + bits[i] as usize;
        }
        for a in (0..=n).step_by(7) {
            for d in [0usize, 1, 5, 63, 126, 127, 128, 300, 5000] {
                let b = (a + d).min(n);
                assert_eq!(bv.rank1_pair(a, b), (pre[a], pre[b]), "pair ({a}, {b})");
            }
        }
    }

    #[test]
    fn bitvectors_match_naive() {
        let mut x = 12345u64;
        for &n in &[0usize, 1, 63, 64, 65, 126, 127, 128, 511, 512, 513, 4063, 4064, 4065, 20000] {
            for density in [0u64, 1, 10, 50, 90, 100] {
                let bits: Vec<bool> = (0..n)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // runs every 300 bits to exercise all-0/all-1 blocks
                        if (i / 300) % 3 == 0 { (i / 300) % 2 == 0 } else { x % 100 < density }
                    })
                    .collect();
                check::<PlainBv>(&bits);
                check::<RrrBv>(&bits);
            }
        }
    }

    #[test]
    fn rrr_every_class() {
        // blocks of every popcount, ones at random places: exercises the sparse, dense and
        // bit-by-bit decoding paths and their switches within a block
        let mut x = 777u64;
        let mut bits = Vec::new();
        for k in (0..=B).chain((0..=B).rev()) {
            let mut blk = [false; B];
            let mut placed = 0;
            while placed < k {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = (x % B as u64) as usize;
                if !blk[p] {
                    blk[p] = true;
                    placed += 1;
                }
            }
            bits.extend_from_slice(&blk);
        }
        check::<RrrBv>(&bits);
    }

    #[test]
    fn intvec_roundtrip() {
        let vals: Vec<u64> = (0..1000u64).map(|i| i * 7919 % 100_003).collect();
        let iv = IntVec::from_slice(&vals);
        for (i, &v) in vals.iter().enumerate() {
            assert_eq!(iv.get(i), v);
        }
    }
}
