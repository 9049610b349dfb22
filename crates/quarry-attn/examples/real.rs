//! Runs every prefill method on real-model Q/K/V dumps and prints attention
//! recall, output error, density and speedup over quarry dense.
//!
//! ```text
//! cargo run -p quarry-attn --release --example real -- [DUMP_DIR] [--layers 0,7,14] [--tokens N] [--search TARGET]
//! ```
//! `DUMP_DIR` is a dump (with `meta.json`) or a folder of dumps (default
//! `benches/.data/model`). Without dumps it says so and exits 0.

use quarry_attn::realdata::{EvalPlan, evaluate_layer, read_layer, read_meta, truncate_tokens};
use quarry_attn::{AttnOptions, AttnShape};
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = PathBuf::from("benches/.data/model");
    let mut layers: Option<Vec<usize>> = None;
    let mut tokens: Option<usize> = None;
    let mut search: Option<f64> = Some(0.95);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--layers" => {
                i += 1;
                layers = Some(args[i].split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?);
            }
            "--tokens" => {
                i += 1;
                tokens = Some(args[i].parse()?);
            }
            "--search" => {
                i += 1;
                search = if args[i] == "off" { None } else { Some(args[i].parse()?) };
            }
            other => dir = PathBuf::from(other),
        }
        i += 1;
    }
    let dumps = find_dumps(&dir);
    if dumps.is_empty() {
        println!("no dumps under {} (meta.json + Lxx.{{q,k,v}}.f32); nothing to do", dir.display());
        return Ok(());
    }
    for d in dumps {
        run_dump(&d, layers.as_deref(), tokens, search)?;
    }
    Ok(())
}

fn find_dumps(dir: &Path) -> Vec<PathBuf> {
    if dir.join("meta.json").is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("meta.json").is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn run_dump(dir: &Path, layers: Option<&[usize]>, tokens: Option<usize>, search: Option<f64>) -> Result<(), Box<dyn std::error::Error>> {
    let meta = read_meta(dir)?;
    let n = tokens.unwrap_or(meta.tokens).min(meta.tokens);
    let shape = AttnShape::prefill(meta.heads, meta.kv_heads, n, meta.head_dim);
    let opts = AttnOptions::causal();
    let mut plan = EvalPlan::default_for(n);
    plan.search_target = search;
    let default_layers: Vec<usize> = (0..meta.layers).collect();
    let layers = layers.unwrap_or(&default_layers);
    println!(
        "# {} ({}): {} layers, {} heads / {} kv heads, head_dim {}, {} tokens, threads {}",
        meta.model,
        dir.display(),
        meta.layers,
        meta.heads,
        meta.kv_heads,
        meta.head_dim,
        n,
        rayon::current_num_threads()
    );
    println!("layer  method                recall  min-head  min-row  out-err   density  ms       dense-ms  speedup");
    let mut sums: Vec<(String, f64, f64, f64, f64, usize)> = Vec::new();
    for &l in layers {
        let (q, k, v) = read_layer(dir, &meta, l)?;
        let (q, k, v) = if n < meta.tokens {
            (
                truncate_tokens(&q, meta.heads, meta.tokens, meta.head_dim, n),
                truncate_tokens(&k, meta.kv_heads, meta.tokens, meta.head_dim, n),
                truncate_tokens(&v, meta.kv_heads, meta.tokens, meta.head_dim, n),
            )
        } else {
            (q, k, v)
        };
        for r in evaluate_layer(&q, &k, &v, &shape, &opts, &plan)? {
            let min_head = r.recall.per_head.iter().copied().fold(1.0, f64::min);
            println!(
                "{l:>5}  {:<20}  {:.4}  {:.4}    {:.4}   {:.2e}  {:.4}  {:>7.1}  {:>8.1}  {:.2}x",
                r.method,
                r.recall.mean,
                min_head,
                r.recall.min,
                r.output_error,
                r.density,
                r.seconds * 1e3,
                r.dense_seconds * 1e3,
                r.speedup()
            );
            match sums.iter_mut().find(|s| s.0 == r.method) {
                Some(s) => {
                    s.1 += r.recall.mean;
                    s.2 += r.density;
                    s.3 += r.seconds;
                    s.4 += r.dense_seconds;
                    s.5 += 1;
                }
                None => sums.push((r.method.clone(), r.recall.mean, r.density, r.seconds, r.dense_seconds, 1)),
            }
        }
    }
    println!("# mean over layers: method, recall, density, speedup (total dense time / total method time)");
    for (m, rec, dens, secs, dsecs, c) in sums {
        println!("  {m:<20}  recall {:.4}  density {:.4}  speedup {:.2}x", rec / c as f64, dens / c as f64, dsecs / secs);
    }
    Ok(())
}
