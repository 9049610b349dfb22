//! x86-64 SIMD levels: [`avx2`] (AVX2 + FMA + F16C + POPCNT) and [`avx512`]
//! (AVX-512 F/BW/VL/DQ on top of that, with a VPOPCNTDQ variant of the bit
//! metrics).
//!
//! `avx512.rs` reaches its intrinsics through [`arch`] and gets its
//! `#[target_feature]` attributes from the `avx512_target!` /
//! `avx512_vpopcnt_target!` macros below, so that the integration test
//! `tests/emulated_avx512.rs` can compile the very same file against scalar
//! models of the intrinsics and run it on CPUs without AVX-512.

pub(crate) mod avx2;

/// The intrinsics `avx512.rs` uses.
mod arch {
    pub(super) use core::arch::x86_64::*;
}

/// Puts the AVX-512 level's `#[target_feature]` on each item.
macro_rules! avx512_target {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,popcnt")]
        $item
    )*};
}

/// As `avx512_target!`, plus VPOPCNTDQ.
macro_rules! avx512_vpopcnt_target {
    ($($item:item)*) => {$(
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,popcnt,avx512vpopcntdq")]
        $item
    )*};
}

pub(crate) mod avx512;
