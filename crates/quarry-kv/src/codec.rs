//! Per-method encoding and decoding of quantized chunks (one chunk =
//! `chunk_tokens()` tokens of one KV head), plus the space transforms
//! (RotateKV rotation, KVQuant RoPE) between what the caller appends, what
//! is stored and what attention sees.

use crate::config::{KvConfig, Method};
use crate::pack;
use crate::quant::{self, OUTLIER_BYTES, pad32};
use half::f16;

/// Sentinel for "no high-precision copy" (MiKV).
pub(crate) const NONE: u32 = u32::MAX;

/// Per-layer calibration state.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Calib {
    /// KVQuant: per-head per-channel key offset and half-range (`kv_heads × pad32(d)`).
    pub k_zero: Vec<f32>,
    pub k_scale: Vec<f32>,
    /// KVQuant: sorted codebooks on normalized values.
    pub k_cb: Vec<f32>,
    pub v_cb: Vec<f32>,
    /// Rotate: per-head channel permutations (`kv_heads × d`), new index → channel.
    pub perm_k: Vec<u16>,
    pub perm_v: Vec<u16>,
}

impl Calib {
    pub fn bytes(&self) -> usize {
        4 * (self.k_zero.len() + self.k_scale.len() + self.k_cb.len() + self.v_cb.len())
            + 2 * (self.perm_k.len() + self.perm_v.len())
    }
}

/// The full-precision recent rows (and MiKV/H2O recent window) of a head:
/// f32, or f16 for KIVI, which keeps its residual in half precision as the
/// paper does (values are rounded to nearest f16 on append, and the chunks
/// that age out are quantized from those f16 values).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Residual {
    half: bool,
    x32: Vec<f32>,
    x16: Vec<f16>,
}

impl Residual {
    pub fn new(half: bool) -> Residual {
        Residual { half, ..Default::default() }
    }

    /// Rebuild from the f32 values `to_f32` gave (the save format).
    pub fn from_f32(half: bool, x: &[f32]) -> Residual {
        let mut r = Residual::new(half);
        r.push(x);
        r
    }

    pub fn is_half(&self) -> bool {
        self.half
    }

    /// Stored values (not rows).
    pub fn len(&self) -> usize {
        if self.half { self.x16.len() } else { self.x32.len() }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, x: &[f32]) {
        if self.half {
            self.x16.extend(x.iter().map(|&v| f16::from_f32(v)));
        } else {
            self.x32.extend_from_slice(x);
        }
    }

    /// Values `a..b` as f32.
    pub fn get(&self, a: usize, b: usize) -> std::borrow::Cow<'_, [f32]> {
        if self.half {
            let mut out = vec![0f32; b - a];
            crate::kernels::f16_to_f32(&self.x16[a..b], &mut out);
            std::borrow::Cow::Owned(out)
        } else {
            std::borrow::Cow::Borrowed(&self.x32[a..b])
        }
    }

    pub fn to_f32(&self) -> std::borrow::Cow<'_, [f32]> {
        self.get(0, self.len())
    }

    /// Drop the first `n` values.
    pub fn drain_front(&mut self, n: usize) {
        if self.half {
            self.x16.drain(..n);
        } else {
            self.x32.drain(..n);
        }
    }

    pub fn bytes(&self) -> usize {
        if self.half { 2 * self.x16.len() } else { 4 * self.x32.len() }
    }
}

/// Storage of one KV head of one layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Head {
    /// Quantized chunk records (keys, values), `rows / chunk_tokens` of each.
    pub krec: Vec<u8>,
    pub vrec: Vec<u8>,
    /// Rows held in records (H2O: occupied slots).
    pub rows: usize,
    /// f32 attention-sink rows and the recent rows (input space).
    pub sink_k: Vec<f32>,
    pub sink_v: Vec<f32>,
    pub tail_k: Residual,
    pub tail_v: Residual,
    /// MiKV/H2O: accumulated attention per record row and per tail row.
    pub imp: Vec<f32>,
    pub tail_imp: Vec<f32>,
    /// MiKV: record row → f16 slot (or NONE); slot → row; f16 copies.
    pub hp_slot: Vec<u32>,
    pub hp_row: Vec<u32>,
    pub hp_k: Vec<f16>,
    pub hp_v: Vec<f16>,
    /// H2O: logical position of each slot.
    pub pos: Vec<u32>,
    /// Tokens that left the recent window (MiKV/H2O) or were chunked.
    pub aged: usize,
}

