//! Sparse prefill: index sets per (head, query tile) and the patterns that
//! build them (A-shape, MInference vertical-slash, FlexPrefill block top-k,
//! per-head choice), computed by the same tile engine as dense attention.

use crate::dense::{AttnOutput, dense_attention, dense_lse};
use crate::error::{Result, invalid, mismatch};
use crate::kernel::{Ctx, Job, PreparedKv, dense_job, held_keys, visible_end};
use crate::metrics::{Recall, recall_from_lse};
use crate::shape::{AttnOptions, AttnShape, KvSlice, check_all};
use crate::simd::{self, Level};
use rayon::prelude::*;

/// Columns MInference always ranks first in the vertical estimate
/// (attention sinks), counted in the `vertical` budget.
pub const VS_FORCED_SINKS: usize = 30;
/// Nearest diagonals MInference always ranks first in the slash estimate
/// (local window), counted in the `slash` budget.
pub const VS_FORCED_LOCAL: usize = 100;

/// How block scores of [`PrefillPattern::BlockTopK`] are estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreEstimate {
    /// f32 dot products of mean-pooled query and key blocks.
    Pooled,
    /// Pooled blocks quantised to 8-bit symmetric integers per block.
    PooledI8,
    /// Pooled blocks quantised to 4-bit symmetric integers (-7..=7) per
    /// block (SALE-style low-bit estimate).
    PooledI4,
    /// The tile's mean query against every key it can see; a block's score
    /// is the log of the sum of its keys' exp-scores, i.e. its share of the
    /// mean query's attention. Finer than pooling the keys: a block holding
    /// a few strong keys among weak or opposite ones keeps its weight,
    /// where the pooled key averages them away. Costs one query row per
    /// tile against all keys (`1 / block` of dense attention's `Q·Kᵀ`).
    MeanQuery,
}

/// A prefill sparsity pattern. Budgets larger than the sequence are clamped
/// (the pattern then equals dense attention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrefillPattern {
    /// Every visible key.
    Dense,
    /// StreamingLLM / A-shape: the first `sink` keys plus the `window` keys
    /// before each query, at tile granularity: a tile computes the union of
    /// its rows' windows, so a row may see up to `block - 1` extra keys.
    AShape { sink: usize, window: usize },
    /// MInference: attention of the last `last_q` queries estimates which
    /// key columns (verticals) and diagonals (slashes, offset `pos - key`)
    /// matter; the top `vertical` columns and top `slash` diagonals are
    /// kept. Diagonals become key ranges per query tile, columns outside them
    /// are gathered. The first [`VS_FORCED_SINKS`] columns and the nearest
    /// [`VS_FORCED_LOCAL`] diagonals rank first. `spread_q > 0` adds that
    /// many queries spaced evenly over the rest of the sequence to the
    /// estimate (0: MInference's, the last queries only): where heads attend
    /// to different keys along the sequence, the end alone misses them.
    /// `slash_lines`: scattered diagonals are computed as lines, the one key
    /// per row each names, instead of block-wide bands (false: MInference's
    /// blocks, every diagonal a band). A line pair costs about
    /// [`LINE_PAIR_COST`] band pairs (it reads its own key and value rows),
    /// so a group of near diagonals becomes lines only where its band is
    /// wider than six keys per line; dense groups (the local window) stay bands.
    /// `segment > 0` splits the queries into segments of that many rows
    /// (rounded up to whole tiles), each with its own estimate from its own
    /// last `last_q` queries (and `spread_q` spread over the segment) and its
    /// own budgets (0: one estimate for the whole sequence, MInference's):
    /// where the attended diagonals drift along the sequence (heads run past
    /// their trained window), one global set covers them only with wide bands.
    VerticalSlash { vertical: usize, slash: usize, last_q: usize, spread_q: usize, slash_lines: bool, segment: usize },
    /// FlexPrefill query-aware blocks: mean-pooled query tile · mean-pooled
    /// key block scores, softmaxed over the visible blocks of each query
    /// tile; the highest blocks are kept until their cumulative share
    /// reaches `gamma` (a per-head, per-tile budget), plus the first block
    /// and the diagonal. `gamma >= 1` keeps everything.
    BlockTopK { gamma: f32, estimate: ScoreEstimate },
}

impl PrefillPattern {
    pub fn name(&self) -> &'static str {
        match self {
            PrefillPattern::Dense => "dense",
            PrefillPattern::AShape { .. } => "a-shape",
            PrefillPattern::VerticalSlash { .. } => "vertical-slash",
            PrefillPattern::BlockTopK { .. } => "block-topk",
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            PrefillPattern::VerticalSlash { last_q: 0, .. } => invalid("vertical-slash last_q must be > 0"),
            PrefillPattern::BlockTopK { gamma, .. } if !(gamma > 0.0 && gamma.is_finite()) => {
                invalid(format!("block-topk gamma ({gamma}) must be in (0, 1]"))
            }
            _ => Ok(()),
        }
    }
}

/// Which keys each (query head, query tile) computes: disjoint key ranges of
/// at most four blocks of consecutive keys, and single key columns outside them.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseIndex {
    shape: AttnShape,
    causal: bool,
    block: usize,
    tiles: usize,
    range_ptr: Vec<usize>,
    ranges: Vec<[u32; 2]>,
    col_ptr: Vec<usize>,
    cols: Vec<u32>,
    diag_ptr: Vec<usize>,
    diags: Vec<i64>,
}

