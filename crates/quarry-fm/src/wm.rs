//! Wavelet matrix over an integer alphabet `[0, sigma)`, generic over the bitvector.

use crate::bits::{RankBv, bits_for};
use crate::fm::Sym;
use crate::error::Result;
use crate::format::{SectionReader, SectionWriter};

/// Wavelet matrix (Claude, Navarro, Ordóñez 2015): one bitvector per bit of the symbol code,
/// most significant first; each level stably partitions the sequence by that bit.
pub struct WaveletMatrix<Bv> {
    n: usize,
    levels: Vec<Bv>,
    zeros: Vec<usize>,
    /// `start[c]`: first position of symbol `c` in the last level's order (filled by
    /// [`WaveletMatrix::set_counts`]); lets rank/access skip tracking the start of `c`.
    start: Vec<usize>,
}

impl<Bv: RankBv> WaveletMatrix<Bv> {
    /// Build over `seq`, whose values are `< sigma`. `check` is called between levels and may abort.
    pub fn build<T: Sym>(
        seq: Vec<T>,
        sigma: usize,
        mut check: impl FnMut(usize, usize) -> Result<()>,
    ) -> Result<Self> {
        let n = seq.len();
        let nl = bits_for(sigma.saturating_sub(1) as u64).max(1);
        let mut cur = seq;
        let mut next = vec![T::default(); n];
        let mut levels = Vec::with_capacity(nl);
        let mut zeros = Vec::with_capacity(nl);
        let mut words = vec![0u64; n.div_ceil(64) + 1];
        for l in 0..nl {
            check(l, nl)?;
            let shift = nl - 1 - l;
            words.fill(0);
            let mut z = 0;
            for (wi, chunk) in cur.chunks(64).enumerate() {
                let mut w = 0u64;
                for (k, &v) in chunk.iter().enumerate() {
                    w |= ((v.into() >> shift) as u64 & 1) << k;
                }
                words[wi] = w;
                z += chunk.len() - w.count_ones() as usize;
            }
            let (mut zi, mut oi) = (0, z);
            if l + 1 == nl {
                levels.push(Bv::from_words(&words, n));
                zeros.push(z);
                break; // the last level's partition is never used
            }
            for &v in &cur {
                if (v.into() >> shift) & 1 == 1 {
                    next[oi] = v;
                    oi += 1;
                } else {
                    next[zi] = v;
                    zi += 1;
                }
            }
            std::mem::swap(&mut cur, &mut next);
            levels.push(Bv::from_words(&words, n));
            zeros.push(z);
        }
        Ok(WaveletMatrix { n, levels, zeros, start: Vec::new() })
    }

