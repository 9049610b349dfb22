//! One call per sparse method, described by value: builds the method's index
//! or selection and runs the attention over it. This is what bindings call
//! (`attention.sparse` / `attention.recall` in Node), so a method needs no
//! state across calls; callers who reuse an index across steps use the
//! underlying types directly.

use crate::decode::{
    DuoPolicy, KeySelector, QuestIndex, Selection, SqueezedIndex, StreamingSelector, TopKSelector, decode_recall, sparse_decode,
};
use crate::dense::AttnOutput;
use crate::error::{Result, invalid};
use crate::metrics::Recall;
use crate::prefill::{PrefillPattern, SparseIndex, build_index_per_head, prefill_recall, sparse_attention};
use crate::retrieval::{ProbeOrder, RetrievalIndex, RetrievalParams};
use crate::shape::{AttnOptions, AttnShape, KvSlice};

/// A sparse attention method with its parameters. Prefill methods work for
/// any query length (queries aligned to the end of the keys when causal);
/// decode methods need one query per head (`q_len == 1`).
#[derive(Debug, Clone, PartialEq)]
pub enum SparseMethod {
    /// One prefill pattern for every head.
    Prefill(PrefillPattern),
    /// One prefill pattern per query head (e.g. from `search_patterns`).
    PerHead(Vec<PrefillPattern>),
    /// Decode: the first `sink` and last `recent` keys (StreamingLLM).
    Streaming { sink: usize, recent: usize },
    /// Decode: Quest pages of `page` keys, top pages covering `budget` keys.
    Quest { page: usize, budget: usize, sink: usize, recent: usize },
    /// Decode: Squeezed Attention, keys clustered by k-means, best clusters
    /// covering `budget` keys.
    Squeezed { clusters: usize, iterations: usize, budget: usize, sink: usize, recent: usize, seed: u64 },
    /// Decode: RetrievalAttention, an inner-product ANN index (quarry-ann)
    /// over each KV head's keys searched with the query for its `top_k`
    /// keys, probing `nprobe` lists (`None`: a tenth of them), plus sinks and
    /// the recent window.
    /// `group_union`: the query heads of a GQA group attend to the union of
    /// their retrieved keys (false: each to its own).
    Retrieval { params: RetrievalParams, top_k: usize, nprobe: Option<usize>, order: ProbeOrder, sink: usize, recent: usize, group_union: bool },
    /// Decode: exact top-`budget` keys by score (the oracle / TidalDecode
    /// selection layer).
    TopK { budget: usize, sink: usize, recent: usize },
    /// DuoAttention policy: dense for retrieval heads, sinks + window for
    /// streaming heads (prefill or decode).
    Duo(DuoPolicy),
    /// Given key positions per query head: for decode the keys attended; for
    /// prefill key columns every query row sees (clipped by causality).
    Keys(Selection),
}

/// Output of [`sparse`]: the attention, and for decode methods the keys each
/// query head attended.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseResult {
    pub attention: AttnOutput,
    pub selection: Option<Selection>,
}

enum Plan {
    Index(SparseIndex),
    Decode(Selection),
}

fn need_decode(shape: &AttnShape, what: &str) -> Result<()> {
    if shape.q_len != 1 {
        return invalid(format!("{what} is a decode method: it takes one query per head (q_len = {})", shape.q_len));
    }
    Ok(())
}

fn plan(q: &[f32], k: KvSlice, shape: &AttnShape, opts: &AttnOptions, method: &SparseMethod) -> Result<Plan> {
    let patterns = match method {
        SparseMethod::Prefill(p) => Some(vec![*p; shape.heads]),
        SparseMethod::PerHead(ps) => Some(ps.clone()),
        SparseMethod::Duo(policy) if shape.q_len != 1 => {
            if policy.retrieval.len() != shape.kv_heads {
                return crate::error::mismatch(format!(
                    "policy for {} kv heads, shape has {}",
                    policy.retrieval.len(),
                    shape.kv_heads
                ));
            }
            Some(policy.prefill_patterns(shape.heads))
        }
        _ => None,
    };
    if let Some(patterns) = patterns {
        return Ok(Plan::Index(build_index_per_head(q, k, shape, opts, &patterns)?));
    }
    if let SparseMethod::Keys(sel) = method
        && shape.q_len != 1
    {
        return Ok(Plan::Index(columns_index(shape, opts, sel)?));
    }
    let sel = match method {
        SparseMethod::Streaming { sink, recent } => {
            need_decode(shape, "streaming")?;
            StreamingSelector { sink: *sink, recent: *recent }.select(q, shape)?
        }
        SparseMethod::Quest { page, budget, sink, recent } => {
            need_decode(shape, "quest")?;
            QuestIndex::build(k, shape, *page)?.selector(*budget, *sink, *recent).select(q, shape)?
        }
        SparseMethod::Squeezed { clusters, iterations, budget, sink, recent, seed } => {
            need_decode(shape, "squeezed")?;
            SqueezedIndex::build(k, shape, *clusters, *iterations, *seed)?.selector(*budget, *sink, *recent).select(q, shape)?
        }
        SparseMethod::Retrieval { params, top_k, nprobe, order, sink, recent, group_union } => {
            need_decode(shape, "retrieval")?;
            let index = RetrievalIndex::build(k, shape, params)?;
            let nprobe = nprobe.unwrap_or_else(|| index.nlist().div_ceil(10));
            index.selector(*top_k, *sink, *recent, nprobe).with_order(*order).with_group_union(*group_union).select(q, shape)?
        }
        SparseMethod::TopK { budget, sink, recent } => {
            need_decode(shape, "top-k")?;
            TopKSelector { k, budget: *budget, sink: *sink, recent: *recent }.select(q, shape)?
        }
        SparseMethod::Duo(policy) => policy.select(q, shape)?,
        SparseMethod::Keys(sel) => sel.clone(),
        SparseMethod::Prefill(_) | SparseMethod::PerHead(_) => unreachable!("prefill methods planned above"),
    };
    Ok(Plan::Decode(sel))
}

