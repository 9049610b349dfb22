//! Decode attention (one query per head against a cache) over all keys or a
//! selected subset, and the selectors that pick subsets: streaming (sinks +
//! recent), Quest pages, Squeezed k-means clusters, exact top-k (the
//! TidalDecode selection layer, with reuse by later layers) and a
//! DuoAttention per-head policy. A RetrievalAttention selector (ANN over
//! keys) plugs in through [`KeySelector`].

use crate::dense::AttnOutput;
use crate::error::{Result, invalid, mismatch};
use crate::metrics::{Recall, recall_from_lse};
use crate::prefill::{PrefillPattern, build_index, sparse_lse};
use crate::shape::{AttnOptions, AttnShape, KvSlice};
use crate::simd::{self, Level};
use rayon::prelude::*;

/// Key positions each query head attends to (sorted, unique, `< kv_len`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    per_head: Vec<Vec<u32>>,
    kv_len: usize,
}

impl Selection {
    /// From per-head position lists (sorted and de-duplicated here);
    /// positions `>= kv_len` are an error.
    pub fn new(mut per_head: Vec<Vec<u32>>, kv_len: usize) -> Result<Self> {
        for sel in per_head.iter_mut() {
            if let Some(&p) = sel.iter().find(|&&p| p as usize >= kv_len) {
                return invalid(format!("selected position {p} outside 0..{kv_len}"));
            }
            sel.sort_unstable();
            sel.dedup();
        }
        Ok(Selection { per_head, kv_len })
    }

    /// Every key for every head (dense).
    pub fn all(heads: usize, kv_len: usize) -> Self {
        Selection { per_head: vec![(0..kv_len as u32).collect(); heads], kv_len }
    }

    pub fn heads(&self) -> usize {
        self.per_head.len()
    }

    pub fn kv_len(&self) -> usize {
        self.kv_len
    }

    /// Positions of query head `h`.
    pub fn head(&self, h: usize) -> &[u32] {
        &self.per_head[h]
    }

    /// Keys touched, summed over query heads.
    pub fn keys_touched(&self) -> usize {
        self.per_head.iter().map(Vec::len).sum()
    }

    /// Share of (head, key) pairs selected.
    pub fn density(&self) -> f64 {
        let total = self.per_head.len() * self.kv_len;
        if total == 0 { 1.0 } else { self.keys_touched() as f64 / total as f64 }
    }
}

/// Picks key positions for one decode step. `q` is `[heads, head_dim]`
/// (shape with `q_len == 1`). A RetrievalAttention selector (ANN index over
/// keys, searched with each query) implements this trait.
pub trait KeySelector {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection>;
}

fn check_decode(q: &[f32], k: &KvSlice, v: Option<&KvSlice>, shape: &AttnShape, opts: &AttnOptions) -> Result<()> {
    if shape.q_len != 1 {
        return invalid(format!("decode takes one query per head (q_len = {})", shape.q_len));
    }
    opts.validate()?;
    shape.validate(false)?;
    shape.check_q(q)?;
    shape.check_kv("k", k.len())?;
    if let Some(v) = v {
        shape.check_kv("v", v.len())?;
    }
    Ok(())
}

fn check_selection(sel: &Selection, shape: &AttnShape) -> Result<()> {
    if sel.heads() != shape.heads || sel.kv_len != shape.kv_len {
        return mismatch(format!(
            "selection for {} heads × {} keys, shape has {} × {}",
            sel.heads(),
            sel.kv_len,
            shape.heads,
            shape.kv_len
        ));
    }
    Ok(())
}

