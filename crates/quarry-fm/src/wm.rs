//! Huffman-shaped wavelet tree over an integer alphabet `[0, sigma)`, stored level by level
//! without pointers, generic over the bitvector.
//!
//! The tree shape is a Huffman code of the symbol counts (ties broken by id, so it is a pure
//! function of the counts): frequent symbols have short codes, so a rank or an access visits
//! about `H0 + 1` levels on average instead of `ceil(log2 sigma)`, and the levels hold about
//! `n (H0 + 1)` bits instead of `n log2 sigma`. When a Huffman code would be deeper than
//! [`MAX_DEPTH`] levels the tree is balanced instead.
//!
//! Level `d` holds the bits at depth `d` of every internal node of that depth, node after node
//! (breadth-first order); within a node, positions keep their order in the sequence. The node
//! table (offset of each node in its level, ones before it, children) is derived from the counts
//! when the tree is built or opened; only the level bitvectors are stored.

use crate::bits::RankBv;
use crate::error::Result;
use crate::fm::Sym;
use crate::format::{SectionReader, SectionWriter};

/// Deepest Huffman code used; deeper (very skewed) count distributions get a balanced tree.
const MAX_DEPTH: usize = 48;
const LEAF: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Node {
    level: usize,
    /// Offset of the node's bits in its level.
    start: usize,
    /// Positions in the node (sum of its leaves' counts).
    size: usize,
    /// Ones in the level before `start` (rank at `start`).
    ones: usize,
    /// Ones inside the node (positions going to child 1).
    ones_in: usize,
    /// Children: an internal node id, or `LEAF | symbol`.
    child: [u32; 2],
}

/// The tree shape, derived from the symbol counts.
struct Shape {
    nodes: Vec<Node>,
    /// Per symbol: code bits (first branch in the most significant of the `len` low bits), length.
    codes: Vec<(u64, u32)>,
    level_len: Vec<usize>,
}

enum Ch {
    Leaf(u32),
    Int(usize),
}

fn shape(counts: &[usize]) -> Shape {
    let sigma = counts.len();
    debug_assert!(sigma >= 2 && sigma < LEAF as usize);
    // Huffman merging: internal nodes in `kids`, ids sigma.. in the heap
    let mut kids: Vec<[Ch; 2]> = Vec::with_capacity(sigma);
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> =
        (0..sigma).map(|c| std::cmp::Reverse((counts[c] as u64, c))).collect();
    let as_ch = |id: usize| {
        if id < sigma { Ch::Leaf(id as u32) } else { Ch::Int(id - sigma) }
    };
    while heap.len() > 1 {
        let std::cmp::Reverse((w0, a)) = heap.pop().unwrap();
        let std::cmp::Reverse((w1, b)) = heap.pop().unwrap();
        kids.push([as_ch(a), as_ch(b)]);
        heap.push(std::cmp::Reverse((w0 + w1, sigma + kids.len() - 1)));
    }
    let mut root = kids.len() - 1;
    // depth of the Huffman tree
    let mut depth = vec![0usize; kids.len()];
    let mut max_depth = 0;
    for v in (0..kids.len()).rev() {
        for k in &kids[v] {
            match *k {
                Ch::Int(u) => depth[u] = depth[v] + 1,
                Ch::Leaf(_) => max_depth = max_depth.max(depth[v] + 1),
            }
        }
    }
    if max_depth > MAX_DEPTH {
        // balanced: split the symbol range in halves
        kids.clear();
        fn split(lo: usize, hi: usize, kids: &mut Vec<[Ch; 2]>) -> Ch {
            if hi - lo == 1 {
                return Ch::Leaf(lo as u32);
            }
            let mid = lo + (hi - lo).div_ceil(2);
            let a = split(lo, mid, kids);
            let b = split(mid, hi, kids);
            kids.push([a, b]);
            Ch::Int(kids.len() - 1)
        }
        root = match split(0, sigma, &mut kids) {
            Ch::Int(r) => r,
            Ch::Leaf(_) => unreachable!("sigma >= 2"),
        };
    }
    // breadth-first numbering, sizes, codes
    let mut order = vec![root];
    let mut id = vec![u32::MAX; kids.len()];
    let mut lvl = vec![0usize; kids.len()];
    let mut codes = vec![(0u64, 0u32); sigma];
    let mut code_of = vec![(0u64, 0u32); kids.len()]; // path code of each internal node
    let mut i = 0;
    while i < order.len() {
        let v = order[i];
        id[v] = i as u32;
        for (bit, k) in kids[v].iter().enumerate() {
            let (c, l) = code_of[v];
            let cc = (c << 1 | bit as u64, l + 1);
            match *k {
                Ch::Int(u) => {
                    code_of[u] = cc;
                    lvl[u] = lvl[v] + 1;
                    order.push(u);
                }
                Ch::Leaf(s) => codes[s as usize] = cc,
            }
        }
        i += 1;
    }
    // subtree sizes, children first (reverse breadth-first order)
    let mut size = vec![0usize; kids.len()];
    for &v in order.iter().rev() {
        size[v] = kids[v]
            .iter()
            .map(|k| match *k {
                Ch::Int(u) => size[u],
                Ch::Leaf(s) => counts[s as usize],
            })
            .sum();
    }
    let levels = lvl.iter().max().map_or(0, |m| m + 1);
    let mut level_len = vec![0usize; levels];
    let mut nodes = Vec::with_capacity(order.len());
    for &v in &order {
        let level = lvl[v];
        let child = kids[v].each_ref().map(|k| match *k {
            Ch::Int(u) => id[u],
            Ch::Leaf(s) => LEAF | s,
        });
        nodes.push(Node { level, start: level_len[level], size: size[v], ones: 0, ones_in: 0, child });
        level_len[level] += size[v];
    }
    Shape { nodes, codes, level_len }
}

