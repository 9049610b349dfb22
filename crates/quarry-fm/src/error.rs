//! Error type of the crate.

use std::path::PathBuf;

/// Errors returned by `quarry-fm`. Every variant maps to a stable code string via [`FmError::code`].
#[derive(Debug, thiserror::Error)]
pub enum FmError {
    /// An index file (or the manifest) is truncated, altered, or otherwise inconsistent.
    #[error("corrupt index {path}: {reason}")]
    CorruptIndex { path: PathBuf, reason: String },
    /// The caller passed an argument that cannot be used (empty pattern, doc id out of range, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation needs a mode the index was not built in (e.g. a tokenizer for byte indexes).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Reading the input corpus failed (bad JSONL line, missing `text` field, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tokenizer could not be loaded or failed on a document.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// An I/O error, with the path it concerns.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The build was cancelled through the cancellation flag.
    #[error("aborted")]
    Aborted,
    /// The input is larger than this build supports.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Suffix array construction failed inside libsais.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FmError {
    /// Stable error code string, used by the Node binding as `QuarryError.code`.
    pub fn code(&self) -> &'static str {
        match self {
            FmError::CorruptIndex { .. } => "QUARRY_CORRUPT_INDEX",
            FmError::InvalidArgument(_) => "QUARRY_INVALID_ARGUMENT",
            FmError::Unsupported(_) => "QUARRY_UNSUPPORTED",
            FmError::InvalidInput(_) => "QUARRY_INVALID_INPUT",
            FmError::Tokenizer(_) => "QUARRY_TOKENIZER",
            FmError::Io { .. } => "QUARRY_IO",
            FmError::Aborted => "QUARRY_ABORTED",
            FmError::TooLarge(_) => "QUARRY_TOO_LARGE",
            FmError::Internal(_) => "QUARRY_INTERNAL",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FmError::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        FmError::CorruptIndex { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn arg(msg: impl Into<String>) -> Self {
        FmError::InvalidArgument(msg.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = FmError> = std::result::Result<T, E>;