/// Scaled scores of query head `h` over `positions` (or all keys).
fn head_scores(q: &[f32], k: &KvSlice, shape: &AttnShape, scale: f32, h: usize, positions: Option<&[u32]>, out: &mut Vec<f32>) {
    let d = shape.head_dim;
    let g = h / shape.group();
    let qh = &q[h * d..(h + 1) * d];
    let ks = quarry_simd::kernels();
    let n = positions.map_or(shape.kv_len, <[u32]>::len);
    out.clear();
    out.reserve(n);
    let pos = |i: usize| positions.map_or(i, |p| p[i] as usize);
    match k {
        KvSlice::F32(kk) => {
            let base = &kk[g * shape.kv_len * d..(g + 1) * shape.kv_len * d];
            out.extend((0..n).map(|i| (ks.f32_dot)(qh, &base[pos(i) * d..(pos(i) + 1) * d]) * scale));
        }
        KvSlice::F16(kk) => {
            // Widen each key row (keeps the query in f32).
            let base = &kk[g * shape.kv_len * d..(g + 1) * shape.kv_len * d];
            let mut row = vec![0.0f32; d];
            use half::slice::HalfFloatSliceExt;
            out.extend((0..n).map(|i| {
                base[pos(i) * d..(pos(i) + 1) * d].convert_to_f32_slice(&mut row);
                (ks.f32_dot)(qh, &row) * scale
            }));
        }
    }
}

fn decode_impl(
    q: &[f32],
    k: &KvSlice,
    v: Option<&KvSlice>,
    shape: &AttnShape,
    opts: &AttnOptions,
    sel: Option<&Selection>,
) -> (Vec<f32>, Vec<f32>) {
    let d = shape.head_dim;
    let level = Level::resolve(opts.kernel);
    let scale = opts.scale_for(d);
    let mut out = vec![0.0f32; if v.is_some() { shape.heads * d } else { 0 }];
    let mut lse = vec![0.0f32; shape.heads];
    let work = |h: usize, o: Option<&mut [f32]>, l: &mut f32| {
        let positions = sel.map(|s| s.head(h));
        let mut s = Vec::new();
        head_scores(q, k, shape, scale, h, positions, &mut s);
        if s.is_empty() {
            *l = f32::NEG_INFINITY;
            return;
        }
        let m = simd::row_max(level, &s);
        let sum = simd::exp_sub_sum(level, &mut s, m);
        *l = m + sum.ln();
        if let (Some(o), Some(v)) = (o, v) {
            let g = h / shape.group();
            let mut row = vec![0.0f32; d];
            for (i, &p) in s.iter().enumerate() {
                let j = positions.map_or(i, |ps| ps[i] as usize);
                let start = (g * shape.kv_len + j) * d;
                match v {
                    KvSlice::F32(vv) => simd::axpy(level, o, p, &vv[start..start + d]),
                    KvSlice::F16(_) => {
                        v.read(start, &mut row);
                        simd::axpy(level, o, p, &row);
                    }
                }
            }
            simd::scale(level, o, 1.0 / sum);
        }
    };
    if v.is_some() {
        out.par_chunks_mut(d).zip(lse.par_iter_mut()).enumerate().for_each(|(h, (o, l))| work(h, Some(o), l));
    } else {
        lse.par_iter_mut().enumerate().for_each(|(h, l)| work(h, None, l));
    }
    (out, lse)
}

/// Dense decode: each query head against every cached key of its KV head.
/// `opts.causal` and `opts.block` are ignored (a decode query sees all
/// keys).
pub fn dense_decode<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
) -> Result<AttnOutput> {
    let (k, v) = (k.into(), v.into());
    check_decode(q, &k, Some(&v), shape, opts)?;
    let (output, lse) = decode_impl(q, &k, Some(&v), shape, opts, None);
    Ok(AttnOutput { output, lse, density: 1.0 })
}

/// Decode over the selected keys only; `density` is the share of (head, key)
/// pairs touched. A head with an empty selection outputs zeros.
pub fn sparse_decode<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    sel: &Selection,
) -> Result<AttnOutput> {
    let (k, v) = (k.into(), v.into());
    check_decode(q, &k, Some(&v), shape, opts)?;
    check_selection(sel, shape)?;
    let (output, lse) = decode_impl(q, &k, Some(&v), shape, opts, Some(sel));
    Ok(AttnOutput { output, lse, density: sel.density() })
}

/// Attention recall of a decode selection (per head and mean).
pub fn decode_recall<'a>(q: &[f32], k: impl Into<KvSlice<'a>>, shape: &AttnShape, opts: &AttnOptions, sel: &Selection) -> Result<Recall> {
    let k = k.into();
    check_decode(q, &k, None, shape, opts)?;
    check_selection(sel, shape)?;
    let (_, full) = decode_impl(q, &k, None, shape, opts, None);
    let (_, part) = decode_impl(q, &k, None, shape, opts, Some(sel));
    Ok(recall_from_lse(&part, &full, shape.heads, 1))
}

