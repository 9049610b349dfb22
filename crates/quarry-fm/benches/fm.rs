//! Criterion benches on a generated Zipf-distributed pseudo-English corpus.
use criterion::{Criterion, criterion_group, criterion_main};
use quarry_fm::*;
use std::hint::black_box;

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
    "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "index", "suffix", "array",
    "wavelet", "matrix", "query", "token", "document", "corpus", "engine", "search",
];

fn corpus(bytes: usize) -> Vec<Document> {
    let mut seed = 42u64;
    let mut docs = Vec::new();
    let mut total = 0;
    while total < bytes {
        let mut s = String::new();
        for _ in 0..200 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = ((seed >> 11) as f64) / ((1u64 << 53) as f64);
            // Zipf-like: index ~ n^u - 1
            let i = ((WORDS.len() as f64 + 1.0).powf(u) - 1.0) as usize % WORDS.len();
            s.push_str(WORDS[i]);
            s.push(if seed.is_multiple_of(17) { '.' } else { ' ' });
        }
        total += s.len();
        docs.push(Document::new(s));
    }
    docs
}

fn benches(c: &mut Criterion) {
    let docs = corpus(2 << 20);
    let small: Vec<Document> = docs.iter().take(256).cloned().collect();
    for kind in [BitvectorKind::Plain, BitvectorKind::Compressed] {
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions { bitvector: kind, ..Default::default() };
        let idx = NgramIndex::build(docs.iter().cloned().map(Ok), dir.path(), &opts).unwrap();
        let name = format!("{kind:?}").to_lowercase();
        let q = idx.encode("the index").unwrap();
        let long = idx.encode("of the wavelet matrix").unwrap();
        let mut g = c.benchmark_group(format!("fm/{name}"));
        g.bench_function("count/2words", |b| b.iter(|| idx.count(black_box(&q)).unwrap()));
        g.bench_function("count/4words", |b| b.iter(|| idx.count(black_box(&long)).unwrap()));
        g.bench_function("locate/100", |b| b.iter(|| idx.locate(black_box(&q), 100).unwrap()));
        g.bench_function("extract/1000", |b| b.iter(|| idx.document(black_box(7), 100, Some(1000)).unwrap()));
        g.bench_function("next_tokens/the", |b| b.iter(|| idx.next_tokens(black_box(&q[..3]), 10).unwrap()));
        g.sample_size(10);
        g.bench_function("build/256KB", |b| {
            b.iter(|| {
                let d = tempfile::tempdir().unwrap();
                NgramIndex::build(small.iter().cloned().map(Ok), d.path(), &opts).unwrap()
            })
        });
        g.finish();
    }
}

criterion_group!(fm, benches);
criterion_main!(fm);