impl SparseIndex {
    /// Builds an index from explicit key sets, one `(ranges, columns)` per
    /// (head, tile) in head-major order. Ranges are `[start, end)`; overlaps,
    /// unsorted input, long ranges and columns inside ranges are normalised;
    /// keys no row of the tile can see are dropped. Keys past `kv_len` are
    /// an error.
    pub fn from_key_sets(shape: &AttnShape, opts: &AttnOptions, sets: &[(Vec<[u32; 2]>, Vec<u32>)]) -> Result<Self> {
        opts.validate()?;
        shape.validate(opts.causal)?;
        let tiles = shape.q_len.div_ceil(opts.block);
        if sets.len() != shape.heads * tiles {
            return mismatch(format!("{} key sets given, heads × tiles = {}", sets.len(), shape.heads * tiles));
        }
        let mut jobs = Vec::with_capacity(sets.len());
        for (i, (ranges, cols)) in sets.iter().enumerate() {
            let t = i % tiles.max(1);
            let mut iv = Vec::with_capacity(ranges.len());
            for &[s, e] in ranges {
                if s > e || e as usize > shape.kv_len {
                    return invalid(format!("range [{s}, {e}) outside 0..{}", shape.kv_len));
                }
                iv.push([s as usize, e as usize]);
            }
            if let Some(&c) = cols.iter().find(|&&c| c as usize >= shape.kv_len) {
                return invalid(format!("column {c} outside 0..{}", shape.kv_len));
            }
            let mut c = cols.clone();
            let mut job = Job::default();
            finish_job(&mut iv, &mut c, visible_end(shape, opts.causal, opts.block, t), opts.block, &mut job);
            jobs.push(job);
        }
        Ok(Self::from_jobs(shape, opts.causal, opts.block, jobs))
    }

    fn from_jobs(shape: &AttnShape, causal: bool, block: usize, jobs: Vec<Job>) -> Self {
        let tiles = shape.q_len.div_ceil(block);
        let mut s = SparseIndex {
            shape: *shape,
            causal,
            block,
            tiles,
            range_ptr: vec![0],
            ranges: Vec::new(),
            col_ptr: vec![0],
            cols: Vec::new(),
            diag_ptr: vec![0],
            diags: Vec::new(),
        };
        for j in jobs {
            s.ranges.extend_from_slice(&j.ranges);
            s.cols.extend_from_slice(&j.cols);
            s.diags.extend_from_slice(&j.diags);
            s.range_ptr.push(s.ranges.len());
            s.col_ptr.push(s.cols.len());
            s.diag_ptr.push(s.diags.len());
        }
        s
    }

    pub fn shape(&self) -> &AttnShape {
        &self.shape
    }

    /// The same index with only the tiles `keep` marks (every head); other tiles compute nothing.
    fn restricted(&self, keep: &[bool]) -> SparseIndex {
        let job = |h: usize, t: usize| Job {
            ranges: self.ranges(h, t).to_vec(),
            cols: self.columns(h, t).to_vec(),
            diags: self.diagonals(h, t).to_vec(),
        };
        let jobs = (0..self.shape.heads)
            .flat_map(|h| keep.iter().enumerate().map(move |(t, &k)| if k { job(h, t) } else { Job::default() }))
            .collect();
        Self::from_jobs(&self.shape, self.causal, self.block, jobs)
    }

    /// Whether every key set is whole ranges starting on GEMM panel boundaries (no single
    /// columns), as block top-k's are: such an index runs on K and V packed once into
    /// panels, as dense attention does, instead of copying each range into panels per tile.
    fn panel_aligned(&self) -> bool {
        self.cols.is_empty() && self.diags.is_empty() && self.ranges.iter().all(|r| (r[0] as usize).is_multiple_of(simd::PANEL))
    }

    /// K (and V) laid out for running this index.
    fn prepare<'a>(&self, k: &KvSlice<'a>, v: Option<&KvSlice<'a>>, opts: &AttnOptions) -> PreparedKv<'a> {
        if self.panel_aligned() {
            PreparedKv::for_dense(k, v, &self.shape, Level::resolve(opts.kernel))
        } else {
            PreparedKv::new(k, v, &self.shape)
        }
    }

    pub fn block(&self) -> usize {
        self.block
    }

    pub fn causal(&self) -> bool {
        self.causal
    }

    /// Query tiles per head.
    pub fn tiles(&self) -> usize {
        self.tiles
    }

    /// Key ranges `[start, end)` of head `h`, tile `t`.
    pub fn ranges(&self, h: usize, t: usize) -> &[[u32; 2]] {
        let i = h * self.tiles + t;
        &self.ranges[self.range_ptr[i]..self.range_ptr[i + 1]]
    }

    /// Single key columns of head `h`, tile `t` (sorted, outside the ranges).
    pub fn columns(&self, h: usize, t: usize) -> &[u32] {
        let i = h * self.tiles + t;
        &self.cols[self.col_ptr[i]..self.col_ptr[i + 1]]
    }

    /// Diagonal offsets of head `h`, tile `t` (sorted): row `i` computes key
    /// `pos(i) - o` of each, where visible (once: keys the ranges or columns
    /// hold are computed there).
    pub fn diagonals(&self, h: usize, t: usize) -> &[i64] {
        let i = h * self.tiles + t;
        &self.diags[self.diag_ptr[i]..self.diag_ptr[i + 1]]
    }

    /// Whether query row `i` of head `h` computes key `j` (visible and
    /// selected).
    pub fn contains(&self, h: usize, i: usize, j: usize) -> bool {
        if self.causal && j > self.shape.q_pos(i) {
            return false;
        }
        let t = i / self.block;
        self.ranges(h, t).iter().any(|&[s, e]| (s as usize..e as usize).contains(&j))
            || self.columns(h, t).binary_search(&(j as u32)).is_ok()
            || self.diagonals(h, t).binary_search(&(self.shape.q_pos(i) as i64 - j as i64)).is_ok()
    }

    /// Computed (visible) query-key pairs of head `h`.
    pub fn head_pairs(&self, h: usize) -> u64 {
        let (blocks, lines) = self.head_pairs_split(h);
        blocks + lines
    }

    /// Estimated compute of head `h` as a share of dense attention's: pairs
    /// on diagonal lines weigh [`LINE_PAIR_COST`] block pairs. The pattern
    /// searches rank candidates by it.
    pub fn head_cost(&self, h: usize) -> f64 {
        let d = self.dense_pairs_per_head();
        let (blocks, lines) = self.head_pairs_split(h);
        if d == 0 { 1.0 } else { (blocks as f64 + LINE_PAIR_COST * lines as f64) / d as f64 }
    }