/// Errors unless a selector index built over `(kv_heads, head_dim, kv_len)`
/// keys matches `shape`.
pub(crate) fn check_built_for(what: &str, built: (usize, usize, usize), shape: &AttnShape) -> Result<()> {
    if built != (shape.kv_heads, shape.head_dim, shape.kv_len) {
        return mismatch(format!("{what} index was built for another shape"));
    }
    Ok(())
}

/// Adds sinks `0..sink` and the last `recent` positions to `sel`.
fn add_sink_recent(sel: &mut Vec<u32>, kv_len: usize, sink: usize, recent: usize) {
    sel.extend(0..sink.min(kv_len) as u32);
    sel.extend(kv_len.saturating_sub(recent) as u32..kv_len as u32);
}

/// StreamingLLM decode: the first `sink` and the last `recent` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamingSelector {
    pub sink: usize,
    pub recent: usize,
}

impl KeySelector for StreamingSelector {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection> {
        shape.check_q(q)?;
        let mut sel = Vec::new();
        add_sink_recent(&mut sel, shape.kv_len, self.sink, self.recent);
        Selection::new(vec![sel; shape.heads], shape.kv_len)
    }
}

/// Quest page metadata: per KV head and page of `page` consecutive keys, the
/// channel-wise minimum and maximum key.
#[derive(Debug, Clone, PartialEq)]
pub struct QuestIndex {
    page: usize,
    kv_heads: usize,
    head_dim: usize,
    kv_len: usize,
    /// `[kv_heads][pages][head_dim]`.
    min: Vec<f32>,
    max: Vec<f32>,
}

impl QuestIndex {
    /// Builds page bounds over `k` (`[kv_heads, kv_len, head_dim]`).
    pub fn build<'a>(k: impl Into<KvSlice<'a>>, shape: &AttnShape, page: usize) -> Result<Self> {
        let k = k.into();
        if page == 0 {
            return invalid("quest page size must be > 0");
        }
        shape.validate(false)?;
        shape.check_kv("k", k.len())?;
        let d = shape.head_dim;
        let pages = shape.kv_len.div_ceil(page);
        let mut min = vec![f32::INFINITY; shape.kv_heads * pages * d];
        let mut max = vec![f32::NEG_INFINITY; shape.kv_heads * pages * d];
        let mut row = vec![0.0f32; d];
        for g in 0..shape.kv_heads {
            for j in 0..shape.kv_len {
                k.read((g * shape.kv_len + j) * d, &mut row);
                let p = g * pages + j / page;
                for c in 0..d {
                    min[p * d + c] = min[p * d + c].min(row[c]);
                    max[p * d + c] = max[p * d + c].max(row[c]);
                }
            }
        }
        Ok(QuestIndex { page, kv_heads: shape.kv_heads, head_dim: d, kv_len: shape.kv_len, min, max })
    }

    pub fn pages(&self) -> usize {
        self.kv_len.div_ceil(self.page)
    }

    pub fn page_size(&self) -> usize {
        self.page
    }

    /// Upper bound of `q · k` over the keys of page `p` of KV head `g`:
    /// `Σ_c max(q_c · min_c, q_c · max_c)`.
    pub fn page_bound(&self, g: usize, p: usize, q: &[f32]) -> f32 {
        let d = self.head_dim;
        let o = (g * self.pages() + p) * d;
        let (lo, hi) = (&self.min[o..o + d], &self.max[o..o + d]);
        q.iter().zip(lo.iter().zip(hi)).map(|(&x, (&a, &b))| (x * a).max(x * b)).sum()
    }

    /// A selector keeping the `budget` tokens' worth of top pages (rounded up
    /// to whole pages) plus `sink` first and `recent` last keys.
    pub fn selector(&self, budget: usize, sink: usize, recent: usize) -> QuestSelector<'_> {
        QuestSelector { index: self, budget, sink, recent }
    }
}

/// Quest selection over a [`QuestIndex`].
#[derive(Debug, Clone, Copy)]
pub struct QuestSelector<'a> {
    pub index: &'a QuestIndex,
    /// Tokens of top pages to keep (`>= kv_len` keeps all = dense).
    pub budget: usize,
    pub sink: usize,
    pub recent: usize,
}

