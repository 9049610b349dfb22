//! Exact many-to-many k-nearest-neighbour search.
//!
//! # Paths
//!
//! * **GEMM** (f32, f16, bf16 with [`Metric::InnerProduct`], [`Metric::L2sq`]
//!   and [`Metric::Cosine`]): queries are packed once into `MR`-row panels
//!   (see [`crate::gemm`]); the base is processed in chunks of about 1 MiB of
//!   packed f32, each packed into `NR`-row panels together with per-row terms
//!   (squared norms for L2; rows normalised for cosine). Then, in parallel
//!   over query blocks, a register-blocked micro-kernel computes `MR × NR`
//!   tiles of inner products and each tile is folded into the per-query
//!   top-k, which persists across chunks. L2 is `‖q‖² + ‖b‖² − 2 q·b`
//!   clamped at 0, cosine `1 − q̂·b̂` clamped at 0; rows with a zero norm
//!   (cosine) or a non-finite norm (cosine, L2) are computed exactly in f64,
//!   so zero vectors, NaN and infinities follow [`crate::reference`].
//! * **Blocked** (every other dtype/metric, and fewer than
//!   [`GEMM_MIN_QUERIES`] queries): query blocks × base blocks calling the
//!   dispatched one-to-one kernels, with the same top-k.
//!
//! # Threads
//!
//! Work runs on the current rayon pool: wrap the call in
//! `pool.install(|| knn(...))` to choose the number of threads. When there are
//! too few query blocks to keep the pool busy, the base is also split into
//! lanes whose partial top-k are merged at the end. Results do not depend on
//! the number of threads: every pair's value is computed the same way wherever
//! it falls, and the top-k order (key, then id) is total.

use crate::gemm::{self, AlignedBuf, Epilogue, FloatRows, MAX_TILE, MicroKernel, key_from_dot};
use crate::reference::cosine_from_parts;
use crate::topk::{TopK, within};
use crate::{DType, Metric, Result, SimdError, SimdLevel, VectorsRef, check_metric, kernels, matrix_shape, with_kernel};
use rayon::prelude::*;
use std::ops::Range;

/// Result of [`knn`]: for each query, `k` neighbours best first, row-major
/// (`ids[q * k + j]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    pub k: usize,
    pub ids: Vec<u32>,
    /// Distances (similarities for [`Metric::InnerProduct`], largest first).
    pub distances: Vec<f32>,
}

/// Which algorithm [`knn_with`] runs (for tests and benches).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KnnPath {
    /// What [`knn`] does: GEMM at [`gemm::gemm_level`] where it applies,
    /// blocked otherwise.
    #[default]
    Auto,
    /// GEMM with the micro-kernel of this level where the dtype and metric
    /// allow (blocked otherwise); an error if the level cannot run here.
    Gemm(SimdLevel),
    /// Blocked one-to-one kernels.
    Blocked,
    /// One query at a time over the whole base (the simplest loop; a
    /// baseline for benches).
    Naive,
}

/// Options of [`knn_with`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct KnnOptions {
    pub path: KnnPath,
    /// Base rows per GEMM chunk (rounded up to whole panels); 0 = automatic.
    pub chunk_rows: usize,
}

/// Below this many queries the GEMM path (which packs the whole base and pads
/// the queries to whole `MR`-row panels) loses to scanning the base with the
/// one-to-one kernels. Measured on AVX2 (dim 100): GEMM wins from about 4
/// queries against the portable one-to-one kernels; SIMD one-to-one kernels
/// move the crossover up, hence 8.
pub const GEMM_MIN_QUERIES: usize = 8;
/// Target size of one packed base chunk (shared by all threads; stays in L2/L3).
const GEMM_CHUNK_BYTES: usize = 1 << 20;
/// Target size of one thread's packed query block (stays in L2).
const GEMM_QBLOCK_BYTES: usize = 128 << 10;
/// Queries per task on the blocked path.
const BLOCKED_QUERIES: usize = 32;
/// Bytes of base rows per block on the blocked path (stays in L2).
const BLOCKED_BASE_BYTES: usize = 256 << 10;

