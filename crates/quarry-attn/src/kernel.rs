//! The tiled attention engine (FlashAttention-style online softmax) shared by
//! dense and sparse prefill.
//!
//! K is transposed once per call into `[kv_heads][head_dim][ld]` so that any
//! run of up to `key_span` consecutive keys is a row-major `head_dim × w`
//! matrix: a query tile times it is one [`simd::gemm`]. A tile job is a list
//! of key *ranges* (consecutive keys, at most `key_span` long, at any offset)
//! plus a list of single key *columns*, which are gathered into a panel of
//! at most `block` keys and then go through exactly the same steps. Dense
//! attention is the job "all aligned blocks up to the diagonal"; as those
//! ranges start on multiples of 16 keys, a dense run (AVX2 or scalar) packs
//! K and V once into the 16-column panels the GEMM multiplies by
//! ([`PanelKv`], [`BMatrix::Panels`]) instead of transposing K.

use crate::shape::{AttnOptions, AttnShape, KvSlice};
use crate::simd::{self, BMatrix, Level, PANEL};
use rayon::prelude::*;
use std::borrow::Cow;

/// K transposed and V widened to f32, ready for the tile engine.
pub(crate) struct PreparedKv<'a> {
    /// `[kv_heads][head_dim][ld]` (empty when `panels` holds K).
    pub kt: Vec<f32>,
    /// Row stride of `kt` (>= kv_len, padded).
    pub ld: usize,
    /// `[kv_heads][kv_len][head_dim]` (empty when `panels` holds V).
    pub v: Cow<'a, [f32]>,
    /// K row-major as f32, `[kv_heads][kv_len][head_dim]`: single columns and
    /// diagonal lines read whole key rows (empty when `panels` holds K).
    pub k_rows: Cow<'a, [f32]>,
    /// K and V packed for [`BMatrix::Panels`] (dense runs on AVX2).
    pub panels: Option<PanelKv>,
}

/// K and V of a dense run in the layout [`BMatrix::Panels`] reads, packed
/// once per call: every query tile multiplies by the same key ranges, and
/// the GEMM would otherwise copy each range's B into panels for every tile.
/// Memory: K takes the place of its transposed copy; V is an f32 copy the
/// unpacked path did not need for f32 inputs.
pub(crate) struct PanelKv {
    /// `[kv_heads][ceil(kv_len/16)][head_dim][16]`: panel `j` is keys
    /// `16j..16j+16` transposed (a `head_dim × 16` block), zero-padded.
    pub k: Vec<f32>,
    /// `[kv_heads][ceil(head_dim/16)][kv_len][16]`: panel `j` is channels
    /// `16j..16j+16` of every key, zero-padded (empty without V).
    pub v: Vec<f32>,
}

impl PanelKv {
    fn new(k: &KvSlice, v: Option<&KvSlice>, shape: &AttnShape) -> Self {
        let (n, d) = (shape.kv_len, shape.head_dim);
        let (n16, d16) = (n.div_ceil(PANEL), d.div_ceil(PANEL));
        // One task per panel (heads × key panels for K, heads × channel
        // panels for V): a model with one KV head still packs on every core.
        let mut kp = vec![0.0f32; shape.kv_heads * n16 * d * PANEL];
        kp.par_chunks_mut((d * PANEL).max(1)).enumerate().with_min_len(16).for_each(|(i, panel)| {
            let (g, j0) = (i / n16, i % n16 * PANEL);
            let mut row = vec![0.0f32; d];
            for j in j0..(j0 + PANEL).min(n) {
                k.read((g * n + j) * d, &mut row);
                for (c, &x) in row.iter().enumerate() {
                    panel[c * PANEL + j - j0] = x;
                }
            }
        });
        let mut vp = vec![0.0f32; if v.is_some() { shape.kv_heads * d16 * n * PANEL } else { 0 }];
        if let Some(v) = v {
            vp.par_chunks_mut((n * PANEL).max(1)).enumerate().for_each(|(i, panel)| {
                let (g, c0) = (i / d16, i % d16 * PANEL);
                let w = (d - c0).min(PANEL);
                let mut row = vec![0.0f32; w];
                for j in 0..n {
                    v.read((g * n + j) * d + c0, &mut row);
                    panel[j * PANEL..j * PANEL + w].copy_from_slice(&row);
                }
            });
        }
        PanelKv { k: kp, v: vp }
    }
}

