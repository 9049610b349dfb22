//! SQ8: per-dimension scalar quantization to 8 bits. Dimension `d` maps
//! `[vmin[d], vmin[d] + 255·vscale[d]]` onto codes `0..=255` (round to
//! nearest, clamped), and decodes to `vmin[d] + vscale[d] · code`. Distances
//! are asymmetric (float query against codes) and computed straight from the
//! codes, without decoding.

use rayon::prelude::*;

use crate::error::{AnnError, Result, invalid};
use crate::{Metric, check_finite};

/// Trained scalar quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sq8 {
    pub dim: usize,
    /// Smallest training value per dimension.
    pub vmin: Vec<f32>,
    /// Step per code per dimension: `(max − min) / 255` (0 for a constant dimension).
    pub vscale: Vec<f32>,
}

/// A query prepared for [`Sq8::scan`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sq8Query {
    pub metric: Metric,
    /// L2: `q − vmin`; inner product: `q · vscale` (per dimension).
    a: Vec<f32>,
    /// L2: `vscale`; inner product: unused.
    s: Vec<f32>,
    /// Inner product: `Σ q · vmin`; L2: 0.
    bias: f32,
}

const ROWS_PER_TASK: usize = 512;

impl Sq8 {
    /// Learns the per-dimension range of the `n × dim` rows of `data`.
    /// Errors: ragged data or `dim` of 0 (`DimMismatch`), no rows
    /// (`InvalidArgument`), NaN/inf (`InvalidInput`).
    pub fn train(data: &[f32], dim: usize) -> Result<Self> {
        check_finite(data, dim)?;
        if data.is_empty() {
            return Err(invalid("SQ8 needs at least one training vector"));
        }
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for row in data.chunks_exact(dim) {
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        let vscale = lo.iter().zip(&hi).map(|(&l, &h)| ((h as f64 - l as f64) / 255.0) as f32).collect();
        if lo.iter().zip(&hi).any(|(&l, &h)| !((h as f64 - l as f64) / 255.0).is_finite() || !(h - l).is_finite()) {
            return Err(AnnError::InvalidInput("SQ8 training range overflows f32".into()));
        }
        Ok(Sq8 { dim, vmin: lo, vscale })
    }

    /// Bytes per code (`dim`).
    pub fn code_size(&self) -> usize {
        self.dim
    }

    /// Checks that the public fields describe a usable quantizer.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.vmin.len() != self.dim || self.vscale.len() != self.dim {
            return Err(AnnError::DimMismatch("SQ8 model: vmin/vscale must have dim entries".into()));
        }
        if self.vmin.iter().chain(&self.vscale).any(|x| !x.is_finite()) || self.vscale.iter().any(|&s| s < 0.0) {
            return Err(invalid("SQ8 model has non-finite or negative parameters"));
        }
        Ok(())
    }

    /// Encodes the `n × dim` rows of `data` into `codes` (`n × dim`); values
    /// outside the trained range clamp to 0 or 255.
    pub fn encode(&self, data: &[f32], codes: &mut [u8]) -> Result<()> {
        self.validate()?;
        if !data.is_empty() {
            check_finite(data, self.dim)?;
        }
        check_len("codes", codes.len(), data.len())?;
        let inv: Vec<f32> = self.vscale.iter().map(|&s| if s > 0.0 { 1.0 / s } else { 0.0 }).collect();
        codes.par_chunks_mut(ROWS_PER_TASK * self.dim).zip(data.par_chunks(ROWS_PER_TASK * self.dim)).for_each(|(cc, dd)| {
            for (c, x) in cc.chunks_exact_mut(self.dim).zip(dd.chunks_exact(self.dim)) {
                for d in 0..self.dim {
                    let v = ((x[d] - self.vmin[d]) * inv[d]).round();
                    c[d] = v.clamp(0.0, 255.0) as u8;
                }
            }
        });
        Ok(())
    }

    /// Decodes `codes` (`n × dim`) into `out` (`n × dim`).
    pub fn decode(&self, codes: &[u8], out: &mut [f32]) -> Result<()> {
        self.validate()?;
        check_len("output", out.len(), codes.len())?;
        if !codes.len().is_multiple_of(self.dim) {
            return Err(AnnError::DimMismatch(format!("{} code bytes are not whole codes of {}", codes.len(), self.dim)));
        }
        for (x, c) in out.chunks_exact_mut(self.dim).zip(codes.chunks_exact(self.dim)) {
            for d in 0..self.dim {
                x[d] = self.vmin[d] + self.vscale[d] * c[d] as f32;
            }
        }
        Ok(())
    }

    /// Prepares `query` for [`Sq8::scan`]: squared L2 for [`Metric::L2`],
    /// inner product for inner product and cosine (a cosine index normalises
    /// vectors and queries itself).
    pub fn prepare(&self, query: &[f32], metric: Metric) -> Result<Sq8Query> {
        self.validate()?;
        check_len("query", query.len(), self.dim)?;
        if query.iter().any(|x| !x.is_finite()) {
            return Err(AnnError::InvalidInput("query has a NaN or infinite component".into()));
        }
        Ok(match metric {
            Metric::L2 => Sq8Query {
                metric,
                a: query.iter().zip(&self.vmin).map(|(&q, &m)| q - m).collect(),
                s: self.vscale.clone(),
                bias: 0.0,
            },
            Metric::InnerProduct | Metric::Cosine => Sq8Query {
                metric,
                a: query.iter().zip(&self.vscale).map(|(&q, &s)| q * s).collect(),
                s: Vec::new(),
                bias: query.iter().zip(&self.vmin).map(|(&q, &m)| q as f64 * m as f64).sum::<f64>() as f32,
            },
        })
    }

    /// Distances from a prepared query to each code in `codes` (`n × dim`)
    /// into `out` (`n`): squared L2 or inner product, per the prepared metric.
    pub fn scan(&self, q: &Sq8Query, codes: &[u8], out: &mut [f32]) -> Result<()> {
        if q.a.len() != self.dim || self.dim == 0 {
            return Err(AnnError::DimMismatch(format!("prepared query has dim {}, quantizer {}", q.a.len(), self.dim)));
        }
        if !codes.len().is_multiple_of(self.dim) {
            return Err(AnnError::DimMismatch(format!("{} code bytes are not whole codes of {}", codes.len(), self.dim)));
        }
        check_len("output", out.len(), codes.len() / self.dim)?;
        #[cfg(target_arch = "x86_64")]
        if crate::pq::avx2() {
            // SAFETY: AVX2 and FMA were detected at run time; lengths checked above.
            unsafe { scan_avx2(q, self.dim, codes, out) };
            return Ok(());
        }
        scan_scalar(q, self.dim, codes, out);
        Ok(())
    }

    /// The portable scan (tests compare the SIMD path against it).
    #[doc(hidden)]
    pub fn scan_portable(&self, q: &Sq8Query, codes: &[u8], out: &mut [f32]) -> Result<()> {
        if q.a.len() != self.dim || !codes.len().is_multiple_of(self.dim.max(1)) || out.len() != codes.len() / self.dim.max(1) {
            return Err(AnnError::DimMismatch("prepared query, codes and output disagree".into()));
        }
        scan_scalar(q, self.dim, codes, out);
        Ok(())
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(AnnError::DimMismatch(format!("{what} has length {got}, expected {want}")));
    }
    Ok(())
}