    /// (pairs in ranges and columns, pairs on diagonal lines) of head `h`.
    fn head_pairs_split(&self, h: usize) -> (u64, u64) {
        let sh = &self.shape;
        let (mut total, mut lines) = (0u64, 0u64);
        for t in 0..self.tiles {
            let r0 = t * self.block;
            let r1 = (r0 + self.block).min(sh.q_len);
            if self.causal {
                // Row i sees keys 0..=pos(i), positions consecutive: counted per range and column.
                let (p0, p1) = (sh.q_pos(r0) as u64, sh.q_pos(r1 - 1) as u64);
                for &[s, e] in self.ranges(h, t) {
                    total += causal_range_pairs(s as u64, e as u64, p0, p1);
                }
                total += self.columns(h, t).iter().map(|&c| p1.saturating_sub((c as u64).max(p0)) + u64::from(c as u64 <= p1)).sum::<u64>();
            } else {
                let per_row: u64 = self.ranges(h, t).iter().map(|r| (r[1] - r[0]) as u64).sum::<u64>() + self.columns(h, t).len() as u64;
                total += per_row * (r1 - r0) as u64;
            }
            lines += self.diagonal_pairs(h, t, r0, r1);
        }
        (total, lines)
    }

    /// Pairs the diagonals of (h, t) add over rows `r0..r1`: rows whose key
    /// `pos - o` is visible, less those whose key is a column or in a range.
    fn diagonal_pairs(&self, h: usize, t: usize, r0: usize, r1: usize) -> u64 {
        let (n, base) = (self.shape.kv_len as i64, self.shape.q_pos(r0) as i64);
        let rows = (r1 - r0) as i64;
        let (cols, ranges) = (self.columns(h, t), self.ranges(h, t));
        let mut total = 0u64;
        for &o in self.diagonals(h, t) {
            if self.causal && o < 0 {
                continue;
            }
            // keys base - o + i for i in 0..rows, within [0, n)
            let lo = (base - o).max(0);
            let hi = (base - o + rows).min(n);
            if lo >= hi {
                continue;
            }
            let (held_cols, held_ranges) = held_keys(cols, ranges, lo, hi);
            let in_ranges: i64 = held_ranges.iter().map(|r| hi.min(r[1] as i64) - lo.max(r[0] as i64)).sum();
            total += (hi - lo - in_ranges) as u64 - held_cols.len() as u64;
        }
        total
    }

    /// Visible query-key pairs of one head (what dense computes).
    pub fn dense_pairs_per_head(&self) -> u64 {
        dense_pairs(&self.shape, self.causal)
    }

    /// Share of visible pairs head `h` computes.
    pub fn head_density(&self, h: usize) -> f64 {
        let d = self.dense_pairs_per_head();
        if d == 0 { 1.0 } else { self.head_pairs(h) as f64 / d as f64 }
    }

    /// Share of visible pairs computed over all heads.
    pub fn density(&self) -> f64 {
        let d = self.dense_pairs_per_head() * self.shape.heads as u64;
        if d == 0 {
            return 1.0;
        }
        let s: u64 = (0..self.shape.heads).into_par_iter().map(|h| self.head_pairs(h)).sum();
        s as f64 / d as f64
    }
}

/// Pairs of keys `s..e` visible to rows at positions `p0..=p1` (causal: a row
/// at `p` sees keys up to `p`): `Σ_p clamp(p + 1 - s, 0, e - s)`.
fn causal_range_pairs(s: u64, e: u64, p0: u64, p1: u64) -> u64 {
    // rows up to position e - 1 see a growing part (p + 1 - s keys from p = s on), later rows all e - s
    let (a, b) = (p0.max(s), p1.min(e.saturating_sub(1)));
    let growing = if a <= b { (b - a + 1) * (a + b + 2 - 2 * s) / 2 } else { 0 };
    let full = (p1 + 1).saturating_sub(p0.max(e)) * (e - s);
    growing + full
}

/// Visible query-key pairs of one head.
pub fn dense_pairs(shape: &AttnShape, causal: bool) -> u64 {
    if causal {
        (0..shape.q_len).map(|i| shape.q_pos(i) as u64 + 1).sum()
    } else {
        shape.q_len as u64 * shape.kv_len as u64
    }
}

/// Longest key range of a sparse job: four blocks, so long runs of selected keys (windows,
/// merged diagonals, neighbouring blocks) go through fewer online-softmax steps and longer GEMMs.
fn key_span(block: usize) -> usize {
    4 * block
}

/// Merges intervals (clipped to `[0, vis_end)`), splits them into chunks of
/// at most [`key_span`] keys and keeps the columns outside them.
fn finish_job(iv: &mut Vec<[usize; 2]>, cols: &mut Vec<u32>, vis_end: usize, block: usize, job: &mut Job) {
    for r in iv.iter_mut() {
        r[1] = r[1].min(vis_end);
    }
    iv.retain(|r| r[0] < r[1]);
    iv.sort_unstable();
    let mut merged: Vec<[usize; 2]> = Vec::with_capacity(iv.len());
    for &r in iv.iter() {
        match merged.last_mut() {
            Some(last) if r[0] <= last[1] => last[1] = last[1].max(r[1]),
            _ => merged.push(r),
        }
    }
    let span = key_span(block);
    for &[s, e] in &merged {
        let mut a = s;
        while a < e {
            let b = (a + span).min(e);
            job.ranges.push([a as u32, b as u32]);
            a = b;
        }
    }
    cols.retain(|&c| (c as usize) < vis_end);
    cols.sort_unstable();
    cols.dedup();
    cols.retain(|&c| {
        let c = c as usize;
        let k = merged.partition_point(|r| r[1] <= c);
        !(k < merged.len() && merged[k][0] <= c)
    });
    job.cols.extend_from_slice(cols);
}

