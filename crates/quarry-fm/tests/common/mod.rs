#![allow(dead_code)]
use quarry_fm::*;
use std::path::Path;

pub fn brute(docs: &[Vec<u8>], pat: &[u8]) -> Vec<Hit> {
    let mut out = vec![];
    if pat.is_empty() {
        return out;
    }
    for (d, doc) in docs.iter().enumerate() {
        if doc.len() >= pat.len() {
            for i in 0..=doc.len() - pat.len() {
                if &doc[i..i + pat.len()] == pat {
                    out.push(Hit { doc: d as u64, offset: i as u64 });
                }
            }
        }
    }
    out
}

pub fn sym(b: &[u8]) -> Vec<u32> {
    b.iter().map(|&x| x as u32).collect()
}

pub fn build_bytes(docs: &[Vec<u8>], dir: &Path, kind: BitvectorKind, shard_bytes: u64, sa: usize, isa: usize) -> NgramIndex {
    let opts = BuildOptions {
        bitvector: kind,
        shard_bytes,
        sa_sample_rate: Some(sa),
        isa_sample_rate: isa,
        ..Default::default()
    };
    NgramIndex::build(docs.iter().map(|d| Ok(Document::new(d.clone()))), dir, &opts).unwrap()
}

/// Check count/locate for `pat` and return the hits.
pub fn check_pattern(idx: &NgramIndex, docs: &[Vec<u8>], pat: &[u8]) {
    let want = brute(docs, pat);
    let s = sym(pat);
    assert_eq!(idx.count(&s).unwrap(), want.len() as u64, "count {:?}", String::from_utf8_lossy(pat));
    let got = idx.locate(&s, usize::MAX).unwrap();
    assert_eq!(got, want, "locate {:?}", String::from_utf8_lossy(pat));
    if want.len() > 2 {
        let lim = idx.locate(&s, 2).unwrap();
        assert_eq!(lim.len(), 2);
        assert!(lim.iter().all(|h| want.contains(h)));
    }
}

pub fn check_extract(idx: &NgramIndex, docs: &[Vec<u8>]) {
    assert_eq!(idx.num_docs(), docs.len() as u64);
    for (d, doc) in docs.iter().enumerate() {
        assert_eq!(idx.doc_len(d as u64).unwrap(), doc.len() as u64);
        assert_eq!(idx.document(d as u64, 0, None).unwrap(), sym(doc), "doc {d}");
        let n = doc.len() as u64;
        for (a, l) in [(0, 1), (n / 3, n / 2), (n.saturating_sub(1), 5), (n + 3, 2), (1, 0)] {
            let want: Vec<u32> = sym(&doc[(a.min(n) as usize)..((a + l).min(n) as usize)]);
            assert_eq!(idx.document(d as u64, a, Some(l)).unwrap(), want, "doc {d} [{a}, +{l})");
        }
    }
}
