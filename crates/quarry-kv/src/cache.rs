//! The quantized KV cache: many layers, GQA, append, fused decode attention
//! over the packed chunks, byte accounting and inspection.

use crate::codec::{self, Calib, Codec, Head, NONE};
use crate::config::{KvConfig, MAX_ABS, Method};
use crate::error::{KvError, Result, dim, invalid};
use crate::fused;
use crate::kernels;
use crate::quant::pad32;
use half::f16;
use rayon::prelude::*;

/// Rows decoded per tile in the attention loop (the tile stays in L1/L2).
const TILE_ROWS: usize = 64;
/// Records per parallel job (more jobs than cores balances GQA head counts
/// like 3 over 2 cores).
const JOB_ROWS: usize = 2048;

/// A layer's calibration, for inspection (see [`KvCache::calibration`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Calibration {
    /// KVQuant: per KV head and channel (`[kv_heads, head_dim]`), keys are
    /// normalized as `(k - key_zero) / key_scale` before coding.
    pub key_zero: Vec<f32>,
    pub key_scale: Vec<f32>,
    /// KVQuant: sorted centroids (`2^bits`) on normalized keys / values.
    pub key_codebook: Vec<f32>,
    pub value_codebook: Vec<f32>,
    /// Rotate: per KV head, rotated position `i` takes channel `perm[i]`.
    pub key_permutation: Vec<u16>,
    pub value_permutation: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layer {
    pub tokens: usize,
    pub calib: Option<Calib>,
    pub heads: Vec<Head>,
}

/// A KV cache for `layers` layers of `kv_heads` heads, stored with one
/// [`Method`]. Tensors are `[heads, tokens, head_dim]` row-major f32.
///
/// NaN/±inf in keys, values or queries are rejected with
/// `QUARRY_INVALID_INPUT` before anything is stored (the cache is left
/// unchanged), as are magnitudes above [`MAX_ABS`] for every method but
/// `f32` (their f16 scales or values would overflow).
#[derive(Debug, Clone, PartialEq)]
pub struct KvCache {
    pub(crate) cfg: KvConfig,
    pub(crate) layers: Vec<Layer>,
}

struct Job {
    head: usize,
    /// `None`: the f32 sinks and tail; `Some((c0, c1))`: chunks `c0..c1`.
    chunks: Option<(usize, usize)>,
}

struct Partial {
    m: Vec<f32>,
    l: Vec<f32>,
    acc: Vec<f32>,
    /// Raw scaled scores, `[row][q head in group]` (MiKV/H2O only).
    scores: Vec<f32>,
}

impl Partial {
    fn new(g: usize, dp: usize) -> Partial {
        Partial { m: vec![f32::NEG_INFINITY; g], l: vec![0.0; g], acc: vec![0.0; g * dp], scores: Vec::new() }
    }
}

impl KvCache {
    /// An empty cache. Errors: invalid configuration (see [`KvConfig::validate`]).
    pub fn new(cfg: KvConfig) -> Result<KvCache> {
        cfg.validate()?;
        let layers = (0..cfg.layers)
            .map(|_| Layer { tokens: 0, calib: None, heads: vec![Head::new(&cfg); cfg.kv_heads] })
            .collect();
        Ok(KvCache { cfg, layers })
    }

    /// The configuration.
    pub fn config(&self) -> &KvConfig {
        &self.cfg
    }

    fn layer_index(&self, layer: usize) -> Result<()> {
        if layer >= self.cfg.layers {
            return Err(invalid(format!("layer {layer} out of range (layers = {})", self.cfg.layers)));
        }
        Ok(())
    }

    /// Tokens appended to `layer` (evicted ones included for H2O).
    pub fn tokens(&self, layer: usize) -> Result<usize> {
        self.layer_index(layer)?;
        Ok(self.layers[layer].tokens)
    }

    fn check_values(&self, x: &[f32], what: &str) -> Result<()> {
        let limit = if self.cfg.method == Method::F32 { f32::MAX } else { MAX_ABS };
        if let Some(i) = x.iter().position(|v| v.is_nan() || v.abs() > limit) {
            return Err(KvError::InvalidInput(format!(
                "{what}[{i}] = {} is not finite{}",
                x[i],
                if x[i].is_finite() { " or exceeds the f16-safe magnitude 60000" } else { "" }
            )));
        }
        Ok(())
    }

