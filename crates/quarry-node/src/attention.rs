//! `attention.*`: dense and sparse attention (`quarry-attn`).
//!
//! Q is `[heads, qLen, headDim]`, K and V `[kvHeads, kvLen, headDim]` as
//! `Float32Array` (or `Uint16Array` holding f16 bits); the lengths follow
//! from the array sizes. Sparse methods arrive as plain objects and become a
//! [`SparseMethod`]; defaults for missing fields are the constants below.

use crate::errors::{Result, coded, invalid_argument, node_error};
use crate::task::Job;
use half::f16;
use napi::bindgen_prelude::{AsyncTask, Either, Float32Array, Float64Array, Uint16Array, Uint32Array};
use napi_derive::napi;
use quarry_attn::api::{self, SparseMethod};
use quarry_attn::{
    AttnError, AttnOptions, AttnOutput, AttnShape, DuoPolicy, KvSlice, PrefillPattern, ProbeOrder, RetrievalParams, ScoreEstimate,
    Selection, TidalDecode,
};
use std::sync::Mutex;

impl From<AttnError> for crate::errors::Coded {
    fn from(e: AttnError) -> Self {
        crate::errors::Coded(node_error(e.code(), &e))
    }
}

/// Defaults of the sparse methods' parameters (documented in the facade).
mod defaults {
    pub const A_SHAPE_SINK: u32 = 64;
    pub const A_SHAPE_WINDOW: u32 = 1024;
    pub const VERTICAL: u32 = 1000;
    pub const SLASH: u32 = 6096;
    pub const LAST_Q: u32 = 64;
    pub const GAMMA: f64 = 0.9;
    pub const DECODE_SINK: u32 = 4;
    pub const DECODE_RECENT: u32 = 64;
    pub const STREAMING_RECENT: u32 = 1024;
    pub const PAGE: u32 = 16;
    pub const BUDGET: u32 = 2048;
    pub const SQUEEZE_ITERATIONS: u32 = 8;
    /// Squeezed clusters default to one per this many keys.
    pub const KEYS_PER_CLUSTER: usize = 16;
}

/// K or V: f32, or f16 bits.
pub type KvArray = Either<Float32Array, Uint16Array>;

fn kv_slice(a: &KvArray) -> KvSlice<'_> {
    match a {
        Either::A(f) => KvSlice::F32(f),
        Either::B(h) => KvSlice::F16(bytemuck::cast_slice::<u16, f16>(h)),
    }
}

/// K/V copied out of JS memory for work on another thread.
enum OwnedKv {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl OwnedKv {
    fn new(a: &KvArray) -> Self {
        match kv_slice(a) {
            KvSlice::F32(s) => OwnedKv::F32(s.to_vec()),
            KvSlice::F16(s) => OwnedKv::F16(s.to_vec()),
        }
    }

    fn slice(&self) -> KvSlice<'_> {
        match self {
            OwnedKv::F32(s) => KvSlice::F32(s),
            OwnedKv::F16(s) => KvSlice::F16(s),
        }
    }
}

/// Shape and options of an attention call (see the facade's `AttentionOptions`).
#[napi(object)]
pub struct NativeAttnOptions {
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub causal: Option<bool>,
    pub scale: Option<f64>,
    pub block: Option<u32>,
}

fn shape_and_opts(o: &NativeAttnOptions, q_elems: usize, kv_elems: usize) -> Result<(AttnShape, AttnOptions)> {
    let (heads, kv_heads, d) = (o.heads as usize, o.kv_heads as usize, o.head_dim as usize);
    if heads == 0 || kv_heads == 0 || d == 0 {
        return Err(invalid_argument("heads, kvHeads and headDim must be at least 1"));
    }
    if heads % kv_heads != 0 {
        return Err(invalid_argument(format!("heads ({heads}) must be a multiple of kvHeads ({kv_heads})")));
    }
    if !q_elems.is_multiple_of(heads * d) || !kv_elems.is_multiple_of(kv_heads * d) {
        return Err(node_error(
            "QUARRY_DIM_MISMATCH",
            format!(
                "q has {q_elems} values (not a multiple of heads×headDim = {}), or k has {kv_elems} (kvHeads×headDim = {})",
                heads * d,
                kv_heads * d
            ),
        ));
    }
    let shape = AttnShape::new(heads, kv_heads, q_elems / (heads * d), kv_elems / (kv_heads * d), d);
    let mut opts = AttnOptions { causal: o.causal.unwrap_or(true), ..AttnOptions::default() };
    if let Some(s) = o.scale {
        opts.scale = Some(s as f32);
    }
    if let Some(b) = o.block {
        opts.block = b as usize;
    }
    Ok((shape, opts))
}