fn scan_scalar(q: &Sq8Query, dim: usize, codes: &[u8], out: &mut [f32]) {
    for (c, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        *o = match q.metric {
            Metric::L2 => {
                let mut acc = 0f32;
                for ((&b, &a), &s) in c.iter().zip(&q.a).zip(&q.s) {
                    let diff = a - s * b as f32;
                    acc += diff * diff;
                }
                acc
            }
            _ => q.bias + c.iter().zip(&q.a).map(|(&b, &w)| w * b as f32).sum::<f32>(),
        };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scan_avx2(q: &Sq8Query, dim: usize, codes: &[u8], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let l2 = q.metric == Metric::L2;
    let body = dim / 8 * 8;
    for (c, o) in codes.chunks_exact(dim).zip(out.iter_mut()) {
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        // One 8-wide block: returns the updated accumulator.
        // SAFETY (callers): d + 8 <= dim = c.len() = q.a.len() (= q.s.len() for L2).
        let block = |d: usize, acc: __m256| unsafe {
            let bytes = _mm_loadl_epi64(c.as_ptr().add(d) as *const __m128i);
            let cv = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
            let a = _mm256_loadu_ps(q.a.as_ptr().add(d));
            if l2 {
                let s = _mm256_loadu_ps(q.s.as_ptr().add(d));
                let diff = _mm256_fnmadd_ps(s, cv, a);
                _mm256_fmadd_ps(diff, diff, acc)
            } else {
                _mm256_fmadd_ps(a, cv, acc)
            }
        };
        let mut d = 0;
        // Two independent accumulators hide the FMA latency.
        while d + 16 <= body {
            acc0 = block(d, acc0);
            acc1 = block(d + 8, acc1);
            d += 16;
        }
        if d < body {
            acc0 = block(d, acc0);
        }
        let acc = _mm256_add_ps(acc0, acc1);
        let hi = _mm256_extractf128_ps(acc, 1);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(acc), hi);
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
        let mut total = _mm_cvtss_f32(s1);
        for (d, &b) in c.iter().enumerate().skip(body) {
            if l2 {
                let diff = q.a[d] - q.s[d] * b as f32;
                total += diff * diff;
            } else {
                total += q.a[d] * b as f32;
            }
        }
        *o = if l2 { total } else { q.bias + total };
    }
}
