//! Errors of the distance kernels. The Node binding maps each variant to a
//! stable `QUARRY_*` code (see `SimdError::code`).

/// Everything that can go wrong when calling a kernel through the checked API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdError {
    /// Lengths or `dim` do not agree (vectors of different length, a matrix
    /// length that `dim` does not divide, ...).
    #[error("dimension mismatch: {0}")]
    DimMismatch(String),
    /// The two operands have different element types.
    #[error("dtype mismatch: {0}")]
    DtypeMismatch(String),
    /// Any other argument out of its domain (`k` of 0, a metric that is not
    /// defined for the element type, an empty vector, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl SimdError {
    /// The stable error code the Node binding exposes for this error.
    pub fn code(&self) -> &'static str {
        match self {
            SimdError::DimMismatch(_) => "QUARRY_DIM_MISMATCH",
            SimdError::DtypeMismatch(_) => "QUARRY_DTYPE_MISMATCH",
            SimdError::InvalidArgument(_) => "QUARRY_INVALID_ARGUMENT",
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, SimdError>;
