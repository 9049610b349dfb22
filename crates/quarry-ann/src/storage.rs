//! Storage that is either owned or a range of a memory-mapped index file, and a growable bitset (tombstones, filters).

use std::ops::{Deref, Range};
use std::sync::Arc;

use memmap2::Mmap;

/// Values owned by the index, or borrowed from a mapped file. Mutation turns
/// mapped values into owned ones (copy on first write), so an index opened
/// with `mmap` can still take `add`. Mapped ranges are checked for length and
/// alignment when the file is opened ([`Slab::mapped`]).
pub enum Slab<T: bytemuck::Pod> {
    Owned(Vec<T>),
    Mapped { map: Arc<Mmap>, range: Range<usize> },
}

impl<T: bytemuck::Pod> Clone for Slab<T> {
    fn clone(&self) -> Self {
        match self {
            Slab::Owned(v) => Slab::Owned(v.clone()),
            Slab::Mapped { map, range } => Slab::Mapped { map: map.clone(), range: range.clone() },
        }
    }
}

impl<T: bytemuck::Pod> Default for Slab<T> {
    fn default() -> Self {
        Slab::Owned(Vec::new())
    }
}

impl<T: bytemuck::Pod> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "Slab({kind}, {} values)", self.len())
    }
}

impl<T: bytemuck::Pod> Deref for Slab<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Slab::Owned(v) => v,
            // Length and alignment were checked in `Slab::mapped`.
            Slab::Mapped { map, range } => bytemuck::cast_slice(&map[range.clone()]),
        }
    }
}

impl<T: bytemuck::Pod> From<Vec<T>> for Slab<T> {
    fn from(v: Vec<T>) -> Self {
        Slab::Owned(v)
    }
}

impl<T: bytemuck::Pod> Slab<T> {
    /// A view of `range` of `map`, or `None` when the range is out of bounds,
    /// not a whole number of `T`s, or misaligned for `T`.
    pub fn mapped(map: &Arc<Mmap>, range: Range<usize>) -> Option<Self> {
        let bytes = map.get(range.clone())?;
        bytemuck::try_cast_slice::<u8, T>(bytes).ok()?;
        Some(Slab::Mapped { map: map.clone(), range })
    }

    /// True when the values live in a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Slab::Mapped { .. })
    }

    /// Bytes held on the heap (0 for mapped values).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Slab::Owned(v) => v.capacity() * size_of::<T>(),
            Slab::Mapped { .. } => 0,
        }
    }

    /// Owned, growable access; copies mapped values once.
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Slab::Mapped { .. } = self {
            *self = Slab::Owned(self.deref().to_vec());
        }
        match self {
            Slab::Owned(v) => v,
            Slab::Mapped { .. } => unreachable!("converted to owned above"),
        }
    }
}

/// A growable set of positions, one bit each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    ones: usize,
}

impl Bitset {
    /// A set able to hold positions `0..n`, all clear.
    pub fn with_len(n: usize) -> Self {
        Bitset { words: vec![0; n.div_ceil(64)], ones: 0 }
    }

    /// Whether `i` is set (positions past the end are clear).
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// Sets `i`, growing as needed; returns whether it was newly set.
    pub fn insert(&mut self, i: usize) -> bool {
        if i / 64 >= self.words.len() {
            self.words.resize(i / 64 + 1, 0);
        }
        let w = &mut self.words[i / 64];
        let bit = 1u64 << (i % 64);
        let new = *w & bit == 0;
        *w |= bit;
        self.ones += new as usize;
        new
    }

    /// Number of set positions.
    pub fn count(&self) -> usize {
        self.ones
    }

    /// Set positions in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }

    /// The raw words (persistence).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Rebuilds a set from raw words.
    pub fn from_words(words: Vec<u64>) -> Self {
        let ones = words.iter().map(|w| w.count_ones() as usize).sum();
        Bitset { words, ones }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_insert_contains_iter() {
        let mut b = Bitset::with_len(10);
        assert!(b.insert(3));
        assert!(!b.insert(3));
        assert!(b.insert(200));
        assert!(b.contains(3) && b.contains(200) && !b.contains(4) && !b.contains(10_000));
        assert_eq!(b.count(), 2);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![3, 200]);
        assert_eq!(Bitset::from_words(b.words().to_vec()), b);
    }

    #[test]
    fn slab_copy_on_write() {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytemuck::cast_slice(&[1u32, 2, 3, 4])).unwrap();
        let map = Arc::new(unsafe { Mmap::map(&f).unwrap() });
        let mut s = Slab::<u32>::mapped(&map, 4..12).unwrap();
        assert!(s.is_mapped());
        assert_eq!(&s[..], &[2, 3]);
        s.to_mut().push(9);
        assert!(!s.is_mapped());
        assert_eq!(&s[..], &[2, 3, 9]);
        assert!(Slab::<u32>::mapped(&map, 2..6).is_none(), "misaligned");
        assert!(Slab::<u32>::mapped(&map, 0..7).is_none(), "partial value");
        assert!(Slab::<u32>::mapped(&map, 8..20).is_none(), "out of bounds");
    }
}
