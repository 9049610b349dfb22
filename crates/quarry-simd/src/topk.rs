//! Bounded top-k selection: keeps the `k` best (smallest key) candidates seen.
//!
//! Keys are "smaller is nearer"; callers negate similarities. NaN keys rank
//! after every number; ties are broken by the smaller id, so results are
//! deterministic whatever order candidates arrive in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: f32,
    id: u32,
}

impl Entry {
    fn cmp_key(&self, other: &Self) -> Ordering {
        // NaN is the worst key of all.
        match (self.key.is_nan(), other.key.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => self.key.partial_cmp(&other.key).unwrap(),
        }
        .then(self.id.cmp(&other.id))
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_key(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_key(other)
    }
}

/// A max-heap of the `k` smallest keys seen so far.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    /// An empty selector for `k` results.
    pub fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    /// Offers one candidate.
    #[inline]
    pub fn push(&mut self, key: f32, id: u32) {
        let e = Entry { key, id };
        if self.heap.len() < self.k {
            self.heap.push(e);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if e < *worst {
                *worst = e;
            }
        }
    }

    /// The current k-th best key (worst kept), or +inf while fewer than `k`
    /// are held: a candidate with a larger key cannot enter.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k { f32::INFINITY } else { self.heap.peek().map_or(f32::INFINITY, |e| e.key) }
    }

    /// The kept candidates, best first, as (key, id).
    pub fn into_sorted(self) -> Vec<(f32, u32)> {
        self.heap.into_sorted_vec().into_iter().map(|e| (e.key, e.id)).collect()
    }
}