    /// Learn the calibration of `layer` (KVQuant: per-channel key ranges and
    /// the codebooks; Rotate: channel permutations) from `keys`/`values`
    /// (`[kv_heads, n, head_dim]`). Must come before the layer's first
    /// append; without it the first appended chunk calibrates the layer.
    /// Other methods need no calibration and ignore it.
    pub fn calibrate(&mut self, layer: usize, keys: &[f32], values: &[f32]) -> Result<()> {
        self.layer_index(layer)?;
        let n = self.cfg.check_shape(keys.len(), self.cfg.kv_heads, "keys")?;
        if values.len() != keys.len() {
            return Err(dim("values must have the same shape as keys"));
        }
        self.check_values(keys, "keys")?;
        self.check_values(values, "values")?;
        if self.layers[layer].tokens > 0 {
            return Err(invalid("calibrate must come before the layer's first append"));
        }
        self.layers[layer].calib = codec::calibrate(&self.cfg, keys, values, n);
        Ok(())
    }

    /// Append `keys`/`values` (`[kv_heads, tokens, head_dim]`, one decode
    /// step or a prefill chunk) to `layer`. Full chunks that leave the
    /// residual window are quantized; MiKV/H2O decide per aged token from
    /// the attention it has accumulated so far.
    pub fn append(&mut self, layer: usize, keys: &[f32], values: &[f32]) -> Result<()> {
        self.layer_index(layer)?;
        let n = self.cfg.check_shape(keys.len(), self.cfg.kv_heads, "keys")?;
        if values.len() != keys.len() {
            return Err(dim(format!("values length {} != keys length {}", values.len(), keys.len())));
        }
        self.check_values(keys, "keys")?;
        self.check_values(values, "values")?;
        let cfg = &self.cfg;
        let l = &mut self.layers[layer];
        if l.calib.is_none() && matches!(cfg.method, Method::KvQuant | Method::Rotate) {
            l.calib = codec::calibrate(cfg, keys, values, n);
        }
        let d = cfg.head_dim;
        let first = l.tokens;
        let calib = l.calib.as_ref();
        l.heads.par_iter_mut().enumerate().for_each(|(h, head)| {
            let ks = &keys[h * n * d..(h + 1) * n * d];
            let vs = &values[h * n * d..(h + 1) * n * d];
            let n_sink = cfg.sinks.saturating_sub(first).min(n);
            head.sink_k.extend_from_slice(&ks[..n_sink * d]);
            head.sink_v.extend_from_slice(&vs[..n_sink * d]);
            head.tail_k.push(&ks[n_sink * d..]);
            head.tail_v.push(&vs[n_sink * d..]);
            head.tail_imp.resize(head.tail_k.len() / d, 0.0);
            flush(cfg, calib, h, head);
        });
        l.tokens += n;
        Ok(())
    }

