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

use std::cmp::Ordering;

/// The `k` smallest `(key, position)` pairs seen (NaN keys rank last).
#[derive(Debug, Clone)]
pub struct Reservoir {
    k: usize,
    buf: Vec<(f32, u32)>,
    threshold: f32,
}

#[inline]
fn order(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    let key = |x: f32| if x.is_nan() { f32::INFINITY } else { x };
    key(a.0).total_cmp(&key(b.0)).then_with(|| a.0.is_nan().cmp(&b.0.is_nan())).then(a.1.cmp(&b.1))
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
        self.buf.push((key, pos));
        if self.buf.len() >= 2 * self.k {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let k = self.k;
        self.buf.select_nth_unstable_by(k - 1, order);
        self.buf.truncate(k);
        let worst = self.buf[k - 1].0;
        self.threshold = if worst.is_nan() { f32::INFINITY } else { worst };
    }

    /// The kept candidates in no particular order (the same set as
    /// [`Reservoir::into_sorted`], without paying for the sort).
    pub fn into_unordered(mut self) -> Vec<(f32, u32)> {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by(self.k - 1, order);
            self.buf.truncate(self.k);
        }
        self.buf
    }

    /// The kept candidates, best first.
    pub fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.buf.sort_unstable_by(order);
        self.buf.truncate(self.k);
        self.buf
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
