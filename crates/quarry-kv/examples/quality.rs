//! KV-cache quality on real-model activations (or synthetic data in the same
//! format): per method × bits, bytes per token, K/V relative error and the
//! decode attention output's relative error and cosine vs f32, per layer.
//!
//! Data: `benches/.data/model/<model>/meta.json` ({layers, heads, kv_heads,
//! head_dim, tokens, rope_theta}) and per layer `LNN.{q,k,q_pre,k_pre,v}.f32`
//! (little-endian f32, `[heads, tokens, head_dim]`; k/v with kv heads).
//!
//! ```text
//! cargo run --release -p quarry-kv --example quality -- [--dir DIR] [--layers all|0,5,29] [--tokens N]
//!     [--queries Q] [--json OUT] [--synthetic]
//! ```
//! Decode queries: the (post-RoPE) queries of the last `Q` positions (default
//! 1), each attending over every token up to and including its own, with
//! the cache holding exactly those tokens (built by appending one token per
//! step after the first); attention errors are means over the `Q` steps,
//! bytes and K/V errors are those of the full cache. KVQuant gets pre-RoPE keys (RoPE at attention time) and is
//! calibrated on the first quarter of the tokens. MiKV/H2O are fed in
//! chunks of 16 tokens with a decode-style attend after each chunk (so
//! their importance scores exist), then scored on the final query.

use quarry_kv::reference::{attention, cosine, rel_error};
use quarry_kv::{KvCache, KvConfig, Method, Rope, RopeStyle};
use std::path::{Path, PathBuf};

struct Meta {
    layers: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    tokens: usize,
    theta: f32,
    name: String,
}