/// A prefill pattern as a plain object: `pattern` is `dense`, `a-shape`,
/// `vertical-slash` or `block-topk`; other fields are its parameters.
#[napi(object)]
#[derive(Clone)]
pub struct NativePrefillPattern {
    pub pattern: String,
    pub sink: Option<u32>,
    pub window: Option<u32>,
    pub vertical: Option<u32>,
    pub slash: Option<u32>,
    pub last_q: Option<u32>,
    pub spread_q: Option<u32>,
    pub slash_lines: Option<bool>,
    pub segment: Option<u32>,
    pub gamma: Option<f64>,
    pub estimate: Option<String>,
}

fn prefill_pattern(p: &NativePrefillPattern) -> Result<PrefillPattern> {
    use defaults::*;
    Ok(match p.pattern.as_str() {
        "dense" => PrefillPattern::Dense,
        "a-shape" => PrefillPattern::AShape {
            sink: p.sink.unwrap_or(A_SHAPE_SINK) as usize,
            window: p.window.unwrap_or(A_SHAPE_WINDOW) as usize,
        },
        "vertical-slash" => PrefillPattern::VerticalSlash {
            vertical: p.vertical.unwrap_or(VERTICAL) as usize,
            slash: p.slash.unwrap_or(SLASH) as usize,
            last_q: p.last_q.unwrap_or(LAST_Q) as usize,
            spread_q: p.spread_q.unwrap_or(0) as usize,
            slash_lines: p.slash_lines.unwrap_or(false),
            segment: p.segment.unwrap_or(0) as usize,
        },
        "block-topk" => PrefillPattern::BlockTopK {
            gamma: p.gamma.unwrap_or(GAMMA) as f32,
            estimate: match p.estimate.as_deref().unwrap_or("pooled") {
                "pooled" => ScoreEstimate::Pooled,
                "i8" => ScoreEstimate::PooledI8,
                "i4" => ScoreEstimate::PooledI4,
                "mean-query" => ScoreEstimate::MeanQuery,
                other => {
                    return Err(invalid_argument(format!("estimate must be 'pooled', 'i8', 'i4' or 'mean-query', got '{other}'")));
                }
            },
        },
        other => {
            return Err(invalid_argument(format!(
                "prefill pattern must be 'dense', 'a-shape', 'vertical-slash' or 'block-topk', got '{other}'"
            )));
        }
    })
}

fn pattern_object(p: &PrefillPattern) -> NativePrefillPattern {
    let mut o = NativePrefillPattern {
        pattern: p.name().to_string(),
        sink: None,
        window: None,
        vertical: None,
        slash: None,
        last_q: None,
        spread_q: None,
        slash_lines: None,
        segment: None,
        gamma: None,
        estimate: None,
    };
    match *p {
        PrefillPattern::Dense => {}
        PrefillPattern::AShape { sink, window } => {
            o.sink = Some(sink as u32);
            o.window = Some(window as u32);
        }
        PrefillPattern::VerticalSlash { vertical, slash, last_q, spread_q, slash_lines, segment } => {
            o.vertical = Some(vertical as u32);
            o.slash = Some(slash as u32);
            o.last_q = Some(last_q as u32);
            o.spread_q = Some(spread_q as u32);
            o.slash_lines = Some(slash_lines);
            o.segment = Some(segment as u32);
        }
        PrefillPattern::BlockTopK { gamma, estimate } => {
            o.gamma = Some(gamma as f64);
            o.estimate = Some(
                match estimate {
                    ScoreEstimate::Pooled => "pooled",
                    ScoreEstimate::PooledI8 => "i8",
                    ScoreEstimate::PooledI4 => "i4",
                    ScoreEstimate::MeanQuery => "mean-query",
                }
                .to_string(),
            );
        }
    }
    o
}

