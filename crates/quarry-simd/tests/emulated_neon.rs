//! Runs the Neon level (`src/arm/neon.rs`, the very file the library
//! compiles on AArch64) on any host: the file is compiled here against
//! scalar models of its intrinsics (`emulated/neon_intrinsics.rs`) with its
//! `#[target_feature]` attributes left out, and its table goes through the
//! same checks as the native levels (`common`). This type-checks the file
//! without an AArch64 toolchain and checks its logic (blocking, tails, the
//! integer f16 → f32 widening, accumulation widths, reductions); the
//! intrinsics' semantics are as modelled, and their signatures, stability
//! and target features are checked against the standard library's by
//! `emulated/check_signatures.py`.

mod common;

mod dispatch {
    pub use quarry_simd::dispatch::*;
}
mod reference {
    pub use quarry_simd::reference::*;
}
#[path = "../src/util.rs"]
mod util;

#[path = "emulated/neon_intrinsics.rs"]
mod arch;

macro_rules! neon_target {
    ($($item:item)*) => { $($item)* };
}

#[path = "../src/arm/neon.rs"]
mod neon;

use quarry_simd::SimdLevel;

#[test]
fn emulated_neon_dims_and_offsets() {
    assert_eq!(neon::KERNELS.level, SimdLevel::Neon);
    common::dims_and_offsets(&neon::KERNELS, 2);
}

#[test]
fn emulated_neon_special_values() {
    let k = &neon::KERNELS;
    common::zeros(k);
    common::non_finite(k);
    common::extremes(k);
    common::length_mismatch_panics(k);
    common::every_f16_and_bf16(k);
}

#[test]
fn emulated_neon_int_max_dim() {
    common::int_max_dim(&neon::KERNELS);
}

#[test]
fn emulated_neon_proptest() {
    common::proptest_table(&neon::KERNELS, 12);
}
