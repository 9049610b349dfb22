//! Dense attention: the tiled kernel and the naive reference it is tested
//! against.

use crate::error::Result;
use crate::kernel::{Ctx, PreparedKv, dense_job};
use crate::simd::{Level, PANEL};

/// Dense runs use query tiles of twice the options' block (at most 256) and
/// key ranges of twice the tile: the block sizes the sparse methods'
/// selection units, while for dense attention larger tiles mean fewer
/// online-softmax rescales and longer GEMMs (measured ~10% faster at 8k-64k).
/// Blocks are validated multiples of 16 (= [`PANEL`]), so every range starts
/// on a panel of the packed K and V.
fn dense_tiles(opts: &AttnOptions) -> (AttnOptions, usize) {
    let tiled = opts.with_block((2 * opts.block).min(256));
    let span = 2 * tiled.block;
    debug_assert!(span.is_multiple_of(PANEL));
    (tiled, span)
}
use crate::shape::{AttnOptions, AttnShape, KvSlice, check_all};

/// Output of an attention call.
#[derive(Debug, Clone, PartialEq)]
pub struct AttnOutput {
    /// `[heads, q_len, head_dim]`.
    pub output: Vec<f32>,
    /// Natural log of the softmax denominator of each query row,
    /// `[heads, q_len]` (`-inf` for a row that saw no key).
    pub lse: Vec<f32>,
    /// Share of the visible query-key pairs that were computed (1 for dense).
    pub density: f64,
}

/// Tiled dense attention with online softmax (FlashAttention-style): causal
/// or not, grouped-query, f32 or f16 K/V, parallel over heads and query
/// tiles. Matches [`naive_attention`] to about 1e-6 relative.
///
/// `q_len == 0` gives an empty output.
pub fn dense_attention<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
) -> Result<AttnOutput> {
    let (k, v) = (k.into(), v.into());
    check_all(q, &k, Some(&v), shape, opts)?;
    let kv = PreparedKv::for_dense(&k, Some(&v), shape, Level::resolve(opts.kernel));
    let (tiled, span) = dense_tiles(opts);
    let ctx = Ctx::new(&tiled, shape, q, &kv, true).with_key_span(span);
    let (output, lse) = ctx.run(|_, t, job| dense_job(shape, opts.causal, tiled.block, span, t, job));
    Ok(AttnOutput { output, lse, density: 1.0 })
}

/// Log-sum-exp of every query row over all visible keys (no V, no output):
/// the denominator attention recall is measured against.
pub fn dense_lse<'a>(q: &[f32], k: impl Into<KvSlice<'a>>, shape: &AttnShape, opts: &AttnOptions) -> Result<Vec<f32>> {
    let k = k.into();
    check_all(q, &k, None, shape, opts)?;
    let kv = PreparedKv::for_dense(&k, None, shape, Level::resolve(opts.kernel));
    let (tiled, span) = dense_tiles(opts);
    let ctx = Ctx::new(&tiled, shape, q, &kv, false).with_key_span(span);
    Ok(ctx.run(|_, t, job| dense_job(shape, opts.causal, tiled.block, span, t, job)).1)
}

/// Reference attention: the full score matrix of each row materialised in
/// f64, exact softmax, f64 accumulation. Slow (no tiling, one thread); for
/// tests and small checks. Returns `[heads, q_len, head_dim]`.
pub fn naive_attention<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
) -> Result<Vec<f32>> {
    let (k, v) = (k.into(), v.into());
    check_all(q, &k, Some(&v), shape, opts)?;
    Ok(naive_rows(q, &k, Some(&v), shape, opts).0)
}

/// Per-row probabilities of the reference attention: calls `f(head, row,
/// probs)` with the exact softmax over visible keys (f64). Used by the
/// recall metrics' reference and the tests.
pub fn naive_probs<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    mut f: impl FnMut(usize, usize, &[f64]),
) -> Result<()> {
    let k = k.into();
    check_all(q, &k, None, shape, opts)?;
    let d = shape.head_dim;
    let scale = opts.scale_for(d) as f64;
    let mut krow = vec![0.0f32; d];
    let mut p = vec![0.0f64; shape.kv_len];
    for h in 0..shape.heads {
        let g = h / shape.group();
        for i in 0..shape.q_len {
            let qi = &q[(h * shape.q_len + i) * d..][..d];
            let end = if opts.causal { shape.q_pos(i) + 1 } else { shape.kv_len };
            let mut mx = f64::NEG_INFINITY;
            for (j, pj) in p[..end].iter_mut().enumerate() {
                k.read((g * shape.kv_len + j) * d, &mut krow);
                let s: f64 = qi.iter().zip(&krow).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() * scale;
                *pj = s;
                mx = mx.max(s);
            }
            let mut sum = 0.0;
            for pj in &mut p[..end] {
                *pj = (*pj - mx).exp();
                sum += *pj;
            }
            for pj in &mut p[..end] {
                *pj /= sum;
            }
            f(h, i, &p[..end]);
        }
    }
    Ok(())
}

fn naive_rows(q: &[f32], k: &KvSlice, v: Option<&KvSlice>, shape: &AttnShape, opts: &AttnOptions) -> (Vec<f32>, ()) {
    let d = shape.head_dim;
    let mut out = vec![0.0f32; shape.q_elems()];
    let mut vrow = vec![0.0f32; d];
    let mut acc = vec![0.0f64; d];
    let v = v.expect("naive_rows needs v");
    let _ = naive_probs(q, *k, shape, opts, |h, i, p| {
        let g = h / shape.group();
        acc.fill(0.0);
        for (j, &pj) in p.iter().enumerate() {
            v.read((g * shape.kv_len + j) * d, &mut vrow);
            for (a, &x) in acc.iter_mut().zip(&vrow) {
                *a += pj * x as f64;
            }
        }
        for (o, a) in out[(h * shape.q_len + i) * d..][..d].iter_mut().zip(&acc) {
            *o = *a as f32;
        }
    });
    (out, ())
}
