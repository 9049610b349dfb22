//! quarry-kv: a quantized KV cache with fused decode attention.
//!
//! Methods (see [`Method`] for each bit layout): dense `f32`/`f16`,
//! llama.cpp-style `q8_0`/`q4_0`, KIVI, KVQuant (pre-RoPE keys, per-layer
//! k-means codebooks, dense-and-sparse outliers), GEAR (uniform + low-rank
//! error + outliers), RotateKV (Walsh–Hadamard rotation with outlier-aware
//! channel order and attention sinks), MiKV (importance-aware mixed
//! precision) and the H2O eviction baseline.
//!
//! ```
//! use quarry_kv::{KvCache, KvConfig, Method};
//! let mut cache = KvCache::new(KvConfig::new(1, 2, 64, Method::Kivi)).unwrap();
//! let k = vec![0.5f32; 2 * 100 * 64];
//! cache.append(0, &k, &k).unwrap();
//! let out = cache.attend(0, &vec![0.1f32; 4 * 64], None).unwrap(); // 4 query heads (GQA)
//! assert_eq!(out.len(), 4 * 64);
//! ```

pub mod cache;
mod codec;
pub mod config;
pub mod error;
mod fused;
pub mod io;
pub mod kernels;
pub mod pack;
pub mod quant;
pub mod reference;

pub use cache::{Calibration, KvCache};
pub use config::{KvConfig, MAX_ABS, Method};
pub use error::{KvError, Result};
pub use quant::{Rope, RopeStyle};
