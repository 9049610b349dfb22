//! Cache configuration, method names and validation.

use crate::error::{Result, dim, invalid, unsupported};
use crate::quant::Rope;

/// Largest magnitude accepted in keys/values by methods that store f16
/// (scales, zero-points or values): larger values would overflow f16.
pub const MAX_ABS: f32 = 60000.0;

/// How the cache stores keys and values. Bit layouts are documented on each
/// variant and on the encoders in [`crate::quant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Dense f32 rows (`4·d` bytes per vector): the reference and baseline.
    F32,
    /// Dense f16 rows (`2·d` bytes per vector), see [`crate::quant::f16_encode`].
    F16,
    /// llama.cpp `q8_0` per token: blocks of 32 channels, f16 scale + 32 i8
    /// (34 bytes per 32 values), see [`crate::quant::q8_0_bytes`].
    Q8_0,
    /// llama.cpp `q4_0` per token: blocks of 32 channels, f16 scale + 16
    /// bytes of nibbles (18 bytes per 32 values), see [`crate::quant::q4_0_bytes`].
    Q4_0,
    /// KIVI: keys per channel over chunks of `group_size` tokens
    /// ([`crate::quant::channel_asym_bytes`]), values per token with channel
    /// groups of `group_size` ([`crate::quant::token_asym_bytes`]), both
    /// asymmetric `bits`-bit; the newest `residual` tokens stay in f16 (as in
    /// KIVI, 2 bytes per value; appended values are rounded to nearest f16)
    /// and are quantized in whole chunks of `group_size` tokens as they age.
    Kivi,
    /// KVQuant: keys per channel with a per-layer calibrated offset/scale,
    /// values per token (f16 offset + scale), both coded with a per-layer
    /// non-uniform codebook of `2^bits` centroids learned by 1-D k-means on
    /// calibration data; per vector the `ceil(outlier_fraction·d)` largest
    /// normalized magnitudes are stored exactly (u16 channel + f32 value).
    /// With `rope` set, keys are appended pre-RoPE and rotated at attention
    /// time. Record per token: key codes `row_bytes(bits, d)` + outliers;
    /// value `4 +` codes + outliers.
    KvQuant,
    /// GEAR: per chunk of `group_size` tokens, KIVI-style uniform
    /// quantization of the inliers, plus a rank-`rank` approximation `A·Bᵀ`
    /// (f16, `A`: tokens × rank, `B`: d × rank) of the quantization error
    /// found by power iteration, plus exact sparse outliers per vector.
    Gear,
    /// RotateKV: a channel permutation (outlier channels spread over the
    /// rotation blocks) then a normalized Walsh–Hadamard rotation of blocks
    /// of `rotation_block` channels, then per-token asymmetric `bits`-bit
    /// quantization with channel groups of `group_size`; queries get the
    /// same rotation, outputs the inverse; the first `sinks` tokens stay f32.
    Rotate,
    /// MiKV: every aged token keeps a low-precision per-token asymmetric
    /// copy; the most attended tokens (accumulated attention, up to
    /// `budget × tokens`) also keep an f16 copy used instead; the newest
    /// `residual` tokens stay f32.
    MiKv,
    /// H2O eviction baseline: heavy hitters (accumulated attention, up to
    /// `budget × tokens`, f16) and the newest `residual` tokens (f32) are
    /// kept; every other token is evicted for good.
    H2o,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 10] = [
        Method::F32,
        Method::F16,
        Method::Q8_0,
        Method::Q4_0,
        Method::Kivi,
        Method::KvQuant,
        Method::Gear,
        Method::Rotate,
        Method::MiKv,
        Method::H2o,
    ];

    /// The name the Node API uses (`'kivi'`, `'q4_0'`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::F32 => "f32",
            Method::F16 => "f16",
            Method::Q8_0 => "q8_0",
            Method::Q4_0 => "q4_0",
            Method::Kivi => "kivi",
            Method::KvQuant => "kvquant",
            Method::Gear => "gear",
            Method::Rotate => "rotate",
            Method::MiKv => "mikv",
            Method::H2o => "h2o",
        }
    }

    /// Parse a method name.
    pub fn from_name(s: &str) -> Result<Method> {
        Method::ALL.iter().copied().find(|m| m.name() == s).ok_or_else(|| unsupported(format!("unknown KV method {s:?}")))
    }

    /// Bit widths the method implements.
    pub fn supported_bits(self) -> &'static [u8] {
        match self {
            Method::F32 => &[32],
            Method::F16 | Method::H2o => &[16],
            Method::Q8_0 => &[8],
            Method::Q4_0 => &[4],
            _ => &crate::pack::SUPPORTED_BITS,
        }
    }

    pub(crate) fn code(self) -> u8 {
        Method::ALL.iter().position(|&m| m == self).unwrap() as u8
    }
}

/// Configuration of a [`crate::KvCache`]. Build one with [`KvConfig::new`]
/// (per-method defaults) and override fields as needed.
#[derive(Debug, Clone, PartialEq)]
pub struct KvConfig {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub method: Method,
    /// Code width (see [`Method::supported_bits`]).
    pub bits: u8,
    /// KIVI/GEAR: tokens per key chunk and channels per value group;
    /// Rotate/MiKV: channels per group. Must divide `head_dim`.
    pub group_size: usize,
    /// Newest tokens kept in full precision: f16 for KIVI, f32 for the
    /// others (GEAR/KVQuant/Rotate residual, MiKV/H2O recent window).
    pub residual: usize,
    /// First tokens kept in f32 forever (attention sinks).
    pub sinks: usize,
    /// KVQuant/GEAR: fraction of each vector's channels kept exactly.
    pub outlier_fraction: f32,
    /// GEAR: rank of the error approximation.
    pub rank: usize,
    /// MiKV/H2O: fraction of aged tokens kept at high precision / kept at all.
    pub budget: f32,
    /// KVQuant: keys arrive pre-RoPE and are rotated at attention time.
    pub rope: Option<Rope>,
    /// Rotate: Hadamard block size (0 = `head_dim`).
    pub rotation_block: usize,
}