/// A sparse method as a plain object (see the facade's `SparseOptions`).
#[napi(object)]
pub struct NativeSparseMethod {
    pub pattern: String,
    pub sink: Option<u32>,
    pub window: Option<u32>,
    pub vertical: Option<u32>,
    pub slash: Option<u32>,
    pub last_q: Option<u32>,
    pub spread_q: Option<u32>,
    pub slash_lines: Option<bool>,
    pub segment: Option<u32>,
    pub gamma: Option<f64>,
    pub estimate: Option<String>,
    pub recent: Option<u32>,
    pub page_size: Option<u32>,
    pub budget: Option<u32>,
    pub clusters: Option<u32>,
    pub iterations: Option<u32>,
    pub seed: Option<f64>,
    /// `per-head`: one prefill pattern per query head.
    pub patterns: Option<Vec<NativePrefillPattern>>,
    /// `duo`: per KV head, true = retrieval (full) head.
    pub retrieval_heads: Option<Vec<bool>>,
    /// `keys`: key positions per query head.
    pub keys: Option<Vec<Uint32Array>>,
    /// `retrieval`: lists probed (default a tenth), lists built (0 = auto),
    /// index kind (`ivf-flat` default, `flat`, `ivf-sq8`, `ivf-pq`), probe
    /// order (`centroid` default, or `bound`), and whether each query head
    /// attends to its own retrieved keys (default false: the GQA group's union).
    pub nprobe: Option<u32>,
    pub nlist: Option<u32>,
    pub index_kind: Option<String>,
    pub probe_order: Option<String>,
    pub per_head: Option<bool>,
}

fn sparse_method(m: &NativeSparseMethod, shape: &AttnShape) -> Result<SparseMethod> {
    use defaults::*;
    let sink = m.sink.unwrap_or(DECODE_SINK) as usize;
    let recent = m.recent.unwrap_or(DECODE_RECENT) as usize;
    let budget = m.budget.unwrap_or(BUDGET) as usize;
    let seed = match m.seed {
        None => 0,
        Some(s) if s.is_finite() && s >= 0.0 && s.fract() == 0.0 => s as u64,
        Some(s) => return Err(invalid_argument(format!("seed must be a non-negative integer, got {s}"))),
    };
    Ok(match m.pattern.as_str() {
        "dense" | "a-shape" | "vertical-slash" | "block-topk" => SparseMethod::Prefill(prefill_pattern(&NativePrefillPattern {
            pattern: m.pattern.clone(),
            sink: m.sink,
            window: m.window,
            vertical: m.vertical,
            slash: m.slash,
            last_q: m.last_q,
            spread_q: m.spread_q,
            slash_lines: m.slash_lines,
            segment: m.segment,
            gamma: m.gamma,
            estimate: m.estimate.clone(),
        })?),
        "per-head" => {
            let ps = m.patterns.as_ref().ok_or_else(|| invalid_argument("pattern 'per-head' needs `patterns`"))?;
            SparseMethod::PerHead(ps.iter().map(prefill_pattern).collect::<Result<_>>()?)
        }
        "streaming" => SparseMethod::Streaming { sink, recent: m.recent.unwrap_or(STREAMING_RECENT) as usize },
        "quest" => SparseMethod::Quest { page: m.page_size.unwrap_or(PAGE) as usize, budget, sink, recent },
        "squeezed" => SparseMethod::Squeezed {
            clusters: m.clusters.map_or(shape.kv_len.div_ceil(KEYS_PER_CLUSTER).max(1), |c| c as usize),
            iterations: m.iterations.unwrap_or(SQUEEZE_ITERATIONS) as usize,
            budget,
            sink,
            recent,
            seed,
        },
        "top-k" => SparseMethod::TopK { budget, sink, recent },
        "retrieval" => {
            let mut params = RetrievalParams::default();
            if m.seed.is_some() {
                params.seed = seed;
            }
            if let Some(kind) = &m.index_kind {
                params.kind = quarry_ann::Kind::parse(kind).map_err(coded)?;
            }
            if let Some(n) = m.nlist {
                params.nlist = n as usize;
            }
            let order = match m.probe_order.as_deref().unwrap_or("centroid") {
                "centroid" => ProbeOrder::Centroid,
                "bound" => ProbeOrder::Bound,
                other => return Err(invalid_argument(format!("probeOrder must be 'centroid' or 'bound', got '{other}'"))),
            };
            let group_union = !m.per_head.unwrap_or(false);
            SparseMethod::Retrieval { params, top_k: budget, nprobe: m.nprobe.map(|n| n as usize), order, sink, recent, group_union }
        }
        "duo" => SparseMethod::Duo(DuoPolicy {
            retrieval: m.retrieval_heads.clone().ok_or_else(|| invalid_argument("pattern 'duo' needs `retrievalHeads`"))?,
            sink: m.sink.unwrap_or(A_SHAPE_SINK) as usize,
            window: m.window.unwrap_or(A_SHAPE_WINDOW) as usize,
            streaming_recall: Vec::new(),
        }),
        "keys" => {
            let keys = m.keys.as_ref().ok_or_else(|| invalid_argument("pattern 'keys' needs `keys` (one Uint32Array per query head)"))?;
            SparseMethod::Keys(Selection::new(keys.iter().map(|k| k.to_vec()).collect(), shape.kv_len).map_err(coded)?)
        }
        other => {
            return Err(invalid_argument(format!(
                "unknown pattern '{other}' (a-shape, vertical-slash, block-topk, per-head, streaming, quest, squeezed, retrieval, top-k, duo, keys)"
            )));
        }
    })
}