/// Exact k-NN of every query row among the base rows. Ties go to the smaller
/// id; NaN distances rank last. Runs on the current rayon pool.
pub fn knn(metric: Metric, queries: VectorsRef, base: VectorsRef, dim: usize, k: usize) -> Result<Knn> {
    knn_with(metric, queries, base, dim, k, KnnOptions::default())
}

/// [`knn`] with an explicit algorithm (tests, benches).
#[doc(hidden)]
pub fn knn_with(
    metric: Metric,
    queries: VectorsRef,
    base: VectorsRef,
    dim: usize,
    k: usize,
    opts: KnnOptions,
) -> Result<Knn> {
    knn_core(metric, queries, base, dim, k, opts, None)
}

/// [`knn`] for callers that know, per query, a value its k-th result
/// reaches (`bounds[q]`: a distance at least the k-th nearest one's; for the
/// inner product a similarity at most the k-th best one's), such as the
/// distance to a centroid a k-means point was assigned to last time.
/// Candidates worse than the bound are dropped before the top-k selection
/// sees them, which saves most of that work when the bound is tight. The
/// results equal [`knn`]'s for every query whose bound holds; a query whose
/// bound does not hold may get fewer than `k` results, padded with id
/// `u32::MAX` and distance NaN.
pub fn knn_bounded(metric: Metric, queries: VectorsRef, base: VectorsRef, dim: usize, k: usize, bounds: &[f32]) -> Result<Knn> {
    knn_core(metric, queries, base, dim, k, KnnOptions::default(), Some(bounds))
}

fn knn_core(
    metric: Metric,
    queries: VectorsRef,
    base: VectorsRef,
    dim: usize,
    k: usize,
    opts: KnnOptions,
    bounds: Option<&[f32]>,
) -> Result<Knn> {
    if queries.dtype() != base.dtype() {
        return Err(SimdError::DtypeMismatch(format!(
            "queries are {} and base is {}",
            queries.dtype().name(),
            base.dtype().name()
        )));
    }
    check_metric(metric, base.dtype())?;
    let (row, nq) = matrix_shape(&queries, dim, "queries")?;
    let (_, nb) = matrix_shape(&base, dim, "base")?;
    if k == 0 || k > nb {
        return Err(SimdError::InvalidArgument(format!("k must be in 1..={nb} (the base size), got {k}")));
    }
    if nb > u32::MAX as usize {
        return Err(SimdError::InvalidArgument("base has more than 2^32 - 1 rows".into()));
    }
    let gemm_rows = match (metric, queries, base) {
        (Metric::Hamming | Metric::Jaccard, _, _) => None,
        (_, VectorsRef::F32(q), VectorsRef::F32(b)) => Some((FloatRows::F32(q), FloatRows::F32(b))),
        (_, VectorsRef::F16(q), VectorsRef::F16(b)) => Some((FloatRows::F16(q), FloatRows::F16(b))),
        (_, VectorsRef::BF16(q), VectorsRef::BF16(b)) => Some((FloatRows::BF16(q), FloatRows::BF16(b))),
        _ => None,
    };
    if let Some(b) = bounds
        && b.len() != nq
    {
        return Err(SimdError::InvalidArgument(format!("{} bounds for {nq} queries", b.len())));
    }
    if nq == 0 {
        return Ok(Knn { k, ids: Vec::new(), distances: Vec::new() });
    }
    let shape = Shape { metric, dim, row, nq, nb, k };
    let gemm_kernel = match opts.path {
        KnnPath::Naive => return Ok(knn_naive(&shape, queries, base)),
        KnnPath::Blocked => None,
        KnnPath::Gemm(level) => {
            let mk = gemm::micro_kernel(level).filter(|_| gemm::level_available(level)).ok_or_else(|| {
                SimdError::InvalidArgument(format!("no GEMM kernel for level '{}' on this CPU", level.name()))
            })?;
            Some(mk)
        }
        KnnPath::Auto if nq >= GEMM_MIN_QUERIES => gemm::micro_kernel(gemm::gemm_level()),
        KnnPath::Auto => None,
    };
    Ok(match (gemm_kernel, gemm_rows) {
        (Some(mk), Some((qs, bs))) => {
            // As "smaller is nearer" keys; only the GEMM path uses them (the
            // others return complete results, which the contract allows).
            let keys: Option<Vec<f32>> = bounds.map(|b| b.iter().map(|&v| shape.sign() * v).collect());
            knn_gemm(&shape, mk, qs, bs, opts.chunk_rows, keys.as_deref())
        }
        _ => knn_blocked(&shape, queries, base),
    })
}

