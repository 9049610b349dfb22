//! Prefill table on real-model Q/K/V dumps at one length: quarry dense, and
//! each sparse method with its speedup over quarry dense, attention recall
//! (mean and worst head), output error and density. The per-head pattern
//! search calibrates on the first `--calib` tokens of the same heads (a
//! shorter context, as MInference's offline step), picks per head the
//! cheapest candidate reaching `--target` recall there, and is then run at
//! full length with that candidate's budgets scaled to the length.
//!
//! ```text
//! cargo run -p quarry-attn --release --example prefill -- DUMP_DIR --tokens 65536 --heads 3 \
//!     --layers 0,2 [--calib 8192] [--target 0.95] [--json out.jsonl] [--dense-only]
//! ```
//! Each length and layer also gets the oracle row: the fewest (query, key)
//! pairs any selector needs for `--target` mean recall ([`oracle_density`]),
//! a bound on every sparse method's speedup at that recall.
//! `--oracle-only` prints just that bound at recall 0.9, 0.95 and 0.99.
//! `--only S` runs just the candidates whose names contain `S` (or, with `S` =
//! `A;B;C`, one plan of the candidates named exactly `A`, `B`, `C` per head), printing each
//! one's index and attention seconds and per-head density and cost;
//! `--pairs N` then times dense and it back to back N times (median ratio).
//! `--dense-only` times quarry dense alone (after a warm-up on a 256-token
//! slice, as the torch script does): the bench alternates such runs with
//! torch's for its head-to-head rounds.
//! `--heads H` keeps the first `H` query heads (a multiple of the GQA group)
//! and their KV heads.

use quarry_attn::realdata::{read_layer, read_meta};
use quarry_attn::{
    AttnOptions, AttnShape, PrefillPattern, ScoreEstimate, SparseIndex, build_index_per_head, dense_attention, dense_pairs,
    oracle_density, recall_from_lse, relative_error, search_patterns, search_patterns_sampled, sparse_attention,
};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Candidate patterns with budgets scaled to `n` tokens.
fn candidates(n: usize) -> Vec<(String, PrefillPattern)> {
    let vs_with = |v: usize, s: usize, last_q: usize, spread_q: usize, slash_lines: bool, segment: usize| {
        PrefillPattern::VerticalSlash { vertical: v.max(64), slash: s.max(128), last_q, spread_q, slash_lines, segment }
    };
    let vs = |v: usize, s: usize, spread_q: usize, slash_lines: bool| vs_with(v, s, 64, spread_q, slash_lines, 0);
    // one estimate per 16th of the queries, from its last 32 queries and 32 spread over it
    let seg = (n / 16).max(64);
    let vs_seg = |v: usize, s: usize, slash_lines: bool| vs_with(v, s, 32, 32, slash_lines, seg);
    // MInference's 64k-scale budgets (v1024 s2048 .. v2048 s5957) and three smaller ones for heads
    // whose lines are few (the per-head searches pick per head).
    let budgets = [(n / 256, n / 128), (n / 128, n / 64), (n / 96, n / 48), (n / 64, n / 32), (n / 64, n / 16), (n / 32, n / 11)];
    [("a-shape".into(), PrefillPattern::AShape { sink: 64, window: (n / 16).max(256) })]
        .into_iter()
        .chain(budgets.map(|(v, s)| (format!("vertical-slash v{v} s{s}"), vs(v, s, 0, false))))
        // the estimate from 64 queries spread over the sequence as well as the last 64
        .chain(budgets.map(|(v, s)| (format!("vertical-slash v{v} s{s} +spread64"), vs(v, s, 64, false))))
        // scattered diagonals computed as lines instead of bands
        .chain(budgets.map(|(v, s)| (format!("vertical-slash v{v} s{s} lines"), vs(v, s, 0, true))))
        .chain(budgets.map(|(v, s)| (format!("vertical-slash v{v} s{s} +spread64 lines"), vs(v, s, 64, true))))
        .chain(budgets.map(|(v, s)| (format!("vertical-slash v{v} s{s} seg{seg}"), vs_seg(v, s, false))))
        .chain(budgets.map(|(v, s)| (format!("vertical-slash v{v} s{s} seg{seg} lines"), vs_seg(v, s, true))))
        .chain([
            ("block-topk g0.9".into(), PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::Pooled }),
            ("block-topk g0.9 i4 (SALE)".into(), PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::PooledI4 }),
            ("block-topk g0.95".into(), PrefillPattern::BlockTopK { gamma: 0.95, estimate: ScoreEstimate::Pooled }),
        ])
        // the mean-query estimate over a grid of thresholds, for the per-head searches to choose from
        .chain([0.95f32, 0.96, 0.97, 0.98, 0.99].into_iter().map(|gamma| {
            (format!("block-topk g{gamma} mean-query"), PrefillPattern::BlockTopK { gamma, estimate: ScoreEstimate::MeanQuery })
        }))
        .collect()
}