impl<'a> PreparedKv<'a> {
    /// For a dense run (key ranges starting at multiples of [`PANEL`], no
    /// columns): K and V packed into panels on the levels that multiply
    /// them with [`BMatrix::Panels`] (AVX2, scalar); AVX-512 keeps its own
    /// wider tiles over [`PreparedKv::new`]'s layout.
    pub fn for_dense(k: &KvSlice<'a>, v: Option<&KvSlice<'a>>, shape: &AttnShape, level: Level) -> Self {
        #[cfg(target_arch = "x86_64")]
        if level == Level::Avx512 {
            return Self::new(k, v, shape);
        }
        let _ = level;
        PreparedKv { kt: Vec::new(), ld: 0, v: Cow::Owned(Vec::new()), k_rows: Cow::Owned(Vec::new()), panels: Some(PanelKv::new(k, v, shape)) }
    }

    pub fn new(k: &KvSlice<'a>, v: Option<&KvSlice<'a>>, shape: &AttnShape) -> Self {
        let n = shape.kv_len;
        let d = shape.head_dim;
        // Pad so rows do not sit a multiple of 4 KiB apart (cache-set aliasing
        // when a tile walks head_dim rows).
        let mut ld = n.div_ceil(16) * 16;
        if ld.is_multiple_of(1024) {
            ld += 16;
        }
        let mut kt = vec![0.0f32; shape.kv_heads * d * ld];
        kt.par_chunks_mut(d * ld).enumerate().for_each(|(g, dst)| {
            let mut row = vec![0.0f32; d];
            let base = g * n * d;
            for j in 0..n {
                k.read(base + j * d, &mut row);
                for (c, &x) in row.iter().enumerate() {
                    dst[c * ld + j] = x;
                }
            }
        });
        let v = v.map_or(Cow::Owned(Vec::new()), f32_rows);
        PreparedKv { kt, ld, v, k_rows: f32_rows(k), panels: None }
    }
}

/// Rows of `x` as f32: borrowed when they are f32 already.
fn f32_rows<'a>(x: &KvSlice<'a>) -> Cow<'a, [f32]> {
    match x {
        KvSlice::F32(s) => Cow::Borrowed(*s),
        KvSlice::F16(s) => {
            use half::slice::HalfFloatSliceExt;
            let mut w = vec![0.0f32; s.len()];
            w.par_chunks_mut(1 << 16).zip(s.par_chunks(1 << 16)).for_each(|(dst, src)| src.convert_to_f32_slice(dst));
            Cow::Owned(w)
        }
    }
}

/// Everything a tile needs besides its job.
pub(crate) struct Ctx<'a> {
    pub level: Level,
    pub shape: AttnShape,
    pub causal: bool,
    pub scale: f32,
    /// Query rows per tile, and the most single columns gathered at once.
    pub block: usize,
    /// Longest key range of a job (the row stride of the score tile): four
    /// blocks for sparse jobs, two tiles for dense runs (fewer online
    /// softmax rescales, longer GEMMs).
    pub key_span: usize,
    pub q: &'a [f32],
    pub kv: &'a PreparedKv<'a>,
    /// When false only the log-sum-exp is computed (recall metrics).
    pub with_output: bool,
}

/// Key sets of one (head, query tile): disjoint ranges `[start, end)` of at
/// most `key_span` keys, single columns outside them, and diagonals: offsets
/// `o` (sorted) by which row `i` computes key `pos(i) - o` alone (a key that
/// a range or column also holds is computed there, not on the diagonal).
#[derive(Default, Clone, Debug)]
pub(crate) struct Job {
    pub ranges: Vec<[u32; 2]>,
    pub cols: Vec<u32>,
    pub diags: Vec<i64>,
}

/// The columns and ranges of a job (sorted; ranges disjoint) that hold keys
/// in `lo..hi`: a diagonal crossing those keys skips them.
pub(crate) fn held_keys<'j>(cols: &'j [u32], ranges: &'j [[u32; 2]], lo: i64, hi: i64) -> (&'j [u32], &'j [[u32; 2]]) {
    let a = cols.partition_point(|&c| (c as i64) < lo);
    let b = cols.partition_point(|&c| (c as i64) < hi).max(a);
    let first = ranges.partition_point(|r| (r[1] as i64) <= lo);
    let last = first + ranges[first..].partition_point(|r| (r[0] as i64) < hi);
    (&cols[a..b], &ranges[first..last])
}

/// (head, tile, output rows, lse rows) of one parallel task.
type Task<'o> = (usize, usize, Option<&'o mut [f32]>, &'o mut [f32]);