/// Positions per parallel task of a level's partition (a multiple of 64: tasks own whole words).
const PART_CHUNK: usize = if cfg!(test) { 1 << 8 } else { 1 << 18 };

/// One level of the build: sets bit `i` of `words` to the level's bit of `seq[i]` and, unless
/// `last_level`, moves every element of an internal node to its child's range in `next`, stably
/// (elements going to a leaf are dropped). Both passes run in parallel over chunks of
/// [`PART_CHUNK`] positions: the first writes the bits, whose popcounts then give each chunk its
/// starting offset in each child, so the second can scatter its chunk on its own.
fn partition_level<T: Sym>(
    seq: &[T],
    next: &mut [T],
    level_nodes: &[Node],
    nodes: &[Node],
    bit_of: &[u8],
    words: &mut [u64],
    last_level: bool,
) {
    use rayon::prelude::*;
    let len = seq.len();
    let nw = len.div_ceil(64);
    // bytes, 8 or 16 at a time (both passes), where the CPU has SSSE3 and POPCNT
    #[cfg(target_arch = "x86_64")]
    let simd_bytes = std::mem::size_of::<T>() == 1
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("popcnt");
    #[cfg(target_arch = "x86_64")]
    let bitmap: Option<[u8; 32]> = simd_bytes.then(|| {
        let mut m = [0u8; 32];
        for (c, &b) in bit_of.iter().enumerate().take(256) {
            m[c >> 3] |= (b & 1) << (c & 7);
        }
        m
    });
    // bits gather in a register, one word per 64 positions
    words[..nw].par_chunks_mut(PART_CHUNK / 64).zip(seq.par_chunks(PART_CHUNK)).for_each(|(w, part)| {
        #[allow(unused_mut)]
        let (mut w, mut part) = (w, part);
        #[cfg(target_arch = "x86_64")]
        if let Some(bm) = &bitmap {
            let full = part.len() / 64;
            // SAFETY: ssse3 is present (checked with the bitmap); `full` words, 64 bytes each.
            unsafe { bits_bytes_ssse3(bytemuck::cast_slice(&part[..full * 64]), bm, &mut w[..full]) };
            (w, part) = (&mut w[full..], &part[full * 64..]);
        }
        for (wd, c64) in w.iter_mut().zip(part.chunks(64)) {
            let mut acc = 0u64;
            for (j, &c) in c64.iter().enumerate() {
                acc |= (bit_of[c.into() as usize] as u64) << j;
            }
            *wd = acc;
        }
    });
    if last_level {
        return;
    }
    // ones before each chunk
    let mut ones_before_chunk: Vec<usize> =
        words[..nw].par_chunks(PART_CHUNK / 64).map(|w| w.iter().map(|x| x.count_ones() as usize).sum()).collect();
    let mut acc = 0;
    for o in &mut ones_before_chunk {
        let c = *o;
        *o = acc;
        acc += c;
    }
    let words = &*words;
    let ones_before = |x: usize| -> usize {
        let k = x / PART_CHUNK;
        let mut r = ones_before_chunk.get(k).copied().unwrap_or(acc);
        if k < ones_before_chunk.len() {
            r += words[k * PART_CHUNK / 64..x / 64].iter().map(|w| w.count_ones() as usize).sum::<usize>();
            if !x.is_multiple_of(64) {
                r += (words[x / 64] & ((1u64 << (x % 64)) - 1)).count_ones() as usize;
            }
        }
        r
    };
    let out = crate::fm::SyncPtr(next.as_mut_ptr());
    let out_len = next.len();
    seq.par_chunks(PART_CHUNK).enumerate().for_each(|(k, part)| {
        let lo = k * PART_CHUNK;
        let hi = lo + part.len();
        let mut dump = T::default(); // where elements going to a leaf are "written"
        let dump_ptr: *mut T = &mut dump;
        let first = level_nodes.partition_point(|nd| nd.start + nd.size <= lo);
        for node in &level_nodes[first..] {
            if node.start >= hi {
                break;
            }
            let internal = node.child.map(|ch| ch & LEAF == 0);
            if !(internal[0] || internal[1]) || node.size == 0 {
                continue;
            }
            let (a, b) = (node.start.max(lo), (node.start + node.size).min(hi));
            // this node's elements before `a` went to child 1 (ones) or child 0 (the rest)
            let ones = ones_before(a) - ones_before(node.start);
            let zeros = (a - node.start) - ones;
            let dst = |i: usize, skipped: usize| -> *mut T {
                if internal[i] {
                    let st = nodes[node.child[i] as usize].start + skipped;
                    debug_assert!(st <= out_len);
                    // SAFETY: in bounds (the child's range lies inside `next`).
                    unsafe { out.get().add(st) }
                } else {
                    dump_ptr
                }
            };
            let mut ptrs = [dst(0, zeros), dst(1, ones)];
            let inc = [internal[0] as usize, internal[1] as usize];
            let mut seg = &part[a - lo..b - lo];
            #[cfg(target_arch = "x86_64")]
            if simd_bytes && seg.len() >= 64 {
                // bytes: the scalar loop up to a multiple of 8 positions, then 8 at a time
                let head = (a.next_multiple_of(8) - a).min(seg.len());
                // SAFETY: as for the scalar loop below.
                unsafe { scatter_scalar(&seg[..head], bit_of, &mut ptrs, inc) };
                let ones_left = ones_before(b) - ones_before(a + head);
                let zeros_left = (b - a - head) - ones_left;
                let bytes: &[u8] = bytemuck::cast_slice(&seg[head..]);
                // SAFETY: ssse3 and popcnt are present; `a + head` is a multiple of 8 and `words`
                // holds the bits of every position of `bytes`; the destinations are this task's own
                // slots of the children (as below), and the function stores 8 bytes only where at
                // least 8 of them remain.
                let (n, q0, q1) = unsafe {
                    scatter_bytes_ssse3(
                        bytes,
                        words,
                        a + head,
                        (ptrs[0] as *mut u8, internal[0], zeros_left),
                        (ptrs[1] as *mut u8, internal[1], ones_left),
                    )
                };
                ptrs = [q0 as *mut T, q1 as *mut T];
                seg = &seg[head + n..];
            }
            // SAFETY: every element of an internal child gets its own slot of the child's range
            // (offsets from the popcounts), so tasks write disjoint elements; leaf children write
            // the task's own dump slot.
            unsafe { scatter_scalar(seg, bit_of, &mut ptrs, inc) };
        }
    });
}