/// The validated problem.
struct Shape {
    metric: Metric,
    dim: usize,
    /// Stored elements per row.
    row: usize,
    nq: usize,
    nb: usize,
    k: usize,
}

impl Shape {
    /// Multiplier from a kernel's value to a "smaller is nearer" key (and back).
    fn sign(&self) -> f32 {
        if self.metric.higher_is_closer() { -1.0 } else { 1.0 }
    }
}

// ---------------------------------------------------------------------------
// Work split and result assembly, shared by the paths.

/// How queries and base rows are divided into parallel tasks.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Query units (panels or single queries) per task.
    per_task: usize,
    /// Query tasks per lane.
    tasks: usize,
    /// Disjoint slices of the base, each with its own partial top-k.
    lanes: usize,
}

/// Splits `units` query units into tasks of at most `max_per_task`, with at
/// least about two tasks per thread (adding base lanes when the queries alone
/// cannot provide them).
fn plan(units: usize, max_per_task: usize, threads: usize) -> Plan {
    let mut tasks = units.div_ceil(max_per_task.max(1)).max(1);
    let mut lanes = 1;
    if threads > 1 {
        let want = 2 * threads;
        if tasks < want {
            tasks = units.min(want);
        }
        if tasks < want {
            lanes = want.div_ceil(tasks);
        }
    }
    let per_task = units.div_ceil(tasks).max(1);
    Plan { per_task, tasks: units.div_ceil(per_task), lanes }
}

/// One unit of parallel work: a range of queries against one lane of the
/// base, with the queries' partial top-k (kept across base chunks).
struct Task {
    lane: usize,
    q0: usize,
    q1: usize,
    tops: Vec<TopK>,
}

/// The tasks of `plan`, lane-major; `unit` queries per unit.
fn make_tasks(plan: &Plan, unit: usize, nq: usize, k: usize) -> Vec<Task> {
    let mut tasks = Vec::with_capacity(plan.lanes * plan.tasks);
    for lane in 0..plan.lanes {
        for t in 0..plan.tasks {
            let q0 = (t * plan.per_task * unit).min(nq);
            let q1 = ((t + 1) * plan.per_task * unit).min(nq);
            tasks.push(Task { lane, q0, q1, tops: (q0..q1).map(|_| TopK::new(k)).collect() });
        }
    }
    tasks
}

/// Merges the lanes' partial top-k and writes the result.
fn finish(tasks: Vec<Task>, lanes: usize, s: &Shape) -> Knn {
    let (nq, k) = (s.nq, s.k);
    let mut per_lane: Vec<Vec<TopK>> = (0..lanes).map(|_| Vec::with_capacity(nq)).collect();
    for t in tasks {
        per_lane[t.lane].extend(t.tops);
    }
    let mut lanes_iter = per_lane.into_iter();
    let first = lanes_iter.next().expect("at least one lane");
    let rest: Vec<Vec<TopK>> = lanes_iter.collect();
    debug_assert!(first.len() == nq && rest.iter().all(|l| l.len() == nq));
    let sign = s.sign();
    let mut ids = vec![0u32; nq * k];
    let mut distances = vec![0f32; nq * k];
    ids.par_chunks_mut(k).zip(distances.par_chunks_mut(k)).zip(first.into_par_iter()).enumerate().for_each(
        |(q, ((ids_q, d_q), mut top))| {
            for lane in &rest {
                top.absorb(&lane[q]);
            }
            let sorted = top.into_sorted();
            // Fewer than k only where a caller's bound did not hold.
            ids_q.fill(u32::MAX);
            d_q.fill(f32::NAN);
            for (j, (key, id)) in sorted.into_iter().enumerate() {
                ids_q[j] = id;
                // `+ 0.0` turns a negated +0 similarity back into +0.
                d_q[j] = sign * key + 0.0;
            }
        },
    );
    Knn { k, ids, distances }
}

