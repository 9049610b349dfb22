//! Selection of the `k` smallest candidates for list scans.
//!
//! A heap pays a sift on nearly every accepted candidate and moves its
//! threshold each time (the fast-scan pruner then re-quantizes it). When a
//! scan keeps many candidates (re-ranking depths of 50-200), that cost rivals
//! the scan itself. A reservoir appends candidates to a buffer of `2k` and,
//! when it fills, keeps the best `k` by one selection; the `k`-th key becomes
//! the threshold. Amortised O(1) per candidate, and the threshold changes
//! only at compactions. The result equals a heap's: the `k` smallest by key,
//! ties by the smaller position.

/// The `k` smallest `(key, position)` pairs seen (NaN keys rank last).
#[derive(Debug, Clone)]
pub struct Reservoir {
    k: usize,
    /// Candidates as [`encode`]d words: selection compares plain integers.
    buf: Vec<u64>,
    threshold: f32,
}

/// `(key, pos)` as one integer whose order is the candidates' order: the
/// key's IEEE total order in the high half (NaN mapped above +inf), the
/// position in the low half for ties.
#[inline]
pub(crate) fn encode(key: f32, pos: u32) -> u64 {
    let b = key.to_bits();
    let ord = if key.is_nan() {
        u32::MAX
    } else if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    };
    (ord as u64) << 32 | pos as u64
}

/// Inverse of [`encode`] (a NaN key comes back as `f32::NAN`).
#[inline]
pub(crate) fn decode(e: u64) -> (f32, u32) {
    let ord = (e >> 32) as u32;
    let key = if ord == u32::MAX {
        f32::NAN
    } else if ord >> 31 == 1 {
        f32::from_bits(ord & 0x7fff_ffff)
    } else {
        f32::from_bits(!ord)
    };
    (key, e as u32)
}

impl Reservoir {
    pub fn new(k: usize) -> Reservoir {
        Reservoir { k, buf: Vec::with_capacity(2 * k.min(1 << 16)), threshold: if k == 0 { f32::NEG_INFINITY } else { f32::INFINITY } }
    }

    /// A candidate with a key above this cannot enter (`quarry_simd::topk::may_enter`).
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    #[inline]
    pub fn push(&mut self, key: f32, pos: u32) {
        if self.k == 0 {
            return;
        }
        self.buf.push(encode(key, pos));
        if self.buf.len() >= 2 * self.k {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let k = self.k;
        self.buf.select_nth_unstable(k - 1);
        self.buf.truncate(k);
        let worst = decode(self.buf[k - 1]).0;
        self.threshold = if worst.is_nan() { f32::INFINITY } else { worst };
    }

    /// The kept candidates in no particular order (the same set as
    /// [`Reservoir::into_sorted`], without paying for the sort).
    pub fn into_unordered(mut self) -> Vec<(f32, u32)> {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable(self.k - 1);
            self.buf.truncate(self.k);
        }
        self.buf.into_iter().map(decode).collect()
    }

    /// The kept candidates, best first.
    pub fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.buf.sort_unstable();
        self.buf.truncate(self.k);
        self.buf.into_iter().map(decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_simd::topk::{TopK, may_enter};

    #[test]
    fn equals_a_heap_on_random_and_tied_streams() {
        let mut s = 7u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        for (k, n, levels) in [(1, 50, 1000), (10, 1000, 1_000_000), (80, 5000, 50), (80, 100, 7), (200, 10_000, 1 << 20), (5, 3, 10)] {
            let mut heap = TopK::new(k);
            let mut res = Reservoir::new(k);
            for pos in 0..n {
                let key = (next() % levels) as f32 * 0.25 - 3.0;
                // Both see the stream through their own threshold, as a scan does.
                if may_enter(key, heap.threshold()) {
                    heap.push(key, pos);
                }
                if may_enter(key, res.threshold()) {
                    res.push(key, pos);
                }
                assert!(res.threshold() >= heap.threshold(), "the reservoir never prunes what the heap keeps");
            }
            assert_eq!(res.into_sorted(), heap.into_sorted(), "k {k} n {n}");
        }
    }

    #[test]
    fn encoding_orders_like_total_cmp_with_nan_last() {
        let keys = [f32::NEG_INFINITY, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, f32::MAX, f32::INFINITY, f32::NAN, -f32::NAN];
        for (i, &a) in keys.iter().enumerate() {
            for (j, &b) in keys.iter().enumerate() {
                let want = if a.is_nan() || b.is_nan() { a.is_nan().cmp(&b.is_nan()) } else { a.total_cmp(&b) };
                assert_eq!(encode(a, 7).cmp(&encode(b, 7)), want, "{a} vs {b}");
                assert_eq!(encode(a, i as u32).cmp(&encode(a, j as u32)), i.cmp(&j), "ties by position");
            }
            let (k, p) = decode(encode(a, 9));
            assert!(p == 9 && (k.to_bits() == a.to_bits() || (a.is_nan() && k.is_nan())));
        }
    }

    #[test]
    fn nan_keys_rank_last_and_k_zero_keeps_nothing() {
        let mut r = Reservoir::new(2);
        for (i, key) in [f32::NAN, 1.0, f32::NAN, 0.5, 2.0].into_iter().enumerate() {
            r.push(key, i as u32);
        }
        assert_eq!(r.into_sorted(), vec![(0.5, 3), (1.0, 1)]);
        let mut z = Reservoir::new(0);
        z.push(1.0, 0);
        assert!(z.into_sorted().is_empty());
        assert_eq!(Reservoir::new(0).threshold(), f32::NEG_INFINITY);
    }
}