/// The branch-free stable scatter of `elems` to the children: an element whose level bit is `b`
/// goes to `ptrs[b]`, which then advances by `inc[b]` (0 for a leaf child's dump slot).
///
/// # Safety
/// `ptrs[b]` is valid for as many writes as `elems` has elements with bit `b` (one, for a
/// pointer that does not advance).
#[inline]
unsafe fn scatter_scalar<T: Sym>(elems: &[T], bit_of: &[u8], ptrs: &mut [*mut T; 2], inc: [usize; 2]) {
    let [mut p0, mut p1] = *ptrs;
    for &c in elems {
        let bit = bit_of[c.into() as usize] as usize;
        // SAFETY: caller.
        unsafe {
            *(if bit == 0 { p0 } else { p1 }) = c;
            p0 = p0.add(inc[0] & (bit ^ 1));
            p1 = p1.add(inc[1] & bit);
        }
    }
    *ptrs = [p0, p1];
}

/// `SHUFFLE_PACK[m]`: the `pshufb` control that gathers the bytes of an 8-byte group whose
/// positions are the set bits of `m`, in order, to the front.
#[cfg(target_arch = "x86_64")]
static SHUFFLE_PACK: [[u8; 8]; 256] = {
    let mut t = [[0x80u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let (mut j, mut k) = (0, 0);
        while j < 8 {
            if m >> j & 1 == 1 {
                t[m][k] = j as u8;
                k += 1;
            }
            j += 1;
        }
        m += 1;
    }
    t
};

/// The scatter of [`partition_level`] for bytes, 8 positions at a time: each group's zeros and
/// ones (its bits from `words`, at position `pos` onwards) are packed with one `pshufb` each and
/// stored 8 bytes wide at the child's write pointer, which then advances by the group's count.
/// `child0`/`child1` = (write pointer, is an internal node (else nothing is written), elements
/// left to write there). Stops before a group when an internal child has fewer than 8 slots
/// left, so a wide store never leaves the caller's slots (the bytes past the group's count are
/// overwritten by the next groups). Returns (bytes consumed, the two write pointers).
///
/// # Safety
/// SSSE3 and POPCNT must be available; `pos` is a multiple of 8; `words` covers positions
/// `pos..pos + bytes.len()`; an internal child's pointer is valid for its `left` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3,popcnt")]
unsafe fn scatter_bytes_ssse3(
    bytes: &[u8],
    words: &[u64],
    pos: usize,
    child0: (*mut u8, bool, usize),
    child1: (*mut u8, bool, usize),
) -> (usize, *mut u8, *mut u8) {
    use std::arch::x86_64::*;
    debug_assert!(pos.is_multiple_of(8));
    let ((mut p0, w0, mut left0), (mut p1, w1, mut left1)) = (child0, child1);
    let mut g = 0;
    while g + 8 <= bytes.len() && (!w0 || left0 >= 8) && (!w1 || left1 >= 8) {
        let at = pos + g;
        let m = ((words[at >> 6] >> (at & 63)) & 0xFF) as usize;
        let ones = (m as u32).count_ones() as usize;
        // SAFETY: 8 readable bytes at `g` (loop bound); 8 writable slots at each written
        // pointer (`left >= 8`, caller).
        unsafe {
            let v = _mm_loadl_epi64(bytes.as_ptr().add(g) as *const __m128i);
            if w0 {
                let z = _mm_shuffle_epi8(v, _mm_loadl_epi64(SHUFFLE_PACK[m ^ 0xFF].as_ptr() as *const __m128i));
                _mm_storel_epi64(p0 as *mut __m128i, z);
                p0 = p0.add(8 - ones);
                left0 -= 8 - ones;
            }
            if w1 {
                let o = _mm_shuffle_epi8(v, _mm_loadl_epi64(SHUFFLE_PACK[m].as_ptr() as *const __m128i));
                _mm_storel_epi64(p1 as *mut __m128i, o);
                p1 = p1.add(ones);
                left1 -= ones;
            }
        }
        g += 8;
    }
    (g, p0, p1)
}

/// The bits pass of [`partition_level`] for bytes, 16 at a time: bit `j` of `out[k]` = bit
/// `bytes[64 k + j]` of the 256-bit `bitmap` (the level's bit of each symbol), looked up with
/// two `pshufb`s (which of the bitmap's 32 bytes) and one more (which bit of it).
///
/// # Safety
/// SSSE3 must be available; `bytes.len() == 64 * out.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn bits_bytes_ssse3(bytes: &[u8], bitmap: &[u8; 32], out: &mut [u64]) {
    use std::arch::x86_64::*;
    debug_assert_eq!(bytes.len(), 64 * out.len());
    // SAFETY: all loads are in bounds (32-byte bitmap, 16-byte groups of `bytes`).
    unsafe {
        let lo_tab = _mm_loadu_si128(bitmap.as_ptr() as *const __m128i);
        let hi_tab = _mm_loadu_si128(bitmap.as_ptr().add(16) as *const __m128i);
        let pow2 = _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
        let (m31, m7, m15) = (_mm_set1_epi8(31), _mm_set1_epi8(7), _mm_set1_epi8(15));
        for (k, o) in out.iter_mut().enumerate() {
            let mut acc = 0u64;
            for q in 0..4 {
                let v = _mm_loadu_si128(bytes.as_ptr().add(64 * k + 16 * q) as *const __m128i);
                // which bitmap byte (0..31): the low 16 from one table, the high from the other
                let idx = _mm_and_si128(_mm_srli_epi16(v, 3), m31);
                let high = _mm_cmpgt_epi8(idx, m15);
                let byte = _mm_or_si128(
                    _mm_andnot_si128(high, _mm_shuffle_epi8(lo_tab, idx)),
                    _mm_and_si128(high, _mm_shuffle_epi8(hi_tab, _mm_and_si128(idx, m15))),
                );
                let bit = _mm_shuffle_epi8(pow2, _mm_and_si128(v, m7));
                let zero = _mm_cmpeq_epi8(_mm_and_si128(byte, bit), _mm_setzero_si128());
                acc |= ((!_mm_movemask_epi8(zero) as u32 & 0xFFFF) as u64) << (16 * q);
            }
            *o = acc;
        }
    }
}

