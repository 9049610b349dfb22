//! Errors of the vector indexes. The Node binding maps each variant to a
//! stable `QUARRY_*` code (see [`AnnError::code`]).

/// Everything that can go wrong when training, building, searching, saving or
/// opening an index.
#[derive(Debug, thiserror::Error)]
pub enum AnnError {
    /// Lengths or `dim` do not agree.
    #[error("dimension mismatch: {0}")]
    DimMismatch(String),
    /// An option out of its domain (`k` of 0, `nprobe` > `nlist`, `m` not
    /// dividing `dim`, too few training vectors, duplicate ids, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Input data that cannot be indexed (NaN or infinite components).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An index file that is truncated, altered or of another format.
    #[error("corrupt index: {0}")]
    CorruptIndex(String),
    /// The operation is not available for this index kind.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The caller cancelled a long operation.
    #[error("aborted")]
    Aborted,
    /// An I/O failure while saving or opening.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl AnnError {
    /// The stable error code the Node binding exposes for this error.
    pub fn code(&self) -> &'static str {
        match self {
            AnnError::DimMismatch(_) => "QUARRY_DIM_MISMATCH",
            AnnError::InvalidArgument(_) => "QUARRY_INVALID_ARGUMENT",
            AnnError::InvalidInput(_) => "QUARRY_INVALID_INPUT",
            AnnError::CorruptIndex(_) => "QUARRY_CORRUPT_INDEX",
            AnnError::Unsupported(_) => "QUARRY_UNSUPPORTED",
            AnnError::Aborted => "QUARRY_ABORTED",
            AnnError::Io(_) => "QUARRY_IO",
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, AnnError>;

/// Shorthand for an [`AnnError::InvalidArgument`].
pub(crate) fn invalid(msg: impl Into<String>) -> AnnError {
    AnnError::InvalidArgument(msg.into())
}
