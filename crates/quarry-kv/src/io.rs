//! Save/load of a [`KvCache`] in a compact versioned format.
//!
//! Layout (all little-endian):
//! ```text
//! 0   8  magic "QKVCACHE"
//! 8   4  format version (2; version 1 stored KIVI/GEAR key codes row-major
//!        and is refused)
//! 12  4  byte-order mark 0x01020304
//! 16  8  payload length in bytes
//! 24  8  XXH3-64 of the payload
//! 32  …  payload: config, then per layer {tokens, calibration}, then per
//!        head {rows, aged, key records, value records, sink rows, tail
//!        rows, attention totals, MiKV slot maps and f16 copies, H2O positions};
//!        every array is a u64 element count followed by its elements.
//! ```
//! Files are written to `<path>.tmp` and renamed over `path`. Loading checks
//! the magic, version, length and checksum, then every count and index
//! against the configuration, so a truncated or altered file gives
//! [`KvError::CorruptIndex`] and never a panic.

use crate::cache::{KvCache, Layer};
use crate::codec::{Calib, Codec, Head, NONE, Residual};
use crate::config::{KvConfig, Method};
use crate::error::{KvError, Result};
use crate::quant::{Rope, RopeStyle, pad32};
use half::f16;
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"QKVCACHE";
const VERSION: u32 = 2;
const BOM: u32 = 0x0102_0304;