/// Builds the index of one pattern for all heads.
pub fn build_index<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    pattern: &PrefillPattern,
) -> Result<SparseIndex> {
    build_index_per_head(q, k, shape, opts, &vec![*pattern; shape.heads])
}

/// Builds an index with one pattern per query head (`patterns.len() ==
/// heads`), e.g. from [`search_patterns`] or a DuoAttention policy.
pub fn build_index_per_head<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    patterns: &[PrefillPattern],
) -> Result<SparseIndex> {
    let k = k.into();
    check_all(q, &k, None, shape, opts)?;
    if patterns.len() != shape.heads {
        return mismatch(format!("{} patterns for {} heads", patterns.len(), shape.heads));
    }
    for p in patterns {
        p.validate()?;
    }
    // transposed keys: for the estimates that score every key
    let needs_k = patterns.iter().any(|p| {
        matches!(p, PrefillPattern::VerticalSlash { .. } | PrefillPattern::BlockTopK { estimate: ScoreEstimate::MeanQuery, .. })
    });
    let kv = if needs_k { Some(PreparedKv::new(&k, None, shape)) } else { None };
    let level = Level::resolve(opts.kernel);
    let per_head: Vec<Vec<Job>> = (0..shape.heads)
        .into_par_iter()
        .map(|h| head_jobs(q, &k, kv.as_ref(), shape, opts, level, h, &patterns[h]))
        .collect();
    Ok(SparseIndex::from_jobs(shape, opts.causal, opts.block, per_head.into_iter().flatten().collect()))
}

#[allow(clippy::too_many_arguments)]
fn head_jobs(
    q: &[f32],
    k: &KvSlice,
    kv: Option<&PreparedKv>,
    shape: &AttnShape,
    opts: &AttnOptions,
    level: Level,
    h: usize,
    pattern: &PrefillPattern,
) -> Vec<Job> {
    let b = opts.block;
    let tiles = shape.q_len.div_ceil(b);
    let mut jobs = vec![Job::default(); tiles];
    let tile_pos = |t: usize| -> (usize, usize) {
        let r1 = ((t + 1) * b).min(shape.q_len) - 1;
        (shape.q_pos(t * b), shape.q_pos(r1))
    };
    match *pattern {
        PrefillPattern::Dense => {
            for (t, job) in jobs.iter_mut().enumerate() {
                dense_job(shape, opts.causal, b, key_span(b), t, job);
            }
        }
        PrefillPattern::AShape { sink, window } => {
            for (t, job) in jobs.iter_mut().enumerate() {
                let (p0, p1) = tile_pos(t);
                let mut iv = vec![[0, sink]];
                if window > 0 {
                    if opts.causal {
                        iv.push([(p0 + 1).saturating_sub(window), p1 + 1]);
                    } else {
                        // Non-causal: keys within `window` positions of
                        // each row, before or after it.
                        iv.push([(p0 + 1).saturating_sub(window), p1 + window]);
                    }
                }
                finish_job(&mut iv, &mut Vec::new(), visible_end(shape, opts.causal, b, t), b, job);
            }
        }
        PrefillPattern::VerticalSlash { vertical, slash, last_q, spread_q, slash_lines, segment } => {
            let kv = kv.expect("prepared keys");
            let n = shape.kv_len as i64;
            let seg_tiles = if segment == 0 { tiles.max(1) } else { segment.div_ceil(b) };
            // the score rows of every segment's estimate (allocated once: fresh pages cost faults)
            let mut scratch = Vec::new();
            let est = VsEstimate { vertical, slash, last_q, spread_q };
            for (s, seg_jobs) in jobs.chunks_mut(seg_tiles).enumerate() {
                let t0 = s * seg_tiles;
                let rows = t0 * b..((t0 + seg_jobs.len()) * b).min(shape.q_len);
                let (vcols, mut offsets) = vs_estimate(q, kv, shape, opts, level, h, &est, rows, &mut scratch);
                // Largest offset first: the tiles' key intervals then come in start order.
                offsets.sort_unstable_by(|a, b| b.cmp(a));
                for (t, job) in seg_jobs.iter_mut().enumerate().map(|(i, j)| (t0 + i, j)) {
                    let (p0, p1) = tile_pos(t);
                    let vis = visible_end(shape, opts.causal, b, t) as i64;
                    // Diagonal `pos - key = o` crosses this tile at keys p0-o ..= p1-o.
                    let crossing = offsets.iter().filter_map(|&o| {
                        let s = (p0 as i64 - o).max(0);
                        let e = (p1 as i64 - o + 1).min(n).min(vis);
                        (s < e).then_some(([s as usize, e as usize], o))
                    });
                    let mut iv = Vec::with_capacity(offsets.len());
                    if slash_lines {
                        slash_lines_or_bands(crossing, &mut iv, &mut job.diags);
                    } else {
                        iv.extend(crossing.map(|x| x.0));
                    }
                    let mut c = vcols.clone();
                    finish_job(&mut iv, &mut c, vis as usize, b, job);
                }
            }
        }
        PrefillPattern::BlockTopK { gamma, estimate } => {
            block_topk_jobs(q, k, kv, shape, opts, level, h, gamma, estimate, &mut jobs);
        }
    }
    jobs
}

/// Time of a pair on a diagonal line relative to a pair in a block (tile
/// GEMMs), measured at 64k on AVX2 (f32 K/V, SmolLM2 heads: 3.6–4.4): a
/// line's pairs read a key and a value row each that no other pair of the
/// tile reads, so lines run at the speed of those reads (one contiguous
/// stretch per line), where a block computes 64 rows per key read.
pub const LINE_PAIR_COST: f64 = 4.0;

/// Keys per row a band of near diagonals may compute per diagonal before the
/// group becomes lines. Above [`LINE_PAIR_COST`]: a band also computes the
/// keys beside its diagonals, which in real heads carry attention (at 4,
/// SmolLM2-YaRN layer 10 lost 0.009 recall at the same budgets).
const BAND_KEYS_PER_LINE: f64 = 6.0;

