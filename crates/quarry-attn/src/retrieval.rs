//! RetrievalAttention-style decode selection: an ANN index (quarry-ann) over
//! each KV head's cached keys, searched by maximum inner product with the
//! decode query; attention then runs exactly over the retrieved keys plus
//! attention sinks and a recent window.
//!
//! Decode queries are out of distribution for the keys (RetrievalAttention's
//! observation: q and k come from different projections, so a query's
//! nearest keys by inner product need not sit in the lists whose centroid
//! scores best). Two probe orders are offered and measured:
//!
//! * [`ProbeOrder::Centroid`]: lists by `q · c` (what an IVF index does);
//! * [`ProbeOrder::Bound`]: lists by the upper bound
//!   `q · c + ‖q‖ · r` (`r` = the list's radius, Cauchy–Schwarz), and the scan
//!   stops early once no unprobed list can beat the current k-th best score.
//!   With `nprobe = nlist` this is exact top-k; smaller `nprobe` caps the
//!   work. It does not rely on queries looking like keys.
//!
//! Flat-coded kinds (`flat`, `ivf-flat`) are scanned here over the index's
//! own lists (so every scored key is counted); coded kinds (`ivf-sq8`,
//! `ivf-pq`, ...) go through quarry-ann's search with exact re-ranking.
//!
//! GQA: each query head searches; by default a KV head's retrieved set is
//! the union over its query heads, and every query head of the group attends
//! to that union (the keys are loaded once per KV head anyway); with
//! `group_union` off each query head attends to its own keys, as
//! RetrievalAttention's per-head retrieval (fewer keys per head for the
//! same `top_k`).

use crate::decode::{KeySelector, Selection};
use crate::error::{AttnError, Result, invalid};
use crate::shape::{AttnShape, KvSlice};
use quarry_ann::index::{Encoder, IndexData};
use quarry_ann::{Control, IndexConfig, Kind, Metric, SearchParams};
use quarry_simd::topk::TopK;
use rayon::prelude::*;

/// How probed lists are ordered (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ProbeOrder {
    /// By centroid inner product `q · c`.
    #[default]
    Centroid,
    /// By the bound `q · c + ‖q‖ · r`, stopping when no list can improve the
    /// top-k (flat-coded kinds; coded kinds fall back to `Centroid`).
    Bound,
    /// By `q · c + w · ‖q‖ · r` (`w` in `[0, 1]` interpolates between the
    /// two; no early stop below 1).
    Weighted(f32),
}

impl ProbeOrder {
    fn radius_weight(self) -> f32 {
        match self {
            ProbeOrder::Centroid => 0.0,
            ProbeOrder::Bound => 1.0,
            ProbeOrder::Weighted(w) => w,
        }
    }
}

/// How to build a [`RetrievalIndex`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalParams {
    /// quarry-ann index kind: `Flat` (exact scan), `IvfFlat` (default),
    /// `IvfSq8`, `IvfPq`, ... (inner-product metric in every case).
    pub kind: Kind,
    /// IVF lists per KV head; 0 = auto (`kv_len / 64`, within `1..=1024`),
    /// clamped to `kv_len`.
    pub nlist: usize,
    /// k-means iterations of the coarse quantizer.
    pub kmeans_iterations: usize,
    /// k-means training sub-sample per centroid.
    pub max_points_per_centroid: usize,
    /// PQ sub-spaces for the PQ kinds (0 = quarry-ann's default).
    pub pq_m: usize,
    /// Exact re-ranking depth for coded kinds (0 = `4 × top_k`).
    pub rerank: usize,
    pub seed: u64,
}

impl Default for RetrievalParams {
    fn default() -> Self {
        RetrievalParams {
            kind: Kind::IvfFlat,
            nlist: 0,
            kmeans_iterations: 10,
            max_points_per_centroid: 64,
            pq_m: 0,
            rerank: 0,
            seed: 0x5eed,
        }
    }
}

/// Per-KV-head inner-product indexes over the keys of a cache.
#[derive(Debug)]
pub struct RetrievalIndex {
    kv_heads: usize,
    head_dim: usize,
    kv_len: usize,
    rerank: usize,
    heads: Vec<HeadIndex>,
}

#[derive(Debug)]
struct HeadIndex {
    data: IndexData,
    /// Per list: max ‖k − c‖ over its keys (0 for empty lists / flat).
    radius: Vec<f32>,
}

fn ann(e: quarry_ann::AnnError) -> AttnError {
    AttnError::InvalidArgument(format!("retrieval index: {e}"))
}

