//! Criterion benches on the real-text corpus of `npm run bench:ngram`
//! (`benches/.data/ngram/corpus.jsonl`, assembled by that script; see benches/NGRAM.md).
//!
//! `cargo bench -p quarry-fm --bench corpus`. Environment: `QUARRY_NGRAM_CORPUS` (another JSONL
//! file), `QUARRY_NGRAM_MB` (how many MB of it to index, default 32). Without the corpus the
//! bench prints a note and does nothing.
use criterion::{Criterion, criterion_group, criterion_main};
use quarry_fm::*;
use std::hint::black_box;
use std::path::PathBuf;

fn corpus() -> Option<Vec<Document>> {
    let path = std::env::var_os("QUARRY_NGRAM_CORPUS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/.data/ngram/corpus.jsonl")
    });
    let mb: f64 = std::env::var("QUARRY_NGRAM_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(32.0);
    let Ok(iter) = read_jsonl(&path) else {
        eprintln!("corpus bench: {} not found; run `npm run bench:ngram` first", path.display());
        return None;
    };
    // every k-th document, so that all sources are represented
    let all: Vec<Document> = iter.filter_map(|d| d.ok()).collect();
    let total: usize = all.iter().map(|d| d.text.len()).sum();
    let k = ((total as f64 / (mb * 1e6)).ceil() as usize).max(1);
    Some(all.into_iter().enumerate().filter(|(i, _)| i % k == 0).map(|(_, d)| d).collect())
}

/// Substrings of the corpus (so they occur), seeded.
fn sample(docs: &[Document], len: usize, count: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut x = seed;
    let mut out = Vec::new();
    while out.len() < count {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let d = &docs[(x >> 33) as usize % docs.len()];
        if d.text.len() < len {
            continue;
        }
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let o = (x >> 33) as usize % (d.text.len() - len + 1);
        out.push(d.text[o..o + len].iter().map(|&b| b as u32).collect());
    }
    out
}

fn benches(c: &mut Criterion) {
    let Some(docs) = corpus() else { return };
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    eprintln!("corpus bench: {} documents, {:.1} MB", docs.len(), bytes as f64 / 1e6);
    for kind in [BitvectorKind::Compressed, BitvectorKind::Plain] {
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions { bitvector: kind, ..Default::default() };
        let idx = NgramIndex::build(docs.iter().cloned().map(Ok), dir.path(), &opts).unwrap();
        let name = format!("{kind:?}").to_lowercase();
        let mut g = c.benchmark_group(format!("corpus/{name}"));
        for len in [5usize, 20, 100] {
            let qs = sample(&docs, len, 64, len as u64);
            g.bench_function(format!("count/{len}B x64"), |b| {
                b.iter(|| qs.iter().map(|q| idx.count(black_box(q)).unwrap()).sum::<u64>())
            });
        }
        let q = sample(&docs, 8, 1, 3).pop().unwrap();
        g.bench_function("locate/8B limit 100", |b| b.iter(|| idx.locate(black_box(&q), 100).unwrap()));
        g.bench_function("extract/1000B", |b| b.iter(|| idx.document(black_box(7), 100, Some(1000)).unwrap()));
        let p = sample(&docs, 2, 16, 9);
        g.bench_function("next_tokens/2B x16", |b| {
            b.iter(|| p.iter().map(|q| idx.next_tokens(black_box(q), 10).unwrap().prefix_count).sum::<u64>())
        });
        g.finish();
    }
}

criterion_group!(corpus_benches, benches);
criterion_main!(corpus_benches);