/// Splits one tile's diagonals (key intervals in start order, i.e. offsets
/// descending) into groups of near offsets (gaps under
/// [`BAND_KEYS_PER_LINE`]); a group whose band (the union of its intervals:
/// its offset span plus the tile) is wider than [`BAND_KEYS_PER_LINE`] keys
/// per diagonal computes lines (offsets into `lines`, sorted), the rest
/// bands (intervals into `bands`). A line's keys that a band or column also holds are
/// computed there (the kernel and the pair counts skip them on the line).
fn slash_lines_or_bands(crossing: impl Iterator<Item = ([usize; 2], i64)>, bands: &mut Vec<[usize; 2]>, lines: &mut Vec<i64>) {
    let mut group: Vec<([usize; 2], i64)> = Vec::new();
    let mut flush = |group: &mut Vec<([usize; 2], i64)>| {
        if let (Some(start), Some(end)) = (group.iter().map(|x| x.0[0]).min(), group.iter().map(|x| x.0[1]).max()) {
            // keys per row: the band's width against one per line
            if group.len() as f64 * BAND_KEYS_PER_LINE < (end - start) as f64 {
                lines.extend(group.iter().map(|x| x.1));
            } else {
                bands.extend(group.iter().map(|x| x.0));
            }
        }
        group.clear();
    };
    for (r, o) in crossing {
        if group.last().is_some_and(|&(_, prev)| (prev - o) as f64 >= BAND_KEYS_PER_LINE) {
            flush(&mut group);
        }
        group.push((r, o));
    }
    flush(&mut group);
    lines.sort_unstable();
}

/// Budgets and query sample of a vertical-slash estimate.
struct VsEstimate {
    vertical: usize,
    slash: usize,
    last_q: usize,
    spread_q: usize,
}

/// MInference's estimate for head `h` over the query rows `seg` (all rows,
/// or one segment): softmax of its last `last_q` queries (and of `spread_q`
/// queries spaced evenly before them in `seg`) over their visible keys,
/// summed per column and per diagonal; returns the top columns and top
/// diagonal offsets.
#[allow(clippy::too_many_arguments)]
fn vs_estimate(
    q: &[f32],
    kv: &PreparedKv,
    shape: &AttnShape,
    opts: &AttnOptions,
    level: Level,
    h: usize,
    est: &VsEstimate,
    seg: std::ops::Range<usize>,
    scratch: &mut Vec<f32>,
) -> (Vec<u32>, Vec<i64>) {
    let VsEstimate { vertical, slash, last_q, spread_q } = *est;
    let d = shape.head_dim;
    let n = shape.kv_len;
    let lq = last_q.min(seg.len());
    let g = h / shape.group();
    let scale = opts.scale_for(d);
    let r0 = seg.end - lq;
    // query rows of the estimate: `spread_q` spaced evenly over [seg.start, r0) (distinct: the
    // step is at least 1), then the last `lq`
    let m = spread_q.min(r0 - seg.start);
    let rows: Vec<usize> = (0..m).map(|i| seg.start + i * (r0 - seg.start) / m).chain(r0..seg.end).collect();
    let qs: Vec<f32> = rows.iter().flat_map(|&r| q[(h * shape.q_len + r) * d..][..d].iter().map(|x| x * scale)).collect();
    let kt = &kv.kt[g * d * kv.ld..(g + 1) * d * kv.ld];
    // f32 sums: a few hundred shares of at most 1 each, well within f32's precision
    let mut vscore = vec![0.0f32; n];
    // Offsets pos - key span -(n-1)..=(n-1); index o + n - 1.
    let mut sscore = vec![0.0f32; 2 * n - 1];
    let pos: Vec<usize> = rows.iter().map(|&r| shape.q_pos(r)).collect();
    let ends: Vec<usize> = pos.iter().map(|&p| if opts.causal { p + 1 } else { n }).collect();
    exp_score_rows(level, &qs, d, kt, kv.ld, &ends, 64, scratch, |i, row, _, sum| {
        let inv = 1.0 / sum;
        // key j lies on diagonal pos - j, index top - j: the row runs down the diagonals
        let top = pos[i] + n - 1;
        let diags = sscore[top + 1 - row.len()..=top].iter_mut().rev();
        for ((v, s), &p) in vscore.iter_mut().zip(diags).zip(row) {
            let p = p * inv;
            *v += p;
            *s += p;
        }
    });
    for v in vscore.iter_mut().take(VS_FORCED_SINKS) {
        *v = f32::INFINITY;
    }
    for o in 0..VS_FORCED_LOCAL.min(n) {
        sscore[o + n - 1] = f32::INFINITY;
    }
    let cols = top_indices(&vscore, vertical).into_iter().map(|j| j as u32).collect();
    let offs = top_indices(&sscore, slash).into_iter().map(|i| i as i64 - (n as i64 - 1)).collect();
    (cols, offs)
}

/// Indices of the `k` largest positive scores (ties by lower index).
fn top_indices(score: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..score.len()).filter(|&i| score[i] > 0.0).collect();
    if k < idx.len() {
        let cmp = |a: &usize, b: &usize| score[*b].total_cmp(&score[*a]).then(a.cmp(b));
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx
}

