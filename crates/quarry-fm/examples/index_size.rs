//! Build byte indexes (both bitvector variants) over text files and print size ratios and
//! query timings. Usage: `cargo run --release -p quarry-fm --example index_size -- FILE_OR_DIR...`
use quarry_fm::*;
use std::time::Instant;

fn main() -> Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    let mut docs = Vec::new();
    for p in &paths {
        for d in read_path(std::path::Path::new(p), TextSplit::WholeFile)? {
            docs.push(d?);
        }
    }
    let text: u64 = docs.iter().map(|d| d.text.len() as u64).sum();
    println!("{} documents, {} bytes", docs.len(), text);
    for kind in [BitvectorKind::Compressed, BitvectorKind::Plain] {
        let dir = std::env::temp_dir().join(format!("quarry-fm-size-{kind:?}"));
        let t = Instant::now();
        let opts = BuildOptions { bitvector: kind, ..Default::default() };
        let idx = NgramIndex::build(docs.iter().cloned().map(Ok), &dir, &opts)?;
        let build = t.elapsed();
        let s = idx.stats();
        println!(
            "{kind:?}: index {} bytes = {:.3}x text (build {:.2?}); wm levels {:?}",
            s.index_bytes,
            s.index_bytes as f64 / text as f64,
            build,
            idx.debug_sizes().iter().map(|x| x.1).collect::<Vec<_>>()
        );
        let pats = ["the", "function", "a", "e", "and the", "zzzzqq"];
        let t = Instant::now();
        let mut c = 0;
        for _ in 0..100 {
            for p in pats {
                c += idx.count(&idx.encode(p)?)?;
            }
        }
        println!("  count: {:.2?} per query ({c})", t.elapsed() / 600);
        let t = Instant::now();
        let hits = idx.locate(&idx.encode("the")?, 10_000)?;
        println!("  locate: {:.2?} per hit ({} hits)", t.elapsed() / hits.len().max(1) as u32, hits.len());
        let t = Instant::now();
        let mut n = 0;
        for d in 0..idx.num_docs().min(50) {
            n += idx.document(d, 0, Some(10_000))?.len();
        }
        println!("  extract: {:.2?} per symbol ({n})", t.elapsed() / n.max(1) as u32);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