/// Result of [`WaveletTree::access_step`].
pub enum AccessStep {
    /// Continue at internal node `.0`, position `.1` in it.
    Node(usize, usize),
    /// Reached the leaf of symbol `.0`; `.1` = its rank (occurrences before the position).
    Leaf(u32, usize),
}

/// Huffman-shaped wavelet tree (see the module docs).
pub struct WaveletTree<Bv> {
    n: usize,
    levels: Vec<Bv>,
    nodes: Vec<Node>,
    codes: Vec<(u64, u32)>,
}

impl<Bv: RankBv> WaveletTree<Bv> {
    /// Build over `seq`, whose values are `< counts.len()` and occur `counts[c]` times (every
    /// count >= 1). `check` is called between levels and may abort.
    #[cfg(test)]
    pub fn build<T: Sym>(mut seq: Vec<T>, counts: &[usize], check: impl FnMut(usize, usize) -> Result<()>) -> Result<Self> {
        seq.push(T::default());
        let mut next = vec![T::default(); seq.len()];
        Self::build_in(&mut seq, &mut next, counts, check)
    }

    /// [`build`](Self::build) over `seq[..n]` with `n + 1 = seq.len()`, partitioning between
    /// `seq` and `next` (both `n + 1` long, contents of both overwritten). Their last slot is
    /// spare: where positions going to a leaf child are "written" by the branch-free partition.
    pub fn build_in<T: Sym>(
        seq: &mut [T],
        next: &mut [T],
        counts: &[usize],
        mut check: impl FnMut(usize, usize) -> Result<()>,
    ) -> Result<Self> {
        let n = seq.len() - 1;
        debug_assert_eq!(next.len(), n + 1);
        let sh = shape(counts);
        let nl = sh.level_len.len();
        let mut cur = seq;
        let mut next = next;
        // Each level's bitvector is encoded (RRR encoding is the costly part) while the next level
        // is partitioned, in a fork-join pair: at most two levels' raw bits exist at a time (one
        // being filled, one being encoded), and their buffers are reused. Queuing every level's
        // encoding instead let the raw bits of several levels (n / 8 bytes each) pile up behind a
        // slower encoder, beyond the suffix sort's peak memory.
        let mut levels: Vec<Option<Bv>> = (0..nl).map(|_| None).collect();
        let mut spare: Option<Vec<u64>> = None;
        let mut pending: Option<(usize, Vec<u64>, usize)> = None; // (level, raw bits, length)
        let mut bit_of = vec![0u8; counts.len()];
        let mut first = 0; // first node of the current level (breadth-first order)
        for (l, &len) in sh.level_len.iter().enumerate() {
            check(l, nl)?;
            let last_level = l + 1 == nl;
            for (b, &(code, clen)) in bit_of.iter_mut().zip(&sh.codes) {
                *b = if clen as usize > l { ((code >> (clen as usize - 1 - l)) & 1) as u8 } else { 0 };
            }
            let mut words = spare.take().unwrap_or_default();
            words.clear();
            words.resize(len.div_ceil(64) + 1, 0);
            let mut v = first;
            while v < sh.nodes.len() && sh.nodes[v].level == l {
                v += 1;
            }
            let level_nodes = &sh.nodes[first..v];
            first = v;
            let (cur_ref, next_ref, bits) = (&*cur, &mut *next, &mut words);
            let (_, encoded) = rayon::join(
                || partition_level(&cur_ref[..len], &mut next_ref[..n], level_nodes, &sh.nodes, &bit_of, bits, last_level),
                || pending.take().map(|(pl, raw, plen)| (pl, Bv::from_words(&raw, plen), raw)),
            );
            if let Some((pl, bv, raw)) = encoded {
                levels[pl] = Some(bv);
                spare = Some(raw);
            }
            pending = Some((l, words, len));
            std::mem::swap(&mut cur, &mut next);
        }
        if let Some((pl, raw, plen)) = pending {
            levels[pl] = Some(Bv::from_words(&raw, plen));
        }
        let levels: Vec<Bv> = levels.into_iter().map(|b| b.expect("every level encoded")).collect();
        let mut wt = WaveletTree { n, levels, nodes: sh.nodes, codes: sh.codes };
        wt.fill_ones();
        Ok(wt)
    }

