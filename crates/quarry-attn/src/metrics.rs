//! Attention recall, output error and helpers.

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