// ---------------------------------------------------------------------------
// Naive and blocked paths (one-to-one kernels).

/// One query at a time over the whole base, in parallel over queries.
fn knn_naive(s: &Shape, queries: VectorsRef, base: VectorsRef) -> Knn {
    let (row, k) = (s.row, s.k);
    let sign = s.sign();
    let mut ids = vec![0u32; s.nq * k];
    let mut distances = vec![0f32; s.nq * k];
    with_kernel!(kernels(), s.metric, queries, base, |qs, bs, kern| {
        ids.par_chunks_mut(k).zip(distances.par_chunks_mut(k)).enumerate().for_each(|(qi, (ids_q, d_q))| {
            let q = &qs[qi * row..(qi + 1) * row];
            let mut top = TopK::new(k);
            for (bi, b) in bs.chunks_exact(row).enumerate() {
                top.push(sign * kern(q, b) as f32, bi as u32);
            }
            for (j, (key, id)) in top.into_sorted().into_iter().enumerate() {
                ids_q[j] = id;
                d_q[j] = sign * key + 0.0;
            }
        });
    });
    Knn { k, ids, distances }
}

/// Query blocks × base blocks with the dispatched one-to-one kernels.
fn knn_blocked(s: &Shape, queries: VectorsRef, base: VectorsRef) -> Knn {
    let (row, nb) = (s.row, s.nb);
    let plan = plan(s.nq, BLOCKED_QUERIES, rayon::current_num_threads());
    let mut tasks = make_tasks(&plan, 1, s.nq, s.k);
    let elem_bytes = match base.dtype() {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        DType::I8 | DType::U8 | DType::Bits => 1,
    };
    let block_rows = (BLOCKED_BASE_BYTES / (row * elem_bytes)).max(1);
    let lane_rows = nb.div_ceil(plan.lanes);
    let sign = s.sign();
    with_kernel!(kernels(), s.metric, queries, base, |qs, bs, kern| {
        tasks.par_iter_mut().for_each(|t| {
            let lane_end = ((t.lane + 1) * lane_rows).min(nb);
            let mut b0 = (t.lane * lane_rows).min(nb);
            while b0 < lane_end {
                let b1 = (b0 + block_rows).min(lane_end);
                let block = &bs[b0 * row..b1 * row];
                for (qi, top) in (t.q0..t.q1).zip(t.tops.iter_mut()) {
                    let q = &qs[qi * row..(qi + 1) * row];
                    for (bi, b) in (b0..b1).zip(block.chunks_exact(row)) {
                        top.push(sign * kern(q, b) as f32, bi as u32);
                    }
                }
                b0 = b1;
            }
        });
    });
    finish(tasks, plan.lanes, s)
}

// ---------------------------------------------------------------------------
// GEMM path.

/// Packed panels of `r` rows plus the per-row terms of the tile epilogue.
#[derive(Default)]
struct Packed {
    /// Panels, `panel[d * r + j]`, each `r * dim` floats.
    data: AlignedBuf,
    /// Per row (padded to whole panels): the additive term of the key.
    add: Vec<f32>,
    /// Per row: squared norm in f64 of the f32 values (not computed, 0, for
    /// the inner product, which does not use it).
    norm: Vec<f64>,
    /// Per panel: bit `j` set when row `j` needs the exact path.
    flags: Vec<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Query,
    Base,
}

