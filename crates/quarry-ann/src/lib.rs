//! # quarry-ann
//!
//! Vector indexes over `f32` vectors: k-means training, product quantization
//! (8- and 4-bit, with OPQ rotation), SQ8, binary codes, IVF-Flat and IVF-PQ
//! (4-bit codes scanned with SIMD byte shuffles, "fast-scan"), filtered search,
//! add/remove, and a versioned single-file format that opens by mmap.

pub mod control;
pub mod error;
pub mod format;
pub mod index;
pub mod storage;
pub mod vector_index;

pub use control::Control;
pub use error::{AnnError, Result};
pub use index::{Closure, Filter, IndexConfig, Kind, SearchParams, SearchResult, NO_ID};
pub use vector_index::VectorIndex;

/// Distance an index ranks by. Cosine indexes normalise vectors once at add
/// time and rank by inner product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance (smaller is nearer).
    L2,
    /// Inner product (larger is nearer).
    InnerProduct,
    /// Cosine similarity (larger is nearer); vectors are normalised.
    Cosine,
}

impl Metric {
    /// Short name (`l2`, `ip`, `cosine`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::InnerProduct => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// True when larger scores are nearer (inner product, cosine).
    pub fn is_similarity(self) -> bool {
        !matches!(self, Metric::L2)
    }
}

/// Rejects NaN and infinite components, naming the first offending vector.
pub fn check_finite(vectors: &[f32], dim: usize) -> Result<()> {
    if dim == 0 || !vectors.len().is_multiple_of(dim) {
        return Err(AnnError::DimMismatch(format!("{} values do not divide into vectors of dim {dim}", vectors.len())));
    }
    match vectors.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(AnnError::InvalidInput(format!("vector {} has a NaN or infinite component at {}", i / dim, i % dim))),
    }
}

// codecs
pub mod binary;
pub mod coarse;
pub mod kmeans;
pub mod muvera;
pub mod opq;
pub mod reservoir;
pub mod pq;
pub mod sq8;
pub mod fastscan; // fast-scan