    fn fill_ones(&mut self) {
        for node in &mut self.nodes {
            node.ones = self.levels[node.level].rank1(node.start);
            node.ones_in = self.levels[node.level].rank1(node.start + node.size) - node.ones;
        }
    }

    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// `(seq[i], rank_{seq[i]}(i))` for `i < len` (the FM core runs its walks through
    /// [`access_step`](Self::access_step); this is their reference in tests).
    #[cfg(test)]
    pub fn access_rank(&self, mut i: usize) -> (u32, usize) {
        let mut v = 0usize;
        loop {
            match self.access_step(v, i) {
                AccessStep::Node(w, j) => (v, i) = (w, j),
                AccessStep::Leaf(c, r) => return (c, r),
            }
        }
    }

    /// One level of `access_rank`: from internal node `v` (0 = the root) at
    /// position `i` of the node, to the child the position's symbol goes to. Lets callers
    /// interleave several walks, one level at a time.
    #[inline]
    pub fn access_step(&self, v: usize, i: usize) -> AccessStep {
        let node = &self.nodes[v];
        let (bit, r1) = self.levels[node.level].get_rank1(node.start + i);
        let r = r1 - node.ones;
        let i = if bit { r } else { i - r };
        let ch = node.child[bit as usize];
        if ch & LEAF != 0 { AccessStep::Leaf(ch & !LEAF, i) } else { AccessStep::Node(ch as usize, i) }
    }