struct Scratch {
    qbuf: Vec<f32>,
    s: Vec<f32>,
    o: Vec<f32>,
    m: Vec<f32>,
    l: Vec<f32>,
    panel: Vec<f32>,
    vbuf: Vec<f32>,
    /// Diagonal jobs: line-major scores, the lines, each row's rescale.
    dbuf: Vec<f32>,
    lines: Vec<simd::Line>,
    alpha: Vec<f32>,
}

impl<'a> Ctx<'a> {
    /// The run every prefill-style entry point makes: kernels, causality,
    /// scale and block from `opts`.
    pub fn new(opts: &AttnOptions, shape: &AttnShape, q: &'a [f32], kv: &'a PreparedKv<'a>, with_output: bool) -> Self {
        Ctx {
            level: Level::resolve(opts.kernel),
            shape: *shape,
            causal: opts.causal,
            scale: opts.scale_for(shape.head_dim),
            block: opts.block,
            key_span: opts.block,
            q,
            kv,
            with_output,
        }
    }

    /// Allows key ranges of up to `span` keys (at least the block).
    pub fn with_key_span(mut self, span: usize) -> Self {
        self.key_span = span.max(self.block);
        self
    }

    pub fn q_tiles(&self) -> usize {
        self.shape.q_len.div_ceil(self.block)
    }

    /// Runs `job_for(head, tile, &mut job)` for every tile and the engine on
    /// it, in parallel; returns (output or empty, lse `[heads, q_len]`).
    pub fn run<F>(&self, job_for: F) -> (Vec<f32>, Vec<f32>)
    where
        F: Fn(usize, usize, &mut Job) + Sync,
    {
        let sh = &self.shape;
        let d = sh.head_dim;
        let b = self.block;
        let mut out = if self.with_output { vec![0.0f32; sh.q_elems()] } else { Vec::new() };
        let mut lse = vec![0.0f32; sh.heads * sh.q_len];
        if sh.q_len == 0 {
            return (out, lse);
        }
        let tiles = self.q_tiles();
        // One task per (head, tile); the output and lse slices of a task are
        // disjoint, so they are split up front.
        let mut tasks: Vec<Task<'_>> = Vec::with_capacity(sh.heads * tiles);
        let mut out_rest: &mut [f32] = &mut out;
        let mut lse_rest: &mut [f32] = &mut lse;
        for h in 0..sh.heads {
            for t in 0..tiles {
                let rows = (sh.q_len - t * b).min(b);
                let (l, rest) = lse_rest.split_at_mut(rows);
                lse_rest = rest;
                let o = if self.with_output {
                    let (o, rest) = std::mem::take(&mut out_rest).split_at_mut(rows * d);
                    out_rest = rest;
                    Some(o)
                } else {
                    None
                };
                tasks.push((h, t, o, l));
            }
        }
        // Later tiles of a causal pass are the most expensive: start them
        // first so the tail of the schedule is short.
        if self.causal {
            tasks.reverse();
        }
        tasks.into_par_iter().for_each_init(
            || (self.scratch(), Job::default()),
            |(scratch, job), (h, t, o, l)| {
                job.ranges.clear();
                job.cols.clear();
                job.diags.clear();
                job_for(h, t, job);
                self.tile(h, t, job, o, l, scratch);
            },
        );
        (out, lse)
    }

    fn scratch(&self) -> Scratch {
        let d = self.shape.head_dim;
        let b = self.block;
        Scratch {
            qbuf: vec![0.0; b * d],
            s: vec![0.0; b * self.key_span],
            o: vec![0.0; b * d],
            m: vec![0.0; b],
            l: vec![0.0; b],
            panel: vec![0.0; d * b],
            vbuf: vec![0.0; b * d],
            dbuf: vec![0.0; b * b],
            lines: Vec::with_capacity(b),
            alpha: vec![0.0; b],
        }
    }