impl KeySelector for QuestSelector<'_> {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection> {
        let ix = self.index;
        check_built_for("quest", (ix.kv_heads, ix.head_dim, ix.kv_len), shape)?;
        shape.check_q(q)?;
        let d = shape.head_dim;
        let pages = ix.pages();
        let want = self.budget.div_ceil(ix.page).min(pages);
        let per_head = (0..shape.heads)
            .into_par_iter()
            .map(|h| {
                let g = h / shape.group();
                let qh = &q[h * d..(h + 1) * d];
                let mut scored: Vec<(f32, usize)> = (0..pages).map(|p| (ix.page_bound(g, p, qh), p)).collect();
                if want < pages {
                    scored.select_nth_unstable_by(want, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    scored.truncate(want);
                }
                // Budgets may exceed the sequence (they clamp to dense): saturate.
                let cap = want.saturating_mul(ix.page).saturating_add(self.sink).saturating_add(self.recent);
                let mut sel = Vec::with_capacity(cap.min(shape.kv_len));
                for &(_, p) in &scored {
                    sel.extend((p * ix.page) as u32..((p + 1) * ix.page).min(shape.kv_len) as u32);
                }
                add_sink_recent(&mut sel, shape.kv_len, self.sink, self.recent);
                sel
            })
            .collect();
        Selection::new(per_head, shape.kv_len)
    }
}

/// Centroids `[k][d]` of `n` rows of `d` floats and the assignment of each
/// row, by the project's k-means (`quarry_ann::kmeans`: k-means++ seeding,
/// seeded, empty clusters repaired).
pub(crate) fn kmeans(data: &[f32], d: usize, k: usize, iters: usize, seed: u64) -> Result<(Vec<f32>, Vec<u32>)> {
    let n = data.len() / d;
    let cfg = quarry_ann::kmeans::KMeansConfig {
        k: k.min(n).max(1),
        iterations: iters.max(1),
        seed,
        max_points_per_centroid: 0,
        balance: None,
        spherical: false,
    };
    let fail = |e: quarry_ann::AnnError| crate::AttnError::InvalidArgument(format!("k-means over keys: {e}"));
    let km = quarry_ann::kmeans::train(data, d, &cfg, quarry_ann::Control::none()).map_err(fail)?;
    let assign = km.try_assign(data).map_err(fail)?.into_iter().map(|(c, _)| c).collect();
    Ok((km.centroids, assign))
}

/// Squeezed Attention: keys of a fixed context clustered (k-means) per KV
/// head; a query scores the centroids and keeps the keys of its best
/// clusters.
#[derive(Debug, Clone, PartialEq)]
pub struct SqueezedIndex {
    kv_heads: usize,
    head_dim: usize,
    kv_len: usize,
    clusters: usize,
    /// `[kv_heads][clusters][head_dim]`.
    centroids: Vec<f32>,
    /// Members of each (kv head, cluster), CSR.
    member_ptr: Vec<usize>,
    members: Vec<u32>,
}

impl SqueezedIndex {
    /// Clusters the keys of each KV head into `clusters` groups (`iters`
    /// Lloyd iterations, deterministic for a `seed`).
    pub fn build<'a>(k: impl Into<KvSlice<'a>>, shape: &AttnShape, clusters: usize, iters: usize, seed: u64) -> Result<Self> {
        let k = k.into();
        if clusters == 0 {
            return invalid("squeezed attention needs at least one cluster");
        }
        shape.validate(false)?;
        shape.check_kv("k", k.len())?;
        let d = shape.head_dim;
        let n = shape.kv_len;
        let c = clusters.min(n.max(1));
        let mut centroids = Vec::with_capacity(shape.kv_heads * c * d);
        let mut member_ptr = vec![0usize];
        let mut members = Vec::with_capacity(shape.kv_heads * n);
        for g in 0..shape.kv_heads {
            let mut keys = vec![0.0f32; n * d];
            k.read(g * n * d, &mut keys);
            let (cent, assign) = if n == 0 { (vec![0.0; c * d], Vec::new()) } else { kmeans(&keys, d, c, iters, seed)? };
            let got = cent.len() / d;
            centroids.extend_from_slice(&cent);
            centroids.resize((g + 1) * c * d, 0.0);
            let mut lists = vec![Vec::new(); c];
            for (j, &a) in assign.iter().enumerate() {
                lists[(a as usize).min(got.saturating_sub(1))].push(j as u32);
            }
            for l in lists {
                members.extend_from_slice(&l);
                member_ptr.push(members.len());
            }
        }
        Ok(SqueezedIndex { kv_heads: shape.kv_heads, head_dim: d, kv_len: n, clusters: c, centroids, member_ptr, members })
    }

    pub fn clusters(&self) -> usize {
        self.clusters
    }

    /// Keys of cluster `c` of KV head `g`.
    pub fn members(&self, g: usize, c: usize) -> &[u32] {
        let i = g * self.clusters + c;
        &self.members[self.member_ptr[i]..self.member_ptr[i + 1]]
    }

    /// A selector keeping the best clusters until `budget` keys are covered,
    /// plus `sink` first and `recent` last keys.
    pub fn selector(&self, budget: usize, sink: usize, recent: usize) -> SqueezedSelector<'_> {
        SqueezedSelector { index: self, budget, sink, recent }
    }
}

