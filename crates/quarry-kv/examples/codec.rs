//! quarry's quantizers as a coprocess (used by `benches/kv_ppl.py` to put
//! the real KvCache encoders/decoders in a transformers model's loop).
//!
//! Protocol on stdin/stdout, little-endian, one request after another until
//! stdin closes:
//! - request: `u32` length then that many bytes of a one-line header
//!   `method bits kv_heads head_dim tokens rope_theta` (`rope_theta` 0 = keys
//!   are post-RoPE; > 0 = keys are pre-RoPE and KVQuant applies RoPE at
//!   attention time), then keys and values as f32 `[kv_heads, tokens, head_dim]`;
//! - reply: keys and values as `dequantize()` returns them (same shape, in
//!   the space they were given in), then the cache's `bytes()` as `u64`.
//!
//! The whole sequence is appended at once (a prefill), so the cache holds
//! what it would after that prefill: quantized chunks plus the residual.
//! KVQuant is calibrated on the first quarter of the tokens; RotateKV
//! calibrates on the append itself.

use quarry_kv::{KvCache, KvConfig, Method, Rope, RopeStyle};
use std::io::{Read, Write};

fn read_f32s(r: &mut impl Read, n: usize) -> std::io::Result<Vec<f32>> {
    let mut b = vec![0u8; 4 * n];
    r.read_exact(&mut b)?;
    Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn write_f32s(w: &mut impl Write, x: &[f32]) -> std::io::Result<()> {
    let b: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.write_all(&b)
}

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut inp = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let mut len = [0u8; 4];
        match inp.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut hdr = vec![0u8; u32::from_le_bytes(len) as usize];
        inp.read_exact(&mut hdr)?;
        let hdr = String::from_utf8_lossy(&hdr).to_string();
        let f: Vec<&str> = hdr.split_whitespace().collect();
        if f.len() != 6 {
            panic!("bad header {hdr:?}");
        }
        let method = Method::from_name(f[0]).unwrap_or_else(|e| panic!("{e}"));
        let bits: u8 = f[1].parse().unwrap();
        let (kvh, d, n): (usize, usize, usize) = (f[2].parse().unwrap(), f[3].parse().unwrap(), f[4].parse().unwrap());
        let theta: f32 = f[5].parse().unwrap();
        let k = read_f32s(&mut inp, kvh * n * d)?;
        let v = read_f32s(&mut inp, kvh * n * d)?;
        let mut cfg = KvConfig::new(1, kvh, d, method);
        cfg.bits = bits;
        if theta > 0.0 {
            cfg.rope = Some(Rope { theta, style: RopeStyle::Half });
        }
        let mut cache = KvCache::new(cfg).unwrap_or_else(|e| panic!("{e}"));
        if method == Method::KvQuant {
            let nc = (n / 4).max(1);
            let slice = |x: &[f32]| -> Vec<f32> { (0..kvh).flat_map(|h| x[h * n * d..(h * n + nc) * d].to_vec()).collect() };
            cache.calibrate(0, &slice(&k), &slice(&v)).unwrap_or_else(|e| panic!("{e}"));
        }
        cache.append(0, &k, &v).unwrap_or_else(|e| panic!("{e}"));
        let (dk, dv) = cache.dequantize(0).unwrap();
        write_f32s(&mut out, &dk)?;
        write_f32s(&mut out, &dv)?;
        out.write_all(&(cache.bytes() as u64).to_le_bytes())?;
        out.flush()?;
    }
}