/// A plan's run: (mean recall, worst head's recall), output error, density, seconds.
type PlanRun = ((f64, f64), f64, f64, f64);

/// Query rows per head the oracle density is measured on.
const ORACLE_ROWS: usize = 256;

fn slice_heads(x: &[f32], heads: usize, n_total: usize, d: usize, n: usize) -> Vec<f32> {
    (0..heads).flat_map(|h| x[h * n_total * d..h * n_total * d + n * d].iter().copied()).collect()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = PathBuf::from("benches/.data/model/smollm2-135m-instruct-q4_1");
    let (mut tokens, mut heads, mut layers, mut calib, mut target, mut json) = (None, None, vec![0usize], 8192usize, 0.95f64, None);
    let (mut dense_only, mut oracle_only, mut search_tiles) = (false, false, 32usize);
    let (mut only, mut pairs): (Option<String>, usize) = (None, 0);
    let mut i = 0;
    while i < a.len() {
        let val = || a.get(i + 1).cloned().ok_or_else(|| format!("{} needs a value", a[i]));
        match a[i].as_str() {
            "--tokens" => tokens = Some(val()?.parse::<usize>()?),
            "--heads" => heads = Some(val()?.parse::<usize>()?),
            "--layers" => layers = val()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?,
            "--calib" => calib = val()?.parse()?,
            "--search-tiles" => search_tiles = val()?.parse()?,
            "--target" => target = val()?.parse()?,
            "--json" => json = Some(PathBuf::from(val()?)),
            "--only" => only = Some(val()?),
            "--pairs" => pairs = val()?.parse()?,
            "--dense-only" => {
                dense_only = true;
                i += 1;
                continue;
            }
            "--oracle-only" => {
                oracle_only = true;
                i += 1;
                continue;
            }
            other => {
                dir = PathBuf::from(other);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let meta = read_meta(&dir)?;
    let n = tokens.unwrap_or(meta.tokens).min(meta.tokens);
    let grp = meta.heads / meta.kv_heads;
    let h = heads.unwrap_or(meta.heads).min(meta.heads);
    if h % grp != 0 {
        return Err(format!("--heads {h} must be a multiple of the GQA group {grp}").into());
    }
    let hk = h / grp;
    let d = meta.head_dim;
    let shape = AttnShape::prefill(h, hk, n, d);
    let opts = AttnOptions::causal();
    let mut out = match &json {
        Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        None => None,
    };
    println!("# prefill {n} tokens, {h} q heads / {hk} kv heads, head_dim {d}, threads {}", rayon::current_num_threads());
    println!("layer  method                               recall  min-head  out-err   density  seconds   speedup");
    for &layer in &layers {
        let (q_all, k_all, v_all) = read_layer(&dir, &meta, layer)?;
        let q = slice_heads(&q_all, h, meta.tokens, d, n);
        let k = slice_heads(&k_all, hk, meta.tokens, d, n);
        let v = slice_heads(&v_all, hk, meta.tokens, d, n);
        let (qc, kc) = {
            let c = calib.min(n);
            (slice_heads(&q_all, h, meta.tokens, d, c), slice_heads(&k_all, hk, meta.tokens, d, c))
        };
        drop((q_all, k_all, v_all));
        if oracle_only {
            for t in [0.9, 0.95, 0.99] {
                let o = oracle_density(&q, &k, &shape, &opts, t, ORACLE_ROWS)?;
                println!("{layer:>5}  oracle@{t}: exact top pairs need {:.4} of the pairs (<= {:.2}x over dense)", o, 1.0 / o);
            }
            continue;
        }
        if dense_only {
            let w = n.min(256);
            let warm = AttnShape::prefill(h, hk, w, d);
            dense_attention(&slice_heads(&q, h, n, d, w), &slice_heads(&k, hk, n, d, w), &slice_heads(&v, hk, n, d, w), &warm, &opts)?;
        }
        let t = Instant::now();
        let dense = dense_attention(&q, &k, &v, &shape, &opts)?;
        let dense_s = t.elapsed().as_secs_f64();
        let flops = 4.0 * d as f64 * dense_pairs(&shape, true) as f64 * h as f64;
        let mut emit = |method: &str, rec: (f64, f64), err: f64, density: f64, secs: f64, extra: serde_json::Value| -> std::io::Result<()> {
            println!(
                "{layer:>5}  {method:<36}  {:.4}  {:.4}    {:.2e}  {:.4}  {:>8.3}  {:>6.2}x",
                rec.0,
                rec.1,
                err,
                density,
                secs,
                dense_s / secs
            );
            if let Some(f) = out.as_mut() {
                let row = serde_json::json!({
                    "layer": layer, "tokens": n, "heads": h, "kv_heads": hk, "method": method,
                    "recall": rec.0, "recall_min_head": rec.1, "out_err": err, "density": density,
                    "seconds": secs, "dense_seconds": dense_s, "speedup": dense_s / secs,
                    "dense_gflops": flops / dense_s / 1e9, "threads": rayon::current_num_threads(), "extra": extra,
                });
                writeln!(f, "{row}")?;
            }
            Ok(())
        };
        emit("quarry dense", (1.0, 1.0), 0.0, 1.0, dense_s, serde_json::json!({"gflops": flops / dense_s / 1e9}))?;
        if dense_only {
            continue;
        }
        // A per-head plan run at full length: its figures, the index and the seconds building it.
        let run_indexed = |patterns: &[PrefillPattern]| -> Result<(PlanRun, SparseIndex, f64), Box<dyn std::error::Error>> {
            let t = Instant::now();
            let index = build_index_per_head(&q, &k, &shape, &opts, patterns)?;
            let build_s = t.elapsed().as_secs_f64();
            let sp = sparse_attention(&q, &k, &v, &shape, &opts, &index)?;
            let secs = t.elapsed().as_secs_f64();
            let r = recall_from_lse(&sp.lse, &dense.lse, h, n);
            let min_head = r.per_head.iter().copied().fold(1.0, f64::min);
            Ok((((r.mean, min_head), relative_error(&sp.output, &dense.output), sp.density, secs), index, build_s))
        };
        let run_plan = |patterns: &[PrefillPattern]| -> Result<PlanRun, Box<dyn std::error::Error>> { Ok(run_indexed(patterns)?.0) };
        let cands = candidates(n);
        // `--only S`: the candidates whose names contain S, nothing else; `--only "A;B;C"`: one
        // plan of the candidates named exactly A, B, C for heads 0, 1, 2 (e.g. a search's choice).
        if let Some(sub) = &only {
            let plans: Vec<(String, Vec<PrefillPattern>)> = if sub.contains(';') {
                let names: Vec<&str> = sub.split(';').map(str::trim).collect();
                if names.len() != h {
                    return Err(format!("--only with ';' needs {h} candidate names, one per head, got {}", names.len()).into());
                }
                let find = |nm: &&str| cands.iter().find(|c| c.0 == *nm).map(|c| c.1).ok_or_else(|| format!("no candidate named '{nm}'"));
                vec![(format!("per-head {}", names.join(", ")), names.iter().map(find).collect::<Result<_, _>>()?)]
            } else {
                cands.iter().filter(|c| c.0.contains(sub.as_str())).map(|c| (c.0.clone(), vec![c.1; h])).collect()
            };
            for (name, plan) in &plans {
                let ((rec, err, dens, secs), index, build_s) = run_indexed(plan)?;
                emit(name, rec, err, dens, secs, serde_json::json!({}))?;
                println!("       index {build_s:.3} s, attention {:.3} s", secs - build_s);
                let per_head: Vec<String> =
                    (0..h).map(|x| format!("h{x} density {:.4} cost {:.4}", index.head_density(x), index.head_cost(x))).collect();
                println!("       {}", per_head.join(", "));
                // dense and this pattern timed back to back, `pairs` times: the median ratio is
                // steadier than one timing on a shared machine
                if pairs > 0 {
                    let mut ratios = Vec::with_capacity(pairs);
                    for _ in 0..pairs {
                        let t = Instant::now();
                        dense_attention(&q, &k, &v, &shape, &opts)?;
                        let dense_s = t.elapsed().as_secs_f64();
                        ratios.push(dense_s / run_plan(plan)?.3);
                    }
                    ratios.sort_by(f64::total_cmp);
                    let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
                    println!("       {pairs} dense / sparse pairs: {}, median {:.2}x", list.join(" "), ratios[pairs / 2]);
                }
            }
            continue;
        }
        // The fewest pairs any selector needs for the target recall (exact top pairs of 256
        // rows per head): at the dense kernel's cost per pair, no method reaching the target is
        // more than 1 / density faster than dense. Its "seconds" are dense's scaled by that.
        let t = Instant::now();
        let oracle = oracle_density(&q, &k, &shape, &opts, target, ORACLE_ROWS)?;
        let oracle_s = t.elapsed().as_secs_f64();
        emit(
            &format!("oracle@{target}: exact top pairs (bound)"),
            (target, f64::NAN),
            f64::NAN,
            oracle,
            dense_s * oracle,
            serde_json::json!({"oracle": true, "rows_per_head": ORACLE_ROWS.min(n), "measure_seconds": oracle_s}),
        )?;
        for (name, p) in &cands {
            let (rec, err, dens, secs) = run_plan(&vec![*p; h])?;
            emit(name, rec, err, dens, secs, serde_json::json!({}))?;
        }
        // Per-head search on the calibration prefix, applied at full length.
        let c = calib.min(n);
        let cshape = AttnShape::prefill(h, hk, c, d);
        let ccands: Vec<PrefillPattern> = candidates(c).into_iter().map(|x| x.1).collect();
        let t = Instant::now();
        let choice = search_patterns(&qc, &kc, &cshape, &opts, &ccands, target)?;
        let search_s = t.elapsed().as_secs_f64();
        let picked: Vec<usize> = choice.patterns.iter().map(|p| ccands.iter().position(|c| c == p).unwrap_or(usize::MAX)).collect();
        let full: Vec<PrefillPattern> =
            picked.iter().map(|&i| if i == usize::MAX { PrefillPattern::Dense } else { cands[i].1 }).collect();
        let (rec, err, dens, secs) = run_plan(&full)?;
        let names: Vec<String> = picked.iter().map(|&i| if i == usize::MAX { "dense".into() } else { cands[i].0.clone() }).collect();
        println!("       per-head choice (calibrated on {c} tokens, {search_s:.2} s): {names:?}");
        let extra = serde_json::json!({"choice": names, "calib_tokens": c, "calib_seconds": search_s});
        emit(&format!("per-head search@{target} (calib {c})"), rec, err, dens, secs, extra)?;
        // The same search at full length, recall measured on `search_tiles` query tiles
        // spread over the sequence (MInference calibrates at the length it serves).
        if search_tiles > 0 {
            // Searches `cands` on `search_tiles` sampled tiles, runs the choice; names per head.
            let search_and_run = |cands: &[&(String, PrefillPattern)]| -> Result<(Vec<String>, PlanRun, f64), Box<dyn std::error::Error>> {
                let patterns: Vec<PrefillPattern> = cands.iter().map(|c| c.1).collect();
                let t = Instant::now();
                let choice = search_patterns_sampled(&q, &k, &shape, &opts, &patterns, target, search_tiles)?;
                let search_s = t.elapsed().as_secs_f64();
                let run = run_plan(&choice.patterns)?;
                let names = choice
                    .patterns
                    .iter()
                    .map(|p| cands.iter().find(|c| c.1 == *p).map_or_else(|| "dense".to_string(), |c| c.0.clone()))
                    .collect();
                Ok((names, run, search_s))
            };
            let all: Vec<&(String, PrefillPattern)> = cands.iter().collect();
            let (names, (rec, err, dens, secs), search_s) = search_and_run(&all)?;
            println!("       per-head choice (full length, {search_tiles} sampled tiles, {search_s:.2} s): {names:?}");
            let extra = serde_json::json!({"choice": names, "sample_tiles": search_tiles, "calib_seconds": search_s});
            emit(&format!("per-head search@{target} ({search_tiles} tiles at full length)"), rec, err, dens, secs, extra)?;
            // The same search over the vertical-slash candidates alone: MInference's
            // offline step choosing each head's vertical and slash budgets.
            let vs: Vec<&(String, PrefillPattern)> = cands.iter().filter(|c| matches!(c.1, PrefillPattern::VerticalSlash { .. })).collect();
            let (names, (rec, err, dens, secs), search_s) = search_and_run(&vs)?;
            println!("       vertical-slash budgets per head (full length, {search_tiles} sampled tiles, {search_s:.2} s): {names:?}");
            let extra = serde_json::json!({"choice": names, "sample_tiles": search_tiles, "calib_seconds": search_s});
            emit(&format!("vertical-slash per-head budgets@{target} ({search_tiles} tiles)"), rec, err, dens, secs, extra)?;
        }
    }
    Ok(())
}
