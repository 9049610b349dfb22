//! The suffix array's buffer during a build, and faulting its pages in while the text is read.
//!
//! The first write to each page of the 32-bit suffix array (4 bytes per text symbol) costs a
//! page fault and the zeroing of the page, in the middle of the suffix sort: ~0.15 s per 100 MB
//! of text on the 2-core benchmark VM, more where the hypervisor backs fresh guest memory
//! lazily. A byte-mode build knows the array's size only once its shard's text is read, and
//! reading (JSON parsing) runs on one thread, so [`SaPrefault`] reserves an address range for the
//! largest array a shard can need and a helper thread faults its pages in on another core, never
//! beyond what the text read so far requires. Peak memory is unchanged: the array is needed
//! anyway, and its pages are only resident once the text that needs them is.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use memmap2::MmapMut;

/// A zeroed `i32` array: a heap vector, or the first `len` entries of an anonymous mapping.
pub(crate) enum SaBuf {
    Heap(Vec<i32>),
    Map { map: MmapMut, len: usize },
}

impl Deref for SaBuf {
    type Target = [i32];
    fn deref(&self) -> &[i32] {
        match self {
            SaBuf::Heap(v) => v,
            // the mapping is page-aligned and holds at least len * 4 bytes (checked in `finish`)
            SaBuf::Map { map, len } => &bytemuck::cast_slice(&map[..])[..*len],
        }
    }
}

impl DerefMut for SaBuf {
    fn deref_mut(&mut self) -> &mut [i32] {
        match self {
            SaBuf::Heap(v) => v,
            SaBuf::Map { map, len } => &mut bytemuck::cast_slice_mut(&mut map[..])[..*len],
        }
    }
}

/// Bytes the helper faults in between checks for new work or a stop.
const STEP: usize = 1 << 20;
/// Distance between the writes that fault pages in (the smallest page size of the targets).
const PAGE: usize = 4096;

struct Shared {
    /// Bytes of the mapping that may be faulted in (the array's size for the text read so far).
    target: AtomicUsize,
    stop: AtomicBool,
}

/// A reserved suffix-array mapping whose pages a helper thread faults in up to
/// [`grow_to`](Self::grow_to), until [`finish`](Self::finish) or drop.
pub(crate) struct SaPrefault {
    map: Option<MmapMut>,
    shared: Arc<Shared>,
    helper: Option<JoinHandle<()>>,
}

impl SaPrefault {
    /// Reserve room for up to `max_len` entries and start the helper. `None` where that cannot be
    /// had (the build then allocates the array when the sort starts) and off Linux, where the
    /// reservation might be charged in full.
    pub(crate) fn start(max_len: usize) -> Option<SaPrefault> {
        if !cfg!(target_os = "linux") || max_len == 0 {
            return None;
        }
        let cap = max_len.checked_mul(4)?;
        // SAFETY: a private anonymous mapping aliases nothing.
        let mut map = memmap2::MmapOptions::new().len(cap).no_reserve_swap().map_anon().ok()?;
        let shared = Arc::new(Shared { target: AtomicUsize::new(0), stop: AtomicBool::new(false) });
        let base = map.as_mut_ptr() as usize;
        let sh = shared.clone();
        let helper = std::thread::Builder::new()
            .name("quarry-sa-prefault".into())
            .spawn(move || {
                let mut done = 0usize;
                while !sh.stop.load(Ordering::Acquire) {
                    let target = sh.target.load(Ordering::Acquire).min(cap);
                    if done >= target {
                        std::thread::park_timeout(Duration::from_millis(1));
                        continue;
                    }
                    let end = target.min(done + STEP);
                    while done < end {
                        // SAFETY: done < cap; nobody else touches the mapping until the helper is
                        // joined (`finish`, drop), and the mapping outlives the helper.
                        unsafe { std::ptr::write_volatile((base + done) as *mut u8, 0) };
                        done += PAGE;
                    }
                }
            })
            .ok()?;
        Some(SaPrefault { map: Some(map), shared, helper: Some(helper) })
    }

    /// The array will have at least `len` entries: its pages up to there may be faulted in.
    pub(crate) fn grow_to(&self, len: usize) {
        self.shared.target.store(len.saturating_mul(4), Ordering::Release);
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(h) = self.helper.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }

    /// Stop the helper and hand over the array of `len` entries (zeroed; pages the helper did not
    /// reach are faulted in on first use). `None` when `len` exceeds the reservation.
    pub(crate) fn finish(mut self, len: usize) -> Option<SaBuf> {
        self.stop();
        let map = self.map.take()?;
        (len.checked_mul(4)? <= map.len()).then_some(SaBuf::Map { map, len })
    }
}

impl Drop for SaPrefault {
    fn drop(&mut self) {
        // join before the mapping is unmapped (fields drop after this)
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefaulted_buffer_is_zeroed_and_sized() {
        let p = SaPrefault::start(1 << 20);
        if !cfg!(target_os = "linux") {
            assert!(p.is_none());
            return;
        }
        let p = p.expect("the reservation works on Linux");
        p.grow_to(300_000);
        std::thread::sleep(Duration::from_millis(20));
        p.grow_to(700_001);
        let mut b = p.finish(700_001).unwrap();
        assert_eq!(b.len(), 700_001);
        assert!(b.iter().all(|&x| x == 0));
        b[700_000] = 7;
        assert_eq!(b[700_000], 7);
    }

    #[test]
    fn too_long_or_dropped() {
        if let Some(p) = SaPrefault::start(1000) {
            p.grow_to(5000); // beyond the reservation: the helper stops at its end
            assert!(p.finish(1001).is_none());
        }
        if let Some(p) = SaPrefault::start(1000) {
            p.grow_to(1000);
            drop(p); // joins the helper before unmapping
        }
        assert!(SaPrefault::start(0).is_none());
    }
}
