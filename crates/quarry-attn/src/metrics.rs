//! Attention recall, output error and helpers.

use crate::error::{Result, invalid};
use crate::shape::{AttnOptions, AttnShape, KvSlice, check_all};
use crate::simd::{self, Level};
use rayon::prelude::*;
use std::borrow::Cow;

/// Attention recall: the share of the true softmax mass that the selected
/// keys cover, per query row, averaged.
#[derive(Debug, Clone, PartialEq)]
pub struct Recall {
    /// Mean over the rows of each query head.
    pub per_head: Vec<f64>,
    /// Mean over all rows.
    pub mean: f64,
    /// Lowest single row.
    pub min: f64,
}

/// Recall from log-sum-exps: row recall is `exp(lse_selected - lse_all)`
/// (clamped to [0, 1]; a row with no selected key has recall 0). Both are
/// `[heads, rows]`.
pub fn recall_from_lse(selected: &[f32], all: &[f32], heads: usize, rows: usize) -> Recall {
    assert_eq!(selected.len(), heads * rows);
    assert_eq!(all.len(), heads * rows);
    let mut per_head = vec![0.0f64; heads];
    let mut min = 1.0f64;
    let mut sum = 0.0f64;
    for h in 0..heads {
        let mut s = 0.0f64;
        for i in 0..rows {
            let (a, b) = (selected[h * rows + i] as f64, all[h * rows + i] as f64);
            let r = if a == f64::NEG_INFINITY { 0.0 } else { (a - b).exp().clamp(0.0, 1.0) };
            s += r;
            min = min.min(r);
        }
        sum += s;
        per_head[h] = if rows > 0 { s / rows as f64 } else { 1.0 };
    }
    let mean = if heads * rows > 0 { sum / (heads * rows) as f64 } else { 1.0 };
    Recall { per_head, mean, min }
}

/// `‖out - reference‖₂ / ‖reference‖₂` (0 when both are zero).
pub fn relative_error(out: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(out.len(), reference.len());
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (&a, &b) in out.iter().zip(reference) {
        num += (a as f64 - b as f64).powi(2);
        den += (b as f64).powi(2);
    }
    if den == 0.0 { num.sqrt() } else { (num / den).sqrt() }
}

/// [`relative_error`] of each of `heads` equal parts.
pub fn relative_error_per_head(out: &[f32], reference: &[f32], heads: usize) -> Vec<f64> {
    assert_eq!(out.len(), reference.len());
    if heads == 0 {
        return Vec::new();
    }
    let n = out.len() / heads;
    (0..heads).map(|h| relative_error(&out[h * n..(h + 1) * n], &reference[h * n..(h + 1) * n])).collect()
}

/// The fewest query-key pairs any selector could compute and still reach a
/// mean attention recall of `target`, as a share of the visible pairs,
/// measured on `rows_per_head` query rows of every head spread evenly over
/// the sequence (all rows when it is at least `q_len`).
///
/// Mean recall is a sum of per-row probabilities divided by the row count,
/// so for a given number of pairs it is highest when the pairs are the
/// largest probabilities of all rows together: the pairs are taken in that
/// order until their mass reaches `target` per row on average. No pattern
/// (block, column, diagonal or per-key, chosen with perfect knowledge) that
/// reaches `target` computes fewer pairs; a method computing `density`
/// pairs with the dense kernel's per-pair cost is at most `1 / density`
/// times faster than dense attention.
///
/// Memory: the probabilities of the sampled rows, up to
/// `heads × rows_per_head × kv_len` f32 (100 MB for 3 heads × 256 rows at
/// 64k keys), plus an f32 copy of f16 keys (f32 keys are read in place).
pub fn oracle_density<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    target: f64,
    rows_per_head: usize,
) -> Result<f64> {
    let k = k.into();
    check_all(q, &k, None, shape, opts)?;
    if !(target > 0.0 && target <= 1.0) {
        return invalid(format!("target recall ({target}) must be in (0, 1]"));
    }
    if rows_per_head == 0 {
        return invalid("rows_per_head must be > 0");
    }
    let (d, n) = (shape.head_dim, shape.kv_len);
    let rows = rows_per_head.min(shape.q_len);
    if rows == 0 || n == 0 {
        return Ok(1.0);
    }
    let scale = opts.scale_for(d);
    let level = Level::resolve(opts.kernel);
    let dot = quarry_simd::kernels().f32_dot;
    // f32 keys are read in place; f16 ones widened once
    let keys: Cow<[f32]> = match k {
        KvSlice::F32(s) => Cow::Borrowed(s),
        KvSlice::F16(_) => {
            let mut x = vec![0.0f32; k.len()];
            k.read(0, &mut x);
            Cow::Owned(x)
        }
    };
    // Probabilities of every sampled row's visible keys (f32 is plenty to
    // rank them; the masses are summed in f64).
    let probs: Vec<Vec<f32>> = (0..shape.heads * rows)
        .into_par_iter()
        .map(|hr| {
            let (h, r) = (hr / rows, hr % rows);
            let i = (2 * r + 1) * shape.q_len / (2 * rows);
            let end = if opts.causal { shape.q_pos(i) + 1 } else { n };
            let qi = &q[(h * shape.q_len + i) * d..][..d];
            let kh = &keys[h / shape.group() * n * d..][..n * d];
            let mut p: Vec<f32> = (0..end).map(|j| dot(qi, &kh[j * d..(j + 1) * d]) * scale).collect();
            let m = simd::row_max(level, &p);
            let inv = 1.0 / simd::exp_sub_sum(level, &mut p, m);
            p.iter_mut().for_each(|x| *x *= inv);
            p
        })
        .collect();
    let visible: usize = probs.iter().map(Vec::len).sum();
    let mut all: Vec<f32> = probs.into_iter().flatten().collect();
    all.par_sort_unstable_by(|a, b| b.total_cmp(a));
    let need = target * (shape.heads * rows) as f64;
    let mut mass = 0.0f64;
    let mut taken = all.len();
    for (c, &p) in all.iter().enumerate() {
        mass += p as f64;
        if mass >= need {
            taken = c + 1;
            break;
        }
    }
    Ok(taken as f64 / visible as f64)
}
