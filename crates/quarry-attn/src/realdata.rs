//! Per-layer Q/K/V dumps of a real model and the evaluation that runs every
//! prefill method on them (used by `examples/real.rs` and its test).
//!
//! A dump directory holds `meta.json` (`{layers, heads, kv_heads, head_dim,
//! tokens, ...}`) and per layer raw little-endian f32 files `L00.q.f32`,
//! `L00.k.f32`, `L00.v.f32` laid out `[heads or kv_heads, tokens,
//! head_dim]`.

use crate::dense::dense_attention;
use crate::error::{AttnError, Result};
use crate::metrics::{Recall, recall_from_lse, relative_error};
use crate::prefill::{PrefillPattern, SparseIndex, build_index, build_index_per_head, search_patterns, sparse_attention};
use crate::shape::{AttnOptions, AttnShape};
use std::path::Path;
use std::time::Instant;

/// `meta.json` of a dump.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpMeta {
    pub model: String,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub tokens: usize,
}

fn io(e: impl std::fmt::Display) -> AttnError {
    AttnError::Io(e.to_string())
}

/// Reads and checks `dir/meta.json`.
pub fn read_meta(dir: &Path) -> Result<DumpMeta> {
    let text = std::fs::read_to_string(dir.join("meta.json")).map_err(io)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(io)?;
    let field = |k: &str| -> Result<usize> {
        v.get(k)
            .and_then(|x| x.as_u64())
            .map(|x| x as usize)
            .ok_or_else(|| AttnError::Io(format!("meta.json: missing or bad '{k}'")))
    };
    let meta = DumpMeta {
        model: v.get("model").and_then(|x| x.as_str()).unwrap_or("unknown").to_string(),
        layers: field("layers")?,
        heads: field("heads")?,
        kv_heads: field("kv_heads")?,
        head_dim: field("head_dim")?,
        tokens: field("tokens")?,
    };
    AttnShape::prefill(meta.heads, meta.kv_heads, meta.tokens, meta.head_dim).validate(true)?;
    // The evaluations use the default softmax scale 1/sqrt(head_dim); a model that scales
    // otherwise (Gemma's query_pre_attn_scalar) would be measured on the wrong attention.
    if let Some(s) = v.get("attention_scale").and_then(|x| x.as_f64()) {
        let default = 1.0 / (meta.head_dim as f64).sqrt();
        if (s - default).abs() > 1e-6 * default {
            return Err(AttnError::Io(format!(
                "meta.json: attention_scale {s} is not 1/sqrt(head_dim) = {default}, which the evaluations assume"
            )));
        }
    }
    Ok(meta)
}

/// Writes `meta.json` (for synthetic dumps and tests).
pub fn write_meta(dir: &Path, meta: &DumpMeta) -> Result<()> {
    let v = serde_json::json!({
        "model": meta.model, "layers": meta.layers, "heads": meta.heads,
        "kv_heads": meta.kv_heads, "head_dim": meta.head_dim, "tokens": meta.tokens,
    });
    std::fs::write(dir.join("meta.json"), v.to_string()).map_err(io)
}