pub(crate) struct Codec<'a> {
    pub cfg: &'a KvConfig,
    pub calib: Option<&'a Calib>,
    pub head: usize,
    pub d: usize,
    pub dp: usize,
    pub t: usize,
    pub nout: usize,
}

impl Head {
    /// An empty head; KIVI keeps its residual in f16.
    pub fn new(cfg: &KvConfig) -> Head {
        let half = cfg.method == Method::Kivi;
        Head { tail_k: Residual::new(half), tail_v: Residual::new(half), ..Default::default() }
    }
}

impl<'a> Codec<'a> {
    pub fn new(cfg: &'a KvConfig, calib: Option<&'a Calib>, head: usize) -> Codec<'a> {
        let d = cfg.head_dim;
        Codec { cfg, calib, head, d, dp: pad32(d), t: cfg.chunk_tokens(), nout: cfg.outliers_per_vector() }
    }

    fn bits(&self) -> u8 {
        self.cfg.bits
    }

    /// Bytes of one key chunk record and one value chunk record.
    pub fn rec_bytes(&self) -> (usize, usize) {
        let (d, t, b, gs) = (self.d, self.t, self.bits(), self.cfg.group_size);
        let out = t * self.nout * OUTLIER_BYTES;
        match self.cfg.method {
            Method::F32 => (4 * d, 4 * d),
            Method::F16 | Method::H2o => (2 * d, 2 * d),
            Method::Q8_0 => (quant::q8_0_bytes(d), quant::q8_0_bytes(d)),
            Method::Q4_0 => (quant::q4_0_bytes(d), quant::q4_0_bytes(d)),
            Method::Kivi => (quant::channel_asym_bytes(t, d, b), quant::token_asym_block_bytes(t, d, gs, b)),
            Method::Rotate | Method::MiKv => (quant::token_asym_bytes(d, gs, b), quant::token_asym_bytes(d, gs, b)),
            Method::KvQuant => (pack::row_bytes(b, d) + out, 4 + pack::row_bytes(b, d) + out),
            Method::Gear => {
                let lr = 2 * (t + d) * self.cfg.rank;
                (quant::channel_asym_bytes(t, d, b) + lr + out, quant::token_asym_block_bytes(t, d, gs, b) + lr + out)
            }
        }
    }

    // ------------------------------------------------------------ transforms

    fn rotate(&self, x: &mut [f32], perm: &[u16]) {
        let p = &perm[self.head * self.d..(self.head + 1) * self.d];
        let tmp: Vec<f32> = p.iter().map(|&c| x[c as usize]).collect();
        x[..self.d].copy_from_slice(&tmp);
        quant::fwht(&mut x[..self.d], self.cfg.rot_block());
    }

    fn unrotate(&self, x: &mut [f32], perm: &[u16]) {
        let p = &perm[self.head * self.d..(self.head + 1) * self.d];
        let mut tmp = x[..self.d].to_vec();
        quant::fwht(&mut tmp, self.cfg.rot_block());
        for (i, &c) in p.iter().enumerate() {
            x[c as usize] = tmp[i];
        }
    }

    fn calib(&self) -> &Calib {
        self.calib.expect("calibrated before use")
    }

    /// Query rows (stride `dp`) into attention space.
    pub fn prepare_query(&self, q: &mut [f32]) {
        if self.cfg.method == Method::Rotate {
            for row in q.chunks_exact_mut(self.dp) {
                self.rotate(row, &self.calib().perm_k);
            }
        }
    }

    /// An output row (attention space, `dp` long) back to input space.
    pub fn finish_output(&self, o: &mut [f32]) {
        if self.cfg.method == Method::Rotate {
            self.unrotate(o, &self.calib().perm_v);
        }
    }

    /// f32 input-space rows (stride `dp`) at positions `first_pos..` into attention space.
    pub fn input_to_attn(&self, k: &mut [f32], v: &mut [f32], first_pos: usize, n: usize) {
        match self.cfg.method {
            Method::Rotate => {
                for r in 0..n {
                    self.rotate(&mut k[r * self.dp..(r + 1) * self.dp], &self.calib().perm_k);
                    self.rotate(&mut v[r * self.dp..(r + 1) * self.dp], &self.calib().perm_v);
                }
            }
            Method::KvQuant => self.stored_to_attn_k(k, first_pos, n),
            _ => {}
        }
    }

    /// Decoded key rows (stored space) into attention space.
    pub fn stored_to_attn_k(&self, k: &mut [f32], first_pos: usize, n: usize) {
        if let Some(rope) = self.cfg.rope {
            rope.apply_rows(k, self.d, self.dp, first_pos, n);
        }
    }

    /// Decoded rows (stored space) back to input space (for `dequantize`).
    pub fn stored_to_input(&self, k: &mut [f32], v: &mut [f32], n: usize) {
        if self.cfg.method == Method::Rotate {
            for r in 0..n {
                self.unrotate(&mut k[r * self.dp..(r + 1) * self.dp], &self.calib().perm_k);
                self.unrotate(&mut v[r * self.dp..(r + 1) * self.dp], &self.calib().perm_v);
            }
        }
    }

    // ------------------------------------------------------------ encode

    /// Encode one chunk (`t` rows of `d`, input space) and append the records.
    pub fn encode_chunk(&self, k: &[f32], v: &[f32], krec: &mut Vec<u8>, vrec: &mut Vec<u8>) {
        let (kb, vb) = self.rec_bytes();
        let (k0, v0) = (krec.len(), vrec.len());
        krec.resize(k0 + kb, 0);
        vrec.resize(v0 + vb, 0);
        let ko = &mut krec[k0..];
        let vo = &mut vrec[v0..];
        let (d, b, gs) = (self.d, self.bits(), self.cfg.group_size);
        match self.cfg.method {
            Method::F32 => {
                for (o, x) in ko.chunks_exact_mut(4).zip(k) {
                    o.copy_from_slice(&x.to_le_bytes());
                }
                for (o, x) in vo.chunks_exact_mut(4).zip(v) {
                    o.copy_from_slice(&x.to_le_bytes());
                }
            }
            Method::F16 | Method::H2o => {
                quant::f16_encode(k, ko);
                quant::f16_encode(v, vo);
            }
            Method::Q8_0 => {
                quant::q8_0_encode(k, ko);
                quant::q8_0_encode(v, vo);
            }
            Method::Q4_0 => {
                quant::q4_0_encode(k, ko);
                quant::q4_0_encode(v, vo);
            }
            Method::MiKv => {
                quant::token_asym_encode(k, gs, b, ko);
                quant::token_asym_encode(v, gs, b, vo);
            }
            Method::Rotate => {
                let (mut kr, mut vr) = (k.to_vec(), v.to_vec());
                self.rotate(&mut kr, &self.calib().perm_k);
                self.rotate(&mut vr, &self.calib().perm_v);
                quant::token_asym_encode(&kr, gs, b, ko);
                quant::token_asym_encode(&vr, gs, b, vo);
            }
            Method::Kivi => {
                quant::channel_asym_encode(k, self.t, d, b, ko);
                quant::token_asym_block_encode(v, self.t, gs, b, vo);
            }
            Method::KvQuant => self.encode_kvquant(k, v, ko, vo),
            Method::Gear => self.encode_gear(k, v, ko, vo),
        }
    }

    fn encode_kvquant(&self, k: &[f32], v: &[f32], ko: &mut [u8], vo: &mut [u8]) {
        let (d, b) = (self.d, self.bits());
        let c = self.calib();
        let kz = &c.k_zero[self.head * self.dp..];
        let ks = &c.k_scale[self.head * self.dp..];
        let rb = pack::row_bytes(b, d);
        let u: Vec<f32> = (0..d).map(|i| (k[i] - kz[i]) / ks[i]).collect();
        let outl = quant::top_magnitudes(&u, self.nout);
        let codes: Vec<u8> = u.iter().map(|&x| quant::nearest_code(&c.k_cb, x)).collect();
        pack::pack(b, &codes, &mut ko[..rb]);
        quant::outliers_encode(k, &outl, &mut ko[rb..]);
        // Values: per-token centre/half-range over the inliers.
        let mean = v.iter().sum::<f32>() / d as f32;
        let dev: Vec<f32> = v.iter().map(|x| x - mean).collect();
        let outl = quant::top_magnitudes(&dev, self.nout);
        let (z, s) = inlier_center_range(v, &outl);
        let (z16, s16) = (f16::from_f32(z), f16::from_f32(s));
        vo[..2].copy_from_slice(&z16.to_le_bytes());
        vo[2..4].copy_from_slice(&s16.to_le_bytes());
        let (zf, sf) = (z16.to_f32(), s16.to_f32());
        let codes: Vec<u8> =
            v.iter().map(|&x| quant::nearest_code(&c.v_cb, if sf > 0.0 { (x - zf) / sf } else { 0.0 })).collect();
        pack::pack(b, &codes, &mut vo[4..4 + rb]);
        quant::outliers_encode(v, &outl, &mut vo[4 + rb..]);
    }

    fn encode_gear(&self, k: &[f32], v: &[f32], ko: &mut [u8], vo: &mut [u8]) {
        let (d, t, b, gs) = (self.d, self.t, self.bits(), self.cfg.group_size);
        let outk: Vec<Vec<usize>> = (0..t).map(|i| quant::top_magnitudes(&centered(&k[i * d..(i + 1) * d]), self.nout)).collect();
        let outv: Vec<Vec<usize>> = (0..t).map(|i| quant::top_magnitudes(&centered(&v[i * d..(i + 1) * d]), self.nout)).collect();
        // Keys: clamp outliers into their channel's inlier range so the
        // uniform step is set by inliers only.
        let mut kc = k.to_vec();
        for c in 0..d {
            let inl = (0..t).filter(|&i| !outk[i].contains(&c)).map(|i| k[i * d + c]);
            let (mn, mx) = inl.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, bb), x| (a.min(x), bb.max(x)));
            if mn <= mx {
                for i in 0..t {
                    kc[i * d + c] = kc[i * d + c].clamp(mn, mx);
                }
            }
        }
        let kq = quant::channel_asym_bytes(t, d, b);
        quant::channel_asym_encode(&kc, t, d, b, &mut ko[..kq]);
        let mut vc = v.to_vec();
        for i in 0..t {
            for g in 0..d / gs {
                let inl = (g * gs..(g + 1) * gs).filter(|c| !outv[i].contains(c)).map(|c| v[i * d + c]);
                let (mn, mx) = inl.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, bb), x| (a.min(x), bb.max(x)));
                if mn <= mx {
                    for c in g * gs..(g + 1) * gs {
                        vc[i * d + c] = vc[i * d + c].clamp(mn, mx);
                    }
                }
            }
        }
        let vb1 = quant::token_asym_block_bytes(t, d, gs, b);
        quant::token_asym_block_encode(&vc, t, gs, b, &mut vo[..vb1]);
        // Quantization error (0 at outliers, which are stored exactly), then
        // its rank-r approximation and the outlier table.
        self.gear_side(k, &outk, ko, kq, true);
        self.gear_side(v, &outv, vo, vb1, false);
    }

    fn gear_side(&self, x: &[f32], outs: &[Vec<usize>], rec: &mut [u8], q: usize, is_key: bool) {
        let (d, dp, t, r) = (self.d, self.dp, self.t, self.cfg.rank);
        let mut deq = vec![0f32; t * dp];
        self.decode_uniform(&rec[..q], is_key, &mut deq);
        let mut e = vec![0f32; t * d];
        for i in 0..t {
            for c in 0..d {
                if !outs[i].contains(&c) {
                    e[i * d + c] = x[i * d + c] - deq[i * dp + c];
                }
            }
        }
        let (a, bm) = quant::low_rank(&e, t, d, r, 8);
        let lr = &mut rec[q..];
        for (i, val) in a.iter().enumerate() {
            lr[2 * i..2 * i + 2].copy_from_slice(&f16::from_f32(*val).to_le_bytes());
        }
        // B stored as r rows of d (vector k contiguous for axpy).
        for kk in 0..r {
            for j in 0..d {
                let o = 2 * (t * r + kk * d + j);
                lr[o..o + 2].copy_from_slice(&f16::from_f32(bm[j * r + kk]).to_le_bytes());
            }
        }
        let orec = &mut rec[q + 2 * (t + d) * r..];
        let ob = self.nout * OUTLIER_BYTES;
        for i in 0..t {
            quant::outliers_encode(&x[i * d..(i + 1) * d], &outs[i], &mut orec[i * ob..(i + 1) * ob]);
        }
    }

    /// KIVI-style uniform part of a chunk (keys per channel, values per token).
    fn decode_uniform(&self, rec: &[u8], is_key: bool, out: &mut [f32]) {
        let (d, dp, t, b) = (self.d, self.dp, self.t, self.bits());
        if is_key {
            quant::channel_asym_decode(rec, t, d, dp, b, out);
        } else {
            quant::token_asym_block_decode(rec, t, d, self.cfg.group_size, b, out);
        }
    }

    /// Decode `rows` consecutive per-token asymmetric records into `out`.
    fn token_asym_tile(&self, rec: &[u8], rows: usize, out: &mut [f32]) {
        let (d, dp, b, gs) = (self.d, self.dp, self.bits(), self.cfg.group_size);
        let ng = d / gs;
        let stride = quant::token_asym_bytes(d, gs, b);
        if d != dp {
            for r in 0..rows {
                quant::token_asym_decode(&rec[r * stride..(r + 1) * stride], d, gs, b, &mut out[r * dp..(r + 1) * dp]);
            }
            return;
        }
        pack::unpack_tile(b, false, rec, rows, stride, ng * 4, dp / 32, 4 * b as usize, out);
        let mut z = vec![0f32; rows * ng];
        let mut s = vec![0f32; rows * ng];
        for r in 0..rows {
            for g in 0..ng {
                let o = r * stride + g * 4;
                z[r * ng + g] = f16::from_le_bytes([rec[o], rec[o + 1]]).to_f32();
                s[r * ng + g] = f16::from_le_bytes([rec[o + 2], rec[o + 3]]).to_f32();
            }
        }
        crate::kernels::affine_groups(&mut out[..rows * dp], gs, &s, &z);
    }

    /// Decode chunks `c0..c1` in one pass when the method has a tile
    /// decoder (per-token methods without side tables); false otherwise.
    pub fn decode_tile(&self, h: &Head, c0: usize, c1: usize, ko: &mut [f32], vo: &mut [f32]) -> bool {
        let (d, dp) = (self.d, self.dp);
        let (kb, vb) = self.rec_bytes();
        let rows = c1 - c0;
        let kr = &h.krec[c0 * kb..c1 * kb];
        let vr = &h.vrec[c0 * vb..c1 * vb];
        match self.cfg.method {
            Method::Q4_0 | Method::Q8_0 => {
                let (bs, bits, signed, off) = if self.cfg.method == Method::Q4_0 { (18, 4, false, 8.0) } else { (34, 8, true, 0.0) };
                let nb = dp / 32;
                for (r, o) in [(kr, &mut *ko), (vr, &mut *vo)] {
                    pack::unpack_tile(bits, signed, r, rows * nb, bs, 2, 1, 0, o);
                    let s: Vec<f32> = (0..rows * nb).map(|i| f16::from_le_bytes([r[i * bs], r[i * bs + 1]]).to_f32()).collect();
                    let z: Vec<f32> = s.iter().map(|x| -off * x).collect();
                    crate::kernels::affine_groups(&mut o[..rows * dp], 32, &s, &z);
                }
                true
            }
            Method::Rotate | Method::MiKv => {
                self.token_asym_tile(kr, rows, ko);
                self.token_asym_tile(vr, rows, vo);
                if self.cfg.method == Method::MiKv {
                    for (i, &slot) in h.hp_slot[c0..c1].iter().enumerate() {
                        if slot != NONE {
                            let sl = slot as usize;
                            crate::kernels::f16_to_f32(&h.hp_k[sl * d..(sl + 1) * d], &mut ko[i * dp..i * dp + d]);
                            crate::kernels::f16_to_f32(&h.hp_v[sl * d..(sl + 1) * d], &mut vo[i * dp..i * dp + d]);
                            ko[i * dp + d..(i + 1) * dp].fill(0.0);
                            vo[i * dp + d..(i + 1) * dp].fill(0.0);
                        }
                    }
                }
                true
            }
            Method::KvQuant => {
                // the codes of a tile of one-token records unpacked at once, then each row as
                // `decode_side`
                let b = self.bits();
                pack::unpack_tile(b, false, kr, rows, kb, 0, dp / 32, 4 * b as usize, ko);
                pack::unpack_tile(b, false, vr, rows, vb, 4, dp / 32, 4 * b as usize, vo);
                for i in 0..rows {
                    self.kvquant_key_codes(&kr[i * kb..], &mut ko[i * dp..(i + 1) * dp]);
                    self.kvquant_value_codes(&vr[i * vb..], &mut vo[i * dp..(i + 1) * dp]);
                }
                true
            }
            Method::F16 | Method::H2o if d == dp => {
                match (bytemuck::try_cast_slice::<u8, f16>(kr), bytemuck::try_cast_slice::<u8, f16>(vr)) {
                    (Ok(k16), Ok(v16)) => {
                        crate::kernels::f16_to_f32(k16, &mut ko[..rows * dp]);
                        crate::kernels::f16_to_f32(v16, &mut vo[..rows * dp]);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// KVQuant key record `r` whose codes `o` (`dp` long) holds unpacked:
    /// codebook values, the head's per-channel range, then the outliers.
    fn kvquant_key_codes(&self, r: &[u8], o: &mut [f32]) {
        let (c, d, dp) = (self.calib(), self.d, self.dp);
        let base = self.head * dp;
        crate::kernels::lut(&mut o[..d], &c.k_cb);
        crate::kernels::affine(o, &c.k_scale[base..base + dp], &c.k_zero[base..base + dp]);
        quant::outliers_apply(&r[pack::row_bytes(self.bits(), d)..], self.nout, &mut o[..d]);
    }

    /// KVQuant value record `r` whose codes `o` (`dp` long) holds unpacked:
    /// codebook values, the row's (zero, scale), then the outliers.
    fn kvquant_value_codes(&self, r: &[u8], o: &mut [f32]) {
        let (c, d) = (self.calib(), self.d);
        let z = f16::from_le_bytes([r[0], r[1]]).to_f32();
        let s = f16::from_le_bytes([r[2], r[3]]).to_f32();
        crate::kernels::lut(&mut o[..d], &c.v_cb);
        crate::kernels::affine1(&mut o[..d], s, z);
        o[d..].fill(0.0);
        quant::outliers_apply(&r[4 + pack::row_bytes(self.bits(), d)..], self.nout, &mut o[..d]);
    }

    // ------------------------------------------------------------ decode

    /// Decode chunk `chunk` of `head` (stored space) into `ko`/`vo` (`t` rows of stride `dp`).
    pub fn decode_chunk(&self, h: &Head, chunk: usize, ko: &mut [f32], vo: &mut [f32]) {
        let (kb, vb) = self.rec_bytes();
        let kr = &h.krec[chunk * kb..(chunk + 1) * kb];
        let vr = &h.vrec[chunk * vb..(chunk + 1) * vb];
        self.decode_k(h, chunk, kr, ko);
        self.decode_v(h, chunk, vr, vo);
    }

    fn decode_k(&self, h: &Head, chunk: usize, r: &[u8], o: &mut [f32]) {
        self.decode_side(h, chunk, r, o, true)
    }

    fn decode_v(&self, h: &Head, chunk: usize, r: &[u8], o: &mut [f32]) {
        self.decode_side(h, chunk, r, o, false)
    }

    fn decode_side(&self, h: &Head, chunk: usize, r: &[u8], o: &mut [f32], is_key: bool) {
        let (d, dp, b, gs) = (self.d, self.dp, self.bits(), self.cfg.group_size);
        match self.cfg.method {
            Method::F32 => {
                for (x, bb) in o[..d].iter_mut().zip(r.chunks_exact(4)) {
                    *x = f32::from_le_bytes([bb[0], bb[1], bb[2], bb[3]]);
                }
                o[d..dp].fill(0.0);
            }
            Method::F16 | Method::H2o => {
                quant::f16_decode(r, &mut o[..d]);
                o[d..dp].fill(0.0);
            }
            Method::Q8_0 => quant::q8_0_decode(r, &mut o[..dp]),
            Method::Q4_0 => quant::q4_0_decode(r, &mut o[..dp]),
            Method::Rotate => quant::token_asym_decode(r, d, gs, b, &mut o[..dp]),
            Method::MiKv => {
                let slot = h.hp_slot[chunk];
                if slot == NONE {
                    quant::token_asym_decode(r, d, gs, b, &mut o[..dp]);
                } else {
                    let src = if is_key { &h.hp_k } else { &h.hp_v };
                    crate::kernels::f16_to_f32(&src[slot as usize * d..(slot as usize + 1) * d], &mut o[..d]);
                    o[d..dp].fill(0.0);
                }
            }
            Method::Kivi => self.decode_uniform(r, is_key, o),
            Method::KvQuant => {
                let rb = pack::row_bytes(b, d);
                if is_key {
                    pack::unpack_f32(b, &r[..rb], &mut o[..dp]);
                    self.kvquant_key_codes(r, &mut o[..dp]);
                } else {
                    pack::unpack_f32(b, &r[4..4 + rb], &mut o[..dp]);
                    self.kvquant_value_codes(r, &mut o[..dp]);
                }
            }
            Method::Gear => {
                let (t, rk) = (self.t, self.cfg.rank);
                let q = if is_key { quant::channel_asym_bytes(t, d, b) } else { quant::token_asym_block_bytes(t, d, gs, b) };
                self.decode_uniform(r, is_key, o);
                let lr = &r[q..];
                let f = |i: usize| f16::from_le_bytes([lr[2 * i], lr[2 * i + 1]]).to_f32();
                let mut bvec = vec![0f32; rk * d];
                for (i, x) in bvec.iter_mut().enumerate() {
                    *x = f(t * rk + i);
                }
                for i in 0..t {
                    for kk in 0..rk {
                        let a = f(i * rk + kk);
                        crate::kernels::axpy(a, &bvec[kk * d..(kk + 1) * d], &mut o[i * dp..i * dp + d]);
                    }
                }
                let orec = &r[q + 2 * (t + d) * rk..];
                for i in 0..t {
                    let base = i * self.nout * OUTLIER_BYTES;
                    quant::outliers_apply(&orec[base..], self.nout, &mut o[i * dp..i * dp + d]);
                }
            }
        }
    }
}

fn centered(x: &[f32]) -> Vec<f32> {
    let m = x.iter().sum::<f32>() / x.len() as f32;
    x.iter().map(|v| v - m).collect()
}

/// Centre and half-range of the values of `x` outside `outl`.
pub(crate) fn inlier_center_range(x: &[f32], outl: &[usize]) -> (f32, f32) {
    let (mut mn, mut mx) = (f32::INFINITY, f32::NEG_INFINITY);
    for (i, &v) in x.iter().enumerate() {
        if !outl.contains(&i) {
            mn = mn.min(v);
            mx = mx.max(v);
        }
    }
    if mn > mx {
        return (0.0, 1.0);
    }
    (0.5 * (mn + mx), (0.5 * (mx - mn)).max(1e-6))
}

#[allow(clippy::needless_range_loop)]
/// Learn the per-layer calibration a method needs from `keys`/`values`
/// (`[kv_heads, n, d]`, input space).
pub(crate) fn calibrate(cfg: &KvConfig, keys: &[f32], values: &[f32], n: usize) -> Option<Calib> {
    let (kvh, d) = (cfg.kv_heads, cfg.head_dim);
    let dp = pad32(d);
    match cfg.method {
        Method::KvQuant => {
            let nout = cfg.outliers_per_vector();
            let mut c = Calib { k_zero: vec![0.0; kvh * dp], k_scale: vec![0.0; kvh * dp], ..Default::default() };
            let mut ksamp = Vec::new();
            let mut vsamp = Vec::new();
            let stride = (kvh * n * d / 200_000).max(1);
            for h in 0..kvh {
                let kh = &keys[h * n * d..(h + 1) * n * d];
                // Channel mean/std to find outliers before the ranges are known.
                let mut mean = vec![0f64; d];
                let mut sq = vec![0f64; d];
                for r in kh.chunks_exact(d) {
                    for c in 0..d {
                        mean[c] += r[c] as f64;
                        sq[c] += (r[c] as f64).powi(2);
                    }
                }
                let std: Vec<f64> = (0..d)
                    .map(|c| {
                        mean[c] /= n as f64;
                        (sq[c] / n as f64 - mean[c] * mean[c]).max(1e-12).sqrt()
                    })
                    .collect();
                let mut mn = vec![f32::INFINITY; d];
                let mut mx = vec![f32::NEG_INFINITY; d];
                let outl: Vec<Vec<usize>> = kh
                    .chunks_exact(d)
                    .map(|r| {
                        let z: Vec<f32> = (0..d).map(|c| ((r[c] as f64 - mean[c]) / std[c]) as f32).collect();
                        quant::top_magnitudes(&z, nout)
                    })
                    .collect();
                for (r, o) in kh.chunks_exact(d).zip(&outl) {
                    for c in 0..d {
                        if !o.contains(&c) {
                            mn[c] = mn[c].min(r[c]);
                            mx[c] = mx[c].max(r[c]);
                        }
                    }
                }
                for ch in 0..d {
                    let (z, s) = if mn[ch] <= mx[ch] { (0.5 * (mn[ch] + mx[ch]), (0.5 * (mx[ch] - mn[ch])).max(1e-6)) } else { (0.0, 1.0) };
                    c.k_zero[h * dp + ch] = z;
                    c.k_scale[h * dp + ch] = s;

                }
                for (i, (r, o)) in kh.chunks_exact(d).zip(&outl).enumerate() {
                    for cc in 0..d {
                        if !o.contains(&cc) && (i * d + cc) % stride == 0 {
                            ksamp.push((r[cc] - c.k_zero[h * dp + cc]) / c.k_scale[h * dp + cc]);
                        }
                    }
                }
                let vh = &values[h * n * d..(h + 1) * n * d];
                for (i, r) in vh.chunks_exact(d).enumerate() {
                    let o = quant::top_magnitudes(&centered(r), nout);
                    let (z, s) = inlier_center_range(r, &o);
                    for cc in 0..d {
                        if !o.contains(&cc) && (i * d + cc) % stride == 0 {
                            vsamp.push((r[cc] - z) / s);
                        }
                    }
                }
            }
            let k = 1usize << cfg.bits;
            c.k_cb = quant::kmeans_1d(&ksamp, k, 30);
            c.v_cb = quant::kmeans_1d(&vsamp, k, 30);
            Some(c)
        }
        Method::Rotate => {
            let block = cfg.rot_block();
            let nblocks = d / block;
            let perm_of = |x: &[f32], h: usize| -> Vec<u16> {
                let mut mag = vec![0f32; d];
                for r in x[h * n * d..(h + 1) * n * d].chunks_exact(d) {
                    for c in 0..d {
                        mag[c] = mag[c].max(r[c].abs());
                    }
                }
                let mut order: Vec<usize> = (0..d).collect();
                order.sort_by(|&a, &b| mag[b].total_cmp(&mag[a]).then(a.cmp(&b)));
                let mut p = vec![0u16; d];
                for (rank, &ch) in order.iter().enumerate() {
                    p[(rank % nblocks) * block + rank / nblocks] = ch as u16;
                }
                p
            };
            let mut c = Calib::default();
            for h in 0..kvh {
                c.perm_k.extend(perm_of(keys, h));
                c.perm_v.extend(perm_of(values, h));
            }
            Some(c)
        }
        _ => None,
    }
}
