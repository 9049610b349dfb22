mod common;
use common::*;
use quarry_fm::*;

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

fn corpus() -> Vec<Vec<u8>> {
    let mut docs: Vec<Vec<u8>> = vec![
        b"the quick brown fox jumps over the lazy dog".to_vec(),
        b"".to_vec(),
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
        "naïve café — 日本語のテキスト, ünïcödé ✓✓✓".as_bytes().to_vec(),
        b"abababababababababababab\0\0\x01\xff\xfe binary".to_vec(),
        b"a".to_vec(),
        b"dog the".to_vec(),
    ];
    let mut seed = 7;
    for _ in 0..40 {
        let len = lcg(&mut seed) % 200;
        docs.push((0..len).map(|_| b"abc "[(lcg(&mut seed) % 4) as usize]).collect());
    }
    docs
}

fn patterns(docs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut pats: Vec<Vec<u8>> = vec![
        b"a".to_vec(),
        b"aa".to_vec(),
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
        b"the".to_vec(),
        b"dog".to_vec(),
        // spans the boundary between doc 0 and doc 1/2: must not match
        b"dogaaa".to_vec(),
        b"dog\0".to_vec(),
        b"\0".to_vec(),
        b"\0\0\x01\xff".to_vec(),
        b"\xff".to_vec(),
        "日本".as_bytes().to_vec(),
        "✓✓".as_bytes().to_vec(),
        "é".as_bytes().to_vec(),
        b"zzz".to_vec(),
        b"abab".to_vec(),
        b"c a".to_vec(),
        vec![b'a'; 10_000],
    ];
    let mut seed = 3;
    for _ in 0..60 {
        let d = &docs[(lcg(&mut seed) % docs.len() as u64) as usize];
        if d.is_empty() {
            continue;
        }
        let a = (lcg(&mut seed) % d.len() as u64) as usize;
        let l = 1 + (lcg(&mut seed) % 12) as usize;
        pats.push(d[a..(a + l).min(d.len())].to_vec());
    }
    pats
}

#[test]
fn count_locate_extract_both_variants_and_shards() {
    let docs = corpus();
    let pats = patterns(&docs);
    for kind in [BitvectorKind::Plain, BitvectorKind::Compressed] {
        for (shard_bytes, sa, isa) in [(1 << 30, 4, 8), (300, 32, 64), (1, 1, 1), (1000, 3, 5)] {
            let dir = tempfile::tempdir().unwrap();
            let idx = build_bytes(&docs, dir.path(), kind, shard_bytes, sa, isa);
            for p in &pats {
                check_pattern(&idx, &docs, p);
            }
            check_extract(&idx, &docs);
            // reopen from disk
            let idx = NgramIndex::open(dir.path()).unwrap();
            check_pattern(&idx, &docs, b"ab");
            assert_eq!(idx.stats().docs, docs.len() as u64);
        }
    }
}

#[test]
fn empty_pattern_and_bad_args() {
    let docs = corpus();
    let dir = tempfile::tempdir().unwrap();
    let idx = build_bytes(&docs, dir.path(), BitvectorKind::Compressed, 1 << 30, 32, 64);
    assert_eq!(idx.count(&[]).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(idx.locate(&[], 10).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(idx.count(&[300]).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(idx.document(docs.len() as u64, 0, None).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    // longer than the corpus
    let total: usize = docs.iter().map(|d| d.len()).sum();
    assert_eq!(idx.count(&vec![b'a' as u32; total + 10]).unwrap(), 0);
    assert_eq!(idx.locate(&sym(b"a"), 0).unwrap(), vec![]);
}

#[test]
fn empty_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let idx = build_bytes(&[], dir.path(), BitvectorKind::Compressed, 1 << 30, 32, 64);
    assert_eq!(idx.count(&sym(b"a")).unwrap(), 0);
    assert_eq!(idx.num_docs(), 0);
    let dir = tempfile::tempdir().unwrap();
    let idx = build_bytes(&[vec![]], dir.path(), BitvectorKind::Plain, 1 << 30, 32, 64);
    assert_eq!(idx.count(&sym(b"a")).unwrap(), 0);
    assert_eq!(idx.document(0, 0, None).unwrap(), Vec::<u32>::new());
}

#[test]
fn byte_index_default_sample_rates() {
    let dir = tempfile::tempdir().unwrap();
    let docs = ["abracadabra", "cadabra abra"].map(|t| Ok(Document::new(t)));
    let idx = NgramIndex::build(docs, dir.path(), &BuildOptions::default()).unwrap();
    let s = idx.stats();
    assert_eq!((s.sa_sample_rate, s.isa_sample_rate), (32, 64));
    assert_eq!(idx.count(b"abra".map(u32::from).as_slice()).unwrap(), 4);
}