    /// Starts loading what [`access_step`](Self::access_step)`(v, i)` reads first.
    #[inline]
    pub fn prefetch_step(&self, v: usize, i: usize) {
        let node = &self.nodes[v];
        self.levels[node.level].prefetch_rank(node.start + i);
    }

    /// `(rank_c(a), rank_c(b))` for `a <= b <= len` and `c < sigma`.
    #[inline]
    pub fn rank_pair(&self, c: u32, mut a: usize, mut b: usize) -> (usize, usize) {
        let (code, len) = self.codes[c as usize];
        let mut v = 0usize;
        for d in (0..len as usize).rev() {
            let node = &self.nodes[v];
            // ranks at the node's ends are known: no bitvector access for them
            let (ra, rb) = match (a == 0, b == node.size) {
                (true, true) => (0, node.ones_in),
                (true, false) => (0, self.levels[node.level].rank1(node.start + b) - node.ones),
                (false, true) => (self.levels[node.level].rank1(node.start + a) - node.ones, node.ones_in),
                (false, false) => {
                    let (ra, rb) = self.levels[node.level].rank1_pair(node.start + a, node.start + b);
                    (ra - node.ones, rb - node.ones)
                }
            };
            let bit = (code >> d) & 1;
            if bit == 1 {
                a = ra;
                b = rb;
            } else {
                a -= ra;
                b -= rb;
            }
            if a == b {
                // empty: rank_c(a) = rank_c(b), whatever its value; the callers only use the range
                return (a, b);
            }
            v = (node.child[bit as usize] & !LEAF) as usize;
        }
        (a, b)
    }

