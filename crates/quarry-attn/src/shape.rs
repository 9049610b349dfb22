//! Shapes, K/V element types and the options every entry point takes.

use crate::error::{Result, invalid, mismatch};
use half::f16;

/// Shape of one attention call. Q is `[heads, q_len, head_dim]`, K and V are
/// `[kv_heads, kv_len, head_dim]`, the output is `[heads, q_len, head_dim]`,
/// all row-major. Query head `h` reads KV head `h / (heads / kv_heads)`
/// (grouped-query attention).
///
/// With `causal`, queries are aligned to the *end* of the keys: query `i` sits
/// at position `kv_len - q_len + i` and sees keys `0..=that position` (prefill
/// is `q_len == kv_len`; decode is `q_len == 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub head_dim: usize,
}

impl AttnShape {
    pub fn new(heads: usize, kv_heads: usize, q_len: usize, kv_len: usize, head_dim: usize) -> Self {
        AttnShape { heads, kv_heads, q_len, kv_len, head_dim }
    }

    /// Self-attention over `tokens` tokens (`q_len == kv_len`).
    pub fn prefill(heads: usize, kv_heads: usize, tokens: usize, head_dim: usize) -> Self {
        Self::new(heads, kv_heads, tokens, tokens, head_dim)
    }

    /// One query per head against `kv_len` cached keys.
    pub fn decode(heads: usize, kv_heads: usize, kv_len: usize, head_dim: usize) -> Self {
        Self::new(heads, kv_heads, 1, kv_len, head_dim)
    }

    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads.max(1)
    }

    /// Elements of Q (and of the output).
    pub fn q_elems(&self) -> usize {
        self.heads * self.q_len * self.head_dim
    }

    /// Elements of K (and of V).
    pub fn kv_elems(&self) -> usize {
        self.kv_heads * self.kv_len * self.head_dim
    }

    /// Position of query row `i` in the key sequence (causal alignment).
    #[inline]
    pub fn q_pos(&self, i: usize) -> usize {
        self.kv_len - self.q_len + i
    }

    /// Checks the shape itself (not buffers).
    ///
    /// Zero `q_len` is valid (empty output); zero `kv_len` is valid only with
    /// zero `q_len` (softmax over no keys is undefined).
    pub fn validate(&self, causal: bool) -> Result<()> {
        if self.heads == 0 || self.kv_heads == 0 || self.head_dim == 0 {
            return invalid(format!(
                "heads ({}), kv_heads ({}) and head_dim ({}) must be positive",
                self.heads, self.kv_heads, self.head_dim
            ));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return invalid(format!(
                "heads ({}) must be a multiple of kv_heads ({})",
                self.heads, self.kv_heads
            ));
        }
        if causal && self.q_len > self.kv_len {
            return invalid(format!(
                "causal attention needs q_len ({}) <= kv_len ({})",
                self.q_len, self.kv_len
            ));
        }
        if self.kv_len == 0 && self.q_len > 0 {
            return invalid("queries with no keys to attend to (kv_len = 0)");
        }
        if self.kv_len > u32::MAX as usize {
            return invalid("kv_len must fit in u32");
        }
        Ok(())
    }

    pub(crate) fn check_q(&self, q: &[f32]) -> Result<()> {
        if q.len() != self.q_elems() {
            return mismatch(format!(
                "q has {} elements, shape [{}, {}, {}] needs {}",
                q.len(),
                self.heads,
                self.q_len,
                self.head_dim,
                self.q_elems()
            ));
        }
        Ok(())
    }

    pub(crate) fn check_kv(&self, name: &str, len: usize) -> Result<()> {
        if len != self.kv_elems() {
            return mismatch(format!(
                "{name} has {len} elements, shape [{}, {}, {}] needs {}",
                self.kv_heads,
                self.kv_len,
                self.head_dim,
                self.kv_elems()
            ));
        }
        Ok(())
    }
}

