//! Decode-step table on real-model Q/K/V dumps: dense decode vs Quest,
//! RetrievalAttention (quarry-ann index over keys), Squeezed and the exact
//! top-k oracle. The decode query is each head's query at the last cached
//! position (`tokens - 1`), against the keys/values `0..tokens` of the dump.
//!
//! ```text
//! cargo run -p quarry-attn --release --example decode -- DUMP_DIR --layers 0,2,5 --tokens 32768 \
//!     [--tile-to 131072] [--needle 1000] [--reps 5] [--json out.jsonl]
//! ```
//!
//! `--tile-to T` repeats the dump's keys/values until the cache holds `T`
//! tokens (each real key then appears several times; the last `tokens`
//! positions stay the true recent context of the query, so the attention
//! distribution is the real one with every key duplicated). `--needle P`
//! plants at position `P` a key aligned with the KV group's queries whose
//! score exceeds each query's best real score by 3 (and a distinct value);
//! "needle" then reports whether the selection of every query head holds it.

use quarry_attn::realdata::{read_layer, read_meta};
use quarry_attn::{
    AttnOptions, AttnShape, KeySelector, KvSlice, ProbeOrder, QuestIndex, RetrievalIndex, RetrievalParams, Selection,
    SqueezedIndex, TopKSelector, decode_recall, dense_decode, relative_error, sparse_decode,
};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    dir: PathBuf,
    layers: Vec<usize>,
    tokens: Option<usize>,
    tile_to: Option<usize>,
    needle: Option<usize>,
    reps: usize,
    json: Option<PathBuf>,
}

