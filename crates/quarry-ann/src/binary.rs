//! Binary codes: sign bits, and multi-bit residual binarisation in the spirit
//! of BEBR. A vector is approximated as `x̂ = mean + Σ_j α_j ∘ b_j` with
//! `b_j ∈ {±1}^dim`, found greedily: `b_0 = sign(x − mean)`, then each level
//! binarises what the previous ones left. The scales `α_j` are learned per
//! level *and per dimension* (the mean absolute residual of that dimension at
//! that level, which minimises the squared error of a sign code).
//!
//! Code layout (`code_size()` bytes): `levels` blocks of `ceil(dim / 8)`
//! bytes of bits (bit `d` of a block is bit `d % 8` of byte `d / 8`, set for
//! `+1`; level 0 first, so the first block is a plain sign code for Hamming
//! pre-filtering), then the squared norm of the reconstruction as a
//! little-endian `f32` (what asymmetric L2 needs).

use rayon::prelude::*;

use crate::error::{AnnError, Result, invalid};
use crate::{Metric, check_finite};

/// Most residual levels a codec may have.
pub const MAX_LEVELS: u32 = 16;

/// Trained binary codec.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryCodec {
    pub dim: usize,
    /// Bit levels per vector (1 = sign bits only).
    pub levels: u32,
    /// Per-dimension mean of the training data (the centre of the sign code).
    pub mean: Vec<f32>,
    /// `levels × dim` scales: level `j`, dimension `d` at `j * dim + d`.
    pub alphas: Vec<f32>,
}

const ROWS_PER_TASK: usize = 512;