impl RetrievalIndex {
    /// Builds one index per KV head over `k` (`[kv_heads, kv_len, head_dim]`).
    /// Keys must be finite.
    pub fn build<'a>(k: impl Into<KvSlice<'a>>, shape: &AttnShape, params: &RetrievalParams) -> Result<Self> {
        let k = k.into();
        shape.validate(false)?;
        shape.check_kv("k", k.len())?;
        if shape.kv_len == 0 {
            return invalid("retrieval index over zero keys");
        }
        let (n, d) = (shape.kv_len, shape.head_dim);
        let nlist = if params.nlist == 0 { (n / 64).clamp(1, 1024) } else { params.nlist }.min(n);
        let mut cfg = IndexConfig::new(d, Metric::InnerProduct, params.kind);
        cfg.nlist = nlist;
        cfg.kmeans_iterations = params.kmeans_iterations.max(1);
        cfg.max_points_per_centroid = params.max_points_per_centroid;
        cfg.seed = params.seed;
        if params.pq_m > 0 {
            cfg.pq_m = params.pq_m;
        }
        let heads = (0..shape.kv_heads)
            .map(|g| {
                let mut keys = vec![0.0f32; n * d];
                k.read(g * n * d, &mut keys);
                let mut data = IndexData::train(cfg.clone(), &keys, Control::none()).map_err(ann)?;
                data.add(&keys, None, None, Control::none()).map_err(ann)?;
                let radius = list_radii(&data, &keys, d);
                Ok(HeadIndex { data, radius })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RetrievalIndex { kv_heads: shape.kv_heads, head_dim: d, kv_len: n, rerank: params.rerank, heads })
    }

    /// Lists per KV head (1 for non-IVF kinds).
    pub fn nlist(&self) -> usize {
        self.heads.first().map_or(0, |h| h.data.nlist())
    }

    pub fn kind(&self) -> Kind {
        self.heads.first().map_or(Kind::Flat, |h| h.data.config.kind)
    }

    /// Heap bytes of the indexes (all KV heads).
    pub fn bytes(&self) -> usize {
        self.heads.iter().map(|h| h.data.bytes().0 + h.radius.len() * 4).sum()
    }

    /// A selector retrieving `top_k` keys per query head (union per KV head;
    /// see [`RetrievalSelector::with_group_union`]),
    /// plus the first `sink` and last `recent` keys, probing at most `nprobe`
    /// lists (clamped to `1..=nlist`), in [`ProbeOrder::Centroid`] order
    /// (see [`RetrievalSelector::with_order`]).
    pub fn selector(&self, top_k: usize, sink: usize, recent: usize, nprobe: usize) -> RetrievalSelector<'_> {
        RetrievalSelector { index: self, top_k, sink, recent, nprobe, order: ProbeOrder::default(), group_union: true }
    }
}

/// Radius of each list: max distance of its keys to its centroid.
fn list_radii(data: &IndexData, keys: &[f32], d: usize) -> Vec<f32> {
    if !data.config.kind.is_ivf() {
        return vec![0.0; data.nlist()];
    }
    data.lists
        .iter()
        .enumerate()
        .map(|(l, list)| {
            let c = &data.centroids[l * d..(l + 1) * d];
            list.positions
                .iter()
                .map(|&p| {
                    let kr = &keys[p as usize * d..(p as usize + 1) * d];
                    kr.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()
                })
                .fold(0.0f32, f32::max)
                .sqrt()
        })
        .collect()
}

/// What one selection cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetrievalStats {
    /// Keys whose score the search computed (codes or floats), summed over
    /// query heads.
    pub scanned_keys: usize,
    /// Lists probed, summed over query heads.
    pub probed_lists: usize,
    /// Centroids scored, summed over query heads.
    pub centroids_scored: usize,
}

/// Retrieval selection over a [`RetrievalIndex`].
#[derive(Debug, Clone, Copy)]
pub struct RetrievalSelector<'a> {
    pub index: &'a RetrievalIndex,
    /// Keys retrieved per query head (`>= kv_len` with full probing = dense).
    pub top_k: usize,
    pub sink: usize,
    pub recent: usize,
    /// Most lists probed per query head.
    pub nprobe: usize,
    pub order: ProbeOrder,
    /// true: every query head of a GQA group attends to the union of the
    /// group's retrieved keys (one key set per KV head); false: each query
    /// head attends to its own (RetrievalAttention's per-head retrieval).
    pub group_union: bool,
}