    /// Decode-step attention of `queries` (`[q_heads, 1, head_dim]`,
    /// `q_heads` a multiple of `kv_heads`; query head `j` reads KV head
    /// `j / (q_heads / kv_heads)`) over everything cached in `layer`,
    /// computed directly on the packed chunks (each tile of rows is decoded
    /// into a small buffer inside the dot-product and weighted-sum loops)
    /// with an online softmax, in parallel over heads and token ranges.
    /// `scale` defaults to `1/sqrt(head_dim)`. Returns `[q_heads, head_dim]`.
    /// MiKV/H2O also accumulate the attention each token received.
    pub fn attend(&mut self, layer: usize, queries: &[f32], scale: Option<f32>) -> Result<Vec<f32>> {
        self.layer_index(layer)?;
        let (d, kvh) = (self.cfg.head_dim, self.cfg.kv_heads);
        if queries.is_empty() || !queries.len().is_multiple_of(d) {
            return Err(dim(format!("queries length {} is not a positive multiple of headDim {d}", queries.len())));
        }
        let qh = queries.len() / d;
        if !qh.is_multiple_of(kvh) {
            return Err(dim(format!("{qh} query heads is not a multiple of {kvh} KV heads")));
        }
        if let Some(i) = queries.iter().position(|v| !v.is_finite()) {
            return Err(KvError::InvalidInput(format!("queries[{i}] is not finite")));
        }
        let scale = scale.unwrap_or(1.0 / (d as f32).sqrt());
        if !scale.is_finite() {
            return Err(invalid("scale must be finite"));
        }
        let lyr = &self.layers[layer];
        if lyr.tokens == 0 {
            return Err(invalid(format!("layer {layer} holds no tokens")));
        }
        let g = qh / kvh;
        let dp = pad32(d);
        let t = self.cfg.chunk_tokens();
        let stats = matches!(self.cfg.method, Method::MiKv | Method::H2o);
        let mut jobs = Vec::new();
        let mut preps = Vec::with_capacity(kvh);
        for (h, head) in lyr.heads.iter().enumerate() {
            let codec = Codec::new(&self.cfg, lyr.calib.as_ref(), h);
            let mut q = vec![0f32; g * dp];
            for j in 0..g {
                q[j * dp..j * dp + d].copy_from_slice(&queries[(h * g + j) * d..(h * g + j + 1) * d]);
            }
            codec.prepare_query(&mut q);
            preps.push(q);
            if !head.sink_k.is_empty() || !head.tail_k.is_empty() {
                jobs.push(Job { head: h, chunks: None });
            }
            let nch = head.rows / t;
            let per = (JOB_ROWS / t).max(1);
            let mut c = 0;
            while c < nch {
                let e = (c + per).min(nch);
                jobs.push(Job { head: h, chunks: Some((c, e)) });
                c = e;
            }
        }
        let cfg = &self.cfg;
        let partials: Vec<Partial> = jobs
            .par_iter()
            .map(|job| {
                let codec = Codec::new(cfg, lyr.calib.as_ref(), job.head);
                run_job(&codec, &lyr.heads[job.head], job, &preps[job.head], g, scale, stats, lyr.tokens)
            })
            .collect();
        // Merge the partial softmax states per head.
        let mut merged: Vec<Partial> = (0..kvh).map(|_| Partial::new(g, dp)).collect();
        for (job, p) in jobs.iter().zip(&partials) {
            let m = &mut merged[job.head];
            for j in 0..g {
                let mx = m.m[j].max(p.m[j]);
                if mx == f32::NEG_INFINITY {
                    continue;
                }
                let a = if m.m[j] == f32::NEG_INFINITY { 0.0 } else { (m.m[j] - mx).exp() };
                let b = if p.m[j] == f32::NEG_INFINITY { 0.0 } else { (p.m[j] - mx).exp() };
                m.l[j] = m.l[j] * a + p.l[j] * b;
                for c in 0..dp {
                    m.acc[j * dp + c] = m.acc[j * dp + c] * a + p.acc[j * dp + c] * b;
                }
                m.m[j] = mx;
            }
        }
        let mut out = vec![0f32; qh * d];
        for (h, m) in merged.iter_mut().enumerate() {
            let codec = Codec::new(cfg, lyr.calib.as_ref(), h);
            for j in 0..g {
                let row = &mut m.acc[j * dp..(j + 1) * dp];
                let inv = if m.l[j] > 0.0 { 1.0 / m.l[j] } else { 0.0 };
                for x in row.iter_mut() {
                    *x *= inv;
                }
                codec.finish_output(row);
                out[(h * g + j) * d..(h * g + j + 1) * d].copy_from_slice(&row[..d]);
            }
        }
        if stats {
            let n_sinks: Vec<usize> = lyr.heads.iter().map(|hd| hd.sink_k.len() / d).collect();
            let lyr = &mut self.layers[layer];
            let mut e = Vec::new();
            for (job, p) in jobs.iter().zip(&partials) {
                let mg = &merged[job.head];
                let head = &mut lyr.heads[job.head];
                // each row's attention probability, summed over the query heads
                let rows = p.scores.len() / g;
                let mut weight = vec![0f32; rows];
                for j in 0..g {
                    if mg.l[j] <= 0.0 {
                        continue;
                    }
                    e.clear();
                    e.extend(p.scores.iter().skip(j).step_by(g).map(|s| s - mg.m[j]));
                    kernels::exp_inplace(&mut e);
                    let inv = 1.0 / mg.l[j];
                    for (w, x) in weight.iter_mut().zip(&e) {
                        *w += x * inv;
                    }
                }
                match job.chunks {
                    None => {
                        let ns = n_sinks[job.head];
                        for (i, imp) in head.tail_imp.iter_mut().enumerate() {
                            *imp += weight[ns + i];
                        }
                    }
                    Some((c0, c1)) => {
                        for (imp, w) in head.imp[c0 * t..c1 * t].iter_mut().zip(&weight) {
                            *imp += w;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The calibration `layer` learned (KVQuant ranges and codebooks,
    /// Rotate permutations), if any.
    pub fn calibration(&self, layer: usize) -> Result<Option<Calibration>> {
        self.layer_index(layer)?;
        let dp = pad32(self.cfg.head_dim);
        let d = self.cfg.head_dim;
        Ok(self.layers[layer].calib.as_ref().map(|c| {
            let unpad = |x: &[f32]| -> Vec<f32> { x.chunks_exact(dp).flat_map(|r| r[..d].to_vec()).collect() };
            Calibration {
                key_zero: unpad(&c.k_zero),
                key_scale: unpad(&c.k_scale),
                key_codebook: c.k_cb.clone(),
                value_codebook: c.v_cb.clone(),
                key_permutation: c.perm_k.clone(),
                value_permutation: c.perm_v.clone(),
            }
        }))
    }

    /// Every cached token of `layer` as the cache would reproduce it:
    /// `(keys, values)`, each `[kv_heads, tokens, head_dim]`, in the space
    /// they were appended in (pre-RoPE keys for KVQuant with `rope`).
    /// Evicted tokens (H2O) are zero rows; see [`KvCache::retained`].
    pub fn dequantize(&self, layer: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        self.layer_index(layer)?;
        let lyr = &self.layers[layer];
        let (d, n) = (self.cfg.head_dim, lyr.tokens);
        let dp = pad32(d);
        let t = self.cfg.chunk_tokens();
        let mut ko = vec![0f32; self.cfg.kv_heads * n * d];
        let mut vo = vec![0f32; self.cfg.kv_heads * n * d];
        for (h, head) in lyr.heads.iter().enumerate() {
            let codec = Codec::new(&self.cfg, lyr.calib.as_ref(), h);
            let base = h * n * d;
            let ns = head.sink_k.len() / d;
            ko[base..base + ns * d].copy_from_slice(&head.sink_k);
            vo[base..base + ns * d].copy_from_slice(&head.sink_v);
            let mut kt = vec![0f32; t * dp];
            let mut vt = vec![0f32; t * dp];
            for c in 0..head.rows / t {
                codec.decode_chunk(head, c, &mut kt, &mut vt);
                codec.stored_to_input(&mut kt, &mut vt, t);
                for r in 0..t {
                    let pos = if self.cfg.method == Method::H2o { head.pos[c * t + r] as usize } else { ns + c * t + r };
                    ko[base + pos * d..base + (pos + 1) * d].copy_from_slice(&kt[r * dp..r * dp + d]);
                    vo[base + pos * d..base + (pos + 1) * d].copy_from_slice(&vt[r * dp..r * dp + d]);
                }
            }
            let nt = head.tail_k.len() / d;
            ko[base + (n - nt) * d..base + n * d].copy_from_slice(&head.tail_k.to_f32());
            vo[base + (n - nt) * d..base + n * d].copy_from_slice(&head.tail_v.to_f32());
        }
        Ok((ko, vo))
    }

    /// `[kv_heads, tokens]`: whether each token is still cached (false only
    /// for tokens H2O evicted).
    pub fn retained(&self, layer: usize) -> Result<Vec<bool>> {
        self.layer_index(layer)?;
        let lyr = &self.layers[layer];
        let n = lyr.tokens;
        let d = self.cfg.head_dim;
        let mut out = vec![true; self.cfg.kv_heads * n];
        if self.cfg.method == Method::H2o {
            for (h, head) in lyr.heads.iter().enumerate() {
                let ns = head.sink_k.len() / d;
                let nt = head.tail_k.len() / d;
                for x in &mut out[h * n + ns..h * n + n - nt] {
                    *x = false;
                }
                for &p in &head.pos {
                    out[h * n + p as usize] = true;
                }
            }
        }
        Ok(out)
    }

    /// Bytes the cache holds for its contents: packed codes, scales,
    /// zero-points, outliers, low-rank factors, residual rows (f16 for KIVI,
    /// f32 otherwise) and f32 sink rows,
    /// f16 high-precision copies, per-token bookkeeping (MiKV/H2O attention
    /// totals, slot maps, positions) and calibration (codebooks, ranges,
    /// permutations). Excludes fixed-size struct overhead and spare capacity.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|l| self.layer_bytes(l)).sum()
    }

    /// [`KvCache::bytes`] of one layer.
    pub fn layer_bytes_of(&self, layer: usize) -> Result<usize> {
        self.layer_index(layer)?;
        Ok(self.layer_bytes(&self.layers[layer]))
    }

    fn layer_bytes(&self, l: &Layer) -> usize {
        let heads: usize = l
            .heads
            .iter()
            .map(|h| {
                h.krec.len()
                    + h.vrec.len()
                    + 4 * (h.sink_k.len() + h.sink_v.len())
                    + h.tail_k.bytes()
                    + h.tail_v.bytes()
                    + match self.cfg.method {
                        Method::MiKv => 4 * (h.imp.len() + h.tail_imp.len() + h.hp_slot.len() + h.hp_row.len()) + 2 * (h.hp_k.len() + h.hp_v.len()),
                        Method::H2o => 4 * (h.imp.len() + h.tail_imp.len() + h.pos.len()),
                        _ => 0,
                    }
            })
            .sum();
        heads + l.calib.as_ref().map_or(0, Calib::bytes)
    }
}

/// Move rows that left the residual window into quantized storage.
fn flush(cfg: &KvConfig, calib: Option<&Calib>, h: usize, head: &mut Head) {
    let d = cfg.head_dim;
    let codec = Codec::new(cfg, calib, h);
    let tail_rows = head.tail_k.len() / d;
    match cfg.method {
        Method::MiKv | Method::H2o => {
            if tail_rows <= cfg.residual {
                return;
            }
            let age = tail_rows - cfg.residual;
            // the slots' importance (MiKV: of the rows with a high-precision
            // copy; H2O: of the kept rows), for the eviction candidate
            let most = slot_cap(cfg, head.aged + age);
            let mut slots = if cfg.method == Method::MiKv {
                MinTree::new(most, head.hp_row.iter().map(|&r| head.imp[r as usize]))
            } else {
                MinTree::new(most, head.imp.iter().copied())
            };
            for r in 0..age {
                let (k, v) = (head.tail_k.get(r * d, (r + 1) * d).into_owned(), head.tail_v.get(r * d, (r + 1) * d).into_owned());
                let imp = head.tail_imp[r];
                age_token(cfg, &codec, head, &k, &v, imp, &mut slots);
            }
            head.tail_k.drain_front(age * d);
            head.tail_v.drain_front(age * d);
            head.tail_imp.drain(..age);
        }
        _ => {
            let t = cfg.chunk_tokens();
            if tail_rows < cfg.residual + t {
                return;
            }
            let nch = (tail_rows - cfg.residual) / t;
            for c in 0..nch {
                let (k, v) = (head.tail_k.get(c * t * d, (c + 1) * t * d), head.tail_v.get(c * t * d, (c + 1) * t * d));
                codec.encode_chunk(&k, &v, &mut head.krec, &mut head.vrec);
            }
            head.rows += nch * t;
            head.aged += nch * t;
            head.tail_k.drain_front(nch * t * d);
            head.tail_v.drain_front(nch * t * d);
            head.tail_imp.drain(..nch * t);
        }
    }
}

fn to_f16(x: &[f32]) -> Vec<f16> {
    x.iter().map(|&v| f16::from_f32(v)).collect()
}

/// Slots MiKV (high-precision copies) and H2O (kept rows) may hold once
/// `aged` tokens have left the recent window.
fn slot_cap(cfg: &KvConfig, aged: usize) -> usize {
    (cfg.budget as f64 * aged as f64).floor() as usize
}

/// MiKV / H2O decision for one token leaving the recent window; `slots`
/// holds the importance of every occupied slot.
fn age_token(cfg: &KvConfig, codec: &Codec, head: &mut Head, k: &[f32], v: &[f32], imp: f32, slots: &mut MinTree) {
    let d = cfg.head_dim;
    let pos = (head.sink_k.len() / d + head.aged) as u32;
    head.aged += 1;
    let cap = slot_cap(cfg, head.aged);
    match cfg.method {
        Method::MiKv => {
            let row = head.rows;
            codec.encode_chunk(k, v, &mut head.krec, &mut head.vrec);
            head.rows += 1;
            head.imp.push(imp);
            head.hp_slot.push(NONE);
            if head.hp_row.len() < cap {
                slots.set(head.hp_row.len(), imp);
                head.hp_slot[row] = head.hp_row.len() as u32;
                head.hp_row.push(row as u32);
                head.hp_k.extend(to_f16(k));
                head.hp_v.extend(to_f16(v));
            } else if let Some((s, min)) = slots.min()
                && imp > min
            {
                {
                    slots.set(s, imp);
                    head.hp_slot[head.hp_row[s] as usize] = NONE;
                    head.hp_row[s] = row as u32;
                    head.hp_slot[row] = s as u32;
                    head.hp_k[s * d..(s + 1) * d].copy_from_slice(&to_f16(k));
                    head.hp_v[s * d..(s + 1) * d].copy_from_slice(&to_f16(v));
                }
            }
        }
        Method::H2o => {
            if head.rows < cap {
                slots.set(head.rows, imp);
                codec.encode_chunk(k, v, &mut head.krec, &mut head.vrec);
                head.rows += 1;
                head.imp.push(imp);
                head.pos.push(pos);
            } else if let Some((s, min)) = slots.min()
                && imp > min
            {
                {
                    slots.set(s, imp);
                    let (kb, vb) = codec.rec_bytes();
                    let (mut kr, mut vr) = (Vec::with_capacity(kb), Vec::with_capacity(vb));
                    codec.encode_chunk(k, v, &mut kr, &mut vr);
                    head.krec[s * kb..(s + 1) * kb].copy_from_slice(&kr);
                    head.vrec[s * vb..(s + 1) * vb].copy_from_slice(&vr);
                    head.imp[s] = imp;
                    head.pos[s] = pos;
                }
            }
        }
        _ => unreachable!("only MiKV and H2O age single tokens"),
    }
}

/// The smallest slot value and its slot (the lowest one among equals), kept
/// in a binary tree of minima: a change costs O(log n), where rescanning
/// every slot for every aged token made a long prefill O(n²).
struct MinTree {
    leaves: usize,
    /// Node `i` has children `2i`, `2i + 1`; leaf `s` is node `leaves + s`.
    /// Unused slots hold `(inf, u32::MAX)`.
    node: Vec<(f32, u32)>,
}

impl MinTree {
    /// Room for `cap` slots (at least as many as `vals`), filled with `vals`.
    fn new(cap: usize, vals: impl ExactSizeIterator<Item = f32>) -> MinTree {
        let leaves = cap.max(vals.len()).max(1).next_power_of_two();
        let mut node = vec![(f32::INFINITY, u32::MAX); 2 * leaves];
        for (s, v) in vals.enumerate() {
            node[leaves + s] = (v, s as u32);
        }
        for i in (1..leaves).rev() {
            node[i] = Self::pick(node[2 * i], node[2 * i + 1]);
        }
        MinTree { leaves, node }
    }

    fn pick(a: (f32, u32), b: (f32, u32)) -> (f32, u32) {
        if a.0 <= b.0 { a } else { b }
    }

    fn set(&mut self, slot: usize, v: f32) {
        let mut i = self.leaves + slot;
        self.node[i] = (v, slot as u32);
        while i > 1 {
            i /= 2;
            self.node[i] = Self::pick(self.node[2 * i], self.node[2 * i + 1]);
        }
    }

    fn min(&self) -> Option<(usize, f32)> {
        let (v, s) = self.node[1];
        (s != u32::MAX).then_some((s as usize, v))
    }
}

#[allow(clippy::too_many_arguments)]
fn run_job(codec: &Codec, head: &Head, job: &Job, q: &[f32], g: usize, scale: f32, stats: bool, tokens: usize) -> Partial {
    let (d, dp, t) = (codec.d, codec.dp, codec.t);
    let mut st = Partial::new(g, dp);
    let mut sc = vec![0f32; g * TILE_ROWS.max(t)];
    match job.chunks {
        None => {
            let ns = head.sink_k.len() / d;
            let nt = head.tail_k.len() / d;
            let (tk, tv) = (head.tail_k.to_f32(), head.tail_v.to_f32());
            let rows: Vec<(usize, &[f32], &[f32])> = (0..ns)
                .map(|r| (r, &head.sink_k[r * d..(r + 1) * d], &head.sink_v[r * d..(r + 1) * d]))
                .chain((0..nt).map(|r| (tokens - nt + r, &tk[r * d..(r + 1) * d], &tv[r * d..(r + 1) * d])))
                .collect();
            let mut kt = vec![0f32; TILE_ROWS * dp];
            let mut vt = vec![0f32; TILE_ROWS * dp];
            for tile in rows.chunks(TILE_ROWS) {
                for (i, (pos, k, v)) in tile.iter().enumerate() {
                    kt[i * dp..i * dp + d].copy_from_slice(k);
                    vt[i * dp..i * dp + d].copy_from_slice(v);
                    codec.input_to_attn(&mut kt[i * dp..(i + 1) * dp], &mut vt[i * dp..(i + 1) * dp], *pos, 1);
                }
                process_tile(q, &kt, &vt, tile.len(), dp, g, scale, &mut st, &mut sc, stats);
            }
        }
        Some((c0, c1)) => {
            if let Some(f) = fused::job(codec, head, c0, c1, q, g, scale, stats) {
                return Partial { m: f.m, l: f.l, acc: f.acc, scores: f.scores };
            }
            let per_tile = (TILE_ROWS / t).max(1);
            let ns = head.sink_k.len() / d;
            let (kb, vb) = codec.rec_bytes();
            let direct = codec.cfg.method == Method::F32 && d == dp;
            let mut kt = vec![0f32; per_tile * t * dp];
            let mut vt = vec![0f32; per_tile * t * dp];
            let mut c = c0;
            while c < c1 {
                let e = (c + per_tile).min(c1);
                let n = (e - c) * t;
                if direct {
                    // f32 records are the rows themselves: no copy.
                    let kr = bytemuck::try_cast_slice::<u8, f32>(&head.krec[c * kb..e * kb]);
                    let vr = bytemuck::try_cast_slice::<u8, f32>(&head.vrec[c * vb..e * vb]);
                    if let (Ok(kr), Ok(vr)) = (kr, vr) {
                        process_tile(q, kr, vr, n, dp, g, scale, &mut st, &mut sc, stats);
                        c = e;
                        continue;
                    }
                }
                if !codec.decode_tile(head, c, e, &mut kt, &mut vt) {
                    for (i, cc) in (c..e).enumerate() {
                        codec.decode_chunk(head, cc, &mut kt[i * t * dp..(i + 1) * t * dp], &mut vt[i * t * dp..(i + 1) * t * dp]);
                    }
                }
                codec.stored_to_attn_k(&mut kt, ns + c * t, n);
                process_tile(q, &kt, &vt, n, dp, g, scale, &mut st, &mut sc, stats);
                c = e;
            }
        }
    }
    st
}

/// Online-softmax update of `st` with `n` key/value rows (stride `dp`).
#[allow(clippy::too_many_arguments)]
fn process_tile(q: &[f32], k: &[f32], v: &[f32], n: usize, dp: usize, g: usize, scale: f32, st: &mut Partial, sc: &mut [f32], stats: bool) {
    kernels::scores_tile(q, k, n, dp, g, scale, sc);
    if stats {
        for r in 0..n {
            for j in 0..g {
                st.scores.push(sc[j * n + r]);
            }
        }
    }
    for j in 0..g {
        let s = &mut sc[j * n..(j + 1) * n];
        let mx = kernels::max_of(s);
        let m_new = st.m[j].max(mx);
        if st.m[j] != m_new {
            let corr = if st.m[j] == f32::NEG_INFINITY { 0.0 } else { (st.m[j] - m_new).exp() };
            st.l[j] *= corr;
            for x in &mut st.acc[j * dp..(j + 1) * dp] {
                *x *= corr;
            }
            st.m[j] = m_new;
        }
        st.l[j] += kernels::exp_shift_sum(s, m_new);
    }
    kernels::accum_tile(sc, v, n, dp, g, &mut st.acc);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree's minimum is the linear scan's (first slot among equal
    /// values) after any sequence of updates, ties included.
    #[test]
    fn min_tree_equals_a_linear_scan() {
        let mut x: u64 = 12345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for cap in [1usize, 2, 3, 7, 64, 100] {
            let init = (next() % (cap as u64 + 1)) as usize;
            let mut vals: Vec<f32> = (0..init).map(|_| (next() % 5) as f32).collect();
            let mut t = MinTree::new(cap, vals.iter().copied());
            for _ in 0..300 {
                let s = (next() % cap as u64) as usize;
                let v = (next() % 5) as f32;
                if s < vals.len() {
                    vals[s] = v;
                    t.set(s, v);
                } else if vals.len() < cap {
                    t.set(vals.len(), v);
                    vals.push(v);
                }
                let scan = vals.iter().copied().enumerate().fold(None, |best: Option<(usize, f32)>, (i, x)| match best {
                    Some((_, b)) if b <= x => best,
                    _ => Some((i, x)),
                });
                assert_eq!(t.min(), scan);
            }
        }
    }

    /// The attention statistics MiKV and H2O keep (fused kernels where the
    /// CPU has them): what one `attend` adds to a record row equals the row's
    /// attention probability summed over its query-head group, computed
    /// naively (f64) from `dequantize()`.
    #[test]
    fn importance_gain_equals_naive_attention_probabilities() {
        let (kvh, g, d, n) = (2, 3, 64, 700);
        let f = |i: usize| ((i as f32) * 0.7311).sin() * 2.0 + ((i % 61) as f32 * 0.05);
        let k: Vec<f32> = (0..kvh * n * d).map(f).collect();
        let v: Vec<f32> = (0..kvh * n * d).map(|i| f(i + 12345)).collect();
        let q: Vec<f32> = (0..kvh * g * d).map(|i| 0.3 * f(i + 999)).collect();
        for m in [Method::MiKv, Method::H2o] {
            let mut cache = KvCache::new(KvConfig::new(1, kvh, d, m)).unwrap();
            cache.append(0, &k, &v).unwrap();
            let before: Vec<Vec<f32>> = cache.layers[0].heads.iter().map(|h| h.imp.clone()).collect();
            cache.attend(0, &q, None).unwrap();
            let (dk, _) = cache.dequantize(0).unwrap();
            let keep = cache.retained(0).unwrap();
            let scale = 1.0 / (d as f64).sqrt();
            for (h, head) in cache.layers[0].heads.iter().enumerate() {
                let mut gain = vec![0f64; n];
                for j in 0..g {
                    let qj = &q[(h * g + j) * d..(h * g + j + 1) * d];
                    let s: Vec<f64> = (0..n)
                        .map(|t| {
                            if !keep[h * n + t] {
                                return f64::NEG_INFINITY;
                            }
                            (0..d).map(|c| qj[c] as f64 * dk[(h * n + t) * d + c] as f64).sum::<f64>() * scale
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                    for t in 0..n {
                        gain[t] += (s[t] - mx).exp() / z;
                    }
                }
                let ns = head.sink_k.len() / d;
                assert!(head.rows > 100, "{m:?}: rows {}", head.rows);
                for r in 0..head.rows {
                    let pos = if m == Method::H2o { head.pos[r] as usize } else { ns + r };
                    let got = (head.imp[r] - before[h][r]) as f64;
                    assert!((got - gain[pos]).abs() <= 1e-5 + 1e-4 * gain[pos], "{m:?} head {h} row {r}: {got} vs {}", gain[pos]);
                }
            }
        }
    }
}