impl Packed {
    /// Packs rows `rows` of `src` into panels of `r` rows. Never mutates `src`.
    ///
    /// Per-row terms, so that the key is `(q.add + b.add) + alpha * dot`:
    /// L2: `add` = squared norm; cosine: rows are normalised, `add` = 1 for
    /// queries and 0 for base rows; inner product: 0. Padding base rows get
    /// `add = +inf` so they never look like candidates. Rows whose norm is
    /// not finite (L2, cosine) or zero (cosine) are flagged for the exact path.
    fn pack(&mut self, src: FloatRows, rows: Range<usize>, dim: usize, r: usize, metric: Metric, side: Side) {
        let panels = rows.len().div_ceil(r);
        self.data.resize(panels * r * dim);
        self.add.resize(panels * r, 0.0);
        self.norm.resize(panels * r, 0.0);
        self.flags.resize(panels, 0);
        let pad_add = if side == Side::Base { f32::INFINITY } else { 0.0 };
        let cos_add = if side == Side::Query { 1.0 } else { 0.0 };
        self.data
            .as_mut_slice()
            .par_chunks_mut(r * dim)
            .zip(self.add.par_chunks_mut(r))
            .zip(self.norm.par_chunks_mut(r))
            .zip(self.flags.par_iter_mut())
            .enumerate()
            .for_each_init(
                || vec![0f32; r * dim],
                |rows_buf, (p, (((panel, add), norm), flags))| {
                    *flags = 0;
                    let first = rows.start + p * r;
                    let real = r.min(rows.end - first);
                    for (j, buf) in rows_buf.chunks_exact_mut(dim).enumerate() {
                        if j >= real {
                            buf.fill(0.0);
                            add[j] = pad_add;
                            norm[j] = 0.0;
                            continue;
                        }
                        src.row_into(first + j, dim, buf);
                        let n = if metric == Metric::InnerProduct { 0.0 } else { gemm::sum_squares(buf) };
                        norm[j] = n;
                        let (a, exact) = match metric {
                            Metric::L2sq => {
                                let n32 = n as f32;
                                (n32, !n32.is_finite())
                            }
                            Metric::Cosine if n > 0.0 && n.is_finite() => {
                                let inv = 1.0 / n.sqrt();
                                for x in buf.iter_mut() {
                                    *x = (*x as f64 * inv) as f32;
                                }
                                (cos_add, false)
                            }
                            Metric::Cosine => {
                                buf.fill(0.0);
                                (cos_add, true)
                            }
                            _ => (0.0, false),
                        };
                        add[j] = a;
                        if exact {
                            *flags |= 1 << j;
                        }
                    }
                    gemm::transpose_rows(rows_buf, r, dim, panel);
                },
            );
    }
}

/// Read-only state of one base chunk's GEMM pass.
struct GemmCtx<'a> {
    mk: MicroKernel,
    metric: Metric,
    dim: usize,
    alpha: f32,
    q: &'a Packed,
    b: &'a Packed,
    /// Base rows of this chunk.
    chunk: Range<usize>,
    qsrc: FloatRows<'a>,
    bsrc: FloatRows<'a>,
    /// Per query, the caller's bound as a key ([`knn_bounded`]).
    bounds: Option<&'a [f32]>,
}

impl GemmCtx<'_> {
    /// The key query `q`'s k-th result is known to reach (+inf: unknown).
    #[inline]
    fn bound(&self, q: usize) -> f32 {
        self.bounds.map_or(f32::INFINITY, |b| b[q])
    }
}

#[repr(C, align(64))]
struct TileBuf([f32; MAX_TILE]);

/// The exact key of one pair (rows flagged at packing): f64 arithmetic with
/// the conventions of [`crate::reference`].
fn exact_key(ctx: &GemmCtx, qi: usize, bi: usize, qn: f64, bn: f64, scratch: &mut Option<(Vec<f32>, Vec<f32>)>) -> f32 {
    if ctx.metric == Metric::Cosine && (qn == 0.0 || bn == 0.0) {
        return cosine_from_parts(0.0, qn, bn) as f32;
    }
    let dim = ctx.dim;
    let (a, b) = scratch.get_or_insert_with(|| (vec![0f32; dim], vec![0f32; dim]));
    ctx.qsrc.row_into(qi, dim, a);
    ctx.bsrc.row_into(bi, dim, b);
    let pairs = a.iter().zip(b.iter()).map(|(&x, &y)| (x as f64, y as f64));
    match ctx.metric {
        Metric::L2sq => pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f64>() as f32,
        Metric::Cosine => cosine_from_parts(pairs.map(|(x, y)| x * y).sum(), qn, bn) as f32,
        _ => -(pairs.map(|(x, y)| x * y).sum::<f64>() as f32),
    }
}

