//! Runtime SIMD dispatch. The CPU is probed once (on first use) and a table of
//! function pointers for the best available level is chosen; shipped binaries
//! never assume a CPU feature at compile time.

use half::{bf16, f16};
use std::sync::OnceLock;

/// An instruction-set level the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Portable Rust loops.
    Scalar,
    /// AArch64 Advanced SIMD.
    Neon,
    /// x86-64 AVX2 + FMA + F16C + POPCNT.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL/DQ (+ VPOPCNTDQ where present for bit metrics).
    Avx512,
}

impl SimdLevel {
    /// Lower-case name, as `quarry info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Neon => "neon",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }
}

/// Binary kernel over two equal-length slices. Every kernel asserts equal
/// lengths (a panic, never an out-of-bounds read); the checked API in the
/// crate root turns mismatches into errors before calling.
pub type Kernel<T, R> = fn(&[T], &[T]) -> R;

/// One function pointer per (element type, metric) for one [`SimdLevel`].
///
/// Accumulation: f32/f16/bf16 accumulate in f32; i8 in i32; u8 in u32; bit
/// counts in u32. Integer kernels are exact for vectors of up to
/// [`crate::MAX_INT_DIM`] elements. Cosine kernels return the cosine
/// *distance* as defined by [`crate::reference::cosine_from_parts`].
///
/// Accuracy against [`crate::reference`] (what `tests/kernels.rs` checks for
/// every level): integer and bit kernels are exact (cosine and Jaccard equal
/// the reference rounded to f32). Float kernels differ from the f64
/// reference only by f32 accumulation (f16/bf16 widen exactly): with `n` the
/// length and `rel(n) = 1e-5 + n·2⁻²⁴`,
/// `|dot - ref| <= rel(n)·Σ|aᵢbᵢ| + 1e-30`,
/// `|l2sq - ref| <= rel(n)·Σ(aᵢ-bᵢ)² + 1e-30` and
/// `|cosine - ref| <= 2·rel(n) + 2⁻²³`; NaN exactly where the reference is
/// NaN, the same infinity where it is infinite, as long as no f32 partial
/// sum overflows (then ±inf or NaN) and, for cosine, the squared norms do not
/// underflow to 0 in f32 (then the zero-vector convention applies).
/// Different levels (and lengths) may round differently within these bounds.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    pub level: SimdLevel,
    pub f32_dot: Kernel<f32, f32>,
    pub f32_l2sq: Kernel<f32, f32>,
    pub f32_cosine: Kernel<f32, f32>,
    pub f16_dot: Kernel<f16, f32>,
    pub f16_l2sq: Kernel<f16, f32>,
    pub f16_cosine: Kernel<f16, f32>,
    pub bf16_dot: Kernel<bf16, f32>,
    pub bf16_l2sq: Kernel<bf16, f32>,
    pub bf16_cosine: Kernel<bf16, f32>,
    pub i8_dot: Kernel<i8, i32>,
    pub i8_l2sq: Kernel<i8, u32>,
    pub i8_cosine: Kernel<i8, f32>,
    pub u8_dot: Kernel<u8, u32>,
    pub u8_l2sq: Kernel<u8, u32>,
    pub u8_cosine: Kernel<u8, f32>,
    pub bits_hamming: Kernel<u8, u32>,
    pub bits_jaccard: Kernel<u8, f32>,
}

/// The portable table, available everywhere.
pub static SCALAR: Kernels = {
    use crate::portable as p;
    Kernels {
        level: SimdLevel::Scalar,
        f32_dot: p::f32_dot,
        f32_l2sq: p::f32_l2sq,
        f32_cosine: p::f32_cosine,
        f16_dot: p::f16_dot,
        f16_l2sq: p::f16_l2sq,
        f16_cosine: p::f16_cosine,
        bf16_dot: p::bf16_dot,
        bf16_l2sq: p::bf16_l2sq,
        bf16_cosine: p::bf16_cosine,
        i8_dot: p::i8_dot,
        i8_l2sq: p::i8_l2sq,
        i8_cosine: p::i8_cosine,
        u8_dot: p::u8_dot,
        u8_l2sq: p::u8_l2sq,
        u8_cosine: p::u8_cosine,
        bits_hamming: p::bits_hamming,
        bits_jaccard: p::bits_jaccard,
    }
};

/// Whether this CPU can run kernels of `level` (a property of the CPU, not of
/// this build: see [`kernels_for`]).
pub fn level_supported(level: SimdLevel) -> bool {
    match level {
        SimdLevel::Scalar => true,
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
                && std::arch::is_x86_feature_detected!("popcnt")
        }
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => {
            level_supported(SimdLevel::Avx2)
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
        }
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// The kernel table for `level`, if this build has it and this CPU runs it.
pub fn kernels_for(level: SimdLevel) -> Option<&'static Kernels> {
    if !level_supported(level) {
        return None;
    }
    match level {
        SimdLevel::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 => Some(&crate::x86::avx2::KERNELS),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 => Some(if std::arch::is_x86_feature_detected!("avx512vpopcntdq") {
            &crate::x86::avx512::KERNELS_VPOPCNT
        } else {
            &crate::x86::avx512::KERNELS
        }),
        #[cfg(target_arch = "aarch64")]
        SimdLevel::Neon => Some(&crate::arm::neon::KERNELS),
        _ => None,
    }
}

/// Every level this build has and this CPU runs, lowest first.
pub fn supported_levels() -> Vec<SimdLevel> {
    [SimdLevel::Scalar, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512]
        .into_iter()
        .filter(|&l| kernels_for(l).is_some())
        .collect()
}

/// The table chosen for this process: the highest supported level, unless the
/// environment variable `QUARRY_SIMD` names a lower one (`scalar`, `avx2`,
/// `neon`, ...) for debugging and benchmarking.
pub fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<&'static Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        let levels = supported_levels();
        let forced = std::env::var("QUARRY_SIMD").ok();
        let pick = forced
            .and_then(|want| levels.iter().copied().find(|l| l.name().eq_ignore_ascii_case(want.trim())))
            .unwrap_or(*levels.last().expect("scalar is always supported"));
        kernels_for(pick).expect("picked level is supported")
    })
}

/// The level [`kernels`] runs.
pub fn simd_level() -> SimdLevel {
    kernels().level
}