#[allow(clippy::too_many_arguments)]
fn block_topk_jobs(
    q: &[f32],
    k: &KvSlice,
    kv: Option<&PreparedKv>,
    shape: &AttnShape,
    opts: &AttnOptions,
    level: Level,
    h: usize,
    gamma: f32,
    estimate: ScoreEstimate,
    jobs: &mut [Job],
) {
    let b = opts.block;
    let d = shape.head_dim;
    let n = shape.kv_len;
    let g = h / shape.group();
    let kblocks = n.div_ceil(b);
    let tiles = jobs.len();
    let scale = opts.scale_for(d);
    // Mean-pooled representatives.
    let mut qbar = vec![0.0f32; tiles * d];
    for t in 0..tiles {
        let r0 = t * b;
        let r1 = (r0 + b).min(shape.q_len);
        let dst = &mut qbar[t * d..(t + 1) * d];
        for i in r0..r1 {
            for (x, &y) in dst.iter_mut().zip(&q[(h * shape.q_len + i) * d..][..d]) {
                *x += y;
            }
        }
        let inv = 1.0 / (r1 - r0) as f32;
        dst.iter_mut().for_each(|x| *x *= inv);
    }
    // mean-pooled key blocks (the pooled estimates only)
    let pooled_keys = || {
        let mut kbar = vec![0.0f32; kblocks * d];
        let mut row = vec![0.0f32; d];
        for kb in 0..kblocks {
            let s = kb * b;
            let e = (s + b).min(n);
            let dst = &mut kbar[kb * d..(kb + 1) * d];
            for j in s..e {
                k.read((g * n + j) * d, &mut row);
                for (x, &y) in dst.iter_mut().zip(&row) {
                    *x += y;
                }
            }
            let inv = 1.0 / (e - s) as f32;
            dst.iter_mut().for_each(|x| *x *= inv);
        }
        kbar
    };
    let score: Box<dyn Fn(usize, usize) -> f32> = match estimate {
        ScoreEstimate::Pooled => {
            let kbar = pooled_keys();
            let dot = quarry_simd::kernels().f32_dot;
            Box::new(move |t, kb| dot(&qbar[t * d..(t + 1) * d], &kbar[kb * d..(kb + 1) * d]) * scale)
        }
        ScoreEstimate::PooledI8 | ScoreEstimate::PooledI4 => {
            let qmax = if estimate == ScoreEstimate::PooledI8 { 127.0 } else { 7.0 };
            let (qq, qs) = quantize_rows(&qbar, d, qmax);
            let (kq, ks) = quantize_rows(&pooled_keys(), d, qmax);
            let dot = quarry_simd::kernels().i8_dot;
            Box::new(move |t, kb| {
                dot(&qq[t * d..(t + 1) * d], &kq[kb * d..(kb + 1) * d]) as f32 * qs[t] * ks[kb] * scale
            })
        }
        ScoreEstimate::MeanQuery => {
            let bs = mean_query_block_scores(&qbar, kv.expect("prepared keys"), shape, opts, level, g, tiles);
            Box::new(move |t, kb| bs[t * kblocks + kb])
        }
    };
    let mut sc: Vec<(f32, usize)> = Vec::with_capacity(kblocks);
    for (t, job) in jobs.iter_mut().enumerate() {
        let vis = visible_end(shape, opts.causal, b, t);
        let nb = vis.div_ceil(b);
        let mut keep = vec![false; nb];
        if gamma >= 1.0 {
            keep.fill(true);
        } else {
            sc.clear();
            sc.extend((0..nb).map(|kb| (score(t, kb), kb)));
            let m = sc.iter().map(|x| x.0).fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0f64;
            for x in sc.iter_mut() {
                x.0 = (x.0 - m).exp();
                total += x.0 as f64;
            }
            sc.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut cum = 0.0f64;
            for &(p, kb) in sc.iter() {
                if cum >= gamma as f64 * total {
                    break;
                }
                keep[kb] = true;
                cum += p as f64;
            }
            keep[0] = true;
            if opts.causal {
                // Diagonal: the blocks holding this tile's own positions.
                let r1 = ((t + 1) * b).min(shape.q_len) - 1;
                keep[shape.q_pos(t * b) / b..=shape.q_pos(r1) / b].fill(true);
            }
        }
        let mut iv: Vec<[usize; 2]> =
            (0..nb).filter(|&kb| keep[kb]).map(|kb| [kb * b, ((kb + 1) * b).min(n)]).collect();
        finish_job(&mut iv, &mut Vec::new(), vis, b, job);
    }
}

/// Block scores of [`ScoreEstimate::MeanQuery`] for KV head `g`, `[tile][key block]`:
/// `ln Σ exp(q̄_t·k_j·scale)` over the block's keys visible to tile `t` (−∞ for blocks it
/// cannot see), so a softmax over a tile's scores gives each block its share of the mean
/// query's attention.
#[allow(clippy::too_many_arguments)]
fn mean_query_block_scores(
    qbar: &[f32],
    kv: &PreparedKv,
    shape: &AttnShape,
    opts: &AttnOptions,
    level: Level,
    g: usize,
    tiles: usize,
) -> Vec<f32> {
    let (b, d, n) = (opts.block, shape.head_dim, shape.kv_len);
    let kblocks = n.div_ceil(b);
    let scale = opts.scale_for(d);
    let qs: Vec<f32> = qbar.iter().map(|x| x * scale).collect();
    let kt = &kv.kt[g * d * kv.ld..(g + 1) * d * kv.ld];
    let mut out = vec![f32::NEG_INFINITY; tiles * kblocks];
    let ends: Vec<usize> = (0..tiles).map(|t| visible_end(shape, opts.causal, b, t)).collect();
    exp_score_rows(level, &qs, d, kt, kv.ld, &ends, 32, &mut Vec::new(), |t, row, m, _| {
        for (kb, keys) in row.chunks(b).enumerate() {
            out[t * kblocks + kb] = m + lane_sum(keys).ln();
        }
    });
    out
}

/// Keys per GEMM of [`exp_score_rows`]: 64 channels × 1024 keys of f32 = 256 KiB.
const KEY_BLOCK: usize = 1024;