fn read_f32(path: &Path, expect: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| AttnError::Io(format!("{}: {e}", path.display())))?;
    if bytes.len() != expect * 4 {
        return Err(AttnError::DimMismatch(format!(
            "{}: {} bytes, meta.json implies {}",
            path.display(),
            bytes.len(),
            expect * 4
        )));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn write_f32(path: &Path, x: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(io)
}

/// Q, K, V of `layer`, each `[heads or kv_heads, tokens, head_dim]`.
pub fn read_layer(dir: &Path, meta: &DumpMeta, layer: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    if layer >= meta.layers {
        return Err(AttnError::InvalidArgument(format!("layer {layer} of {}", meta.layers)));
    }
    let qn = meta.heads * meta.tokens * meta.head_dim;
    let kn = meta.kv_heads * meta.tokens * meta.head_dim;
    let f = |x: &str| dir.join(format!("L{layer:02}.{x}.f32"));
    Ok((read_f32(&f("q"), qn)?, read_f32(&f("k"), kn)?, read_f32(&f("v"), kn)?))
}

/// Writes one layer in the dump format.
pub fn write_layer(dir: &Path, layer: usize, q: &[f32], k: &[f32], v: &[f32]) -> Result<()> {
    let f = |x: &str| dir.join(format!("L{layer:02}.{x}.f32"));
    write_f32(&f("q"), q)?;
    write_f32(&f("k"), k)?;
    write_f32(&f("v"), v)
}

/// The first `tokens` tokens of each head of a `[heads, n, d]` tensor.
pub fn truncate_tokens(x: &[f32], heads: usize, n: usize, d: usize, tokens: usize) -> Vec<f32> {
    let t = tokens.min(n);
    (0..heads).flat_map(|h| x[h * n * d..h * n * d + t * d].iter().copied()).collect()
}

/// One method's figures on one layer.
#[derive(Debug, Clone)]
pub struct MethodReport {
    pub method: String,
    pub recall: Recall,
    /// `‖out - dense‖ / ‖dense‖` over the layer.
    pub output_error: f64,
    pub density: f64,
    /// Index build plus sparse compute, seconds.
    pub seconds: f64,
    pub dense_seconds: f64,
}

impl MethodReport {
    pub fn speedup(&self) -> f64 {
        self.dense_seconds / self.seconds.max(1e-12)
    }
}

/// What to run per layer: named fixed patterns, and optionally a per-head
/// pattern search over those candidates with a recall target.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    pub methods: Vec<(String, PrefillPattern)>,
    pub search_target: Option<f64>,
}

impl EvalPlan {
    /// Default methods, budgets scaled to `tokens`.
    pub fn default_for(tokens: usize) -> Self {
        let window = (tokens / 16).clamp(256, 4096);
        let vertical = (tokens / 64).clamp(100, 1000);
        let slash = (tokens / 32).clamp(200, 2000);
        EvalPlan {
            methods: vec![
                ("a-shape".into(), PrefillPattern::AShape { sink: 64, window }),
                ("vertical-slash".into(), PrefillPattern::VerticalSlash { vertical, slash, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 }),
                ("block-topk g0.9".into(), PrefillPattern::BlockTopK { gamma: 0.9, estimate: crate::ScoreEstimate::Pooled }),
                ("block-topk g0.9 i4".into(), PrefillPattern::BlockTopK { gamma: 0.9, estimate: crate::ScoreEstimate::PooledI4 }),
                (
                    "block-topk g0.95 mean-query".into(),
                    PrefillPattern::BlockTopK { gamma: 0.95, estimate: crate::ScoreEstimate::MeanQuery },
                ),
            ],
            search_target: Some(0.95),
        }
    }
}

/// Runs dense and every method of `plan` on one layer. The search (if any)
/// calibrates on this same layer (in-sample), then is timed like the others.
pub fn evaluate_layer(q: &[f32], k: &[f32], v: &[f32], shape: &AttnShape, opts: &AttnOptions, plan: &EvalPlan) -> Result<Vec<MethodReport>> {
    let t0 = Instant::now();
    let dense = dense_attention(q, k, v, shape, opts)?;
    let dense_seconds = t0.elapsed().as_secs_f64();
    let mut out = Vec::new();
    let mut run = |name: String, make: &dyn Fn() -> Result<SparseIndex>| -> Result<()> {
        let t = Instant::now();
        let index = make()?;
        let sparse = sparse_attention(q, k, v, shape, opts, &index)?;
        let seconds = t.elapsed().as_secs_f64();
        out.push(MethodReport {
            method: name,
            recall: recall_from_lse(&sparse.lse, &dense.lse, shape.heads, shape.q_len),
            output_error: relative_error(&sparse.output, &dense.output),
            density: sparse.density,
            seconds,
            dense_seconds,
        });
        Ok(())
    };
    for (name, p) in &plan.methods {
        run(name.clone(), &|| build_index(q, k, shape, opts, p))?;
    }
    if let Some(target) = plan.search_target {
        let cands: Vec<PrefillPattern> = plan.methods.iter().map(|m| m.1).collect();
        let choice = search_patterns(q, k, shape, opts, &cands, target)?;
        run(format!("search@{target}"), &|| build_index_per_head(q, k, shape, opts, &choice.patterns))?;
    }
    Ok(out)
}