fn parse() -> Result<Args, Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut out = Args {
        dir: PathBuf::from("benches/.data/model/smollm2-135m-instruct-q4_1"),
        layers: vec![0],
        tokens: None,
        tile_to: None,
        needle: None,
        reps: 5,
        json: None,
    };
    let mut i = 0;
    while i < a.len() {
        let val = |i: usize| a.get(i + 1).cloned().ok_or(format!("{} needs a value", a[i]));
        match a[i].as_str() {
            "--layers" => out.layers = val(i)?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?,
            "--tokens" => out.tokens = Some(val(i)?.parse()?),
            "--tile-to" => out.tile_to = Some(val(i)?.parse()?),
            "--needle" => out.needle = Some(val(i)?.parse()?),
            "--reps" => out.reps = val(i)?.parse()?,
            "--json" => out.json = Some(PathBuf::from(val(i)?)),
            other => {
                out.dir = PathBuf::from(other);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Ok(out)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let mut out = f();
    let mut ts = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        out = f();
        ts.push(t.elapsed().as_secs_f64());
    }
    (out, median(ts))
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let meta = read_meta(&args.dir)?;
    let n_real = args.tokens.unwrap_or(meta.tokens).min(meta.tokens);
    let total = args.tile_to.unwrap_or(n_real).max(n_real);
    let (h, hk, d) = (meta.heads, meta.kv_heads, meta.head_dim);
    let shape = AttnShape::decode(h, hk, total, d);
    let opts = AttnOptions::default();
    let mut json = match &args.json {
        Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        None => None,
    };
    println!(
        "# decode over {total} cached tokens ({}), {} heads / {} kv heads, threads {}",
        if total > n_real { format!("{n_real} real tokens tiled") } else { "real".into() },
        h,
        hk,
        rayon::current_num_threads()
    );
    println!("layer  method                              attended  scanned   recall   min-head  out-err    ms      speedup  needle");
    for &layer in &args.layers {
        let (q_all, k_all, v_all) = read_layer(&args.dir, &meta, layer)?;
        let nt = meta.tokens;
        // Decode query: row n_real-1 of each head.
        let q: Vec<f32> = (0..h).flat_map(|x| q_all[(x * nt + n_real - 1) * d..(x * nt + n_real) * d].iter().copied()).collect();
        // Cache: the first n_real keys, tiled so the last n_real positions are the real context.
        let build = |src: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0f32; hk * total * d];
            for g in 0..hk {
                for t in 0..total {
                    let s = (total - 1 - t) % n_real; // distance back from the end
                    let from = (g * nt + n_real - 1 - s) * d;
                    out[(g * total + t) * d..(g * total + t + 1) * d].copy_from_slice(&src[from..from + d]);
                }
            }
            out
        };
        let mut k = build(&k_all);
        let mut v = build(&v_all);
        drop((q_all, k_all, v_all));
        if let Some(p) = args.needle {
            plant_needle(&q, &mut k, &mut v, &shape, p.min(total - 1));
        }
        let (dense, dense_s) = time(args.reps, || dense_decode(&q, &k, &v, &shape, &opts).unwrap());
        let mut emit = |method: &str, sel: &Selection, scanned: f64, secs: f64, build_s: f64| -> Result<(), Box<dyn std::error::Error>> {
            let out = sparse_decode(&q, &k, &v, &shape, &opts, sel)?;
            let rec = decode_recall(&q, &k, &shape, &opts, sel)?;
            let err = relative_error(&out.output, &dense.output);
            let min_head = rec.per_head.iter().copied().fold(1.0, f64::min);
            let needle = args.needle.map(|p| (0..h).all(|x| sel.head(x).binary_search(&(p.min(total - 1) as u32)).is_ok()));
            println!(
                "{layer:>5}  {method:<34}  {:>7.4}  {:>7.4}  {:.4}   {:.4}    {:.2e}  {:>6.3}  {:>6.2}x  {}",
                sel.density(),
                scanned,
                rec.mean,
                min_head,
                err,
                secs * 1e3,
                dense_s / secs,
                needle.map_or("-".into(), |b| b.to_string())
            );
            if let Some(f) = json.as_mut() {
                let row = serde_json::json!({
                    "layer": layer, "tokens": total, "real_tokens": n_real, "tiled": total > n_real,
                    "needle_pos": args.needle, "needle_found": needle, "method": method,
                    "attended": sel.density(), "scanned": scanned, "recall": rec.mean, "recall_min_head": min_head,
                    "out_err": err, "ms": secs * 1e3, "dense_ms": dense_s * 1e3, "build_s": build_s,
                    "threads": rayon::current_num_threads(),
                });
                writeln!(f, "{row}")?;
            }
            Ok(())
        };
        emit("dense", &Selection::all(h, total), 1.0, dense_s, 0.0)?;
        let (sink, recent) = (4usize, 64usize);
        // Quest at a 4% token budget (pages of 16).
        let t = Instant::now();
        let quest = QuestIndex::build(&k, &shape, 16)?;
        let qb = t.elapsed().as_secs_f64();
        let qsel = quest.selector(total * 4 / 100, sink, recent);
        let (sel, s) = time(args.reps, || {
            let sel = qsel.select(&q, &shape).unwrap();
            sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap();
            sel
        });
        emit("quest p16 4%", &sel, quest.pages() as f64 / total as f64, s, qb)?;
        // Retrieval: IVF-flat inner product, Bound vs Centroid probe order.
        let t = Instant::now();
        let rix = RetrievalIndex::build(&k, &shape, &RetrievalParams::default())?;
        let rb = t.elapsed().as_secs_f64();
        let nlist = rix.nlist();
        // (top %, probe %, order, union of the GQA group's keys or each query head its own)
        let configs: Vec<(f64, f64, ProbeOrder, bool)> = match std::env::var("RETRIEVAL_GRID") {
            Ok(_) => {
                let mut v = Vec::new();
                for top in [1.0, 2.0, 3.0, 4.0] {
                    for pr in [5.0, 10.0, 20.0] {
                        for o in [ProbeOrder::Centroid, ProbeOrder::Weighted(0.25), ProbeOrder::Weighted(0.5), ProbeOrder::Bound] {
                            v.extend([(top, pr, o, true), (top, pr, o, false)]);
                        }
                    }
                }
                v
            }
            Err(_) => vec![
                (1.0, 5.0, ProbeOrder::Centroid, true),
                (1.0, 10.0, ProbeOrder::Centroid, true),
                (2.0, 5.0, ProbeOrder::Centroid, true),
                (2.0, 10.0, ProbeOrder::Centroid, true),
                (3.0, 10.0, ProbeOrder::Centroid, true),
                (3.0, 20.0, ProbeOrder::Centroid, true),
                (1.0, 10.0, ProbeOrder::Bound, true),
                (2.0, 100.0, ProbeOrder::Bound, true),
                (3.0, 10.0, ProbeOrder::Centroid, false),
                (4.0, 10.0, ProbeOrder::Centroid, false),
                (4.0, 20.0, ProbeOrder::Centroid, false),
                (4.0, 40.0, ProbeOrder::Centroid, false),
            ],
        };
        for (top_pct, probe_pct, order, group_union) in configs {
            let top_k = ((total as f64 * top_pct / 100.0) as usize).max(1);
            let nprobe = ((nlist as f64 * probe_pct / 100.0).ceil() as usize).max(1);
            let rsel = rix.selector(top_k, sink, recent, nprobe).with_order(order).with_group_union(group_union);
            let ((sel, stats), s) = time(args.reps, || {
                let r = rsel.select_with_stats(&q, &shape).unwrap();
                sparse_decode(&q, &k, &v, &shape, &opts, &r.0).unwrap();
                r
            });
            let scanned = (stats.scanned_keys + stats.centroids_scored) as f64 / (h * total) as f64;
            let name = format!("retrieval ivf{nlist} k{top_pct}% np{nprobe} {order:?}{}", if group_union { "" } else { " per-head" });
            emit(&name, &sel, scanned, s, rb)?;
        }
        // Exact top-k oracle (per query head) + sinks + recent: the ceiling
        // for any selector attending as many keys.
        for pct in [1usize, 2, 4] {
            let top = TopKSelector { k: KvSlice::F32(&k), budget: total * pct / 100, sink, recent };
            let (sel, s) = time(args.reps.min(2), || {
                let sel = top.select(&q, &shape).unwrap();
                sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap();
                sel
            });
            emit(&format!("oracle top-k {pct}%"), &sel, 1.0, s, 0.0)?;
        }
        // Squeezed: k-means clusters (~64 keys each), 4% budget.
        let t = Instant::now();
        let sq = SqueezedIndex::build(&k, &shape, (total / 64).clamp(1, 1024), 8, 7)?;
        let sb = t.elapsed().as_secs_f64();
        let ssel = sq.selector(total * 4 / 100, sink, recent);
        let (sel, s) = time(args.reps, || {
            let sel = ssel.select(&q, &shape).unwrap();
            sparse_decode(&q, &k, &v, &shape, &opts, &sel).unwrap();
            sel
        });
        emit(&format!("squeezed c{} 4%", sq.clusters()), &sel, sq.clusters() as f64 / total as f64, s, sb)?;
    }
    Ok(())
}