/// Attention output: `[heads, qLen, headDim]`, log-sum-exp per query row,
/// density, and for decode methods the keys each query head attended.
#[napi(object)]
pub struct NativeAttnResult {
    pub output: Float32Array,
    pub lse: Float32Array,
    pub density: f64,
    pub selection: Option<Vec<Uint32Array>>,
}

fn attn_result(a: AttnOutput, sel: Option<Selection>) -> NativeAttnResult {
    NativeAttnResult {
        output: Float32Array::new(a.output),
        lse: Float32Array::new(a.lse),
        density: a.density,
        selection: sel.map(|s| (0..s.heads()).map(|h| Uint32Array::new(s.head(h).to_vec())).collect()),
    }
}

fn run_dense(q: &[f32], k: KvSlice, v: KvSlice, shape: &AttnShape, opts: &AttnOptions) -> Result<NativeAttnResult> {
    let out = api::dense(q, k, v, shape, opts).map_err(coded)?;
    Ok(attn_result(out, None))
}

fn run_sparse(q: &[f32], k: KvSlice, v: KvSlice, shape: &AttnShape, opts: &AttnOptions, m: &SparseMethod) -> Result<NativeAttnResult> {
    let r = api::sparse(q, k, v, shape, opts, m).map_err(coded)?;
    Ok(attn_result(r.attention, r.selection))
}

/// Dense attention on the calling thread.
#[napi]
pub fn attention_dense(q: Float32Array, k: KvArray, v: KvArray, options: NativeAttnOptions) -> Result<NativeAttnResult> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    run_dense(&q, kv_slice(&k), kv_slice(&v), &shape, &opts)
}

/// Dense attention on the libuv pool.
#[napi(ts_return_type = "Promise<NativeAttnResult>")]
pub fn attention_dense_async(
    q: Float32Array,
    k: KvArray,
    v: KvArray,
    options: NativeAttnOptions,
) -> Result<AsyncTask<Job<NativeAttnResult>>> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    let (q, k, v) = (q.to_vec(), OwnedKv::new(&k), OwnedKv::new(&v));
    Ok(AsyncTask::new(Job::new(move || run_dense(&q, k.slice(), v.slice(), &shape, &opts))))
}

/// Sparse attention by method, on the calling thread.
#[napi]
pub fn attention_sparse(
    q: Float32Array,
    k: KvArray,
    v: KvArray,
    options: NativeAttnOptions,
    method: NativeSparseMethod,
) -> Result<NativeAttnResult> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    let m = sparse_method(&method, &shape)?;
    run_sparse(&q, kv_slice(&k), kv_slice(&v), &shape, &opts, &m)
}

/// Sparse attention by method, on the libuv pool.
#[napi(ts_return_type = "Promise<NativeAttnResult>")]
pub fn attention_sparse_async(
    q: Float32Array,
    k: KvArray,
    v: KvArray,
    options: NativeAttnOptions,
    method: NativeSparseMethod,
) -> Result<AsyncTask<Job<NativeAttnResult>>> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    let m = sparse_method(&method, &shape)?;
    let (q, k, v) = (q.to_vec(), OwnedKv::new(&k), OwnedKv::new(&v));
    Ok(AsyncTask::new(Job::new(move || run_sparse(&q, k.slice(), v.slice(), &shape, &opts, &m))))
}

/// Attention recall: the share of the true softmax mass on the selected keys.
#[napi(object)]
pub struct NativeRecall {
    pub mean: f64,
    pub min: f64,
    pub per_head: Float64Array,
}