/// One task's share of one chunk: base panels `panels` × the task's query
/// panels. Loop order: base panel outer (it stays in L1), query panels inner
/// (the task's packed query block stays in L2).
fn gemm_task<const MR: usize, const NR: usize, const CLAMP: bool>(ctx: &GemmCtx, task: &mut Task, panels: Range<usize>) {
    debug_assert_eq!((ctx.mk.mr, ctx.mk.nr), (MR, NR));
    debug_assert_eq!(task.q0 % MR, 0);
    let dim = ctx.dim;
    let qdata = ctx.q.data.as_slice();
    let bdata = ctx.b.data.as_slice();
    let mut tile = TileBuf([0.0; MAX_TILE]);
    let mut scratch = None;
    // The task's thresholds, whole panels (padding rows: -inf, nothing
    // passes), kept up to date after every push.
    let (qp0, qp1) = (task.q0 / MR, task.q1.div_ceil(MR));
    let mut thr = vec![f32::NEG_INFINITY; (qp1 - qp0) * MR];
    for (q, (t, top)) in thr.iter_mut().zip(&task.tops).enumerate() {
        *t = top.threshold().min(ctx.bound(task.q0 + q));
    }
    for p in panels {
        let bpanel = &bdata[p * NR * dim..(p + 1) * NR * dim];
        let badd: &[f32; NR] = ctx.b.add[p * NR..(p + 1) * NR].try_into().expect("panel terms");
        let bflags = ctx.b.flags[p];
        let id0 = ctx.chunk.start + p * NR;
        let nreal = NR.min(ctx.chunk.end - id0);
        for qp in qp0..qp1 {
            let qpanel = &qdata[qp * MR * dim..(qp + 1) * MR * dim];
            let qbase = qp * MR;
            let mreal = MR.min(task.q1 - qbase);
            let qadd = &ctx.q.add[qbase..qbase + MR];
            let tops = &mut task.tops[qbase - task.q0..qbase - task.q0 + mreal];
            let thr = &mut thr[qbase - task.q0..qbase - task.q0 + MR];
            let ep = Epilogue { qadd: qadd.as_ptr(), badd: badd.as_ptr(), thr: thr.as_ptr(), alpha: ctx.alpha, clamp: CLAMP };
            // SAFETY: the panels hold MR*dim and NR*dim floats, the tile
            // buffer MAX_TILE >= MR*NR, `ep` points at MR, NR and MR terms,
            // and the kernel's level was checked to run on this CPU when it
            // was chosen.
            let mask = unsafe { (ctx.mk.tile)(qpanel.as_ptr(), bpanel.as_ptr(), dim, tile.0.as_mut_ptr(), &ep) };
            let qflags = ctx.q.flags[qp];
            if qflags | bflags == 0 {
                // Only rows with a candidate that may enter (padding rows have
                // a -inf threshold: nothing passes).
                let mut m = mask & ((1u32 << mreal) - 1);
                while m != 0 {
                    let i = m.trailing_zeros() as usize;
                    m &= m - 1;
                    let top = &mut tops[i];
                    let row = &tile.0[i * NR..i * NR + nreal];
                    let mut keys = [0f32; NR];
                    for ((key, &dot), &ba) in keys.iter_mut().zip(row).zip(badd) {
                        *key = key_from_dot::<CLAMP>(qadd[i], ba, ctx.alpha, dot);
                    }
                    top.push_row(&keys[..nreal], id0 as u32, ctx.bound(qbase + i));
                    thr[i] = top.threshold().min(ctx.bound(qbase + i));
                }
            } else {
                for (i, top) in tops.iter_mut().enumerate() {
                    let row = &tile.0[i * NR..i * NR + nreal];
                    for (j, (&dot, &ba)) in row.iter().zip(badd).enumerate() {
                        let key = if (qflags >> i | bflags >> j) & 1 != 0 {
                            let (qn, bn) = (ctx.q.norm[qbase + i], ctx.b.norm[p * NR + j]);
                            exact_key(ctx, qbase + i, id0 + j, qn, bn, &mut scratch)
                        } else {
                            key_from_dot::<CLAMP>(qadd[i], ba, ctx.alpha, dot)
                        };
                        if within(key, ctx.bound(qbase + i)) {
                            top.push(key, (id0 + j) as u32);
                        }
                    }
                    thr[i] = top.threshold().min(ctx.bound(qbase + i));
                }
            }
        }
    }
}

