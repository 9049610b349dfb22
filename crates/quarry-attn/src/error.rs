//! Errors with stable codes (the Node binding maps [`AttnError::code`] to
//! `QuarryError.code`).

/// Everything that can go wrong in this crate. Bad input is reported, never a
/// panic.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum AttnError {
    /// A buffer's length does not match the shape it was given with.
    #[error("dimension mismatch: {0}")]
    DimMismatch(String),
    /// An argument is out of its domain (zero heads, heads not divisible by
    /// kv heads, causal with more queries than keys, bad block size, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Reading or parsing a dump failed.
    #[error("io: {0}")]
    Io(String),
}

impl AttnError {
    /// Stable error code string.
    pub fn code(&self) -> &'static str {
        match self {
            AttnError::DimMismatch(_) => "QUARRY_DIM_MISMATCH",
            AttnError::InvalidArgument(_) => "QUARRY_INVALID_ARGUMENT",
            AttnError::Io(_) => "QUARRY_IO",
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, AttnError>;

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(AttnError::InvalidArgument(msg.into()))
}

pub(crate) fn mismatch<T>(msg: impl Into<String>) -> Result<T> {
    Err(AttnError::DimMismatch(msg.into()))
}