    fn tile(&self, h: usize, t: usize, job: &Job, out: Option<&mut [f32]>, lse: &mut [f32], sc: &mut Scratch) {
        let sh = &self.shape;
        let d = sh.head_dim;
        let b = self.block;
        let ks = self.key_span;
        let r0 = t * b;
        let rows = lse.len();
        let g = h / sh.group();
        let level = self.level;
        let qsrc = &self.q[(h * sh.q_len + r0) * d..(h * sh.q_len + r0 + rows) * d];
        for (dst, &x) in sc.qbuf[..rows * d].iter_mut().zip(qsrc) {
            *dst = x * self.scale;
        }
        sc.m[..rows].fill(f32::NEG_INFINITY);
        sc.l[..rows].fill(0.0);
        if self.with_output {
            sc.o[..rows * d].fill(0.0);
        }
        let n = sh.kv_len;
        let kt = if self.kv.panels.is_some() { &[][..] } else { &self.kv.kt[g * d * self.kv.ld..(g + 1) * d * self.kv.ld] };
        let ld = self.kv.ld;
        let vh: &[f32] = if self.with_output && self.kv.panels.is_none() { &self.kv.v[g * n * d..(g + 1) * n * d] } else { &[] };
        let first_pos = if self.causal { sh.q_pos(r0) } else { usize::MAX };
        debug_assert!(self.kv.panels.is_none() || job.cols.is_empty(), "packed K/V serve dense jobs (ranges only)");

        for &[s, e] in &job.ranges {
            let (s, e) = (s as usize, e as usize);
            let w = e - s;
            let kb = match &self.kv.panels {
                Some(p) => {
                    debug_assert_eq!(s % PANEL, 0);
                    BMatrix::Panels(&p.k[(g * n.div_ceil(PANEL) + s / PANEL) * d * PANEL..], d * PANEL)
                }
                None => BMatrix::Rows(&kt[s..], ld),
            };
            simd::gemm(level, rows, w, d, &sc.qbuf, d, kb, &mut sc.s, ks, false);
            // Only tiles crossing the diagonal need the mask.
            if self.causal && e - 1 > first_pos {
                for i in 0..rows {
                    let pos = sh.q_pos(r0 + i);
                    let srow = &mut sc.s[i * ks..i * ks + w];
                    for (c, x) in srow.iter_mut().enumerate() {
                        if s + c > pos {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                }
            }
            self.update(rows, w, sc);
            if self.with_output {
                let vb = match &self.kv.panels {
                    Some(p) => BMatrix::Panels(&p.v[(g * d.div_ceil(PANEL) * n + s) * PANEL..], n * PANEL),
                    None => BMatrix::Rows(&vh[s * d..], d),
                };
                simd::gemm(level, rows, d, w, &sc.s, ks, vb, &mut sc.o, d, true);
            }
        }

        let kr: &[f32] = if job.cols.is_empty() { &[] } else { &self.kv.k_rows[g * n * d..(g + 1) * n * d] };
        for chunk in job.cols.chunks(b) {
            let w = chunk.len();
            // the columns' key rows, transposed into a `d × w` panel
            for (x, &j) in chunk.iter().enumerate() {
                for (c, &kv) in kr[j as usize * d..(j as usize + 1) * d].iter().enumerate() {
                    sc.panel[c * b + x] = kv;
                }
            }
            if self.with_output {
                for (jj, &j) in chunk.iter().enumerate() {
                    let j = j as usize;
                    sc.vbuf[jj * d..(jj + 1) * d].copy_from_slice(&vh[j * d..(j + 1) * d]);
                }
            }
            simd::gemm(level, rows, w, d, &sc.qbuf, d, BMatrix::Rows(&sc.panel, b), &mut sc.s, ks, false);
            if self.causal && chunk.iter().any(|&j| j as usize > first_pos) {
                for i in 0..rows {
                    let pos = sh.q_pos(r0 + i);
                    for (x, &j) in sc.s[i * ks..i * ks + w].iter_mut().zip(chunk) {
                        if j as usize > pos {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                }
            }
            self.update(rows, w, sc);
            if self.with_output {
                simd::gemm(level, rows, d, w, &sc.s, ks, BMatrix::Rows(&sc.vbuf, d), &mut sc.o, d, true);
            }
        }

        if !job.diags.is_empty() {
            self.diagonals(g, r0, rows, job, sc);
        }

        for ((dst, &l), &m) in lse.iter_mut().zip(&sc.l[..rows]).zip(&sc.m[..rows]) {
            *dst = if l > 0.0 { m + l.ln() } else { f32::NEG_INFINITY };
        }
        if let Some(out) = out {
            for i in 0..rows {
                let l = sc.l[i];
                let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
                for (dst, &x) in out[i * d..(i + 1) * d].iter_mut().zip(&sc.o[i * d..(i + 1) * d]) {
                    *dst = x * inv;
                }
            }
        }
    }

    /// The diagonals of a job, up to `block` at a time: row `i` scores key
    /// `pos(i) - o` of each offset `o` (a line's keys are consecutive rows of
    /// K and V, read as one stretch each), then the online softmax step over
    /// the line-major scores (eight rows per vector), then adds `p · v`.
    fn diagonals(&self, g: usize, r0: usize, rows: usize, job: &Job, sc: &mut Scratch) {
        let sh = &self.shape;
        let (d, n, b) = (sh.head_dim, sh.kv_len, self.block);
        let kr = &self.kv.k_rows[g * n * d..(g + 1) * n * d];
        let vh: &[f32] = if self.with_output { &self.kv.v[g * n * d..(g + 1) * n * d] } else { &[] };
        let base = sh.q_pos(r0) as i64;
        for chunk in job.diags.chunks(b) {
            let w = chunk.len();
            // rows whose key base + i - o lies in 0..n (a causal run has no o < 0)
            sc.lines.clear();
            sc.lines.extend(chunk.iter().map(|&o| {
                let lo = (o - base).clamp(0, rows as i64);
                let hi = (n as i64 + o - base).clamp(lo, rows as i64);
                if self.causal && o < 0 {
                    simd::Line { lo: 0, hi: 0, key: 0 }
                } else {
                    simd::Line { lo: lo as usize, hi: hi as usize, key: (base + lo - o).max(0) as usize }
                }
            }));
            for x in 0..w {
                sc.dbuf[x * b..x * b + rows].fill(f32::NEG_INFINITY);
            }
            simd::line_scores(self.level, d, &sc.qbuf, kr, &sc.lines, &mut sc.dbuf, b);
            // Keys that are columns or in ranges of this job were computed there already.
            for (x, &o) in chunk.iter().enumerate() {
                let (lo, hi) = ((base - o).max(0), base + rows as i64 - o);
                let (cols, ranges) = held_keys(&job.cols, &job.ranges, lo, hi);
                let row = |j: i64| x * b + (j + o - base) as usize;
                for &col in cols {
                    sc.dbuf[row(col as i64)] = f32::NEG_INFINITY;
                }
                for r in ranges {
                    for j in lo.max(r[0] as i64)..hi.min(r[1] as i64) {
                        sc.dbuf[row(j)] = f32::NEG_INFINITY;
                    }
                }
            }
            simd::line_softmax_step(self.level, rows, w, &mut sc.dbuf, b, &mut sc.m, &mut sc.l, &mut sc.alpha);
            if self.with_output {
                for i in 0..rows {
                    if sc.alpha[i] != 1.0 {
                        simd::scale(self.level, &mut sc.o[i * d..(i + 1) * d], sc.alpha[i]);
                    }
                }
                simd::line_axpy(self.level, d, &mut sc.o, &sc.dbuf, b, vh, &sc.lines);
            }
        }
    }

    /// Online softmax step over the `rows × w` scores in `sc.s`: turns them
    /// into probabilities relative to the new running max and rescales the
    /// running sum and output.
    #[inline]
    fn update(&self, rows: usize, w: usize, sc: &mut Scratch) {
        let ks = self.key_span;
        let d = self.shape.head_dim;
        for i in 0..rows {
            let srow = &mut sc.s[i * ks..i * ks + w];
            let mx = simd::row_max(self.level, srow);
            let m_old = sc.m[i];
            let m_new = m_old.max(mx);
            if m_new == f32::NEG_INFINITY {
                // No visible key yet for this row: contributes nothing.
                srow.fill(0.0);
                continue;
            }
            let sum = simd::exp_sub_sum(self.level, srow, m_new);
            if m_new > m_old {
                let alpha = (m_old - m_new).exp();
                sc.l[i] *= alpha;
                if self.with_output {
                    simd::scale(self.level, &mut sc.o[i * d..(i + 1) * d], alpha);
                }
                sc.m[i] = m_new;
            }
            sc.l[i] += sum;
        }
    }
}

/// The dense job of query tile `t` (of `block` rows): ranges of `span` keys
/// up to the last key the tile sees.
pub(crate) fn dense_job(shape: &AttnShape, causal: bool, block: usize, span: usize, t: usize, job: &mut Job) {
    let end = visible_end(shape, causal, block, t);
    let mut s = 0;
    while s < end {
        let e = (s + span).min(end);
        job.ranges.push([s as u32, e as u32]);
        s = e;
    }
}

/// One past the last key any row of tile `t` may see.
pub(crate) fn visible_end(shape: &AttnShape, causal: bool, block: usize, t: usize) -> usize {
    if causal {
        let last_row = ((t + 1) * block).min(shape.q_len) - 1;
        shape.q_pos(last_row) + 1
    } else {
        shape.kv_len
    }
}