    /// Distinct symbols in `[a, b)` with their counts, in increasing symbol order.
    pub fn distinct(&self, a: usize, b: usize, out: &mut Vec<(u32, usize)>) {
        let at = out.len();
        if a < b {
            self.distinct_rec(0, a, b, out);
        }
        out[at..].sort_unstable_by_key(|x| x.0);
    }

    fn distinct_rec(&self, v: usize, a: usize, b: usize, out: &mut Vec<(u32, usize)>) {
        let node = &self.nodes[v];
        let (ra, rb) = self.levels[node.level].rank1_pair(node.start + a, node.start + b);
        let (ra, rb) = (ra - node.ones, rb - node.ones);
        for (ch, x, y) in [(node.child[0], a - ra, b - rb), (node.child[1], ra, rb)] {
            if x < y {
                if ch & LEAF != 0 {
                    out.push((ch & !LEAF, y - x));
                } else {
                    self.distinct_rec(ch as usize, x, y, out);
                }
            }
        }
    }

    pub fn size_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.size_bytes()).sum::<usize>()
    }

    pub(crate) fn write<'a>(&'a self, p: &str, w: &mut SectionWriter<'a>) {
        let mut h = vec![self.n as u64, self.levels.len() as u64];
        h.extend(self.levels.iter().map(|l| l.len() as u64));
        w.add_u64s(format!("{p}.h"), &h);
        for (l, bv) in self.levels.iter().enumerate() {
            bv.write(&format!("{p}{l}"), w);
        }
    }

    /// Read and validate against the symbol counts (`counts[c] >= 1`, summing to `n`): every
    /// level has the length the shape implies, and every node holds exactly as many ones as its
    /// 1-subtree has positions, so that every rank stays inside its node.
    pub(crate) fn read(p: &str, r: &SectionReader, n: usize, counts: &[usize]) -> Result<Self> {
        let bad = |m: String| r.corrupt(format!("{p}: {m}"));
        if counts.len() < 2 || counts.len() >= LEAF as usize || counts.contains(&0) {
            return Err(bad("bad symbol counts".into()));
        }
        let sh = shape(counts);
        let nl = sh.level_len.len();
        let h = r.u64s(&format!("{p}.h"), 2 + nl)?;
        if h[0] as usize != n || h[1] as usize != nl || (0..nl).any(|l| h[2 + l] as usize != sh.level_len[l]) {
            return Err(bad("wavelet tree shape mismatch".into()));
        }
        let mut levels = Vec::with_capacity(nl);
        for l in 0..nl {
            let bv = Bv::read(&format!("{p}{l}"), r, sh.level_len[l])?;
            if bv.len() != sh.level_len[l] {
                return Err(bad(format!("level {l} length mismatch")));
            }
            levels.push(bv);
        }
        let mut wt = WaveletTree { n, levels, nodes: sh.nodes, codes: sh.codes };
        wt.fill_ones();
        for (v, node) in wt.nodes.iter().enumerate() {
            let ones = node.ones_in;
            let want = match node.child[1] {
                ch if ch & LEAF != 0 => counts[(ch & !LEAF) as usize],
                ch => wt.nodes[ch as usize].size,
            };
            if ones != want {
                return Err(bad(format!("node {v}: {ones} ones, expected {want}")));
            }
        }
        Ok(wt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{PlainBv, RrrBv};

    fn check<Bv: RankBv>(seq: &[u32], sigma: usize) {
        let mut all = vec![0usize; sigma];
        for &c in seq {
            all[c as usize] += 1;
        }
        let wt = WaveletTree::<Bv>::build(seq.to_vec(), &all, |_, _| Ok(())).unwrap();
        if sigma <= 256 {
            // the same tree from bytes (their partition runs 8 at a time where SSSE3 is there)
            let bytes: Vec<u8> = seq.iter().map(|&c| c as u8).collect();
            let wb = WaveletTree::<Bv>::build(bytes, &all, |_, _| Ok(())).unwrap();
            for i in 0..seq.len() {
                assert_eq!(wb.access_rank(i), wt.access_rank(i), "byte tree at {i}");
            }
        }
        let mut counts = vec![0usize; sigma];
        for (i, &c) in seq.iter().enumerate() {
            assert_eq!(wt.access_rank(i), (c, counts[c as usize]));
            counts[c as usize] += 1;
        }
        for c in 0..sigma as u32 {
            let naive = |p: usize| seq[..p].iter().filter(|&&x| x == c).count();
            for (a, b) in [(seq.len() / 3, seq.len()), (0, seq.len() / 2), (seq.len() / 5, seq.len() / 5 + 3)] {
                let b = b.min(seq.len());
                let (ra, rb) = wt.rank_pair(c, a, b);
                assert_eq!(rb - ra, naive(b) - naive(a), "c {c} [{a}, {b})");
                if rb > ra {
                    assert_eq!((ra, rb), (naive(a), naive(b)));
                }
            }
        }
        let (a, b) = (seq.len() / 4, seq.len() * 3 / 4);
        let mut out = vec![];
        wt.distinct(a, b, &mut out);
        let mut naive = std::collections::BTreeMap::new();
        for &c in &seq[a..b] {
            *naive.entry(c).or_insert(0usize) += 1;
        }
        assert_eq!(out, naive.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn wt_matches_naive() {
        let mut x = 99u64;
        for &(n, sigma) in &[(2usize, 2usize), (10, 2), (1000, 3), (3000, 97), (2000, 300), (999, 50), (20_000, 200), (5000, 2)] {
            let mut seq: Vec<u32> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // skewed: squares the uniform variate
                    let u = ((x >> 33) % 1_000_000) as f64 / 1e6;
                    ((u * u) * sigma as f64) as u32 % sigma as u32
                })
                .collect();
            // every symbol at least once (as the FM core guarantees)
            for (c, x) in seq.iter_mut().enumerate().take(sigma.min(n)) {
                *x = c as u32;
            }
            let sigma = sigma.min(n);
            check::<PlainBv>(&seq, sigma);
            check::<RrrBv>(&seq, sigma);
        }
    }

    #[test]
    fn very_skewed_counts_fall_back_to_balanced() {
        // Fibonacci counts give a Huffman code as deep as the alphabet is large
        let mut counts = vec![1usize, 1];
        while counts.len() < 60 {
            let k = counts.len();
            counts.push(counts[k - 1] + counts[k - 2]);
        }
        let sh = shape(&counts);
        assert!(sh.level_len.len() <= 6, "depth {}", sh.level_len.len());
        let sh = shape(&counts[..20]);
        assert_eq!(sh.level_len.len(), 19); // Huffman (a path) under the depth cap
    }
}