fn corrupt(msg: impl Into<String>) -> KvError {
    KvError::CorruptIndex(msg.into())
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn f32(&mut self, x: f32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn bytes(&mut self, x: &[u8]) {
        self.u64(x.len() as u64);
        self.0.extend_from_slice(x);
    }
    fn f32s(&mut self, x: &[f32]) {
        self.u64(x.len() as u64);
        x.iter().for_each(|v| self.f32(*v));
    }
    fn u32s(&mut self, x: &[u32]) {
        self.u64(x.len() as u64);
        x.iter().for_each(|v| self.u32(*v));
    }
    fn u16s(&mut self, x: impl ExactSizeIterator<Item = u16>) {
        self.u64(x.len() as u64);
        x.for_each(|v| self.0.extend_from_slice(&v.to_le_bytes()));
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated payload"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn len(&mut self, elem: usize) -> Result<usize> {
        let n = self.u64()?;
        if n > (self.0.len() / elem) as u64 {
            return Err(corrupt("array longer than the payload"));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.len(1)?;
        Ok(self.take(n)?.to_vec())
    }
    fn f32s(&mut self) -> Result<Vec<f32>> {
        let n = self.len(4)?;
        Ok(self.take(4 * n)?.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
    }
    fn u32s(&mut self) -> Result<Vec<u32>> {
        let n = self.len(4)?;
        Ok(self.take(4 * n)?.chunks_exact(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect())
    }
    fn u16s(&mut self) -> Result<Vec<u16>> {
        let n = self.len(2)?;
        Ok(self.take(2 * n)?.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect())
    }
}

impl KvCache {
    /// Serialize the cache (see the module docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let c = &self.cfg;
        let mut w = W(Vec::new());
        w.u8(c.method.code());
        w.u8(c.bits);
        for x in [c.layers, c.kv_heads, c.head_dim, c.group_size, c.residual, c.sinks, c.rank, c.rotation_block] {
            w.u32(x as u32);
        }
        w.f32(c.outlier_fraction);
        w.f32(c.budget);
        match c.rope {
            None => w.u8(0),
            Some(r) => {
                w.u8(if r.style == RopeStyle::Half { 1 } else { 2 });
                w.f32(r.theta);
            }
        }
        for l in &self.layers {
            w.u64(l.tokens as u64);
            match &l.calib {
                None => w.u8(0),
                Some(cb) => {
                    w.u8(1);
                    w.f32s(&cb.k_zero);
                    w.f32s(&cb.k_scale);
                    w.f32s(&cb.k_cb);
                    w.f32s(&cb.v_cb);
                    w.u16s(cb.perm_k.iter().copied());
                    w.u16s(cb.perm_v.iter().copied());
                }
            }
            for h in &l.heads {
                w.u64(h.rows as u64);
                w.u64(h.aged as u64);
                w.bytes(&h.krec);
                w.bytes(&h.vrec);
                // Residual rows are written as f32 whatever their storage
                // (f16 values widen exactly and narrow back unchanged).
                for v in [&h.sink_k[..], &h.sink_v[..], &*h.tail_k.to_f32(), &*h.tail_v.to_f32(), &h.imp[..], &h.tail_imp[..]] {
                    w.f32s(v);
                }
                w.u32s(&h.hp_slot);
                w.u32s(&h.hp_row);
                w.u16s(h.hp_k.iter().map(|x| x.to_bits()));
                w.u16s(h.hp_v.iter().map(|x| x.to_bits()));
                w.u32s(&h.pos);
            }
        }
        let payload = w.0;
        let mut out = Vec::with_capacity(32 + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&BOM.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parse and validate a serialized cache.
    pub fn from_bytes(data: &[u8]) -> Result<KvCache> {
        if data.len() < 32 || &data[..8] != MAGIC {
            return Err(corrupt("not a quarry KV cache (bad magic or too short)"));
        }
        let version = u32::from_le_bytes(data[8..12].try_into().unwrap());
        if version != VERSION {
            return Err(corrupt(format!("unsupported format version {version}")));
        }
        if u32::from_le_bytes(data[12..16].try_into().unwrap()) != BOM {
            return Err(corrupt("byte-order mark mismatch"));
        }
        let len = u64::from_le_bytes(data[16..24].try_into().unwrap());
        if len != (data.len() - 32) as u64 {
            return Err(corrupt("payload length mismatch (truncated file?)"));
        }
        let payload = &data[32..];
        if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(data[24..32].try_into().unwrap()) {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = R(payload);
        let method = *Method::ALL.get(r.u8()? as usize).ok_or_else(|| corrupt("unknown method"))?;
        let bits = r.u8()?;
        let mut f = [0usize; 8];
        for x in &mut f {
            *x = r.u32()? as usize;
        }
        let [layers, kv_heads, head_dim, group_size, residual, sinks, rank, rotation_block] = f;
        let outlier_fraction = r.f32()?;
        let budget = r.f32()?;
        let rope = match r.u8()? {
            0 => None,
            s @ (1 | 2) => Some(Rope { theta: r.f32()?, style: if s == 1 { RopeStyle::Half } else { RopeStyle::Interleaved } }),
            _ => return Err(corrupt("bad rope flag")),
        };
        let cfg = KvConfig {
            layers,
            kv_heads,
            head_dim,
            method,
            bits,
            group_size,
            residual,
            sinks,
            outlier_fraction,
            rank,
            budget,
            rope,
            rotation_block,
        };
        cfg.validate().map_err(|e| corrupt(format!("invalid configuration: {e}")))?;
        let (d, dp) = (head_dim, pad32(head_dim));
        let mut out = Vec::with_capacity(layers);
        for _ in 0..layers {
            let tokens = r.u64()? as usize;
            let calib = match r.u8()? {
                0 => None,
                1 => Some(Calib {
                    k_zero: r.f32s()?,
                    k_scale: r.f32s()?,
                    k_cb: r.f32s()?,
                    v_cb: r.f32s()?,
                    perm_k: r.u16s()?,
                    perm_v: r.u16s()?,
                }),
                _ => return Err(corrupt("bad calibration flag")),
            };
            check_calib(&cfg, calib.as_ref(), tokens, dp)?;
            let mut heads = Vec::with_capacity(kv_heads);
            let half_tail = Head::new(&cfg).tail_k.is_half();
            for h in 0..kv_heads {
                let head = Head {
                    rows: r.u64()? as usize,
                    aged: r.u64()? as usize,
                    krec: r.bytes()?,
                    vrec: r.bytes()?,
                    sink_k: r.f32s()?,
                    sink_v: r.f32s()?,
                    tail_k: Residual::from_f32(half_tail, &r.f32s()?),
                    tail_v: Residual::from_f32(half_tail, &r.f32s()?),
                    imp: r.f32s()?,
                    tail_imp: r.f32s()?,
                    hp_slot: r.u32s()?,
                    hp_row: r.u32s()?,
                    hp_k: r.u16s()?.into_iter().map(f16::from_bits).collect(),
                    hp_v: r.u16s()?.into_iter().map(f16::from_bits).collect(),
                    pos: r.u32s()?,
                };
                check_head(&cfg, &Codec::new(&cfg, calib.as_ref(), h), &head, tokens, d)?;
                heads.push(head);
            }
            out.push(Layer { tokens, calib, heads });
        }
        if !r.0.is_empty() {
            return Err(corrupt("trailing bytes after the last layer"));
        }
        Ok(KvCache { cfg, layers: out })
    }

    /// Write the cache to `path` (via `<path>.tmp` and a rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let data = self.to_bytes();
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Read a cache written by [`KvCache::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<KvCache> {
        KvCache::from_bytes(&std::fs::read(path)?)
    }
}

fn check_calib(cfg: &KvConfig, c: Option<&Calib>, tokens: usize, dp: usize) -> Result<()> {
    let (kvh, d) = (cfg.kv_heads, cfg.head_dim);
    let needs = matches!(cfg.method, Method::KvQuant | Method::Rotate);
    match c {
        None if needs && tokens > 0 => Err(corrupt("missing calibration")),
        None => Ok(()),
        Some(_) if !needs => Err(corrupt("unexpected calibration")),
        Some(c) => {
            if cfg.method == Method::KvQuant {
                let k = 1usize << cfg.bits;
                if c.k_zero.len() != kvh * dp || c.k_scale.len() != kvh * dp || c.k_cb.len() != k || c.v_cb.len() != k {
                    return Err(corrupt("KVQuant calibration sizes"));
                }
            } else {
                for p in [&c.perm_k, &c.perm_v] {
                    if p.len() != kvh * d {
                        return Err(corrupt("rotation permutation size"));
                    }
                    for ph in p.chunks_exact(d) {
                        let mut seen = vec![false; d];
                        for &x in ph {
                            if x as usize >= d || std::mem::replace(&mut seen[x as usize], true) {
                                return Err(corrupt("rotation permutation is not a permutation"));
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

fn check_head(cfg: &KvConfig, codec: &Codec, h: &Head, tokens: usize, d: usize) -> Result<()> {
    let t = cfg.chunk_tokens();
    let (kb, vb) = codec.rec_bytes();
    let bad = |what: &str| Err(corrupt(format!("head data inconsistent: {what}")));
    if !h.rows.is_multiple_of(t) || h.krec.len() != h.rows / t * kb || h.vrec.len() != h.rows / t * vb {
        return bad("record sizes");
    }
    if h.sink_k.len() != h.sink_v.len() || !h.sink_k.len().is_multiple_of(d) || h.sink_k.len() / d > cfg.sinks {
        return bad("sink rows");
    }
    if h.tail_k.len() != h.tail_v.len() || !h.tail_k.len().is_multiple_of(d) || h.tail_imp.len() != h.tail_k.len() / d {
        return bad("tail rows");
    }
    let ns = h.sink_k.len() / d;
    let nt = h.tail_k.len() / d;
    if ns.checked_add(h.aged).and_then(|x| x.checked_add(nt)) != Some(tokens) || h.rows > h.aged {
        return bad("token counts");
    }
    let stats = matches!(cfg.method, Method::MiKv | Method::H2o);
    if h.imp.len() != if stats { h.rows } else { 0 } {
        return bad("attention totals");
    }
    if cfg.method == Method::MiKv {
        if h.hp_slot.len() != h.rows || h.hp_k.len() != h.hp_row.len() * d || h.hp_v.len() != h.hp_k.len() {
            return bad("MiKV slot sizes");
        }
        for (s, &row) in h.hp_row.iter().enumerate() {
            if row as usize >= h.rows || h.hp_slot[row as usize] != s as u32 {
                return bad("MiKV slot map");
            }
        }
        if h.hp_slot.iter().filter(|&&s| s != NONE).count() != h.hp_row.len() {
            return bad("MiKV slot count");
        }
    } else if !(h.hp_slot.is_empty() && h.hp_row.is_empty() && h.hp_k.is_empty() && h.hp_v.is_empty()) {
        return bad("unexpected MiKV data");
    }
    if cfg.method == Method::H2o {
        if h.pos.len() != h.rows || h.pos.iter().any(|&p| (p as usize) < ns || p as usize >= ns + h.aged) {
            return bad("H2O positions");
        }
    } else if !h.pos.is_empty() {
        return bad("unexpected positions");
    }
    Ok(())
}