/// K or V elements: f32, or f16 (widened to f32 inside; accumulation is f32).
#[derive(Debug, Clone, Copy)]
pub enum KvSlice<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl KvSlice<'_> {
    pub fn len(&self) -> usize {
        match self {
            KvSlice::F32(s) => s.len(),
            KvSlice::F16(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `src[start..start+out.len()]` into `out` as f32.
    #[inline]
    pub(crate) fn read(&self, start: usize, out: &mut [f32]) {
        match self {
            KvSlice::F32(s) => out.copy_from_slice(&s[start..start + out.len()]),
            KvSlice::F16(s) => {
                use half::slice::HalfFloatSliceExt;
                s[start..start + out.len()].convert_to_f32_slice(out)
            }
        }
    }
}

impl<'a> From<&'a [f32]> for KvSlice<'a> {
    fn from(s: &'a [f32]) -> Self {
        KvSlice::F32(s)
    }
}

impl<'a> From<&'a [f16]> for KvSlice<'a> {
    fn from(s: &'a [f16]) -> Self {
        KvSlice::F16(s)
    }
}

impl<'a> From<&'a Vec<f32>> for KvSlice<'a> {
    fn from(s: &'a Vec<f32>) -> Self {
        KvSlice::F32(s)
    }
}

impl<'a> From<&'a Vec<f16>> for KvSlice<'a> {
    fn from(s: &'a Vec<f16>) -> Self {
        KvSlice::F16(s)
    }
}

/// Which micro-kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelChoice {
    /// The best this CPU supports (AVX2+FMA when present, else scalar).
    #[default]
    Auto,
    /// Portable scalar loops (the reference the SIMD path is tested against).
    Scalar,
}

/// Options shared by the prefill entry points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnOptions {
    /// Causal mask (see [`AttnShape`] for the alignment).
    pub causal: bool,
    /// Softmax scale; `None` is `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// Tile / block size in tokens for queries and keys: a multiple of 16 in
    /// `16..=256`. Sparse patterns select keys at this granularity.
    pub block: usize,
    pub kernel: KernelChoice,
}

impl Default for AttnOptions {
    fn default() -> Self {
        AttnOptions { causal: true, scale: None, block: 64, kernel: KernelChoice::Auto }
    }
}

impl AttnOptions {
    pub fn causal() -> Self {
        Self::default()
    }

    pub fn non_causal() -> Self {
        AttnOptions { causal: false, ..Self::default() }
    }

    pub fn with_block(self, block: usize) -> Self {
        AttnOptions { block, ..self }
    }

    pub fn with_kernel(self, kernel: KernelChoice) -> Self {
        AttnOptions { kernel, ..self }
    }

    pub fn with_scale(self, scale: f32) -> Self {
        AttnOptions { scale: Some(scale), ..self }
    }

    pub(crate) fn scale_for(&self, head_dim: usize) -> f32 {
        self.scale.unwrap_or(1.0 / (head_dim as f32).sqrt())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.block < 16 || self.block > 256 || !self.block.is_multiple_of(16) {
            return invalid(format!("block ({}) must be a multiple of 16 in 16..=256", self.block));
        }
        if let Some(s) = self.scale
            && !(s.is_finite() && s > 0.0)
        {
            return invalid(format!("scale ({s}) must be finite and positive"));
        }
        Ok(())
    }
}

/// Validates options, shape and buffers for a prefill-style call.
pub(crate) fn check_all(
    q: &[f32],
    k: &KvSlice,
    v: Option<&KvSlice>,
    shape: &AttnShape,
    opts: &AttnOptions,
) -> Result<()> {
    opts.validate()?;
    shape.validate(opts.causal)?;
    shape.check_q(q)?;
    shape.check_kv("k", k.len())?;
    if let Some(v) = v {
        shape.check_kv("v", v.len())?;
    }
    Ok(())
}