/// Squeezed Attention selection over a [`SqueezedIndex`].
#[derive(Debug, Clone, Copy)]
pub struct SqueezedSelector<'a> {
    pub index: &'a SqueezedIndex,
    /// Keys to cover with whole clusters (`>= kv_len` = dense).
    pub budget: usize,
    pub sink: usize,
    pub recent: usize,
}

impl KeySelector for SqueezedSelector<'_> {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection> {
        let ix = self.index;
        check_built_for("squeezed", (ix.kv_heads, ix.head_dim, ix.kv_len), shape)?;
        shape.check_q(q)?;
        let d = shape.head_dim;
        let dot = quarry_simd::kernels().f32_dot;
        let per_head = (0..shape.heads)
            .map(|h| {
                let g = h / shape.group();
                let qh = &q[h * d..(h + 1) * d];
                let mut scored: Vec<(f32, usize)> = (0..ix.clusters)
                    .map(|c| (dot(qh, &ix.centroids[(g * ix.clusters + c) * d..][..d]), c))
                    .collect();
                scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let mut sel = Vec::new();
                for &(_, c) in &scored {
                    if sel.len() >= self.budget {
                        break;
                    }
                    sel.extend_from_slice(ix.members(g, c));
                }
                add_sink_recent(&mut sel, shape.kv_len, self.sink, self.recent);
                sel
            })
            .collect();
        Selection::new(per_head, shape.kv_len)
    }
}

/// Exact top-`budget` keys by score per query head (plus sinks and recent
/// keys): TidalDecode's selection layers, and an oracle for the others.
#[derive(Debug, Clone, Copy)]
pub struct TopKSelector<'a> {
    pub k: KvSlice<'a>,
    pub budget: usize,
    pub sink: usize,
    pub recent: usize,
}

impl KeySelector for TopKSelector<'_> {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection> {
        shape.validate(false)?;
        shape.check_q(q)?;
        shape.check_kv("k", self.k.len())?;
        let per_head = (0..shape.heads)
            .into_par_iter()
            .map(|h| {
                let mut s = Vec::new();
                head_scores(q, &self.k, shape, 1.0, h, None, &mut s);
                let mut idx: Vec<u32> = (0..shape.kv_len as u32).collect();
                if self.budget < idx.len() {
                    idx.select_nth_unstable_by(self.budget, |&a, &b| s[b as usize].total_cmp(&s[a as usize]).then(a.cmp(&b)));
                    idx.truncate(self.budget);
                }
                add_sink_recent(&mut idx, shape.kv_len, self.sink, self.recent);
                idx
            })
            .collect();
        Selection::new(per_head, shape.kv_len)
    }
}

/// TidalDecode-style position reuse: layers listed in `selection_layers`
/// select exact top-`budget` keys (from their own full scores); every later
/// layer reuses the most recent selection; layers before the first
/// selection layer attend densely.
#[derive(Debug, Clone)]
pub struct TidalDecode {
    pub selection_layers: Vec<usize>,
    pub budget: usize,
    pub sink: usize,
    pub recent: usize,
    current: Option<Selection>,
}