/// Rows of `qs · Kᵀ` (`qs`: pre-scaled query rows of `d`, `kt`: transposed keys with leading
/// dimension `ld`), `chunk` rows per GEMM over the keys the chunk's rows see; row `i` spans
/// keys `[0, ends[i])`. `f(i, row, m, sum)` gets the row as `exp(score − m)` with `m` its
/// maximum and `sum` their total. `scratch` holds a chunk's rows (grown when short).
#[allow(clippy::too_many_arguments)]
fn exp_score_rows(
    level: Level,
    qs: &[f32],
    d: usize,
    kt: &[f32],
    ld: usize,
    ends: &[usize],
    chunk: usize,
    scratch: &mut Vec<f32>,
    mut f: impl FnMut(usize, &[f32], f32, f32),
) {
    let need = chunk * ends.iter().copied().max().unwrap_or(0);
    if scratch.len() < need {
        scratch.resize(need, 0.0);
    }
    let s = &mut scratch[..];
    let mut i0 = 0;
    while i0 < ends.len() {
        let rows = (ends.len() - i0).min(chunk);
        let cols = ends[i0..i0 + rows].iter().copied().max().unwrap_or(0);
        // in key blocks that stay in L2 while every row group of the chunk reads them (the whole
        // width would stream K from memory once per group)
        for j0 in (0..cols).step_by(KEY_BLOCK) {
            let nb = (cols - j0).min(KEY_BLOCK);
            simd::gemm(level, rows, nb, d, &qs[i0 * d..], d, simd::BMatrix::Rows(&kt[j0..], ld), &mut s[j0..], cols, false);
        }
        for i in 0..rows {
            let row = &mut s[i * cols..i * cols + ends[i0 + i]];
            let m = simd::row_max(level, row);
            let sum = simd::exp_sub_sum(level, row, m);
            f(i0 + i, row, m, sum);
        }
        i0 += rows;
    }
}

/// Sum in eight independent lanes (vectorises; a plain float sum is one dependent chain).
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + it.remainder().iter().sum::<f32>()
}

/// Symmetric per-row quantisation to integers in `-qmax..=qmax`.
fn quantize_rows(x: &[f32], d: usize, qmax: f32) -> (Vec<i8>, Vec<f32>) {
    let rows = x.len() / d;
    let mut q = vec![0i8; x.len()];
    let mut s = vec![0.0f32; rows];
    for r in 0..rows {
        let src = &x[r * d..(r + 1) * d];
        let amax = src.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        let scale = if amax > 0.0 { amax / qmax } else { 1.0 };
        s[r] = scale;
        for (dst, &v) in q[r * d..(r + 1) * d].iter_mut().zip(src) {
            *dst = (v / scale).round().clamp(-qmax, qmax) as i8;
        }
    }
    (q, s)
}

/// Computes attention over the keys of `index` only (same tile engine as
/// dense). `density` is the share of visible query-key pairs computed.
pub fn sparse_attention<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    index: &SparseIndex,
) -> Result<AttnOutput> {
    let (k, v) = (k.into(), v.into());
    check_all(q, &k, Some(&v), shape, opts)?;
    check_index(index, shape, opts)?;
    let density = index.density();
    if density >= 1.0 {
        // every visible pair (full budgets, a per-head plan of dense heads): the dense kernel's
        // larger tiles compute the same attention faster
        return dense_attention(q, k, v, shape, opts);
    }
    let kv = index.prepare(&k, Some(&v), opts);
    let (output, lse) = run_index(q, &kv, shape, opts, index, true);
    Ok(AttnOutput { output, lse, density })
}

/// Builds the index of `pattern` and computes the sparse attention.
pub fn sparse_prefill<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    v: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    pattern: &PrefillPattern,
) -> Result<AttnOutput> {
    let (k, v) = (k.into(), v.into());
    let index = build_index(q, k, shape, opts, pattern)?;
    sparse_attention(q, k, v, shape, opts, &index)
}

fn check_index(index: &SparseIndex, shape: &AttnShape, opts: &AttnOptions) -> Result<()> {
    if index.shape != *shape || index.block != opts.block || index.causal != opts.causal {
        return mismatch("sparse index was built for another shape, block size or causality");
    }
    Ok(())
}

fn run_index(q: &[f32], kv: &PreparedKv, shape: &AttnShape, opts: &AttnOptions, index: &SparseIndex, with_output: bool) -> (Vec<f32>, Vec<f32>) {
    let ctx = Ctx::new(opts, shape, q, kv, with_output).with_key_span(key_span(opts.block));
    ctx.run(|h, t, job| {
        job.ranges.extend_from_slice(index.ranges(h, t));
        job.cols.extend_from_slice(index.columns(h, t));
        job.diags.extend_from_slice(index.diagonals(h, t));
    })
}

/// Log-sum-exp per query row over the keys of `index` only.
pub fn sparse_lse<'a>(q: &[f32], k: impl Into<KvSlice<'a>>, shape: &AttnShape, opts: &AttnOptions, index: &SparseIndex) -> Result<Vec<f32>> {
    let k = k.into();
    check_all(q, &k, None, shape, opts)?;
    check_index(index, shape, opts)?;
    if index.density() >= 1.0 {
        // as in sparse_attention
        return dense_lse(q, k, shape, opts);
    }
    let kv = index.prepare(&k, None, opts);
    Ok(run_index(q, &kv, shape, opts, index, false).1)
}

/// Attention recall of a prefill index: for each query row the share of its
/// true softmax mass on the selected keys (`exp(lse_selected - lse_all)`),
/// averaged per head and overall.
pub fn prefill_recall<'a>(q: &[f32], k: impl Into<KvSlice<'a>>, shape: &AttnShape, opts: &AttnOptions, index: &SparseIndex) -> Result<Recall> {
    let k = k.into();
    let full = dense_lse(q, k, shape, opts)?;
    let sel = sparse_lse(q, k, shape, opts, index)?;
    Ok(recall_from_lse(&sel, &full, shape.heads, shape.q_len))
}

