//! Naive references the fused kernels are tested against.

/// Decode-step attention in f64: `q` is `[q_heads, d]`, `k`/`v` are
/// `[kv_heads, n, d]`; query head `j` reads KV head `j / (q_heads/kv_heads)`.
/// `keep` (`[kv_heads, n]`), when given, drops the tokens marked false.
/// Returns `[q_heads, d]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(q: &[f32], k: &[f32], v: &[f32], q_heads: usize, kv_heads: usize, d: usize, scale: f32, keep: Option<&[bool]>) -> Vec<f32> {
    let n = k.len() / (kv_heads * d);
    let g = q_heads / kv_heads;
    let mut out = vec![0f32; q_heads * d];
    for j in 0..q_heads {
        let h = j / g;
        let qj = &q[j * d..(j + 1) * d];
        let live: Vec<usize> = (0..n).filter(|&t| keep.is_none_or(|m| m[h * n + t])).collect();
        let s: Vec<f64> = live
            .iter()
            .map(|&t| (0..d).map(|c| qj[c] as f64 * k[(h * n + t) * d + c] as f64).sum::<f64>() * scale as f64)
            .collect();
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = w.iter().sum();
        for c in 0..d {
            let acc: f64 = live.iter().zip(&w).map(|(&t, wt)| wt * v[(h * n + t) * d + c] as f64).sum();
            out[j * d + c] = (acc / z) as f32;
        }
    }
    out
}

/// `‖a - b‖ / ‖b‖` in f64.
pub fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let ab: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let aa: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    let bb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
    ab / (aa.sqrt() * bb.sqrt()).max(1e-300)
}
