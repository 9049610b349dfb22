//! [`VectorIndex`]: an [`IndexData`] behind a read-write lock, so searches
//! run concurrently from many threads while `add`/`remove` take turns.

use std::path::Path;
use std::sync::RwLock;

use crate::error::Result;
use crate::format;
use crate::index::{IndexConfig, IndexData, SearchParams, SearchResult};
use crate::Control;

/// A thread-safe vector index (see [`crate::index`] for the structure).
#[derive(Debug)]
pub struct VectorIndex {
    inner: RwLock<IndexData>,
}

impl VectorIndex {
    /// Trains the quantizers on `vectors` and adds them (with optional user
    /// ids and labels). Progress stages: the training steps, then `add`.
    pub fn build(config: IndexConfig, vectors: &[f32], ids: Option<&[u64]>, labels: Option<&[u32]>, ctl: Control) -> Result<Self> {
        // Normalised (and rotated) once, for training and adding both.
        let (mut data, prepared) = IndexData::train_prepared(config, vectors, ctl)?;
        data.add_prepared(prepared, ids, labels, ctl)?;
        Ok(VectorIndex::from_data(data))
    }

    /// Wraps index contents.
    pub fn from_data(data: IndexData) -> Self {
        VectorIndex { inner: RwLock::new(data) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, IndexData> {
        // A panic while holding the lock cannot leave the data half-updated
        // (add validates before mutating), so a poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IndexData> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Batch search (see [`IndexData::search`]).
    pub fn search(&self, queries: &[f32], params: &SearchParams) -> Result<SearchResult> {
        self.read().search(queries, params)
    }

    /// Adds vectors (see [`IndexData::add`]).
    pub fn add(&self, vectors: &[f32], ids: Option<&[u64]>, labels: Option<&[u32]>) -> Result<()> {
        self.write().add(vectors, ids, labels, Control::none())
    }

    /// Removes vectors by id; returns how many were present.
    pub fn remove(&self, ids: &[u64]) -> usize {
        self.write().remove(ids)
    }

    /// Live vectors.
    pub fn size(&self) -> usize {
        self.read().size()
    }

    /// (heap bytes, mapped bytes).
    pub fn bytes(&self) -> (usize, usize) {
        self.read().bytes()
    }

    /// The build configuration.
    pub fn config(&self) -> IndexConfig {
        self.read().config.clone()
    }

    /// Runs `f` on the contents under the read lock (inspection, tests).
    pub fn with_data<R>(&self, f: impl FnOnce(&IndexData) -> R) -> R {
        f(&self.read())
    }

    /// Saves atomically, compacting removed vectors (see [`format`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        format::save(&self.read(), path)
    }

    /// Opens a saved index; with `mmap` its lists stay in the mapped file.
    pub fn open(path: &Path, mmap: bool) -> Result<Self> {
        Ok(VectorIndex::from_data(format::open(path, mmap)?))
    }
}