impl KvConfig {
    /// Defaults: bits f32 32, f16/h2o 16, q8_0 8, q4_0 4, kivi/rotate/mikv 2,
    /// kvquant 3, gear 4; `group_size` 32 (or `head_dim` if 32 does not
    /// divide it); `residual` 32 for KIVI/GEAR/MiKV/H2O else 0; `sinks` 4 for
    /// Rotate, 1 for KVQuant, else 0; outliers 1%; rank 4; budget 0.2.
    pub fn new(layers: usize, kv_heads: usize, head_dim: usize, method: Method) -> KvConfig {
        let bits = match method {
            Method::F32 => 32,
            Method::F16 | Method::H2o => 16,
            Method::Q8_0 => 8,
            Method::Q4_0 | Method::Gear => 4,
            Method::KvQuant => 3,
            _ => 2,
        };
        let group_size = if head_dim > 0 && head_dim.is_multiple_of(32) { 32 } else { head_dim.max(1) };
        let residual = match method {
            Method::Kivi | Method::Gear | Method::MiKv | Method::H2o => 32,
            _ => 0,
        };
        KvConfig {
            layers,
            kv_heads,
            head_dim,
            method,
            bits,
            group_size,
            residual,
            sinks: match method {
                Method::Rotate => 4,
                // KVQuant keeps the first token (the attention sink) exact.
                Method::KvQuant => 1,
                _ => 0,
            },
            outlier_fraction: 0.01,
            rank: 4,
            budget: 0.2,
            rope: None,
            rotation_block: 0,
        }
    }

    /// Check every field; the cache calls this on construction and load.
    pub fn validate(&self) -> Result<()> {
        if self.layers == 0 || self.kv_heads == 0 || self.head_dim == 0 {
            return Err(invalid("layers, kvHeads and headDim must be at least 1"));
        }
        if self.layers > 1 << 16 || self.kv_heads > 1 << 12 || self.head_dim > 4096 {
            return Err(invalid("layers ≤ 65536, kvHeads ≤ 4096 and headDim ≤ 4096"));
        }
        if !self.method.supported_bits().contains(&self.bits) {
            return Err(unsupported(format!(
                "{} does not support {} bits (supported: {:?})",
                self.method.name(),
                self.bits,
                self.method.supported_bits()
            )));
        }
        let grouped = matches!(self.method, Method::Kivi | Method::Gear | Method::Rotate | Method::MiKv);
        if grouped && (self.group_size == 0 || !self.head_dim.is_multiple_of(self.group_size)) {
            return Err(invalid(format!("groupSize {} must divide headDim {}", self.group_size, self.head_dim)));
        }
        if self.residual > 1 << 20 || self.sinks > 1 << 20 {
            return Err(invalid("residual and sinks must be ≤ 2^20"));
        }
        if !(0.0..=0.5).contains(&self.outlier_fraction) {
            return Err(invalid("outlierFraction must be in [0, 0.5]"));
        }
        if !(0.0..=1.0).contains(&self.budget) {
            return Err(invalid("budget must be in [0, 1]"));
        }
        if self.method == Method::Gear && (self.rank > self.group_size.min(self.head_dim)) {
            return Err(invalid("rank must be ≤ min(groupSize, headDim)"));
        }
        if let Some(r) = self.rope {
            if self.method != Method::KvQuant {
                return Err(unsupported("rope (pre-RoPE keys) is only supported by kvquant"));
            }
            if !(self.head_dim.is_multiple_of(2) && r.theta.is_finite() && r.theta > 1.0) {
                return Err(invalid("rope needs an even headDim and a finite theta > 1"));
            }
        }
        if self.method == Method::Rotate {
            if !self.head_dim.is_power_of_two() {
                return Err(unsupported("rotate needs a power-of-two headDim"));
            }
            let b = self.rot_block();
            if !b.is_power_of_two() || !self.head_dim.is_multiple_of(b) {
                return Err(invalid("rotationBlock must be a power of two dividing headDim"));
            }
        }
        Ok(())
    }

    pub(crate) fn rot_block(&self) -> usize {
        if self.rotation_block == 0 { self.head_dim } else { self.rotation_block }
    }

    /// Outliers kept per vector.
    pub fn outliers_per_vector(&self) -> usize {
        match self.method {
            Method::KvQuant | Method::Gear if self.outlier_fraction > 0.0 => {
                ((self.outlier_fraction * self.head_dim as f32).ceil() as usize).min(self.head_dim)
            }
            _ => 0,
        }
    }

    /// Tokens per quantized chunk.
    pub fn chunk_tokens(&self) -> usize {
        match self.method {
            Method::Kivi | Method::Gear => self.group_size,
            _ => 1,
        }
    }

    pub(crate) fn check_shape(&self, len: usize, heads: usize, what: &str) -> Result<usize> {
        let row = heads * self.head_dim;
        if len == 0 || !len.is_multiple_of(row) {
            return Err(dim(format!("{what}: length {len} is not a positive multiple of heads×headDim = {row}")));
        }
        Ok(len / row)
    }
}