/// A prefill index where every query row of head `h` sees the columns
/// `sel.head(h)` (those causality allows).
fn columns_index(shape: &AttnShape, opts: &AttnOptions, sel: &Selection) -> Result<SparseIndex> {
    if sel.heads() != shape.heads || sel.kv_len() != shape.kv_len {
        return crate::error::mismatch(format!(
            "key sets for {} heads × {} keys, shape has {} × {}",
            sel.heads(),
            sel.kv_len(),
            shape.heads,
            shape.kv_len
        ));
    }
    let tiles = shape.q_len.div_ceil(opts.block);
    let sets: Vec<(Vec<[u32; 2]>, Vec<u32>)> =
        (0..shape.heads).flat_map(|h| (0..tiles).map(move |_| (Vec::new(), sel.head(h).to_vec()))).collect();
    SparseIndex::from_key_sets(shape, opts, &sets)
}

/// Runs `method`: its index or selection, then attention over those keys
/// only. `density` is the share of visible query-key pairs computed.
pub fn sparse<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    method: &SparseMethod,
) -> Result<SparseResult> {
    let (k, v) = (k.into(), v.into());
    match plan(q, k, shape, opts, method)? {
        Plan::Index(index) => Ok(SparseResult { attention: sparse_attention(q, k, v, shape, opts, &index)?, selection: None }),
        Plan::Decode(sel) => {
            let attention = sparse_decode(q, k, v, shape, opts, &sel)?;
            Ok(SparseResult { attention, selection: Some(sel) })
        }
    }
}

/// Attention recall of `method`'s keys: per query row, the share of the true
/// softmax mass on them, averaged per head and overall.
pub fn recall<'a>(q: &[f32], k: impl Into<KvSlice<'a>>, shape: &AttnShape, opts: &AttnOptions, method: &SparseMethod) -> Result<Recall> {
    let k = k.into();
    match plan(q, k, shape, opts, method)? {
        Plan::Index(index) => prefill_recall(q, k, shape, opts, &index),
        Plan::Decode(sel) => decode_recall(q, k, shape, opts, &sel),
    }
}

/// Candidates a per-head pattern search tries when the caller gives none:
/// A-shape windows, vertical-slash budgets (estimated from the last 64
/// queries, and with 64 more spread over the sequence; scattered diagonals
/// as bands, and as lines from the last 64; and per 4096-query segment from
/// its last 32 queries and 32 spread over it) and block top-k
/// thresholds from sparse to dense-ish, pooled and mean-query estimates
/// (budgets clamp to short sequences).
pub fn default_pattern_candidates() -> Vec<PrefillPattern> {
    use crate::prefill::ScoreEstimate::{MeanQuery, Pooled};
    let mut c = Vec::new();
    for window in [256, 1024, 4096] {
        c.push(PrefillPattern::AShape { sink: 64, window });
    }
    for (last_q, spread_q, slash_lines, segment) in [(64, 0, false, 0), (64, 64, false, 0), (64, 0, true, 0), (32, 32, false, 4096)] {
        for (vertical, slash) in [(500, 1000), (1000, 3000), (2000, 6000)] {
            c.push(PrefillPattern::VerticalSlash { vertical, slash, last_q, spread_q, slash_lines, segment });
        }
    }
    for gamma in [0.8, 0.9, 0.95] {
        c.push(PrefillPattern::BlockTopK { gamma, estimate: Pooled });
    }
    for gamma in [0.95, 0.98] {
        c.push(PrefillPattern::BlockTopK { gamma, estimate: MeanQuery });
    }
    c
}

/// Dense attention, routed by shape: one query per head goes through the
/// decode kernel (a row per head, parallel over heads), anything longer
/// through the tiled prefill kernel. Both see every visible key.
pub fn dense<'a>(q: &[f32], k: impl Into<KvSlice<'a>>, v: impl Into<KvSlice<'a>>, shape: &AttnShape, opts: &AttnOptions) -> Result<AttnOutput> {
    if shape.q_len == 1 {
        crate::decode::dense_decode(q, k, v, shape, opts)
    } else {
        crate::dense::dense_attention(q, k, v, shape, opts)
    }
}
