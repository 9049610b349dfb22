//! Bounded top-k selection: keeps the `k` best (smallest key) candidates seen.
//!
//! Keys are "smaller is nearer"; callers negate similarities. NaN keys rank
//! after every number; ties are broken by the smaller id, so results are
//! deterministic whatever order candidates arrive in. `-0.0` and `+0.0` are
//! the same key (a tie).
//!
//! Each candidate is encoded as one `u64` whose unsigned order is exactly that
//! ranking (high half: the key mapped to an order-preserving integer, NaN
//! largest; low half: the id), held in a flat binary max-heap. The k-th best
//! key is cached as a plain `f32` ([`TopK::threshold`]) so hot loops can reject
//! almost every candidate with one float comparison before touching the heap.

/// Maps a key to a `u32` whose unsigned order is the ranking order: every NaN
/// maps to `u32::MAX` (worst), `-0.0` to the same value as `+0.0`.
#[inline]
fn key_order(key: f32) -> u32 {
    if key.is_nan() {
        return u32::MAX;
    }
    // `-0.0 + 0.0 == +0.0`: zeros of both signs are one key.
    let b = (key + 0.0).to_bits();
    if b & 0x8000_0000 != 0 { !b } else { b | 0x8000_0000 }
}

/// Inverse of [`key_order`] (NaN comes back as the canonical NaN).
#[inline]
fn order_key(o: u32) -> f32 {
    if o == u32::MAX {
        f32::NAN
    } else if o & 0x8000_0000 != 0 {
        f32::from_bits(o & 0x7fff_ffff)
    } else {
        f32::from_bits(!o)
    }
}

#[inline]
fn encode(key: f32, id: u32) -> u64 {
    ((key_order(key) as u64) << 32) | id as u64
}

#[inline]
fn decode(e: u64) -> (f32, u32) {
    (order_key((e >> 32) as u32), e as u32)
}

/// Whether a candidate with `key` may enter a selection whose
/// [`TopK::threshold`] is `threshold`: `!(key > threshold)`, true for NaN
/// keys and NaN thresholds too (the heap then decides). A `false` is final.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must pass: not `key <= threshold`
pub fn may_enter(key: f32, threshold: f32) -> bool {
    !(key > threshold)
}

/// Whether `key` is no worse than a caller's `limit` (a key the k-th result
/// is known to reach): `+inf` admits everything, NaN keys included; a finite
/// limit admits numbers up to it (NaN ranks after every number).
#[inline(always)]
pub fn within(key: f32, limit: f32) -> bool {
    key <= limit || limit == f32::INFINITY
}

/// A max-heap of the `k` smallest keys seen so far.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    /// Binary max-heap of encoded candidates (`heap[0]` is the worst kept).
    heap: Vec<u64>,
    /// `threshold()`: +inf until `k` are held, then the worst kept key.
    thr: f32,
}

impl TopK {
    /// An empty selector for `k` results.
    pub fn new(k: usize) -> Self {
        // Capacity grows on demand: a selection over a small slice of a large
        // base (a lane) never holds more than that slice.
        TopK { k, heap: Vec::with_capacity(k.min(64)), thr: if k == 0 { f32::NEG_INFINITY } else { f32::INFINITY } }
    }

    /// Number of candidates held (at most `k`).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Offers one candidate.
    #[inline]
    pub fn push(&mut self, key: f32, id: u32) {
        self.push_encoded(encode(key, id));
    }

    /// Offers `keys[j]` with id `id0 + j` for every `j` that is
    /// [`within`] `limit` (`+inf`: every one; the same selection as pushing
    /// each): with `k = 1` only the row's best can stay, so it is found
    /// branch-free and offered alone; otherwise the candidates passing the
    /// current threshold are marked first (branch-free) and only those
    /// offered, each re-checked as the threshold tightens. At most 64 keys.
    #[inline]
    pub fn push_row(&mut self, keys: &[f32], id0: u32, limit: f32) {
        debug_assert!(keys.len() <= 64);
        if self.k == 1 {
            // The smallest number (zeros of both signs tie), first on ties;
            // NaN only when every key is NaN (NaN ranks last).
            let min = keys.iter().fold(f32::INFINITY, |m, &x| m.min(x));
            let best = keys.iter().position(|&x| x == min).or_else(|| keys.iter().position(|x| x.is_nan()));
            if let Some(j) = best
                && within(keys[j], limit)
            {
                self.push(keys[j], id0 + j as u32);
            }
            return;
        }
        let t0 = self.thr;
        let mut pass = 0u64;
        for (j, &x) in keys.iter().enumerate() {
            pass |= ((may_enter(x, t0) & within(x, limit)) as u64) << j;
        }
        while pass != 0 {
            let j = pass.trailing_zeros() as usize;
            pass &= pass - 1;
            if may_enter(keys[j], self.thr) {
                self.push(keys[j], id0 + j as u32);
            }
        }
    }

