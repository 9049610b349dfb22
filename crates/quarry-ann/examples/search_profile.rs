//! Profiling driver: builds (or reopens) an IVF-PQ 4-bit fast-scan index over
//! GloVe-100 from the bench cache and runs single-query searches in a loop,
//! reporting QPS and recall@10 — for `perf record` on the search path.
//!
//! `cargo run --release -p quarry-ann --example search_profile -- benches/.data/glove100 [nprobe] [rerank] [rounds] [opq|pq] [batch]`

use quarry_ann::{Control, IndexConfig, Kind, Metric, SearchParams, VectorIndex};
use std::path::Path;
use std::time::Instant;

fn read_f32(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).expect("read");
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map(String::as_str).unwrap_or("benches/.data/glove100"));
    let nprobe: usize = args.get(2).map_or(24, |s| s.parse().unwrap());
    let rerank: usize = args.get(3).map_or(80, |s| s.parse().unwrap());
    let rounds: usize = args.get(4).map_or(5, |s| s.parse().unwrap());
    let opq = args.get(5).is_some_and(|s| s == "opq");
    let batch = args.get(6).is_some_and(|s| s == "batch");
    let dim = 100;
    let base = read_f32(&dir.join("base.f32"));
    let queries = read_f32(&dir.join("queries.f32"));
    let cache = std::env::temp_dir().join(format!("quarry-profile-{}.qann", if opq { "opq" } else { "pq" }));
    let index = if cache.exists() {
        VectorIndex::open(&cache, false).expect("open")
    } else {
        let mut cfg = IndexConfig::new(dim, Metric::Cosine, Kind::parse("ivf-pq").unwrap());
        cfg.nlist = 1024;
        cfg.pq_m = 50;
        cfg.pq_bits = 4;
        cfg.opq = opq;
        let t = Instant::now();
        // Stage timings (QUARRY_PROFILE_STAGES=1): where the build spends its time.
        let last = std::sync::Mutex::new(String::new());
        let show = std::env::var_os("QUARRY_PROFILE_STAGES").is_some();
        let progress = |stage: &str, _f: f64| {
            let mut l = last.lock().unwrap();
            if show && *l != stage {
                eprintln!("{:7.2} s  {stage}", t.elapsed().as_secs_f64());
                *l = stage.to_string();
            }
        };
        let ix = VectorIndex::build(cfg, &base, None, None, Control::new(Some(&progress), None)).expect("build");
        eprintln!("built in {:.1} s", t.elapsed().as_secs_f64());
        ix.save(&cache).expect("save");
        ix
    };
    let nq = queries.len() / dim;
    // Exact truth by brute force (cosine on normalised copies).
    let norm = |v: &[f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-30);
        v.iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    // Cached so a profile of this program is a profile of the searches.
    let truth_path = std::env::temp_dir().join("quarry-profile-truth.u32");
    let truth: Vec<u32> = if truth_path.exists() {
        std::fs::read(&truth_path).unwrap().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        let bn: Vec<f32> = base.chunks(dim).flat_map(norm).collect();
        let qn: Vec<f32> = queries.chunks(dim).flat_map(norm).collect();
        let t = quarry_simd::knn(quarry_simd::Metric::InnerProduct, quarry_simd::VectorsRef::F32(&qn), quarry_simd::VectorsRef::F32(&bn), dim, 10)
            .expect("knn")
            .ids;
        std::fs::write(&truth_path, t.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        t
    };
    let params = SearchParams { k: 10, nprobe, rerank, ..SearchParams::default() };
    let mut hits = 0;
    // Median seconds per round (the first round also pays page faults).
    let mut round_secs = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        hits = 0;
        let t = Instant::now();
        if batch {
            let r = index.search(&queries, &params).expect("search");
            for q in 0..nq {
                let want = &truth[q * 10..(q + 1) * 10];
                hits += r.ids[q * 10..(q + 1) * 10].iter().filter(|&&id| want.contains(&(id as u32))).count();
            }
            round_secs.push(t.elapsed().as_secs_f64());
            continue;
        }
        for q in 0..nq {
            let r = index.search(&queries[q * dim..(q + 1) * dim], &params).expect("search");
            let want = &truth[q * 10..(q + 1) * 10];
            hits += r.ids.iter().filter(|&&id| want.contains(&(id as u32))).count();
        }
        round_secs.push(t.elapsed().as_secs_f64());
    }
    round_secs.sort_by(f64::total_cmp);
    let secs = round_secs.get(round_secs.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "nprobe {nprobe} rerank {rerank}: {:.0} QPS {}, recall@10 {:.4}",
        nq as f64 / secs,
        if batch { "batch" } else { "single-query" },
        hits as f64 / (nq * 10) as f64
    );
}