/// Recall of a method's keys (`keys` gives them explicitly).
#[napi]
pub fn attention_recall(q: Float32Array, k: KvArray, options: NativeAttnOptions, method: NativeSparseMethod) -> Result<NativeRecall> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    let m = sparse_method(&method, &shape)?;
    let r = api::recall(&q, kv_slice(&k), &shape, &opts, &m).map_err(coded)?;
    Ok(NativeRecall { mean: r.mean, min: r.min, per_head: Float64Array::new(r.per_head) })
}

/// `‖out − reference‖₂ / ‖reference‖₂`.
#[napi]
pub fn attention_relative_error(out: Float32Array, reference: Float32Array) -> Result<f64> {
    if out.len() != reference.len() {
        return Err(node_error("QUARRY_DIM_MISMATCH", format!("{} vs {} values", out.len(), reference.len())));
    }
    Ok(quarry_attn::relative_error(&out, &reference))
}

/// Result of `searchPatterns`: the cheapest pattern per query head meeting the target.
#[napi(object)]
pub struct NativePatternChoice {
    pub patterns: Vec<NativePrefillPattern>,
    pub recall: Float64Array,
    pub density: Float64Array,
}

/// MInference's offline step on calibration Q/K (prefill shape).
#[napi]
pub fn attention_search_patterns(
    q: Float32Array,
    k: KvArray,
    options: NativeAttnOptions,
    candidates: Option<Vec<NativePrefillPattern>>,
    target: f64,
    sample_tiles: Option<u32>,
) -> Result<NativePatternChoice> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    let cands = match candidates {
        None => api::default_pattern_candidates(),
        Some(c) if c.is_empty() => return Err(invalid_argument("searchPatterns needs at least one candidate pattern")),
        Some(c) => c.iter().map(prefill_pattern).collect::<Result<Vec<_>>>()?,
    };
    let tiles = sample_tiles.unwrap_or(0) as usize;
    let c = quarry_attn::search_patterns_sampled(&q, kv_slice(&k), &shape, &opts, &cands, target, tiles).map_err(coded)?;
    Ok(NativePatternChoice {
        patterns: c.patterns.iter().map(pattern_object).collect(),
        recall: Float64Array::new(c.recall),
        density: Float64Array::new(c.density),
    })
}

/// A DuoAttention policy: per KV head, retrieval (full) or streaming.
#[napi(object)]
pub struct NativeDuoPolicy {
    pub retrieval_heads: Vec<bool>,
    pub sink: u32,
    pub window: u32,
    pub streaming_recall: Float64Array,
}

/// Calibrates a DuoAttention policy on prefill Q/K.
#[napi]
pub fn attention_duo_calibrate(
    q: Float32Array,
    k: KvArray,
    options: NativeAttnOptions,
    sink: u32,
    window: u32,
    target: f64,
) -> Result<NativeDuoPolicy> {
    let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
    let p = DuoPolicy::calibrate(&q, kv_slice(&k), &shape, &opts, sink as usize, window as usize, target).map_err(coded)?;
    Ok(NativeDuoPolicy {
        retrieval_heads: p.retrieval,
        sink: p.sink as u32,
        window: p.window as u32,
        streaming_recall: Float64Array::new(p.streaming_recall),
    })
}

/// TidalDecode: selection layers pick exact top-k keys, later layers of the
/// same step reuse them.
#[napi]
pub struct NativeTidalDecoder {
    inner: Mutex<TidalDecode>,
}

#[napi]
impl NativeTidalDecoder {
    #[napi(constructor)]
    pub fn new(selection_layers: Vec<u32>, budget: u32, sink: u32, recent: u32) -> Self {
        let layers = selection_layers.into_iter().map(|l| l as usize).collect();
        NativeTidalDecoder { inner: Mutex::new(TidalDecode::new(layers, budget as usize, sink as usize, recent as usize)) }
    }

    /// Decode attention of `layer` (call the layers of one step in order).
    #[napi]
    pub fn attend(&self, layer: u32, q: Float32Array, k: KvArray, v: KvArray, options: NativeAttnOptions) -> Result<NativeAttnResult> {
        let (shape, opts) = shape_and_opts(&options, q.len(), kv_slice(&k).len())?;
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let out = t.attend(layer as usize, &q, kv_slice(&k), kv_slice(&v), &shape, &opts).map_err(coded)?;
        let sel = t.selection().cloned();
        Ok(attn_result(out, sel))
    }

    /// Starts a new decode step.
    #[napi]
    pub fn reset(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).reset();
    }
}
