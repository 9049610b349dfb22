//! Progress reporting and cancellation for long operations (training, builds).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{AnnError, Result};

/// Progress sink and cancel flag threaded through long operations. Both are
/// optional; `Control::none()` reports nothing and never cancels.
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    progress: Option<&'a (dyn Fn(&str, f64) + Sync)>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Control<'a> {
    /// No progress, no cancellation.
    pub fn none() -> Self {
        Control::default()
    }

    /// Reports progress as `(stage, fraction in 0..=1)`, cancels when `cancel` is set.
    pub fn new(progress: Option<&'a (dyn Fn(&str, f64) + Sync)>, cancel: Option<&'a AtomicBool>) -> Self {
        Control { progress, cancel }
    }

    /// Reports `fraction` (clamped to 0..=1) of `stage` as done.
    pub fn report(&self, stage: &str, fraction: f64) {
        if let Some(p) = self.progress {
            p(stage, fraction.clamp(0.0, 1.0));
        }
    }

    /// `Err(Aborted)` once the caller has asked to cancel.
    pub fn check(&self) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(AnnError::Aborted),
            _ => Ok(()),
        }
    }
}