fn read_f32(p: &Path) -> Vec<f32> {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn write_f32(p: &Path, x: &[f32]) {
    std::fs::write(p, x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn find_dir() -> Option<PathBuf> {
    let mut here = std::env::current_dir().ok()?;
    loop {
        let m = here.join("benches/.data/model");
        if let Ok(rd) = std::fs::read_dir(&m) {
            let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.join("meta.json").exists()).collect();
            dirs.sort();
            if let Some(d) = dirs.into_iter().next() {
                return Some(d);
            }
        }
        if !here.pop() {
            return None;
        }
    }
}

/// Synthetic stand-in in the dump format: keys with outlier channels and
/// RoPE applied, values Gaussian, queries correlated with some keys.
fn synthesize(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (layers, heads, kvh, d, n, theta) = (2usize, 9usize, 3usize, 64usize, 1024usize, 100000.0f32);
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut normal = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let u = ((s >> 40) as f32 + 0.5) / (1u64 << 24) as f32;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = (s >> 40) as f32 / (1u64 << 24) as f32;
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    };
    let rope = Rope { theta, style: RopeStyle::Half };
    for l in 0..layers {
        let k_pre: Vec<f32> = (0..kvh * n * d).map(|i| if i % d == 7 || i % d == 40 { 5.0 + 3.0 * normal() } else { normal() }).collect();
        let v: Vec<f32> = (0..kvh * n * d).map(|_| normal()).collect();
        let q_pre: Vec<f32> = (0..heads * n * d).map(|i| normal() + if i % d == 7 { 2.0 } else { 0.0 }).collect();
        let (mut k, mut q) = (k_pre.clone(), q_pre.clone());
        for (x, hn) in [(&mut k, kvh), (&mut q, heads)] {
            for h in 0..hn {
                for t in 0..n {
                    rope.apply(&mut x[(h * n + t) * d..(h * n + t + 1) * d], t);
                }
            }
        }
        for (name, x) in [("q", &q), ("k", &k), ("q_pre", &q_pre), ("k_pre", &k_pre), ("v", &v)] {
            write_f32(&dir.join(format!("L{l:02}.{name}.f32")), x);
        }
    }
    let meta = serde_json::json!({"model_name": "synthetic", "layers": layers, "heads": heads, "kv_heads": kvh, "head_dim": d, "tokens": n, "rope_theta": theta});
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let dir = if args.iter().any(|a| a == "--synthetic") {
        let d = std::env::temp_dir().join("quarry-kv-synthetic");
        synthesize(&d);
        d
    } else {
        match arg("--dir").map(PathBuf::from).or_else(find_dir) {
            Some(d) => d,
            None => {
                eprintln!("no model dump found (benches/.data/model/*/meta.json); use --dir or --synthetic");
                std::process::exit(2);
            }
        }
    };
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let u = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("meta.json: {k}")) as usize;
    let meta = Meta {
        layers: u("layers"),
        heads: u("heads"),
        kv_heads: u("kv_heads"),
        d: u("head_dim"),
        tokens: u("tokens"),
        theta: m["rope_theta"].as_f64().unwrap_or(10000.0) as f32,
        name: m["model_name"].as_str().unwrap_or("model").to_string(),
    };
    let n = arg("--tokens").map(|s| s.parse::<usize>().unwrap()).unwrap_or(meta.tokens).min(meta.tokens);
    let layers: Vec<usize> = match arg("--layers").as_deref() {
        Some("all") => (0..meta.layers).collect(),
        Some(list) => list.split(',').map(|s| s.parse().unwrap()).collect(),
        None => {
            let mut v: Vec<usize> = (0..meta.layers).step_by(5.max(meta.layers / 6)).collect();
            if *v.last().unwrap() != meta.layers - 1 {
                v.push(meta.layers - 1);
            }
            v
        }
    };
    let (kvh, qh, d) = (meta.kv_heads, meta.heads, meta.d);
    let queries: usize = arg("--queries").map(|s| s.parse().unwrap()).unwrap_or(1).clamp(1, n);
    let mut json_rows: Vec<String> = Vec::new();
    let f16_bpt = (kvh * d * 2 * 2) as f64;
    println!(
        "# {} — {} tokens, layers {:?}, {} q heads / {} kv heads × {} dims, rope θ {}, decode queries: the last {}",
        meta.name, n, layers, qh, kvh, d, meta.theta, queries
    );
    let mut configs: Vec<(Method, u8)> = vec![(Method::F16, 16), (Method::Q8_0, 8), (Method::Q4_0, 4)];
    for mm in [Method::Kivi, Method::KvQuant, Method::Gear, Method::Rotate, Method::MiKv] {
        for b in [2u8, 3, 4, 8] {
            configs.push((mm, b));
        }
    }
    configs.push((Method::H2o, 16));
    // Per config: sums over layers for the summary.
    let mut summary: Vec<[f64; 5]> = vec![[0.0; 5]; configs.len()];
    println!("\n| layer | method | bits | bytes/token | ×f16 | K rel err | V rel err | attn rel err | attn cosine |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &l in &layers {
        let load = |name: &str, heads: usize| -> Vec<f32> {
            let full = read_f32(&dir.join(format!("L{l:02}.{name}.f32")));
            let tot = full.len() / (heads * d);
            (0..heads).flat_map(|h| full[h * tot * d..(h * tot + n) * d].to_vec()).collect()
        };
        let (q, k, k_pre, v) = (load("q", qh), load("k", kvh), load("k_pre", kvh), load("v", kvh));
        let qlast = |t: usize| -> Vec<f32> { (0..qh).flat_map(|h| q[(h * n + t) * d..(h * n + t + 1) * d].to_vec()).collect() };
        let slice = |x: &[f32], t0: usize, t1: usize| -> Vec<f32> { (0..kvh).flat_map(|h| x[(h * n + t0) * d..(h * n + t1) * d].to_vec()).collect() };
        let first = n - queries; // position of the first decode query
        let exact: Vec<Vec<f32>> = (first..n)
            .map(|p| attention(&qlast(p), &slice(&k, 0, p + 1), &slice(&v, 0, p + 1), qh, kvh, d, 1.0 / (d as f32).sqrt(), None))
            .collect();
        for (ci, &(method, bits)) in configs.iter().enumerate() {
            let mut cfg = KvConfig::new(1, kvh, d, method);
            cfg.bits = bits;
            let pre = method == Method::KvQuant;
            if pre {
                cfg.rope = Some(Rope { theta: meta.theta, style: RopeStyle::Half });
            }
            let mut cache = KvCache::new(cfg).unwrap();
            let kin = if pre { &k_pre } else { &k };
            // Fill up to the first decode position (MiKV/H2O in chunks of 16
            // with a decode-style attend after each, so their importance
            // scores exist), then decode one token per step.
            if matches!(method, Method::MiKv | Method::H2o) {
                let mut t0 = 0;
                while t0 < first {
                    let t1 = (t0 + 16).min(first);
                    cache.append(0, &slice(kin, t0, t1), &slice(&v, t0, t1)).unwrap();
                    cache.attend(0, &qlast(t1 - 1), None).unwrap();
                    t0 = t1;
                }
            } else {
                if pre {
                    let nc = (n / 4).max(1);
                    cache.calibrate(0, &slice(kin, 0, nc), &slice(&v, 0, nc)).unwrap();
                }
                if first > 0 {
                    cache.append(0, &slice(kin, 0, first), &slice(&v, 0, first)).unwrap();
                }
            }
            let (mut attn_err, mut attn_cos) = (0.0, 0.0);
            for (i, p) in (first..n).enumerate() {
                cache.append(0, &slice(kin, p, p + 1), &slice(&v, p, p + 1)).unwrap();
                let out = cache.attend(0, &qlast(p), None).unwrap();
                attn_err += rel_error(&out, &exact[i]) / queries as f64;
                attn_cos += cosine(&out, &exact[i]) / queries as f64;
            }
            let (dk, dv) = cache.dequantize(0).unwrap();
            let bpt = cache.bytes() as f64 / n as f64;
            let row = [bpt, rel_error(&dk, kin), rel_error(&dv, &v), attn_err, attn_cos];
            json_rows.push(format!(
                "{{\"layer\":{l},\"method\":\"{}\",\"bits\":{bits},\"bytes_per_token\":{},\"x_f16\":{},\"k_rel_err\":{},\"v_rel_err\":{},\"attn_rel_err\":{},\"attn_cos\":{}}}",
                method.name(),
                row[0],
                row[0] / f16_bpt,
                row[1],
                row[2],
                row[3],
                row[4]
            ));
            for (s, x) in summary[ci].iter_mut().zip(row) {
                *s += x;
            }
            println!(
                "| {l} | {} | {bits} | {:.1} | {:.3} | {:.4} | {:.4} | {:.4} | {:.5} |",
                method.name(),
                row[0],
                row[0] / f16_bpt,
                row[1],
                row[2],
                row[3],
                row[4]
            );
        }
    }
    let nl = layers.len() as f64;
    println!("\n## mean over layers {layers:?}\n");
    println!("| method | bits | bytes/token/layer | ×f16 | K rel err | V rel err | attn rel err | attn cosine |");
    println!("|---|---|---|---|---|---|---|---|");
    for (&(method, bits), s) in configs.iter().zip(&summary) {
        println!(
            "| {} | {bits} | {:.1} | {:.3} | {:.4} | {:.4} | {:.4} | {:.5} |",
            method.name(),
            s[0] / nl,
            s[0] / nl / f16_bpt,
            s[1] / nl,
            s[2] / nl,
            s[3] / nl,
            s[4] / nl
        );
    }
    if let Some(path) = arg("--json") {
        std::fs::write(&path, format!("[\n{}\n]\n", json_rows.join(",\n"))).unwrap();
    }
    println!("\nK/V errors of mikv and h2o count evicted (h2o) tokens as zeros; kvquant K error is on pre-RoPE keys.");
}