impl TidalDecode {
    pub fn new(selection_layers: Vec<usize>, budget: usize, sink: usize, recent: usize) -> Self {
        TidalDecode { selection_layers, budget, sink, recent, current: None }
    }

    /// The selection later layers reuse (after a selection layer ran).
    pub fn selection(&self) -> Option<&Selection> {
        self.current.as_ref()
    }

    /// Starts a new decode step (forgets the selection).
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Decode attention of `layer` (call layers in order within one step).
    pub fn attend<'a>(
        &mut self,
        layer: usize,
        q: &[f32],
        k: impl Into<KvSlice<'a>>,
        v: impl Into<KvSlice<'a>>,
        shape: &AttnShape,
        opts: &AttnOptions,
    ) -> Result<AttnOutput> {
        let (k, v) = (k.into(), v.into());
        if self.selection_layers.contains(&layer) {
            let sel = TopKSelector { k, budget: self.budget, sink: self.sink, recent: self.recent }.select(q, shape)?;
            self.current = Some(sel);
        }
        match &self.current {
            Some(sel) => sparse_decode(q, k, v, shape, opts, sel),
            None => dense_decode(q, k, v, shape, opts),
        }
    }
}

/// DuoAttention-style policy: per KV head, full attention (retrieval head)
/// or sinks + recent window (streaming head).
#[derive(Debug, Clone, PartialEq)]
pub struct DuoPolicy {
    /// `true` = retrieval (full) head, per KV head.
    pub retrieval: Vec<bool>,
    pub sink: usize,
    pub window: usize,
    /// Calibration recall of the streaming pattern per query head.
    pub streaming_recall: Vec<f64>,
}

impl DuoPolicy {
    /// Marks a KV head streaming when every query head of its group keeps at
    /// least `target` attention recall under sinks + window on the
    /// calibration Q/K (prefill shape, `opts.causal` as used there).
    pub fn calibrate<'a>(
        q: &[f32],
        k: impl Into<KvSlice<'a>>,
        shape: &AttnShape,
        opts: &AttnOptions,
        sink: usize,
        window: usize,
        target: f64,
    ) -> Result<Self> {
        let k = k.into();
        if !(0.0..=1.0).contains(&target) {
            return invalid(format!("recall target ({target}) must be in [0, 1]"));
        }
        let index = build_index(q, k, shape, opts, &PrefillPattern::AShape { sink, window })?;
        let full = crate::dense::dense_lse(q, k, shape, opts)?;
        let part = sparse_lse(q, k, shape, opts, &index)?;
        let r = recall_from_lse(&part, &full, shape.heads, shape.q_len);
        let grp = shape.group();
        let retrieval = (0..shape.kv_heads).map(|g| (0..grp).any(|i| r.per_head[g * grp + i] < target)).collect();
        Ok(DuoPolicy { retrieval, sink, window, streaming_recall: r.per_head })
    }

    /// Prefill pattern per query head (dense or A-shape).
    pub fn prefill_patterns(&self, heads: usize) -> Vec<PrefillPattern> {
        let grp = heads / self.retrieval.len().max(1);
        (0..heads)
            .map(|h| {
                if self.retrieval[h / grp.max(1)] {
                    PrefillPattern::Dense
                } else {
                    PrefillPattern::AShape { sink: self.sink, window: self.window }
                }
            })
            .collect()
    }

    /// Share of KV heads kept in full.
    pub fn retrieval_fraction(&self) -> f64 {
        self.retrieval.iter().filter(|&&r| r).count() as f64 / self.retrieval.len().max(1) as f64
    }
}

impl KeySelector for DuoPolicy {
    fn select(&self, q: &[f32], shape: &AttnShape) -> Result<Selection> {
        if self.retrieval.len() != shape.kv_heads {
            return mismatch(format!("policy for {} kv heads, shape has {}", self.retrieval.len(), shape.kv_heads));
        }
        shape.check_q(q)?;
        let per_head = (0..shape.heads)
            .map(|h| {
                if self.retrieval[h / shape.group()] {
                    (0..shape.kv_len as u32).collect()
                } else {
                    let mut s = Vec::new();
                    add_sink_recent(&mut s, shape.kv_len, self.sink, self.window);
                    s
                }
            })
            .collect();
        Selection::new(per_head, shape.kv_len)
    }
}