    /// Provide per-symbol counts (`counts[c]` for `c < sigma`) to enable the fast paths.
    /// The last level orders symbols by their bit-reversed code, stably.
    pub fn set_counts(&mut self, counts: &[usize]) {
        let nl = self.levels.len();
        let rev = |c: usize| (c as u64).reverse_bits() >> (64 - nl);
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by_key(|&c| rev(c));
        let mut start = vec![0usize; counts.len()];
        let mut acc = 0;
        for c in order {
            start[c] = acc;
            acc += counts[c];
        }
        self.start = start;
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// `(seq[i], rank_{seq[i]}(i))` for `i < len`.
    #[inline]
    pub fn access_rank(&self, mut i: usize) -> (u32, usize) {
        if !self.start.is_empty() {
            let mut c = 0u32;
            for (bv, &z) in self.levels.iter().zip(&self.zeros) {
                let (bit, r) = bv.get_rank1(i);
                c = (c << 1) | bit as u32;
                i = if bit { z + r } else { i - r };
            }
            return (c, i - self.start[c as usize]);
        }
        let mut s = 0usize;
        let mut c = 0u32;
        for (bv, &z) in self.levels.iter().zip(&self.zeros) {
            let (bit, r) = bv.get_rank1(i);
            let rs = bv.rank1(s);
            c = (c << 1) | bit as u32;
            if bit {
                i = z + r;
                s = z + rs;
            } else {
                i -= r;
                s -= rs;
            }
        }
        (c, i - s)
    }

    /// `(rank_c(a), rank_c(b))` for `a <= b <= len`.
    #[inline]
    pub fn rank_pair(&self, c: u32, mut a: usize, mut b: usize) -> (usize, usize) {
        let nl = self.levels.len();
        if let Some(&st) = self.start.get(c as usize) {
            for (l, (bv, &z)) in self.levels.iter().zip(&self.zeros).enumerate() {
                let bit = (c >> (nl - 1 - l)) & 1 == 1;
                let (ra, rb) = bv.rank1_pair(a, b);
                if bit {
                    a = z + ra;
                    b = z + rb;
                } else {
                    a -= ra;
                    b -= rb;
                }
            }
            return (a - st, b - st);
        }
        let mut s = 0usize;
        for (l, (bv, &z)) in self.levels.iter().zip(&self.zeros).enumerate() {
            let bit = (c >> (nl - 1 - l)) & 1 == 1;
            let (ra, rb) = bv.rank1_pair(a, b);
            let rs = bv.rank1(s);
            if bit {
                a = z + ra;
                b = z + rb;
                s = z + rs;
            } else {
                a -= ra;
                b -= rb;
                s -= rs;
            }
        }
        (a - s, b - s)
    }

    /// Distinct symbols in `[a, b)` with their counts, in increasing symbol order.
    pub fn distinct(&self, a: usize, b: usize, out: &mut Vec<(u32, usize)>) {
        if a < b {
            self.distinct_rec(0, a, b, 0, out);
        }
    }

    fn distinct_rec(&self, l: usize, a: usize, b: usize, c: u32, out: &mut Vec<(u32, usize)>) {
        if l == self.levels.len() {
            out.push((c, b - a));
            return;
        }
        let bv = &self.levels[l];
        let z = self.zeros[l];
        let (ra, rb) = bv.rank1_pair(a, b);
        let (za, zb) = (a - ra, b - rb);
        if za < zb {
            self.distinct_rec(l + 1, za, zb, c << 1, out);
        }
        if ra < rb {
            self.distinct_rec(l + 1, z + ra, z + rb, (c << 1) | 1, out);
        }
    }

    pub fn size_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.size_bytes()).sum::<usize>() + self.zeros.len() * 8
    }

    pub(crate) fn write<'a>(&'a self, p: &str, w: &mut SectionWriter<'a>) {
        let mut h = vec![self.n as u64, self.levels.len() as u64];
        h.extend(self.zeros.iter().map(|&z| z as u64));
        w.add_u64s(format!("{p}.h"), &h);
        for (l, bv) in self.levels.iter().enumerate() {
            bv.write(&format!("{p}{l}"), w);
        }
    }

    pub(crate) fn read(p: &str, r: &SectionReader, n: usize, sigma: usize) -> Result<Self> {
        let nl = bits_for(sigma.saturating_sub(1) as u64).max(1);
        let h = r.u64s(&format!("{p}.h"), 2 + nl)?;
        if h[0] as usize != n || h[1] as usize != nl {
            return Err(r.corrupt(format!("{p}: wavelet matrix shape mismatch")));
        }
        let mut levels = Vec::with_capacity(nl);
        let mut zeros = Vec::with_capacity(nl);
        for l in 0..nl {
            let bv = Bv::read(&format!("{p}{l}"), r, n)?;
            let z = h[2 + l] as usize;
            if bv.len() != n || z + bv.rank1(n) != n {
                return Err(r.corrupt(format!("{p}: level {l} zero count mismatch")));
            }
            levels.push(bv);
            zeros.push(z);
        }
        Ok(WaveletMatrix { n, levels, zeros, start: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{PlainBv, RrrBv};

    fn check<Bv: RankBv>(seq: &[u32], sigma: usize) {
        let mut wm = WaveletMatrix::<Bv>::build(seq.to_vec(), sigma, |_, _| Ok(())).unwrap();
        let mut all = vec![0usize; sigma];
        for &c in seq {
            all[c as usize] += 1;
        }
        if seq.len() % 2 == 0 {
            wm.set_counts(&all);
        }
        let mut counts = vec![0usize; sigma];
        for (i, &c) in seq.iter().enumerate() {
            assert_eq!(wm.access_rank(i), (c, counts[c as usize]));
            counts[c as usize] += 1;
        }
        for c in 0..sigma as u32 {
            let a = seq.len() / 3;
            let naive = |p: usize| seq[..p].iter().filter(|&&x| x == c).count();
            assert_eq!(wm.rank_pair(c, a, seq.len()), (naive(a), naive(seq.len())));
        }
        let (a, b) = (seq.len() / 4, seq.len() * 3 / 4);
        let mut out = vec![];
        wm.distinct(a, b, &mut out);
        let mut naive = std::collections::BTreeMap::new();
        for &c in &seq[a..b] {
            *naive.entry(c).or_insert(0usize) += 1;
        }
        assert_eq!(out, naive.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn wm_matches_naive() {
        let mut x = 99u64;
        for &(n, sigma) in &[(1usize, 1usize), (10, 2), (1000, 3), (3000, 97), (2000, 300), (999, 50)] {
            let seq: Vec<u32> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 33) % sigma as u64) as u32
                })
                .collect();
            check::<PlainBv>(&seq, sigma);
            check::<RrrBv>(&seq, sigma);
        }
    }
}