/// Result of [`search_patterns`].
#[derive(Debug, Clone, PartialEq)]
pub struct PatternChoice {
    /// Chosen pattern per query head ([`PrefillPattern::Dense`] where no
    /// candidate met the target).
    pub patterns: Vec<PrefillPattern>,
    /// Calibration recall of the chosen pattern per head.
    pub recall: Vec<f64>,
    /// Calibration density of the chosen pattern per head.
    pub density: Vec<f64>,
    /// Calibration cost ([`SparseIndex::head_cost`]) of the chosen pattern per head.
    pub cost: Vec<f64>,
}

/// MInference's offline step: for each head, the candidate with the lowest
/// cost ([`SparseIndex::head_cost`]: density with diagonal lines weighted)
/// whose mean attention recall on the calibration Q/K reaches
/// `target`; heads no candidate serves get [`PrefillPattern::Dense`].
pub fn search_patterns<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    candidates: &[PrefillPattern],
    target: f64,
) -> Result<PatternChoice> {
    search_patterns_sampled(q, k, shape, opts, candidates, target, 0)
}

/// [`search_patterns`] with recall measured on `sample_tiles` query tiles
/// spread evenly over the sequence (every tile when 0 or at least the tile
/// count); densities are the full indexes'. The search then costs the
/// candidates' estimates plus that share of their attention, so it can run
/// at the length the patterns will serve (MInference calibrates on one long
/// example) rather than on a short prefix whose attention may look different.
pub fn search_patterns_sampled<'a>(
    q: &[f32],
    k: impl Into<KvSlice<'a>>,
    shape: &AttnShape,
    opts: &AttnOptions,
    candidates: &[PrefillPattern],
    target: f64,
    sample_tiles: usize,
) -> Result<PatternChoice> {
    let k = k.into();
    if !(0.0..=1.0).contains(&target) {
        return invalid(format!("recall target ({target}) must be in [0, 1]"));
    }
    check_all(q, &k, None, shape, opts)?;
    let tiles = shape.q_len.div_ceil(opts.block);
    let keep = (sample_tiles > 0 && sample_tiles < tiles).then(|| {
        let mut keep = vec![false; tiles];
        for i in 0..sample_tiles {
            keep[(2 * i + 1) * tiles / (2 * sample_tiles)] = true;
        }
        keep
    });
    // the sampled tiles' rows, and per head the LSE of those rows only
    let rows: Vec<usize> = match &keep {
        None => (0..shape.q_len).collect(),
        Some(keep) => (0..shape.q_len).filter(|&i| keep[i / opts.block]).collect(),
    };
    let pick = |x: Vec<f32>| -> Vec<f32> {
        if keep.is_none() {
            return x;
        }
        let x = &x;
        (0..shape.heads).flat_map(|h| rows.iter().map(move |&i| x[h * shape.q_len + i])).collect()
    };
    let full = pick(match &keep {
        None => dense_lse(q, k, shape, opts)?,
        Some(keep) => sparse_lse(q, k, shape, opts, &build_index(q, k, shape, opts, &PrefillPattern::Dense)?.restricted(keep))?,
    });
    let mut best = PatternChoice {
        patterns: vec![PrefillPattern::Dense; shape.heads],
        recall: vec![1.0; shape.heads],
        density: vec![1.0; shape.heads],
        cost: vec![1.0; shape.heads],
    };
    for cand in candidates {
        let index = build_index(q, k, shape, opts, cand)?;
        let sel = match &keep {
            None => sparse_lse(q, k, shape, opts, &index)?,
            Some(keep) => sparse_lse(q, k, shape, opts, &index.restricted(keep))?,
        };
        let r = recall_from_lse(&pick(sel), &full, shape.heads, rows.len());
        for h in 0..shape.heads {
            let cost = index.head_cost(h);
            if r.per_head[h] >= target && cost < best.cost[h] {
                best.patterns[h] = *cand;
                best.recall[h] = r.per_head[h];
                best.density[h] = index.head_density(h);
                best.cost[h] = cost;
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::KernelChoice;

    /// [`mean_query_block_scores`] against f64 sums over the keys each tile sees:
    /// causal and not, GQA, more keys than queries, partial last blocks, both kernel levels.
    #[test]
    fn mean_query_block_scores_match_naive() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        for (causal, heads, kv_heads, q_len, kv_len, d, block) in
            [(true, 4, 2, 300, 300, 16, 64), (true, 2, 1, 100, 260, 32, 32), (false, 2, 2, 90, 150, 8, 16)]
        {
            let shape = AttnShape::new(heads, kv_heads, q_len, kv_len, d);
            let opts = if causal { AttnOptions::causal() } else { AttnOptions::non_causal() }.with_block(block);
            let k: Vec<f32> = (0..kv_heads * kv_len * d).map(|_| 3.0 * rnd()).collect();
            let tiles = q_len.div_ceil(block);
            let qbar: Vec<f32> = (0..tiles * d).map(|_| 3.0 * rnd()).collect();
            let kv = PreparedKv::new(&KvSlice::from(&k[..]), None, &shape);
            let kblocks = kv_len.div_ceil(block);
            let scale = opts.scale_for(d) as f64;
            for level in [Level::Scalar, Level::resolve(KernelChoice::Auto)] {
                for g in 0..kv_heads {
                    let got = mean_query_block_scores(&qbar, &kv, &shape, &opts, level, g, tiles);
                    for t in 0..tiles {
                        let vis = visible_end(&shape, causal, block, t);
                        let qt = &qbar[t * d..(t + 1) * d];
                        for kb in 0..kblocks {
                            let x = got[t * kblocks + kb] as f64;
                            if kb * block >= vis {
                                assert_eq!(x, f64::NEG_INFINITY, "tile {t} block {kb}");
                                continue;
                            }
                            let want = (kb * block..((kb + 1) * block).min(vis))
                                .map(|j| {
                                    let kj = &k[(g * kv_len + j) * d..(g * kv_len + j + 1) * d];
                                    (qt.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale).exp()
                                })
                                .sum::<f64>()
                                .ln();
                            assert!((x - want).abs() <= 1e-4 * (1.0 + want.abs()), "{level:?} tile {t} block {kb}: {x} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
