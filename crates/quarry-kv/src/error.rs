//! Errors of the KV cache. The Node binding maps each variant to a stable
//! `QUARRY_*` code (see [`KvError::code`]).

/// Everything that can go wrong when configuring, filling, attending over,
/// saving or loading a [`crate::KvCache`].
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Lengths disagree with the configured shape (head counts, `head_dim`,
    /// a keys/values length that is not `kv_heads × tokens × head_dim`).
    #[error("dimension mismatch: {0}")]
    DimMismatch(String),
    /// An option out of its domain (zero layers, a group size that does not
    /// divide `head_dim`, a layer index out of range, an empty cache, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Data that cannot be stored: NaN or ±inf in keys, values or queries,
    /// or a magnitude above [`crate::MAX_ABS`] for methods that store f16
    /// scales.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A saved cache that is truncated, altered or of another format.
    #[error("corrupt index: {0}")]
    CorruptIndex(String),
    /// A bit width (or option) the chosen method does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An I/O failure while saving or loading.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl KvError {
    /// The stable error code the Node binding exposes for this error.
    pub fn code(&self) -> &'static str {
        match self {
            KvError::DimMismatch(_) => "QUARRY_DIM_MISMATCH",
            KvError::InvalidArgument(_) => "QUARRY_INVALID_ARGUMENT",
            KvError::InvalidInput(_) => "QUARRY_INVALID_INPUT",
            KvError::CorruptIndex(_) => "QUARRY_CORRUPT_INDEX",
            KvError::Unsupported(_) => "QUARRY_UNSUPPORTED",
            KvError::Io(_) => "QUARRY_IO",
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, KvError>;

pub(crate) fn invalid(msg: impl Into<String>) -> KvError {
    KvError::InvalidArgument(msg.into())
}

pub(crate) fn dim(msg: impl Into<String>) -> KvError {
    KvError::DimMismatch(msg.into())
}

pub(crate) fn unsupported(msg: impl Into<String>) -> KvError {
    KvError::Unsupported(msg.into())
}
