//! Time the stages of one index build (from the progress reports), with the process's resident
//! memory at each stage change and its peak (Linux `VmHWM`).
//! Usage: `cargo run --release -p quarry-fm --example build_stages -- CORPUS.jsonl [plain] [TOKENIZER.json] [shard=BYTES] [out=DIR] [json]`
//! (`out=DIR`: build there and keep it; `json`: also print one JSON line with the figures on
//! stdout, as `benches/ngram.mjs` reads them for its build-only memory measurement).
use quarry_fm::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// (VmRSS, VmHWM) in MiB, from /proc/self/status (0 elsewhere).
fn mem_mib() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(&args[0]);
    let plain = args.iter().any(|a| a == "plain");
    let tokenizer = args.iter().find(|a| a.ends_with(".json") && !a.ends_with(".jsonl")).map(Into::into);
    let shard_bytes = args.iter().find_map(|a| a.strip_prefix("shard=")).map(|v| v.parse::<u64>().expect("shard=BYTES"));
    let out = args.iter().find_map(|a| a.strip_prefix("out=")).map(std::path::PathBuf::from);
    let json = args.iter().any(|a| a == "json");
    let t0 = Instant::now();
    let last: Arc<Mutex<(String, f64)>> = Arc::new(Mutex::new(("start".into(), 0.0)));
    let l2 = last.clone();
    let stages: Arc<Mutex<Vec<(String, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let st2 = stages.clone();
    let mut opts = BuildOptions {
        bitvector: if plain { BitvectorKind::Plain } else { BitvectorKind::Compressed },
        tokenizer,
        on_progress: Some(Arc::new(move |p: &Progress| {
            let now = t0.elapsed().as_secs_f64();
            let mut g = l2.lock().unwrap();
            if g.0 != p.stage {
                let (rss, hwm) = mem_mib();
                eprintln!("{:>16}: {:7.2} s   (now rss {rss:6.0} MiB, peak so far {hwm:6.0} MiB)", g.0, now - g.1);
                st2.lock().unwrap().push((g.0.clone(), now - g.1));
                *g = (p.stage.to_string(), now);
            }
        })),
        ..Default::default()
    };
    if let Some(b) = shard_bytes {
        opts.shard_bytes = b;
    }
    let dir = out.clone().unwrap_or_else(|| std::env::temp_dir().join("quarry-build-stages"));
    let _ = std::fs::remove_dir_all(&dir);
    let idx = NgramIndex::build(read_jsonl(&path)?, &dir, &opts)?;
    let total = t0.elapsed().as_secs_f64();
    let g = last.lock().unwrap();
    let (rss, hwm) = mem_mib();
    eprintln!("{:>16}: {:7.2} s (includes open + validation)   (rss {rss:.0} MiB, peak {hwm:.0} MiB)", g.0, total - g.1);
    let s = idx.stats();
    eprintln!(
        "total {total:.2} s, {:.2} MB/s; index {} bytes = {:.3}x text; peak RSS {hwm:.0} MiB = {:.2} bytes per text byte",
        s.bytes as f64 / 1e6 / total,
        s.index_bytes,
        s.index_bytes as f64 / s.bytes as f64,
        hwm * 1048576.0 / s.bytes as f64
    );
    if json {
        let st: Vec<String> = stages.lock().unwrap().iter().map(|(k, v)| format!("\"{k}\":{v:.3}")).collect();
        println!(
            "{{\"build_s\":{total:.3},\"index_bytes\":{},\"bytes\":{},\"peak_mib\":{hwm:.1},\"threads\":{},\"stages\":{{{},\"{}\":{:.3}}}}}",
            s.index_bytes,
            s.bytes,
            rayon_threads(),
            st.join(","),
            g.0,
            total - g.1
        );
    }
    if out.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Threads of the build's pool (rayon's default: `RAYON_NUM_THREADS`, else the cores).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t: &usize| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
