//! A read-only slice that is either owned (fresh build) or borrowed from a shared memory map.

use std::ops::Deref;
use std::sync::Arc;

use bytemuck::Pod;
use memmap2::Mmap;

pub(crate) struct Buf<T: Pod> {
    ptr: *const T,
    len: usize,
    _owner: Owner<T>,
}

enum Owner<T> {
    Vec(#[allow(dead_code)] Vec<T>),
    Map(#[allow(dead_code)] Arc<Mmap>),
}

// SAFETY: the data behind `ptr` is immutable and kept alive by `_owner`, which is Send + Sync.
unsafe impl<T: Pod + Send> Send for Buf<T> {}
unsafe impl<T: Pod + Sync> Sync for Buf<T> {}

impl<T: Pod> Buf<T> {
    pub(crate) fn owned(v: Vec<T>) -> Self {
        let ptr = v.as_ptr();
        let len = v.len();
        Buf { ptr, len, _owner: Owner::Vec(v) }
    }

    /// Borrow `bytes` (a sub-range of `map`) as `[T]`. Returns `None` if alignment or length do not fit.
    pub(crate) fn mapped(map: &Arc<Mmap>, start: usize, len_bytes: usize) -> Option<Self> {
        let bytes = map.get(start..start.checked_add(len_bytes)?)?;
        let slice: &[T] = bytemuck::try_cast_slice(bytes).ok()?;
        Some(Buf { ptr: slice.as_ptr(), len: slice.len(), _owner: Owner::Map(map.clone()) })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.deref())
    }
}

impl<T: Pod> Deref for Buf<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr/len come from a live Vec or a live, validated, aligned mmap region.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Pod> From<Vec<T>> for Buf<T> {
    fn from(v: Vec<T>) -> Self {
        Buf::owned(v)
    }
}