/// Plants at `pos` (every KV head) a key along the mean direction of the
/// group's queries, scaled so each query's score of it is its best real
/// score + 3 (at least), with a value of ones.
fn plant_needle(q: &[f32], k: &mut [f32], v: &mut [f32], shape: &AttnShape, pos: usize) {
    let (d, n, grp) = (shape.head_dim, shape.kv_len, shape.group());
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for g in 0..shape.kv_heads {
        let mut dir = vec![0.0f32; d];
        for x in g * grp..(g + 1) * grp {
            let qh = &q[x * d..(x + 1) * d];
            let nq = dot(qh, qh).sqrt().max(1e-12);
            dir.iter_mut().zip(qh).for_each(|(a, b)| *a += b / nq);
        }
        let nd = dot(&dir, &dir).sqrt().max(1e-12);
        dir.iter_mut().for_each(|a| *a /= nd);
        let scale = 1.0 / (d as f32).sqrt();
        let mut need = 0.0f32;
        for x in g * grp..(g + 1) * grp {
            let qh = &q[x * d..(x + 1) * d];
            let best = (0..n).map(|t| dot(qh, &k[(g * n + t) * d..(g * n + t + 1) * d])).fold(f32::NEG_INFINITY, f32::max);
            let along = dot(qh, &dir).max(1e-3);
            need = need.max((best + 3.0 / scale) / along);
        }
        let kp = &mut k[(g * n + pos) * d..(g * n + pos + 1) * d];
        kp.iter_mut().zip(&dir).for_each(|(a, b)| *a = b * need);
        v[(g * n + pos) * d..(g * n + pos + 1) * d].iter_mut().for_each(|a| *a = 1.0);
    }
}
