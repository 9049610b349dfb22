//! Node.js binding of quarry. Only argument conversion, async tasks and error
//! mapping live here; every algorithm is in a core crate.

mod attention;
mod convert;
mod distance;
mod errors;
mod kv;
mod ngram;
mod task;
mod vectors;

use napi_derive::napi;

/// Build and runtime facts, as `quarry info` prints them.
#[napi(object)]
pub struct NativeInfo {
    /// Version of the native addon.
    pub version: String,
    /// SIMD level the distance kernels run (`avx512`, `avx2`, `neon`, `scalar`).
    pub simd_level: String,
    /// Every level this CPU can run, lowest first.
    pub simd_levels: Vec<String>,
    /// Threads in the compute pool (rayon; `RAYON_NUM_THREADS` sets it).
    pub threads: u32,
    /// Cargo features compiled into the addon.
    pub features: Vec<String>,
    /// Target triple pieces: `os-arch`.
    pub target: String,
}

/// Reports version, dispatch level, threads and compiled-in features.
#[napi]
pub fn info() -> NativeInfo {
    let features: Vec<String> = [("cuda", cfg!(feature = "cuda"))]
        .into_iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| name.to_string())
        .collect();
    NativeInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        simd_level: quarry_simd::simd_level().name().to_string(),
        simd_levels: quarry_simd::supported_levels().into_iter().map(|l| l.name().to_string()).collect(),
        threads: rayon::current_num_threads() as u32,
        features,
        target: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
    }
}
