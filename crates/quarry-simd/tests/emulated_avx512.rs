//! Runs the AVX-512 level (`src/x86/avx512.rs`, the very file the library
//! compiles) on CPUs without AVX-512: the file is compiled here against
//! scalar models of its intrinsics (`emulated/avx512_intrinsics.rs`) with
//! its `#[target_feature]` attributes left out, and both of its tables (with
//! and without VPOPCNTDQ) go through the same checks as the native levels
//! (`common`). This checks the kernels' logic (blocking, masked tails,
//! widening, accumulation, reductions); the intrinsics' semantics are as
//! modelled, and their signatures are checked by
//! `emulated/check_signatures.py` and by the native build of the file.
//!
//! The bit kernels of the table without VPOPCNTDQ are the native AVX2 ones,
//! so this test needs an AVX2 CPU and skips itself otherwise.
#![cfg(target_arch = "x86_64")]

mod common;

mod dispatch {
    pub use quarry_simd::dispatch::*;
}
mod reference {
    pub use quarry_simd::reference::*;
}
#[path = "../src/util.rs"]
mod util;

#[path = "emulated/avx512_intrinsics.rs"]
mod arch;

macro_rules! avx512_target {
    ($($item:item)*) => { $($item)* };
}
macro_rules! avx512_vpopcnt_target {
    ($($item:item)*) => { $($item)* };
}

#[allow(dead_code)]
#[path = "../src/x86/avx2.rs"]
mod avx2;
#[allow(dead_code)]
#[path = "../src/x86/avx512.rs"]
mod avx512;

use quarry_simd::{Kernels, SimdLevel, dispatch::level_supported};

fn avx2_cpu() -> bool {
    let ok = level_supported(SimdLevel::Avx2);
    if !ok {
        eprintln!("no AVX2 on this CPU: emulated AVX-512 test skipped");
    }
    ok
}

// The two tables differ only in their bit kernels: the full checks run on
// `KERNELS`, and the ones that cover the bit kernels also on
// `KERNELS_VPOPCNT`.

#[test]
fn emulated_avx512_dims_and_offsets() {
    if avx2_cpu() {
        assert_eq!(avx512::KERNELS.level, SimdLevel::Avx512);
        common::dims_and_offsets(&avx512::KERNELS, 2);
        common::dims_and_offsets(&avx512::KERNELS_VPOPCNT, 1);
    }
}

#[test]
fn emulated_avx512_special_values() {
    if avx2_cpu() {
        let k: &Kernels = &avx512::KERNELS;
        common::zeros(k);
        common::non_finite(k);
        common::extremes(k);
        common::length_mismatch_panics(k);
        common::zeros(&avx512::KERNELS_VPOPCNT);
        // (Every f16/bf16 bit pattern is not run here: the f16 widening is
        // the modelled `vcvtph2ps`, so that would test the model.)
    }
}

#[test]
fn emulated_avx512_int_max_dim() {
    if avx2_cpu() {
        common::int_max_dim(&avx512::KERNELS);
    }
}

#[test]
fn emulated_avx512_proptest() {
    if avx2_cpu() {
        common::proptest_table(&avx512::KERNELS, 12);
        common::proptest_table(&avx512::KERNELS_VPOPCNT, 12);
    }
}
