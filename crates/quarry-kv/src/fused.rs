//! Fused decode attention straight from the packed records (AVX2+FMA+F16C).
//!
//! One job covers one KV head and a range of chunks. It runs two passes:
//! 1. scores of every row for the `g` query heads of the GQA group;
//! 2. softmax weights (max, exp, sum) then the weighted sum of the value
//!    rows.
//!
//! Scores of row-major keys (f32, f16, q8_0, q4_0, RotateKV) take four rows
//! × up to three query heads at a time: each decoded 8-lane piece of a key
//! feeds three FMAs and the per-row sums are reduced with horizontal adds
//! once per four rows. KIVI keys are stored channel-major within a chunk
//! (`quant::channel_asym_bytes`), so their scores are vertical: the chunk's
//! channel scales are folded into the query (`q'_c = q_c·s_c`), its
//! zero-points into a per-head bias (`Σ_c q_c·z_c`), and the codes of one
//! channel for 16 tokens feed `2·J` FMAs with no dequantization and no
//! horizontal sums.
//!
//! Weighted sums of plain rows keep 32 channels × up to three query heads of
//! accumulators in registers while the rows stream by. Affine-coded rows
//! (`x = s·code + z` per 32-channel block) are summed as
//! `Σ (p·s)·(code - mid) + Σ p·(z + s·mid)`: a first pass turns every row's
//! weight into `p·s`, the second runs FMAs straight on the codes.
//!
//! Codes are widened to f32 in registers by byte shuffles, masks and one
//! convert; they are masked in place rather than shifted, and the power of
//! two that leaves is divided out once per result.
//!
//! GEAR chunks are KIVI chunks plus rank-r factors and sparse outliers: the
//! KIVI kernels run over their uniform part and `GearTerms` adds the rest
//! per chunk (`A·(B·q)` for scores, `(Σ p·A)·B` for sums, one correction per
//! outlier). MiKV rows are RotateKV-layout rows; the ones with an f16
//! high-precision copy are rescored on it and their weights moved from the
//! codes to the copy. H2O rows are f16 rows. For these two the job also
//! returns its raw scores (their attention statistics).
//!
//! Used when AVX2 is present, `head_dim` is a multiple of 32 and the method
//! is f32, f16, q8_0, q4_0, H2O, or KIVI / GEAR / RotateKV / MiKV with 2-, 4-
//! or 8-bit codes and groups that are a multiple of 32 channels; everything
//! else (KVQuant, 3-bit codes) takes the tile-decoding path in `cache.rs`.
//! Both are tested against naive attention over `dequantize()`.

use crate::codec::{Codec, Head};
use crate::config::Method;
use crate::kernels;
use crate::quant;

/// Row encodings the kernels are specialised for.
const E_F32: u8 = 0;
const E_F16: u8 = 1;
const E_U2: u8 = 2;
const E_U4: u8 = 4;
const E_U8: u8 = 8;
const E_I8: u8 = 9;

/// How the (scale, zero) of a 32-channel block is read from its row.
const P_PAIR: u8 = 0; // f16 zero then f16 scale (per-token asymmetric groups)
const P_Q4: u8 = 1; // f16 Δ, x = Δ·(q - 8)
const P_Q8: u8 = 2; // f16 Δ, x = Δ·q

/// Where one side's rows lie and how to read them.
#[derive(Clone, Copy)]
struct Raw {
    ptr: *const u8,
    /// Bytes per row.
    stride: usize,
    /// Codes of 32-channel block `b` of row `r` start at
    /// `r·stride + off + b·bstride`.
    off: usize,
    bstride: usize,
    /// Affine encodings: the block's parameters lie at `r·stride + poff[b]`,
    /// or, with `seg_rows > 0`, see below.
    pkind: u8,
    poff: *const usize,
    /// `0`: the rows are uniform as above. Otherwise rows come in segments
    /// of `seg_rows` rows and `seg_bytes` bytes (KIVI value chunks): row
    /// `r` of segment `i` has its codes at `i·seg_bytes + r·stride + off +
    /// b·bstride` and the parameters of block `b` at `i·seg_bytes + poff[b]
    /// + 4·r` (all rows of one block together: eight rows in one load).
    seg_rows: usize,
    seg_bytes: usize,
}

/// How a side is decoded in this job.
struct Side<'a> {
    enc: u8,
    affine: bool,
    rec: &'a [u8],
    stride: usize,
    off: usize,
    bstride: usize,
    pkind: u8,
    poff: Vec<usize>,
    seg_rows: usize,
    seg_bytes: usize,
}

impl Side<'_> {
    fn raw(&self) -> Raw {
        Raw {
            ptr: self.rec.as_ptr(),
            stride: self.stride,
            off: self.off,
            bstride: self.bstride,
            pkind: self.pkind,
            poff: self.poff.as_ptr(),
            seg_rows: self.seg_rows,
            seg_bytes: self.seg_bytes,
        }
    }
}

fn code_enc(bits: u8) -> Option<u8> {
    match bits {
        2 => Some(E_U2),
        4 => Some(E_U4),
        8 => Some(E_U8),
        _ => None,
    }
}

/// Per-token asymmetric rows (RotateKV): `d/gs` f16 (zero,
/// scale) pairs then the packed codes.
fn token_asym_side(rec: &[u8], d: usize, gs: usize, bits: u8) -> Option<Side<'_>> {
    let enc = code_enc(bits)?;
    if !gs.is_multiple_of(32) {
        return None;
    }
    let stride = quant::token_asym_bytes(d, gs, bits);
    let poff = (0..d / 32).map(|b| 4 * (b * 32 / gs)).collect();
    Some(Side { enc, affine: true, rec, stride, off: 4 * (d / gs), bstride: 4 * bits as usize, pkind: P_PAIR, poff, seg_rows: 0, seg_bytes: 0 })
}

