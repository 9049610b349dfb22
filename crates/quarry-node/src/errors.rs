//! Mapping of core-crate errors to JS errors with a stable `code`.
//!
//! Sync calls throw an `Error` whose `code` is the `QUARRY_*` string. Async
//! tasks can only reject with napi's fixed statuses, so the code also leads
//! the message as `[QUARRY_*] ...`; the TypeScript facade reads either and
//! throws the matching `QuarryError` subclass.

/// The error type every binding function returns.
pub type NodeError = napi::Error<&'static str>;
/// Result alias for binding functions.
pub type Result<T> = std::result::Result<T, NodeError>;

/// Builds a JS error with `code` and a `[code] message` message.
pub fn node_error(code: &'static str, message: impl std::fmt::Display) -> NodeError {
    napi::Error::new(code, format!("[{code}] {message}"))
}

/// Converts a coded error into the plain-status error async tasks must use.
pub fn to_task_error(e: NodeError) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, e.reason.clone())
}

/// `QUARRY_INVALID_ARGUMENT` shorthand.
pub fn invalid_argument(message: impl std::fmt::Display) -> NodeError {
    node_error("QUARRY_INVALID_ARGUMENT", message)
}

impl From<quarry_simd::SimdError> for Coded {
    fn from(e: quarry_simd::SimdError) -> Self {
        Coded(node_error(e.code(), &e))
    }
}

/// Newtype so `?` converts core errors (orphan rules forbid a direct `From`).
pub struct Coded(pub NodeError);

/// Converts any core error to a [`NodeError`].
pub fn coded<E: Into<Coded>>(e: E) -> NodeError {
    e.into().0
}