impl RetrievalSelector<'_> {
    pub fn with_order(self, order: ProbeOrder) -> Self {
        RetrievalSelector { order, ..self }
    }

    /// See [`RetrievalSelector::group_union`].
    pub fn with_group_union(self, group_union: bool) -> Self {
        RetrievalSelector { group_union, ..self }
    }

    /// The selection and its search cost.
    pub fn select_with_stats(&self, q: &[f32], shape: &AttnShape) -> Result<(Selection, RetrievalStats)> {
        let ix = self.index;
        crate::decode::check_built_for("retrieval", (ix.kv_heads, ix.head_dim, ix.kv_len), shape)?;
        shape.validate(false)?;
        if shape.q_len != 1 {
            return invalid(format!("decode takes one query per head (q_len = {})", shape.q_len));
        }
        shape.check_q(q)?;
        let d = shape.head_dim;
        let top_k = self.top_k.min(shape.kv_len);
        let per_q: Vec<(Vec<u32>, RetrievalStats)> = (0..shape.heads)
            .into_par_iter()
            .map(|h| {
                let g = h / shape.group();
                self.search_head(&ix.heads[g], &q[h * d..(h + 1) * d], top_k)
            })
            .collect::<Result<_>>()?;
        let mut stats = RetrievalStats::default();
        for (_, s) in &per_q {
            stats.scanned_keys += s.scanned_keys;
            stats.probed_lists += s.probed_lists;
            stats.centroids_scored += s.centroids_scored;
        }
        let grp = shape.group();
        let n = shape.kv_len;
        let mut per_head = Vec::with_capacity(shape.heads);
        // the keys of query heads `heads` plus sinks and recent keys, sorted
        let key_set = |heads: std::ops::Range<usize>| {
            let mut set: Vec<u32> = per_q[heads].iter().flat_map(|(ids, _)| ids.iter().copied()).collect();
            set.extend(0..self.sink.min(n) as u32);
            set.extend(n.saturating_sub(self.recent) as u32..n as u32);
            set.sort_unstable();
            set.dedup();
            set
        };
        for g in 0..shape.kv_heads {
            if self.group_union {
                let union = key_set(g * grp..(g + 1) * grp);
                per_head.extend(std::iter::repeat_n(union, grp));
            } else {
                per_head.extend((g * grp..(g + 1) * grp).map(|h| key_set(h..h + 1)));
            }
        }
        Ok((Selection::new(per_head, n)?, stats))
    }

    /// Top-`top_k` key positions of one query against one KV head's index.
    fn search_head(&self, hx: &HeadIndex, qh: &[f32], top_k: usize) -> Result<(Vec<u32>, RetrievalStats)> {
        let mut stats = RetrievalStats::default();
        if top_k == 0 {
            return Ok((Vec::new(), stats));
        }
        let data = &hx.data;
        let nlist = data.nlist();
        let nprobe = self.nprobe.clamp(1, nlist);
        if !matches!(data.encoder, Encoder::Flat) {
            // Coded kinds: quarry-ann's IVF search (centroid order) with exact re-ranking.
            let rerank = if self.index.rerank == 0 { 4 * top_k } else { self.index.rerank.max(top_k) };
            let params = SearchParams { k: top_k, nprobe, rerank, ..SearchParams::default() };
            let res = data.search(qh, &params).map_err(ann)?;
            let ids = res.ids.iter().filter(|&&id| id != quarry_ann::NO_ID).map(|&id| id as u32).collect();
            if data.config.kind.is_ivf() {
                let scores = centroid_scores(data, qh);
                let mut order: Vec<u32> = (0..nlist as u32).collect();
                order.select_nth_unstable_by(nprobe - 1, |&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
                stats.scanned_keys = order[..nprobe].iter().map(|&l| data.lists[l as usize].len()).sum();
                stats.centroids_scored = nlist;
            } else {
                stats.scanned_keys = data.size();
            }
            stats.probed_lists = nprobe;
            return Ok((ids, stats));
        }
        let d = data.config.dim;
        let dot = quarry_simd::kernels().f32_dot;
        // (priority, list): larger priority probes first.
        let w = self.order.radius_weight();
        let early_stop = w >= 1.0;
        let mut order: Vec<(f32, u32)> = if data.config.kind.is_ivf() {
            stats.centroids_scored = nlist;
            let qn = qh.iter().map(|x| x * x).sum::<f32>().sqrt();
            centroid_scores(data, qh)
                .into_iter()
                .enumerate()
                .map(|(l, s)| (s + w * qn * hx.radius[l], l as u32))
                .collect()
        } else {
            vec![(f32::INFINITY, 0)]
        };
        if nprobe < order.len() {
            order.select_nth_unstable_by(nprobe - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            order.truncate(nprobe);
        }
        order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // TopK keeps the smallest keys: negate scores.
        let mut top = TopK::new(top_k);
        for &(prio, l) in &order {
            // Slack for float rounding in the bound (the inequality is exact in reals).
            let bound = prio + 1e-5 * (prio.abs() + 1.0);
            if early_stop && top.len() == top_k && -bound >= top.threshold() {
                break; // no key of this or any later list can enter
            }
            let list = &data.lists[l as usize];
            let (pos, floats) = (&list.positions[..], &list.floats[..]);
            for (i, &p) in pos.iter().enumerate() {
                if data.deleted.contains(p as usize) {
                    continue;
                }
                top.push(-dot(qh, &floats[i * d..(i + 1) * d]), p);
            }
            stats.scanned_keys += pos.len();
            stats.probed_lists += 1;
        }
        let mut ids: Vec<u32> = top.into_sorted().into_iter().map(|(_, p)| p).collect();
        ids.sort_unstable();
        ids.dedup();
        Ok((ids, stats))
    }
}

fn centroid_scores(data: &IndexData, qh: &[f32]) -> Vec<f32> {
    let d = data.config.dim;
    let dot = quarry_simd::kernels().f32_dot;
    data.centroids.chunks_exact(d).map(|c| dot(qh, c)).collect()
}

impl KeySelector for RetrievalSelector<'_> {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection> {
        self.select_with_stats(q, shape).map(|(s, _)| s)
    }
}
