//! AArch64 SIMD level: [`neon`] (Advanced SIMD, baseline on AArch64).
//!
//! `neon.rs` reaches its intrinsics through [`arch`] and gets its
//! `#[target_feature]` attributes from `neon_target!`, so that the
//! integration test `tests/emulated_neon.rs` can compile the very same file
//! against scalar models of the intrinsics and run it on any host.

/// The intrinsics `neon.rs` uses.
mod arch {
    pub(super) use core::arch::aarch64::*;
}

/// Puts the Neon level's `#[target_feature]` on each item.
macro_rules! neon_target {
    ($($item:item)*) => {$(
        #[target_feature(enable = "neon")]
        $item
    )*};
}

pub(crate) mod neon;
