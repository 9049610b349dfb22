//! Time the stages of one index build (from the progress reports).
//! Usage: `cargo run --release -p quarry-fm --example build_stages -- CORPUS.jsonl [plain] [TOKENIZER.json]`
use quarry_fm::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = std::path::PathBuf::from(&args[0]);
    let plain = args.iter().any(|a| a == "plain");
    let tokenizer = args.iter().find(|a| a.ends_with(".json") && !a.ends_with(".jsonl")).map(Into::into);
    let t0 = Instant::now();
    let last: Arc<Mutex<(String, f64)>> = Arc::new(Mutex::new(("start".into(), 0.0)));
    let l2 = last.clone();
    let opts = BuildOptions {
        bitvector: if plain { BitvectorKind::Plain } else { BitvectorKind::Compressed },
        tokenizer,
        on_progress: Some(Arc::new(move |p: &Progress| {
            let now = t0.elapsed().as_secs_f64();
            let mut g = l2.lock().unwrap();
            if g.0 != p.stage {
                eprintln!("{:>16}: {:7.2} s", g.0, now - g.1);
                *g = (p.stage.to_string(), now);
            }
        })),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join("quarry-build-stages");
    let _ = std::fs::remove_dir_all(&dir);
    let idx = NgramIndex::build(read_jsonl(&path)?, &dir, &opts)?;
    let total = t0.elapsed().as_secs_f64();
    let g = last.lock().unwrap();
    eprintln!("{:>16}: {:7.2} s (includes open + validation)", g.0, total - g.1);
    let s = idx.stats();
    eprintln!(
        "total {total:.2} s, {:.2} MB/s; index {} bytes = {:.3}x text",
        s.bytes as f64 / 1e6 / total,
        s.index_bytes,
        s.index_bytes as f64 / s.bytes as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