fn knn_gemm(s: &Shape, mk: MicroKernel, qs: FloatRows, bs: FloatRows, chunk_rows: usize, bounds: Option<&[f32]>) -> Knn {
    let clamp = s.metric != Metric::InnerProduct;
    match (mk.mr, mk.nr, clamp) {
        (4, 8, false) => knn_gemm_impl::<4, 8, false>(s, mk, qs, bs, chunk_rows, bounds),
        (4, 8, true) => knn_gemm_impl::<4, 8, true>(s, mk, qs, bs, chunk_rows, bounds),
        (6, 16, false) => knn_gemm_impl::<6, 16, false>(s, mk, qs, bs, chunk_rows, bounds),
        (6, 16, true) => knn_gemm_impl::<6, 16, true>(s, mk, qs, bs, chunk_rows, bounds),
        (8, 32, false) => knn_gemm_impl::<8, 32, false>(s, mk, qs, bs, chunk_rows, bounds),
        (8, 32, true) => knn_gemm_impl::<8, 32, true>(s, mk, qs, bs, chunk_rows, bounds),
        (4, 16, false) => knn_gemm_impl::<4, 16, false>(s, mk, qs, bs, chunk_rows, bounds),
        (4, 16, true) => knn_gemm_impl::<4, 16, true>(s, mk, qs, bs, chunk_rows, bounds),
        (mr, nr, _) => unreachable!("no driver instance for a {mr}x{nr} micro-kernel"),
    }
}

fn knn_gemm_impl<const MR: usize, const NR: usize, const CLAMP: bool>(
    s: &Shape,
    mk: MicroKernel,
    qs: FloatRows,
    bs: FloatRows,
    chunk_rows: usize,
    bounds: Option<&[f32]>,
) -> Knn {
    debug_assert!(MR * NR <= MAX_TILE && NR <= 64 && MR <= 64);
    let (dim, nq, nb) = (s.dim, s.nq, s.nb);
    let qpanels = nq.div_ceil(MR);
    let plan = plan(qpanels, GEMM_QBLOCK_BYTES / (MR * dim * 4), rayon::current_num_threads());
    let mut q = Packed::default();
    q.pack(qs, 0..nq, dim, MR, s.metric, Side::Query);
    let mut tasks = make_tasks(&plan, MR, nq, s.k);
    let chunk_rows = if chunk_rows > 0 { chunk_rows } else { GEMM_CHUNK_BYTES / (dim * 4) };
    // Whole panels, and at least one panel per lane.
    let chunk_rows = chunk_rows.div_ceil(NR).max(plan.lanes) * NR;
    let alpha = if s.metric == Metric::L2sq { -2.0 } else { -1.0 };
    let mut b = Packed::default();
    let mut c0 = 0;
    while c0 < nb {
        let c1 = (c0 + chunk_rows).min(nb);
        b.pack(bs, c0..c1, dim, NR, s.metric, Side::Base);
        let cpanels = (c1 - c0).div_ceil(NR);
        let per_lane = cpanels.div_ceil(plan.lanes);
        let ctx = GemmCtx { mk, metric: s.metric, dim, alpha, q: &q, b: &b, chunk: c0..c1, qsrc: qs, bsrc: bs, bounds };
        tasks.par_iter_mut().for_each(|t| {
            let p0 = (t.lane * per_lane).min(cpanels);
            let p1 = (p0 + per_lane).min(cpanels);
            if p0 < p1 && t.q0 < t.q1 {
                gemm_task::<MR, NR, CLAMP>(&ctx, t, p0..p1);
            }
        });
        c0 = c1;
    }
    finish(tasks, plan.lanes, s)
}