impl BinaryCodec {
    /// Learns the mean and per-level scales from the `n × dim` rows of `data`.
    /// Errors: ragged data (`DimMismatch`), no rows or `levels` outside
    /// `1..=16` (`InvalidArgument`), NaN/inf (`InvalidInput`).
    pub fn train(data: &[f32], dim: usize, levels: u32) -> Result<Self> {
        check_finite(data, dim)?;
        if !(1..=MAX_LEVELS).contains(&levels) {
            return Err(invalid(format!("binary codes need 1..={MAX_LEVELS} levels, got {levels}")));
        }
        if data.is_empty() {
            return Err(invalid("binary codec needs at least one training vector"));
        }
        let n = data.len() / dim;
        let mut sum = vec![0f64; dim];
        for row in data.chunks_exact(dim) {
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += x as f64;
            }
        }
        let mean: Vec<f32> = sum.iter().map(|&s| (s / n as f64) as f32).collect();
        let mut residual: Vec<f32> = data.chunks_exact(dim).flat_map(|r| r.iter().zip(&mean).map(|(&x, &m)| x - m)).collect();
        let mut alphas = Vec::with_capacity(levels as usize * dim);
        for _ in 0..levels {
            let mut abs = vec![0f64; dim];
            for row in residual.chunks_exact(dim) {
                for (a, &r) in abs.iter_mut().zip(row) {
                    *a += r.abs() as f64;
                }
            }
            let alpha: Vec<f32> = abs.iter().map(|&a| (a / n as f64) as f32).collect();
            for row in residual.chunks_exact_mut(dim) {
                for (r, &a) in row.iter_mut().zip(&alpha) {
                    *r -= if *r >= 0.0 { a } else { -a };
                }
            }
            alphas.extend_from_slice(&alpha);
        }
        Ok(BinaryCodec { dim, levels, mean, alphas })
    }

    /// Bytes of one level's bits (`ceil(dim / 8)`).
    pub fn bits_bytes(&self) -> usize {
        self.dim.div_ceil(8)
    }

    /// Bytes per code: `levels × ceil(dim / 8) + 4`.
    pub fn code_size(&self) -> usize {
        self.levels as usize * self.bits_bytes() + 4
    }

    /// Checks that the public fields describe a usable codec.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.mean.len() != self.dim || self.alphas.len() != self.levels as usize * self.dim {
            return Err(AnnError::DimMismatch("binary codec: mean must have dim entries, alphas levels × dim".into()));
        }
        if !(1..=MAX_LEVELS).contains(&self.levels) {
            return Err(invalid(format!("binary codes need 1..={MAX_LEVELS} levels, got {}", self.levels)));
        }
        if self.mean.iter().chain(&self.alphas).any(|x| !x.is_finite()) {
            return Err(invalid("binary codec parameters are not finite"));
        }
        Ok(())
    }

    /// Encodes the `n × dim` rows of `data` into `codes` (`n × code_size()`).
    pub fn encode(&self, data: &[f32], codes: &mut [u8]) -> Result<()> {
        self.validate()?;
        if !data.is_empty() {
            check_finite(data, self.dim)?;
        }
        let (dim, cs, nb) = (self.dim, self.code_size(), self.bits_bytes());
        check_len("codes", codes.len(), data.len() / dim * cs)?;
        codes.par_chunks_mut(ROWS_PER_TASK * cs).zip(data.par_chunks(ROWS_PER_TASK * dim)).for_each(|(cc, dd)| {
            let mut r = vec![0f32; dim];
            let mut rec = vec![0f32; dim];
            for (code, x) in cc.chunks_exact_mut(cs).zip(dd.chunks_exact(dim)) {
                code.fill(0);
                for d in 0..dim {
                    r[d] = x[d] - self.mean[d];
                    rec[d] = self.mean[d];
                }
                for j in 0..self.levels as usize {
                    let alpha = &self.alphas[j * dim..(j + 1) * dim];
                    let bits = &mut code[j * nb..(j + 1) * nb];
                    for d in 0..dim {
                        let a = if r[d] >= 0.0 {
                            bits[d / 8] |= 1 << (d % 8);
                            alpha[d]
                        } else {
                            -alpha[d]
                        };
                        r[d] -= a;
                        rec[d] += a;
                    }
                }
                let norm2 = rec.iter().map(|&v| v as f64 * v as f64).sum::<f64>() as f32;
                code[cs - 4..].copy_from_slice(&norm2.to_le_bytes());
            }
        });
        Ok(())
    }

    /// Reconstructs codes (`n × code_size()`) into `out` (`n × dim`).
    pub fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.validate()?;
        let n = self.count_codes(codes)?;
        check_len("output", out.len(), n * self.dim)?;
        let (dim, cs, nb) = (self.dim, self.code_size(), self.bits_bytes());
        for (x, code) in out.chunks_exact_mut(dim).zip(codes.chunks_exact(cs)) {
            x.copy_from_slice(&self.mean);
            for j in 0..self.levels as usize {
                let alpha = &self.alphas[j * dim..(j + 1) * dim];
                let bits = &code[j * nb..(j + 1) * nb];
                for d in 0..dim {
                    x[d] += if bits[d / 8] >> (d % 8) & 1 == 1 { alpha[d] } else { -alpha[d] };
                }
            }
        }
        Ok(())
    }

    /// Level-0 bits of a query (`ceil(dim / 8)` bytes): the sign of `q − mean`.
    pub fn encode_query_bits(&self, q: &[f32]) -> Result<Vec<u8>> {
        self.validate()?;
        check_len("query", q.len(), self.dim)?;
        if q.iter().any(|x| !x.is_finite()) {
            return Err(AnnError::InvalidInput("query has a NaN or infinite component".into()));
        }
        let mut bits = vec![0u8; self.bits_bytes()];
        for d in 0..self.dim {
            if q[d] - self.mean[d] >= 0.0 {
                bits[d / 8] |= 1 << (d % 8);
            }
        }
        Ok(bits)
    }

    /// Hamming distance between query bits (from [`BinaryCodec::encode_query_bits`])
    /// and the level-0 bits of each code, as `f32`.
    pub fn hamming_scan(&self, qbits: &[u8], codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.validate()?;
        let nb = self.bits_bytes();
        check_len("query bits", qbits.len(), nb)?;
        let n = self.count_codes(codes)?;
        check_len("output", out.len(), n)?;
        let hamming = quarry_simd::kernels().bits_hamming;
        for (code, o) in codes.chunks_exact(self.code_size()).zip(out.iter_mut()) {
            *o = hamming(qbits, &code[..nb]) as f32;
        }
        Ok(())
    }

    /// Asymmetric distance from a float query to every level of each code:
    /// squared L2 to the reconstruction for [`Metric::L2`], inner product for
    /// inner product and cosine. Per level, each code byte is looked up in a
    /// 256-entry table of signed partial sums of `q ∘ α_j` over its 8 dimensions.
    pub fn asym_scan(&self, query: &[f32], metric: Metric, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.validate()?;
        check_len("query", query.len(), self.dim)?;
        if query.iter().any(|x| !x.is_finite()) {
            return Err(AnnError::InvalidInput("query has a NaN or infinite component".into()));
        }
        let n = self.count_codes(codes)?;
        check_len("output", out.len(), n)?;
        let (dim, cs, nb) = (self.dim, self.code_size(), self.bits_bytes());
        let width = self.levels as usize * nb;
        // tables[(j * nb + p) * 256 + b] = Σ_{t < 8} ±q[8p+t]·α_j[8p+t], + where bit t of b is set.
        let mut tables = vec![0f32; width * 256];
        for j in 0..self.levels as usize {
            for p in 0..nb {
                let w: Vec<f32> = (0..8)
                    .map(|t| {
                        let d = 8 * p + t;
                        if d < dim { query[d] * self.alphas[j * dim + d] } else { 0.0 }
                    })
                    .collect();
                let table = &mut tables[(j * nb + p) * 256..(j * nb + p + 1) * 256];
                table[0] = -w.iter().sum::<f32>();
                for b in 1..256usize {
                    table[b] = table[b & (b - 1)] + 2.0 * w[b.trailing_zeros() as usize];
                }
            }
        }
        let base = query.iter().zip(&self.mean).map(|(&q, &m)| q as f64 * m as f64).sum::<f64>() as f32;
        let qnorm2 = query.iter().map(|&q| q as f64 * q as f64).sum::<f64>() as f32;
        for (code, o) in codes.chunks_exact(cs).zip(out.iter_mut()) {
            let mut acc = [0f32; 4];
            let mut chunks = code[..width].chunks_exact(4);
            let mut p = 0;
            for c in &mut chunks {
                for t in 0..4 {
                    acc[t] += tables[(p + t) * 256 + c[t] as usize];
                }
                p += 4;
            }
            for (t, &b) in chunks.remainder().iter().enumerate() {
                acc[t] += tables[(p + t) * 256 + b as usize];
            }
            let ip = base + (acc[0] + acc[1]) + (acc[2] + acc[3]);
            *o = match metric {
                Metric::L2 => {
                    let norm2 = f32::from_le_bytes([code[cs - 4], code[cs - 3], code[cs - 2], code[cs - 1]]);
                    (qnorm2 - 2.0 * ip + norm2).max(0.0)
                }
                Metric::InnerProduct | Metric::Cosine => ip,
            };
        }
        Ok(())
    }

    fn count_codes(&self, codes: &[u8]) -> Result<usize> {
        let cs = self.code_size();
        if !codes.len().is_multiple_of(cs) {
            return Err(AnnError::DimMismatch(format!("{} code bytes are not whole codes of {cs}", codes.len())));
        }
        Ok(codes.len() / cs)
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(AnnError::DimMismatch(format!("{what} has length {got}, expected {want}")));
    }
    Ok(())
}