/// KIVI value chunks of `t` rows, parameters first
/// ([`quant::token_asym_block_bytes`]).
fn token_asym_block_side(rec: &[u8], t: usize, d: usize, gs: usize, bits: u8) -> Option<Side<'_>> {
    let enc = code_enc(bits)?;
    if !gs.is_multiple_of(32) || !t.is_multiple_of(8) {
        return None;
    }
    let poff = (0..d / 32).map(|b| 4 * t * (b * 32 / gs)).collect();
    let (stride, seg_bytes) = (crate::pack::row_bytes(bits, d), quant::token_asym_block_bytes(t, d, gs, bits));
    Some(Side { enc, affine: true, rec, stride, off: 4 * t * (d / gs), bstride: 4 * bits as usize, pkind: P_PAIR, poff, seg_rows: t, seg_bytes })
}

fn plain_side(rec: &[u8], enc: u8, stride: usize) -> Side<'_> {
    Side { enc, affine: false, rec, stride, off: 0, bstride: 0, pkind: P_PAIR, poff: Vec::new(), seg_rows: 0, seg_bytes: 0 }
}

/// llama.cpp blocks: per 32 channels an f16 scale then the codes.
fn block_side(rec: &[u8], d: usize, q4: bool) -> Side<'_> {
    let nb = d / 32;
    let bs = if q4 { 18 } else { 34 };
    let poff = (0..nb).map(|b| b * bs).collect();
    Side { enc: if q4 { E_U4 } else { E_I8 }, affine: true, rec, stride: nb * bs, off: 2, bstride: bs, pkind: if q4 { P_Q4 } else { P_Q8 }, poff, seg_rows: 0, seg_bytes: 0 }
}

/// How a job's keys are scored.
enum Keys<'a> {
    /// One side over all rows.
    Rows(Side<'a>),
    /// Channel-major KIVI chunks with this code encoding (`kivi_scores`).
    KiviChunks(u8),
}

/// The online-softmax state of one job: per query head of the group the
/// running max, the sum of exponentials and the unnormalised output
/// (`g × dp`).
pub(crate) struct JobState {
    pub m: Vec<f32>,
    pub l: Vec<f32>,
    pub acc: Vec<f32>,
    /// Raw scaled scores `[row][query head]`, when asked for (the attention
    /// statistics of MiKV/H2O); else empty.
    pub scores: Vec<f32>,
}

/// Attention of the `g` prepared query rows `q` (`g × dp`) over chunks
/// `c0..c1` of `head`, or `None` when this method/shape has no fused
/// kernel (the caller then takes the tile-decoding path). `want_scores`:
/// also return the raw scores.
#[allow(clippy::too_many_arguments)]
pub(crate) fn job(codec: &Codec, head: &Head, c0: usize, c1: usize, q: &[f32], g: usize, scale: f32, want_scores: bool) -> Option<JobState> {
    if !kernels::has_avx2() || codec.d != codec.dp || codec.cfg.rope.is_some() {
        return None;
    }
    let cfg = codec.cfg;
    let (d, t) = (codec.d, codec.t);
    let (kb, vb) = codec.rec_bytes();
    let n = (c1 - c0) * t;
    let kr = &head.krec[c0 * kb..c1 * kb];
    let vr = &head.vrec[c0 * vb..c1 * vb];
    let (keys, vside) = match cfg.method {
        Method::F32 => (Keys::Rows(plain_side(kr, E_F32, 4 * d)), plain_side(vr, E_F32, 4 * d)),
        Method::F16 | Method::H2o => (Keys::Rows(plain_side(kr, E_F16, 2 * d)), plain_side(vr, E_F16, 2 * d)),
        Method::Q8_0 => (Keys::Rows(block_side(kr, d, false)), block_side(vr, d, false)),
        Method::Q4_0 => (Keys::Rows(block_side(kr, d, true)), block_side(vr, d, true)),
        Method::Rotate | Method::MiKv => (
            Keys::Rows(token_asym_side(kr, d, cfg.group_size, cfg.bits)?),
            token_asym_side(vr, d, cfg.group_size, cfg.bits)?,
        ),
        Method::Kivi | Method::Gear => {
            let enc = code_enc(cfg.bits)?;
            if !t.is_multiple_of(32) {
                return None;
            }
            let mut vside = token_asym_block_side(vr, t, d, cfg.group_size, cfg.bits)?;
            // GEAR chunks are a KIVI chunk followed by the low-rank factors
            // and the outliers (added below by `GearTerms`)
            vside.seg_bytes = vb;
            (Keys::KiviChunks(enc), vside)
        }
        _ => return None,
    };
    let gear = (cfg.method == Method::Gear).then(|| GearTerms::new(codec, c1 - c0));
    let dp = d;
    // the scores and row weights live in per-thread buffers reused from job to job (no
    // allocation and zeroing per job); every element is written before it is read
    let (mut sc_buf, mut wbuf) = SCRATCH.take();
    grow(&mut sc_buf, g * n);
    let sc = &mut sc_buf[..g * n];
    let mut jb = 0;
    while jb < g {
        let jn = (g - jb).min(3);
        let qb = &q[jb * dp..(jb + jn) * dp];
        let out = &mut sc[jb * n..(jb + jn) * n];
        match &keys {
            Keys::Rows(kside) => {
                let raw = kside.raw();
                // SAFETY: AVX2+FMA+F16C present; `raw` addresses `n` rows of
                // `kside.rec`, whose length is `n·stride` by construction.
                unsafe { scores_dispatch(kside.enc, kside.affine, jn, &raw, n, qb.as_ptr(), dp, &[0.0; 3], scale, out.as_mut_ptr(), n) };
            }
            &Keys::KiviChunks(enc) => {
                let mut qs = vec![0f32; jn * dp];
                // SAFETY: AVX2+FMA+F16C present; `kr` holds `c1 - c0` chunk
                // records of `kb` bytes, each `4·d` parameter bytes then
                // `d` channels × `t/32` code blocks; `out` has `jn` rows of
                // stride `n = (c1 - c0)·t`.
                unsafe { kivi_scores_dispatch(enc, jn, kr.as_ptr(), kb, c1 - c0, t, d, qb.as_ptr(), scale, qs.as_mut_ptr(), out.as_mut_ptr(), n) };
            }
        }
        jb += jn;
    }
    if let Some(gt) = &gear {
        gt.add_to_scores(kr, q, g, scale, sc);
    }
    // MiKV: rows with a high-precision copy are scored on it instead
    let hp = if cfg.method == Method::MiKv { high_precision_rows(head, c0, c1) } else { Vec::new() };
    let mut row = vec![0f32; d];
    for &(r, slot) in &hp {
        kernels::f16_to_f32(&head.hp_k[slot * d..(slot + 1) * d], &mut row);
        for j in 0..g {
            sc[j * n + r] = scale * kernels::dot(&q[j * dp..j * dp + d], &row);
        }
    }
    let scores = if want_scores { (0..n * g).map(|i| sc[(i % g) * n + i / g]).collect() } else { Vec::new() };
    // Softmax weights per query head.
    let mut m = vec![f32::NEG_INFINITY; g];
    let mut l = vec![0f32; g];
    for j in 0..g {
        let s = &mut sc[j * n..(j + 1) * n];
        m[j] = kernels::max_of(s);
        l[j] = kernels::exp_shift_sum(s, m[j]);
    }
    // ... and their weights go to the high-precision values (added below),
    // not to the codes
    let mut hp_w = Vec::with_capacity(hp.len() * g);
    for &(r, _) in &hp {
        for j in 0..g {
            hp_w.push(std::mem::take(&mut sc[j * n + r]));
        }
    }
    let mut acc = vec![0f32; g * dp];
    let raw = vside.raw();
    if vside.affine {
        grow(&mut wbuf, g.min(3) * n);
    }
    let mut jb = 0;
    while jb < g {
        let jn = (g - jb).min(3);
        // SAFETY: AVX2+FMA+F16C present; `raw` addresses `n` rows of
        // `vside.rec`; `sc` holds `g × n` weights, `acc` `g × dp` sums and
        // `wbuf` (affine encodings) `jn × n` floats.
        unsafe {
            let (p, a) = (sc[jb * n..].as_ptr(), acc[jb * dp..].as_mut_ptr());
            if vside.affine {
                affine_accum_dispatch(vside.enc, jn, &raw, n, p, n, dp, a, wbuf.as_mut_ptr())
            } else {
                accum_dispatch(vside.enc, jn, &raw, n, p, n, dp, a)
            }
        }
        jb += jn;
    }
    if let Some(gt) = &gear {
        gt.add_to_values(vr, sc, g, &mut acc);
    }
    for (&(_, slot), w) in hp.iter().zip(hp_w.chunks_exact(g)) {
        kernels::f16_to_f32(&head.hp_v[slot * d..(slot + 1) * d], &mut row);
        for j in 0..g {
            kernels::axpy(w[j], &row, &mut acc[j * dp..j * dp + d]);
        }
    }
    SCRATCH.set((sc_buf, wbuf));
    Some(JobState { m, l, acc, scores })
}