    #[inline]
    fn push_encoded(&mut self, e: u64) {
        let n = self.heap.len();
        if n < self.k {
            self.heap.push(e);
            self.sift_up(n);
            if n + 1 == self.k {
                self.thr = decode(self.heap[0]).0;
            }
        } else if n > 0 && e < self.heap[0] {
            self.heap[0] = e;
            self.sift_down();
            self.thr = decode(self.heap[0]).0;
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        let h = &mut self.heap;
        let e = h[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if h[parent] >= e {
                break;
            }
            h[i] = h[parent];
            i = parent;
        }
        h[i] = e;
    }

    fn sift_down(&mut self) {
        let h = &mut self.heap;
        let n = h.len();
        let e = h[0];
        let mut i = 0;
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let c = if r < n && h[r] > h[l] { r } else { l };
            if h[c] <= e {
                break;
            }
            h[i] = h[c];
            i = c;
        }
        h[i] = e;
    }

    /// The current k-th best key (worst kept), or +inf while fewer than `k`
    /// are held: a candidate with a larger key cannot enter (see
    /// [`may_enter`]; NaN keys and NaN thresholds must still be offered to
    /// [`TopK::push`], which decides).
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.thr
    }

    /// Offers every candidate `other` holds (merging two partial selections
    /// over disjoint candidate sets gives the selection over their union).
    pub fn absorb(&mut self, other: &TopK) {
        for &e in &other.heap {
            self.push_encoded(e);
        }
    }

    /// The kept candidates, best first, as (key, id).
    pub fn into_sorted(self) -> Vec<(f32, u32)> {
        let mut h = self.heap;
        h.sort_unstable();
        h.into_iter().map(decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_roundtrip_and_monotone() {
        let keys = [
            f32::NEG_INFINITY,
            -3.4e38,
            -1.0,
            -1e-40,
            -0.0,
            0.0,
            1e-45,
            1e-40,
            1.0,
            3.4e38,
            f32::INFINITY,
            f32::NAN,
        ];
        for w in keys.windows(2) {
            assert!(key_order(w[0]) <= key_order(w[1]), "{} !<= {}", w[0], w[1]);
        }
        assert_eq!(key_order(-0.0), key_order(0.0));
        assert_eq!(key_order(f32::NAN), key_order(-f32::NAN));
        for &k in &keys {
            let back = order_key(key_order(k));
            assert!(back == k || (back.is_nan() && k.is_nan()), "{k} -> {back}");
        }
    }

    #[test]
    fn push_row_selects_as_pushing_each() {
        let rows: [&[f32]; 7] = [
            &[3.0, 1.0, 2.0, 1.0],
            &[f32::NAN, f32::NAN],
            &[f32::NAN, f32::INFINITY, 5.0, f32::NAN],
            &[0.0, -0.0, -0.0, 0.0],
            &[-1.0, f32::NEG_INFINITY, f32::NAN, 7.0, f32::NEG_INFINITY],
            &[],
            &[9.0; 64],
        ];
        // Random rows too (small integers: many ties).
        let mut state = 7u64;
        let random: Vec<Vec<f32>> = (0..200)
            .map(|_| {
                (0..16)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        let v = (state >> 59) as f32 - 8.0;
                        if v == 7.0 { f32::NAN } else { v }
                    })
                    .collect()
            })
            .collect();
        for k in [1, 2, 3, 10] {
            let (mut by_row, mut each) = (TopK::new(k), TopK::new(k));
            let mut id0 = 0u32;
            for row in rows.iter().copied().chain(random.iter().map(Vec::as_slice)) {
                by_row.push_row(row, id0, f32::INFINITY);
                for (j, &x) in row.iter().enumerate() {
                    each.push(x, id0 + j as u32);
                }
                assert_eq!(by_row.threshold().to_bits(), each.threshold().to_bits(), "k {k}");
                id0 += 64;
            }
            let (a, b) = (by_row.into_sorted(), each.into_sorted());
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((x.0.to_bits(), x.1), (y.0.to_bits(), y.1), "k {k}");
            }
        }
    }

    #[test]
    fn keeps_k_best_with_ties_and_nan() {
        let mut t = TopK::new(3);
        assert_eq!(t.threshold(), f32::INFINITY);
        t.push(f32::NAN, 0);
        t.push(2.0, 5);
        t.push(2.0, 1);
        assert!(t.threshold().is_nan());
        t.push(2.0, 3);
        assert_eq!(t.threshold(), 2.0);
        t.push(-0.0, 9);
        t.push(0.0, 8);
        let s = t.into_sorted();
        assert_eq!(s.iter().map(|e| e.1).collect::<Vec<_>>(), vec![8, 9, 1]);
    }

    #[test]
    fn absorb_merges() {
        let mut a = TopK::new(2);
        let mut b = TopK::new(2);
        a.push(1.0, 0);
        a.push(3.0, 1);
        b.push(2.0, 2);
        b.push(0.5, 3);
        a.absorb(&b);
        assert_eq!(a.into_sorted(), vec![(0.5, 3), (1.0, 0)]);
    }
}