thread_local! {
    /// A thread's job buffers (scores, row weights), kept between jobs.
    static SCRATCH: std::cell::Cell<(Vec<f32>, Vec<f32>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// At least `n` elements (new ones zero, old ones as they were).
fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// MiKV rows of chunks `c0..c1` (one row per chunk) that have a
/// high-precision copy: (row in the job, f16 slot).
fn high_precision_rows(head: &Head, c0: usize, c1: usize) -> Vec<(usize, usize)> {
    head.hp_slot[c0..c1]
        .iter()
        .enumerate()
        .filter(|&(_, &s)| s != crate::codec::NONE)
        .map(|(r, &s)| (r, s as usize))
        .collect()
}

/// GEAR's terms beyond its KIVI-layout part, added to the fused scores and
/// sums chunk by chunk (`codec.d == codec.dp`). A chunk's vectors are
/// `x = deq + A·B (+ exact outliers replacing their channel)`, so
/// `q·x = q·deq + A·(B·q) + Σ_out q_c·(x_c − deq_c − (A·B)_c)` and
/// `Σ p·x = Σ p·deq + (Σ p·A)·B + Σ_out p·(x_c − …)`: the rank-r factors are
/// read once per chunk (f16 → f32), never expanded to `t × d`. (No
/// `mul_add` in its scalar loops: without FMA enabled at compile time that is
/// a call to libm's software `fmaf`.)
struct GearTerms {
    t: usize,
    d: usize,
    r: usize,
    bits: u8,
    group: usize,
    nout: usize,
    nch: usize,
    /// Record bytes and the offset of the factors in a key / value record.
    kb: usize,
    vb: usize,
    kq: usize,
    vq: usize,
}

impl GearTerms {
    fn new(codec: &Codec, nch: usize) -> GearTerms {
        let (t, d, bits, group) = (codec.t, codec.d, codec.cfg.bits, codec.cfg.group_size);
        let (kb, vb) = codec.rec_bytes();
        GearTerms {
            t,
            d,
            r: codec.cfg.rank,
            bits,
            group,
            nout: codec.nout,
            nch,
            kb,
            vb,
            kq: quant::channel_asym_bytes(t, d, bits),
            vq: quant::token_asym_block_bytes(t, d, group, bits),
        }
    }

    /// `Aᵀ` (`r × t`) and `B` (`r × d`) of a record whose factors start at
    /// `q` (`A` is stored `t × r`; `tmp` holds `t·r` floats).
    fn factors(&self, rec: &[u8], q: usize, tmp: &mut [f32], at: &mut [f32], b: &mut [f32]) {
        let (t, d, r) = (self.t, self.d, self.r);
        quant::f16_decode(&rec[q..q + 2 * t * r], tmp);
        for i in 0..t {
            for k in 0..r {
                at[k * t + i] = tmp[i * r + k];
            }
        }
        quant::f16_decode(&rec[q + 2 * t * r..q + 2 * (t + d) * r], b);
    }

    /// Row `i`'s outliers `(channel, exact value)` that `quant::outliers_apply`
    /// leaves in place: channels inside the row, the last entry of a channel.
    fn outliers(&self, rec: &[u8], q: usize, i: usize, mut f: impl FnMut(usize, f32)) {
        let n = self.nout;
        let o = &rec[q + 2 * (self.t + self.d) * self.r + i * n * quant::OUTLIER_BYTES..];
        for (k, (c, x)) in quant::outliers(o, n).enumerate() {
            if c < self.d && !quant::outliers(o, n).skip(k + 1).any(|(c2, _)| c2 == c) {
                f(c, x);
            }
        }
    }

    /// `(A·B)` at row `i`, channel `c`.
    fn low_rank_at(&self, at: &[f32], b: &[f32], i: usize, c: usize) -> f32 {
        (0..self.r).map(|k| at[k * self.t + i] * b[k * self.d + c]).sum()
    }

    /// Scores `sc` (`g` rows of `nch·t`, scaled by `scale`) of the prepared
    /// queries `q` (`g × d`) over key records `kr`.
    fn add_to_scores(&self, kr: &[u8], q: &[f32], g: usize, scale: f32, sc: &mut [f32]) {
        let (t, d, r) = (self.t, self.d, self.r);
        let n = self.nch * t;
        let (mut tmp, mut at, mut b) = (vec![0f32; t * r], vec![0f32; r * t], vec![0f32; r * d]);
        let mut zs = vec![0f32; 2 * d];
        for ci in 0..self.nch {
            let rec = &kr[ci * self.kb..(ci + 1) * self.kb];
            self.factors(rec, self.kq, &mut tmp, &mut at, &mut b);
            for j in 0..g {
                let qj = &q[j * d..(j + 1) * d];
                let s = &mut sc[j * n + ci * t..j * n + (ci + 1) * t];
                for k in 0..r {
                    let bq = scale * kernels::dot(&b[k * d..(k + 1) * d], qj);
                    kernels::axpy(bq, &at[k * t..(k + 1) * t], s);
                }
            }
            if self.nout == 0 {
                continue;
            }
            // the uniform part: per-channel zeros then scales over the chunk
            quant::f16_decode(&rec[..4 * d], &mut zs);
            let codes = &rec[4 * d..self.kq];
            for i in 0..t {
                self.outliers(rec, self.kq, i, |c, x| {
                    let code = crate::pack::code_at(self.bits, codes, c * t + i) as f32;
                    let delta = x - (code * zs[d + c] + zs[c] + self.low_rank_at(&at, &b, i, c));
                    for j in 0..g {
                        sc[j * n + ci * t + i] += scale * q[j * d + c] * delta;
                    }
                });
            }
        }
    }

    /// Unnormalised sums `acc` (`g × d`) of the weights `p` (`g` rows of
    /// `nch·t`) over value records `vr`.
    fn add_to_values(&self, vr: &[u8], p: &[f32], g: usize, acc: &mut [f32]) {
        let (t, d, r) = (self.t, self.d, self.r);
        let n = self.nch * t;
        let (mut tmp, mut at, mut b) = (vec![0f32; t * r], vec![0f32; r * t], vec![0f32; r * d]);
        let (rb, pbytes) = (crate::pack::row_bytes(self.bits, d), 4 * (d / self.group) * t);
        let mut zs = vec![0f32; pbytes / 2];
        for ci in 0..self.nch {
            let rec = &vr[ci * self.vb..(ci + 1) * self.vb];
            self.factors(rec, self.vq, &mut tmp, &mut at, &mut b);
            for j in 0..g {
                let pj = &p[j * n + ci * t..j * n + (ci + 1) * t];
                for k in 0..r {
                    let u = kernels::dot(pj, &at[k * t..(k + 1) * t]);
                    kernels::axpy(u, &b[k * d..(k + 1) * d], &mut acc[j * d..(j + 1) * d]);
                }
            }
            if self.nout == 0 {
                continue;
            }
            // the uniform part: per token and channel group, (zero, scale)
            quant::f16_decode(&rec[..pbytes], &mut zs);
            for i in 0..t {
                self.outliers(rec, self.vq, i, |c, x| {
                    let pair = 2 * ((c / self.group) * t + i);
                    let code = crate::pack::code_at(self.bits, &rec[pbytes + i * rb..pbytes + (i + 1) * rb], c) as f32;
                    let delta = x - (code * zs[pair + 1] + zs[pair] + self.low_rank_at(&at, &b, i, c));
                    for j in 0..g {
                        acc[j * d + c] += p[j * n + ci * t + i] * delta;
                    }
                });
            }
        }
    }
}

macro_rules! dispatch {
    ($f:ident, $enc:expr, $aff:expr, $j:expr, $($arg:expr),*) => {
        match ($enc, $aff, $j) {
            (E_F32, _, 1) => x86::$f::<E_F32, false, 1>($($arg),*),
            (E_F32, _, 2) => x86::$f::<E_F32, false, 2>($($arg),*),
            (E_F32, _, _) => x86::$f::<E_F32, false, 3>($($arg),*),
            (E_F16, _, 1) => x86::$f::<E_F16, false, 1>($($arg),*),
            (E_F16, _, 2) => x86::$f::<E_F16, false, 2>($($arg),*),
            (E_F16, _, _) => x86::$f::<E_F16, false, 3>($($arg),*),
            (E_U2, false, 1) => x86::$f::<E_U2, false, 1>($($arg),*),
            (E_U2, false, 2) => x86::$f::<E_U2, false, 2>($($arg),*),
            (E_U2, false, _) => x86::$f::<E_U2, false, 3>($($arg),*),
            (E_U4, false, 1) => x86::$f::<E_U4, false, 1>($($arg),*),
            (E_U4, false, 2) => x86::$f::<E_U4, false, 2>($($arg),*),
            (E_U4, false, _) => x86::$f::<E_U4, false, 3>($($arg),*),
            (E_U8, false, 1) => x86::$f::<E_U8, false, 1>($($arg),*),
            (E_U8, false, 2) => x86::$f::<E_U8, false, 2>($($arg),*),
            (E_U8, false, _) => x86::$f::<E_U8, false, 3>($($arg),*),
            (E_U2, true, 1) => x86::$f::<E_U2, true, 1>($($arg),*),
            (E_U2, true, 2) => x86::$f::<E_U2, true, 2>($($arg),*),
            (E_U2, true, _) => x86::$f::<E_U2, true, 3>($($arg),*),
            (E_U4, true, 1) => x86::$f::<E_U4, true, 1>($($arg),*),
            (E_U4, true, 2) => x86::$f::<E_U4, true, 2>($($arg),*),
            (E_U4, true, _) => x86::$f::<E_U4, true, 3>($($arg),*),
            (E_U8, true, 1) => x86::$f::<E_U8, true, 1>($($arg),*),
            (E_U8, true, 2) => x86::$f::<E_U8, true, 2>($($arg),*),
            (E_U8, true, _) => x86::$f::<E_U8, true, 3>($($arg),*),
            (_, _, 1) => x86::$f::<E_I8, true, 1>($($arg),*),
            (_, _, 2) => x86::$f::<E_I8, true, 2>($($arg),*),
            (_, _, _) => x86::$f::<E_I8, true, 3>($($arg),*),
        }
    };
}

/// # Safety
/// AVX2+FMA+F16C present; `raw` addresses `n` readable rows; `q` holds
/// `j × dp` floats; `out` has `j` rows of stride `ostride ≥ n`.
#[allow(clippy::too_many_arguments)]
unsafe fn scores_dispatch(enc: u8, aff: bool, j: usize, raw: &Raw, n: usize, q: *const f32, dp: usize, bias: &[f32; 3], scale: f32, out: *mut f32, ostride: usize) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        dispatch!(scores, enc, aff, j, raw, n, q, dp, bias, scale, out, ostride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("fused kernels are only selected on x86_64 with AVX2")
}

/// Weighted sum of plain (f32/f16) rows.
///
/// # Safety
/// AVX2+FMA+F16C present; `raw` addresses `n` readable rows; `p` holds `j`
/// rows of stride `pstride ≥ n`; `acc` holds `j × dp` floats.
#[allow(clippy::too_many_arguments)]
unsafe fn accum_dispatch(enc: u8, j: usize, raw: &Raw, n: usize, p: *const f32, pstride: usize, dp: usize, acc: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        match (enc, j) {
            (E_F32, 1) => x86::accum::<E_F32, 1>(raw, n, p, pstride, dp, acc),
            (E_F32, 2) => x86::accum::<E_F32, 2>(raw, n, p, pstride, dp, acc),
            (E_F32, _) => x86::accum::<E_F32, 3>(raw, n, p, pstride, dp, acc),
            (_, 1) => x86::accum::<E_F16, 1>(raw, n, p, pstride, dp, acc),
            (_, 2) => x86::accum::<E_F16, 2>(raw, n, p, pstride, dp, acc),
            (_, _) => x86::accum::<E_F16, 3>(raw, n, p, pstride, dp, acc),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("fused kernels are only selected on x86_64 with AVX2")
}

macro_rules! code_dispatch {
    ($f:ident, $enc:expr, $j:expr, $($arg:expr),*) => {
        match ($enc, $j) {
            (E_U2, 1) => x86::$f::<E_U2, 1>($($arg),*),
            (E_U2, 2) => x86::$f::<E_U2, 2>($($arg),*),
            (E_U2, _) => x86::$f::<E_U2, 3>($($arg),*),
            (E_U4, 1) => x86::$f::<E_U4, 1>($($arg),*),
            (E_U4, 2) => x86::$f::<E_U4, 2>($($arg),*),
            (E_U4, _) => x86::$f::<E_U4, 3>($($arg),*),
            (E_U8, 1) => x86::$f::<E_U8, 1>($($arg),*),
            (E_U8, 2) => x86::$f::<E_U8, 2>($($arg),*),
            (E_U8, _) => x86::$f::<E_U8, 3>($($arg),*),
            (_, 1) => x86::$f::<E_I8, 1>($($arg),*),
            (_, 2) => x86::$f::<E_I8, 2>($($arg),*),
            (_, _) => x86::$f::<E_I8, 3>($($arg),*),
        }
    };
}

/// Weighted sum of affine-coded rows (per 32-channel block `x = s·q + z`).
///
/// # Safety
/// As [`accum_dispatch`]; `w` holds `j × n` floats of scratch.
#[allow(clippy::too_many_arguments)]
unsafe fn affine_accum_dispatch(enc: u8, j: usize, raw: &Raw, n: usize, p: *const f32, pstride: usize, dp: usize, acc: *mut f32, w: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        code_dispatch!(affine_accum, enc, j, raw, n, p, pstride, dp, acc, w)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("fused kernels are only selected on x86_64 with AVX2")
}

/// Scores of channel-major KIVI key chunks.
///
/// # Safety
/// AVX2+FMA+F16C present; `rec` holds `nch` chunk records of `kb` bytes
/// (layout of [`quant::channel_asym_bytes`] with `t` a multiple of 32 and
/// `d` of 8); `q` and `qs` hold `j × d` floats; `out` has `j` rows of
/// stride `ostride ≥ nch·t`.
#[allow(clippy::too_many_arguments)]
unsafe fn kivi_scores_dispatch(enc: u8, j: usize, rec: *const u8, kb: usize, nch: usize, t: usize, d: usize, q: *const f32, scale: f32, qs: *mut f32, out: *mut f32, ostride: usize) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        code_dispatch!(kivi_scores, enc, j, rec, kb, nch, t, d, q, scale, qs, out, ostride)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("fused kernels are only selected on x86_64 with AVX2")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use std::arch::x86_64::*;

    /// (scale, zero) of block `b` of row `r`, broadcast.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn params<const AFF: bool>(raw: &Raw, r: usize, b: usize) -> (__m256, __m256) {
        if !AFF {
            return (_mm256_setzero_ps(), _mm256_setzero_ps());
        }
        unsafe {
            let p = raw.ptr.add(r * raw.stride + *raw.poff.add(b));
            // Two f16 at once: (zero, scale) or (Δ, first codes).
            let x = _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const i32)));
            let a = _mm256_broadcastss_ps(x);
            match raw.pkind {
                P_PAIR => (_mm256_broadcastss_ps(_mm_movehdup_ps(x)), a),
                P_Q4 => (a, _mm256_mul_ps(a, _mm256_set1_ps(-8.0))),
                _ => (a, _mm256_setzero_ps()),
            }
        }
    }

    /// Channels `32·b + 8·i .. +8` of row `r`, as f32 (affine encodings
    /// dequantized with the block's `sz`; plain codes for KIVI keys).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn piece<const E: u8, const AFF: bool>(raw: &Raw, r: usize, b: usize, i: usize, sz: (__m256, __m256)) -> __m256 {
        unsafe {
            let row = raw.ptr.add(r * raw.stride);
            let x = match E {
                E_F32 => return _mm256_loadu_ps(row.add(4 * (32 * b + 8 * i)) as *const f32),
                E_F16 => return _mm256_cvtph_ps(_mm_loadu_si128(row.add(2 * (32 * b + 8 * i)) as *const __m128i)),
                _ => {
                    let blk = row.add(raw.off + b * raw.bstride);
                    // pack.rs layout: byte j of a block holds codes j + k·(4·bits).
                    let codes = match E {
                        E_U2 => {
                            let w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk as *const __m128i));
                            _mm256_and_si256(_mm256_srl_epi32(w, _mm_cvtsi32_si128(2 * i as i32)), _mm256_set1_epi32(3))
                        }
                        E_U4 => {
                            let w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(8 * (i & 1)) as *const __m128i));
                            _mm256_and_si256(_mm256_srl_epi32(w, _mm_cvtsi32_si128(4 * (i >> 1) as i32)), _mm256_set1_epi32(15))
                        }
                        E_U8 => _mm256_cvtepu8_epi32(_mm_loadl_epi64(blk.add(8 * i) as *const __m128i)),
                        _ => _mm256_cvtepi8_epi32(_mm_loadl_epi64(blk.add(8 * i) as *const __m128i)),
                    };
                    _mm256_cvtepi32_ps(codes)
                }
            };
            if AFF {
                _mm256_fmadd_ps(x, sz.0, sz.1)
            } else {
                x
            }
        }
    }

    /// `[Σa, Σb, Σc, Σd]` of four 8-lane vectors.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn reduce4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
        let ab = _mm256_hadd_ps(a, b);
        let cd = _mm256_hadd_ps(c, d);
        let h = _mm256_hadd_ps(ab, cd);
        _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(a: __m256) -> f32 {
        let s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)))
    }

    /// `out[j·ostride + r] = scale·(q_j · row_r + bias_j)` for `J` query rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn scores<const E: u8, const AFF: bool, const J: usize>(
        raw: &Raw,
        n: usize,
        q: *const f32,
        dp: usize,
        bias: &[f32; 3],
        scale: f32,
        out: *mut f32,
        ostride: usize,
    ) {
        unsafe {
            let nb = dp / 32;
            let mut r = 0;
            while r + 4 <= n {
                if r + 20 <= n {
                    prefetch_bytes(raw.ptr.add((r + 16) * raw.stride), 4 * raw.stride);
                }
                let mut acc = [[_mm256_setzero_ps(); 4]; J];
                for b in 0..nb {
                    for u in 0..4 {
                        let sz = params::<AFF>(raw, r + u, b);
                        for i in 0..4 {
                            let k = piece::<E, AFF>(raw, r + u, b, i, sz);
                            for j in 0..J {
                                acc[j][u] = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(j * dp + 32 * b + 8 * i)), k, acc[j][u]);
                            }
                        }
                    }
                }
                for j in 0..J {
                    let s = reduce4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
                    let s = _mm_mul_ps(_mm_add_ps(s, _mm_set1_ps(bias[j])), _mm_set1_ps(scale));
                    _mm_storeu_ps(out.add(j * ostride + r), s);
                }
                r += 4;
            }
            while r < n {
                let mut acc = [_mm256_setzero_ps(); J];
                for b in 0..nb {
                    let sz = params::<AFF>(raw, r, b);
                    for i in 0..4 {
                        let k = piece::<E, AFF>(raw, r, b, i, sz);
                        for j in 0..J {
                            acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(j * dp + 32 * b + 8 * i)), k, acc[j]);
                        }
                    }
                }
                for j in 0..J {
                    *out.add(j * ostride + r) = (hsum(acc[j]) + bias[j]) * scale;
                }
                r += 1;
            }
        }
    }

    /// `acc_j += Σ_r p[j·pstride + r] · row_r` for `J` query rows (f32/f16 rows).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn accum<const E: u8, const J: usize>(raw: &Raw, n: usize, p: *const f32, pstride: usize, dp: usize, acc: *mut f32) {
        unsafe {
            for b in 0..dp / 32 {
                let mut a = [[_mm256_setzero_ps(); 4]; J];
                for r in 0..n {
                    // the first pass fetches whole rows ahead for all of them
                    if b == 0 && r % 4 == 0 && r + 20 <= n {
                        prefetch_bytes(raw.ptr.add((r + 16) * raw.stride), 4 * raw.stride);
                    }
                    for i in 0..4 {
                        let v = piece::<E, false>(raw, r, b, i, (_mm256_setzero_ps(), _mm256_setzero_ps()));
                        for j in 0..J {
                            a[j][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p.add(j * pstride + r)), v, a[j][i]);
                        }
                    }
                }
                for j in 0..J {
                    for i in 0..4 {
                        let o = acc.add(j * dp + 32 * b + 8 * i);
                        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a[j][i]));
                    }
                }
            }
        }
    }

    /// What piece `i` (codes `8i .. 8i+8`) of [`codes16`] is multiplied by: codes are
    /// masked in place rather than shifted down, so a piece holds
    /// `code·2^k`; the power of two is divided out once per result (exact).
    const fn piece_gain(e: u8, i: usize) -> f32 {
        match e {
            E_U2 => (1 << (2 * i)) as f32,
            E_U4 => (1 << (4 * (i >> 1))) as f32,
            _ => 1.0,
        }
    }

    /// Code at the middle of the range (0 for signed q8_0 codes).
    const fn code_center(e: u8) -> f32 {
        match e {
            E_U2 => 2.0,
            E_U4 => 8.0,
            E_U8 => 128.0,
            _ => 0.0,
        }
    }

    /// `_mm256_shuffle_epi8` control that puts bytes 0-7 of a register whose
    /// two lanes are equal into the low bytes of its eight 32-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn spread_bytes() -> __m256i {
        const Z: i8 = -1;
        _mm256_setr_epi8(0, Z, Z, Z, 1, Z, Z, Z, 2, Z, Z, Z, 3, Z, Z, Z, 4, Z, Z, Z, 5, Z, Z, Z, 6, Z, Z, Z, 7, Z, Z, Z)
    }

    /// Codes `16h .. 16h+16` of one 32-code pack block (`crate::pack`
    /// order) as two 8-lane f32 vectors, pieces `2h` and `2h+1`, each scaled
    /// by [`piece_gain`]. Half a block at a time keeps the `2·J`
    /// accumulators, the pieces and the masks within the 16 registers.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn codes16<const E: u8>(p: *const u8, h: usize) -> [__m256; 2] {
        unsafe {
            let ld = |o: usize| _mm_loadl_epi64(p.add(o) as *const __m128i);
            let f = |x: __m256i| _mm256_cvtepi32_ps(x);
            match E {
                E_U2 => {
                    let b = _mm256_set1_epi64x(std::ptr::read_unaligned(p as *const i64));
                    let w = _mm256_shuffle_epi8(b, spread_bytes());
                    let m = _mm256_set1_epi32(3 << (4 * h));
                    [f(_mm256_and_si256(w, m)), f(_mm256_and_si256(w, _mm256_slli_epi32::<2>(m)))]
                }
                E_U4 => {
                    // Both 128-bit lanes hold the 16 bytes, nibble `h` kept;
                    // in-lane byte shuffles then spread bytes 0-7 and 8-15
                    // over the eight 32-bit lanes (cheaper than two
                    // lane-crossing zero-extensions).
                    let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p as *const __m128i));
                    let b = _mm256_and_si256(b, _mm256_set1_epi8((15u8 << (4 * h)) as i8));
                    let lo = spread_bytes();
                    let hi = _mm256_add_epi32(lo, _mm256_set1_epi32(8));
                    [f(_mm256_shuffle_epi8(b, lo)), f(_mm256_shuffle_epi8(b, hi))]
                }
                E_U8 => [f(_mm256_cvtepu8_epi32(ld(16 * h))), f(_mm256_cvtepu8_epi32(ld(16 * h + 8)))],
                _ => [f(_mm256_cvtepi8_epi32(ld(16 * h))), f(_mm256_cvtepi8_epi32(ld(16 * h + 8)))],
            }
        }
    }

    /// Codes `16h .. 16h+16` of one 32-code pack block minus the middle code
    /// ([`code_center`]), as two 8-lane f32 vectors (pieces `2h`, `2h+1`),
    /// each scaled by [`centered_gain`]. 2-bit codes are looked up in a
    /// 4-entry table (`vpermilps` reads the low two bits of each lane, a shift
    /// brings the next code down) instead of being masked, converted and
    /// centred: 3-4 instructions per 16 codes where that took 6.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn centered16<const E: u8>(p: *const u8, h: usize) -> [__m256; 2] {
        unsafe {
            if E == E_U2 {
                let b = _mm256_set1_epi64x(std::ptr::read_unaligned(p as *const i64));
                let w = _mm256_shuffle_epi8(b, spread_bytes());
                let w = if h == 0 { w } else { _mm256_srli_epi32::<4>(w) };
                let table = _mm256_setr_ps(-2.0, -1.0, 0.0, 1.0, -2.0, -1.0, 0.0, 1.0);
                return [_mm256_permutevar_ps(table, w), _mm256_permutevar_ps(table, _mm256_srli_epi32::<2>(w))];
            }
            let x = codes16::<E>(p, h);
            if code_center(E) == 0.0 {
                return x;
            }
            let mid = |i: usize| _mm256_set1_ps(code_center(E) * piece_gain(E, 2 * h + i));
            [_mm256_sub_ps(x[0], mid(0)), _mm256_sub_ps(x[1], mid(1))]
        }
    }

    /// What piece `i` of [`centered16`] is multiplied by.
    const fn centered_gain(e: u8, i: usize) -> f32 {
        if e == E_U2 { 1.0 } else { piece_gain(e, i) }
    }

    /// Scores of channel-major KIVI key chunks: per chunk the channel scales
    /// are folded into the query (`q'_c = q_c·s_c`) and the zero-points into
    /// a bias (`Σ_c q_c·z_c`); then for each 32 tokens, channel by channel,
    /// the 32 codes of the channel feed `4·J` vertical FMAs (no horizontal
    /// reductions, no dequantization).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn kivi_scores<const E: u8, const J: usize>(
        rec: *const u8,
        kb: usize,
        nch: usize,
        t: usize,
        d: usize,
        q: *const f32,
        scale: f32,
        qs: *mut f32,
        out: *mut f32,
        ostride: usize,
    ) {
        unsafe {
            let bb = 4 * E.min(8) as usize; // bytes per 32-code block (E_I8 is never a KIVI key)
            let per_channel = t / 32 * bb;
            let gain: [__m256; 4] = std::array::from_fn(|i| _mm256_set1_ps(scale / piece_gain(E, i)));
            for c in 0..nch {
                let r = rec.add(c * kb);
                // a decode step finds its cache in DRAM (every other layer ran in between):
                // fetch two chunks ahead
                if c + 2 < nch {
                    prefetch_bytes(rec.add((c + 2) * kb), kb);
                }
                let mut bz = [_mm256_setzero_ps(); J];
                let mut ch = 0;
                while ch < d {
                    let z = _mm256_cvtph_ps(_mm_loadu_si128(r.add(2 * ch) as *const __m128i));
                    let s = _mm256_cvtph_ps(_mm_loadu_si128(r.add(2 * d + 2 * ch) as *const __m128i));
                    for j in 0..J {
                        let qv = _mm256_loadu_ps(q.add(j * d + ch));
                        _mm256_storeu_ps(qs.add(j * d + ch), _mm256_mul_ps(qv, s));
                        bz[j] = _mm256_fmadd_ps(qv, z, bz[j]);
                    }
                    ch += 8;
                }
                let bias: [__m256; J] = std::array::from_fn(|j| _mm256_set1_ps(hsum(bz[j]) * scale));
                let codes = r.add(4 * d);
                for tb in 0..t / 32 {
                    for h in 0..2 {
                        let mut acc = [[_mm256_setzero_ps(); 2]; J];
                        for ch in 0..d {
                            let x = codes16::<E>(codes.add(ch * per_channel + tb * bb), h);
                            for j in 0..J {
                                let w = _mm256_broadcast_ss(&*qs.add(j * d + ch));
                                for i in 0..2 {
                                    acc[j][i] = _mm256_fmadd_ps(w, x[i], acc[j][i]);
                                }
                            }
                        }
                        for j in 0..J {
                            for i in 0..2 {
                                let o = out.add(j * ostride + c * t + tb * 32 + 16 * h + 8 * i);
                                _mm256_storeu_ps(o, _mm256_fmadd_ps(acc[j][i], gain[2 * h + i], bias[j]));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Prefetch the cache lines of `len` bytes from `p` into L1.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn prefetch_bytes(p: *const u8, len: usize) {
        let mut o = 0;
        while o < len {
            // (a prefetch never faults; the addresses lie inside the records anyway)
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(o) as *const i8);
            o += 64;
        }
    }

    /// (scale, zero) of eight rows from their gathered first four parameter bytes.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn params8(pkind: u8, g: __m256i) -> (__m256, __m256) {
        let lo = _mm256_and_si256(g, _mm256_set1_epi32(0xFFFF));
        let hi = _mm256_srli_epi32::<16>(g);
        // [lo0-3 hi0-3 | lo4-7 hi4-7] → [lo0-7 | hi0-7]
        let h = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(lo, hi));
        let a = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
        let b = _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(h));
        match pkind {
            P_PAIR => (b, a),
            P_Q4 => (a, _mm256_mul_ps(a, _mm256_set1_ps(-8.0))),
            _ => (a, _mm256_setzero_ps()),
        }
    }

    /// `acc_j += Σ_r p[j·pstride + r] · row_r` for affine-coded rows
    /// (`x = s_r·code + z_r` per 32-channel block), computed as
    /// `Σ_r (p_r·s_r)·(code_r - m) + Σ_r p_r·(z_r + s_r·m)` with `m` the
    /// middle code: centring keeps the two sums from being large numbers
    /// that cancel (zero-mean values would otherwise lose several bits).
    /// A first pass over the rows reads their parameters eight at a time
    /// (one load for segmented rows, a gather otherwise) into per-row
    /// weights `w = p·s` (in `w`, `J × n`) and the zero-point sum; the second
    /// pass is then `4·J` FMAs per row on the raw codes.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn affine_accum<const E: u8, const J: usize>(
        raw: &Raw,
        n: usize,
        p: *const f32,
        pstride: usize,
        dp: usize,
        acc: *mut f32,
        w: *mut f32,
    ) {
        unsafe {
            let (seg_rows, nseg) = if raw.seg_rows == 0 { (n, 1) } else { (raw.seg_rows, n / raw.seg_rows) };
            let idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(raw.stride as i32));
            let center = _mm256_set1_ps(code_center(E));
            for b in 0..dp / 32 {
                let mut zs = [_mm256_setzero_ps(); J];
                let mut zsum = [0f32; J];
                for sg in 0..nseg {
                    let pbase = raw.ptr.add(sg * raw.seg_bytes + *raw.poff.add(b));
                    // the first pass over the rows also fetches whole segments (parameters and
                    // codes) four ahead, for the passes after it
                    if b == 0 && raw.seg_rows > 0 && sg + 4 < nseg {
                        prefetch_bytes(raw.ptr.add((sg + 4) * raw.seg_bytes), raw.seg_bytes);
                    }
                    let r0 = sg * seg_rows;
                    let mut r = 0;
                    while r + 8 <= seg_rows {
                        if b == 0 && raw.seg_rows == 0 && r + 40 <= seg_rows {
                            prefetch_bytes(raw.ptr.add((r + 32) * raw.stride), 8 * raw.stride);
                        }
                        let g = if raw.seg_rows > 0 {
                            _mm256_loadu_si256(pbase.add(4 * r) as *const __m256i)
                        } else {
                            _mm256_i32gather_epi32::<1>(pbase.add(r * raw.stride) as *const i32, idx)
                        };
                        let (s, z) = params8(raw.pkind, g);
                        let z = _mm256_fmadd_ps(s, center, z);
                        for j in 0..J {
                            let pj = _mm256_loadu_ps(p.add(j * pstride + r0 + r));
                            _mm256_storeu_ps(w.add(j * n + r0 + r), _mm256_mul_ps(pj, s));
                            zs[j] = _mm256_fmadd_ps(pj, z, zs[j]);
                        }
                        r += 8;
                    }
                    // Only uniform rows (one segment, `r0 = 0`) have a tail:
                    // segments are multiples of 8 rows.
                    while r < seg_rows {
                        debug_assert_eq!(raw.seg_rows, 0);
                        let (s, z) = params::<true>(raw, r, b);
                        let (s, z) = (_mm256_cvtss_f32(s), _mm256_cvtss_f32(z));
                        let z = s.mul_add(code_center(E), z);
                        for j in 0..J {
                            let pj = *p.add(j * pstride + r0 + r);
                            *w.add(j * n + r0 + r) = pj * s;
                            zsum[j] += pj * z;
                        }
                        r += 1;
                    }
                }
                for j in 0..J {
                    zsum[j] += hsum(zs[j]);
                }
                for h in 0..2 {
                    let mut a = [[_mm256_setzero_ps(); 2]; J];
                    for sg in 0..nseg {
                        let cbase = raw.ptr.add(sg * raw.seg_bytes + raw.off + b * raw.bstride);
                        let wseg = w.add(sg * seg_rows);
                        for r in 0..seg_rows {
                            let x = centered16::<E>(cbase.add(r * raw.stride), h);
                            for j in 0..J {
                                let wr = _mm256_broadcast_ss(&*wseg.add(j * n + r));
                                for i in 0..2 {
                                    a[j][i] = _mm256_fmadd_ps(wr, x[i], a[j][i]);
                                }
                            }
                        }
                    }
                    for j in 0..J {
                        let zv = _mm256_set1_ps(zsum[j]);
                        for i in 0..2 {
                            let o = acc.add(j * dp + 32 * b + 16 * h + 8 * i);
                            let v = _mm256_fmadd_ps(a[j][i], _mm256_set1_ps(1.0 / centered_gain(E, 2 * h + i)), zv);
                            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), v));
                        }
                    }
                }
            }
        }
    }
}
