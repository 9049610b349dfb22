use quarry_fm::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

/// A WordLevel tokenizer with whitespace pre-tokenization, written inline.
fn write_tokenizer(path: &Path, words: &[String]) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for (i, w) in words.iter().enumerate() {
        vocab.insert(w.clone(), (i + 1).into());
    }
    let tok = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": null,
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]" }
    });
    std::fs::write(path, serde_json::to_vec(&tok).unwrap()).unwrap();
}

fn naive_count(docs: &[Vec<u32>], pat: &[u32]) -> u64 {
    if pat.is_empty() {
        return docs.iter().map(|d| d.len() as u64).sum();
    }
    docs.iter()
        .map(|d| d.windows(pat.len()).filter(|w| *w == pat).count() as u64)
        .sum()
}

fn naive_next(docs: &[Vec<u32>], prefix: &[u32]) -> (BTreeMap<u32, u64>, u64) {
    let mut m = BTreeMap::new();
    let mut eod = 0;
    for d in docs {
        for i in 0..=d.len().saturating_sub(prefix.len()) {
            if d.len() >= prefix.len() && &d[i..i + prefix.len()] == prefix {
                match d.get(i + prefix.len()) {
                    Some(&t) => *m.entry(t).or_insert(0) += 1,
                    None if !prefix.is_empty() => eod += 1,
                    None => {}
                }
            }
        }
    }
    (m, eod)
}

struct Fixture {
    _dir: tempfile::TempDir,
    idx: NgramIndex,
    docs: Vec<Vec<u32>>,
}

fn fixture(kind: BitvectorKind, shard_bytes: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
    let tok = dir.path().join("tok.json");
    write_tokenizer(&tok, &words);
    let mut seed = 11;
    let mut texts = vec![];
    for _ in 0..60 {
        let len = lcg(&mut seed) % 40;
        // skewed distribution so that n-grams repeat
        let t: Vec<String> = (0..len)
            .map(|_| {
                let r = lcg(&mut seed) % 100;
                if r < 50 { words[(r % 3) as usize].clone() } else if r < 98 { words[(r % 12) as usize].clone() } else { "oov".into() }
            })
            .collect();
        texts.push(t.join(" "));
    }
    let docs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            t.split_whitespace()
                .map(|w| words.iter().position(|x| x == w).map(|p| p as u32 + 1).unwrap_or(0))
                .collect()
        })
        .collect();
    let opts = BuildOptions {
        tokenizer: Some(tok),
        bitvector: kind,
        shard_bytes,
        isa_sample_rate: 16, // the suffix array sampled at the token default (8)
        ..Default::default()
    };
    let out = dir.path().join("idx");
    let input = texts.iter().enumerate().map(|(i, t)| {
        Ok(Document::with_metadata(t.clone(), format!("{{\"i\":{i}}}")))
    });
    let idx = NgramIndex::build(input, &out, &opts).unwrap();
    Fixture { _dir: dir, idx, docs }
}

fn ngrams(docs: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let mut set = BTreeSet::new();
    for d in docs {
        for n in 1..=4 {
            for w in d.windows(n) {
                set.insert(w.to_vec());
            }
        }
    }
    let mut v: Vec<_> = set.into_iter().step_by(3).collect();
    v.push(vec![5, 5, 5, 5, 5, 5]);
    v.push(vec![1, 1, 1]);
    v
}

#[test]
fn token_queries_match_naive() {
    for (kind, shard_bytes) in [(BitvectorKind::Compressed, 1 << 30), (BitvectorKind::Plain, 200)] {
        let f = fixture(kind, shard_bytes);
        let idx = &f.idx;
        assert_eq!(idx.mode(), Mode::Tokens);
        assert_eq!(idx.stats().tokens, Some(f.docs.iter().map(|d| d.len() as u64).sum()));
        assert_eq!(idx.stats().sa_sample_rate, 8, "token-mode default");
        for (d, doc) in f.docs.iter().enumerate() {
            assert_eq!(&idx.document(d as u64, 0, None).unwrap(), doc);
            assert_eq!(idx.metadata(d as u64).unwrap(), Some(format!("{{\"i\":{d}}}")));
        }
        assert_eq!(idx.encode("w1 w2 zzz").unwrap(), vec![2, 3, 0]);
        for g in ngrams(&f.docs) {
            let c = naive_count(&f.docs, &g);
            assert_eq!(idx.count(&g).unwrap(), c, "count {g:?}");
            let p = idx.prob(&g).unwrap();
            let pc = naive_count(&f.docs, &g[..g.len() - 1]);
            assert_eq!((p.count, p.prefix_count), (c, pc));
            if pc > 0 {
                assert!((p.prob.unwrap() - c as f64 / pc as f64).abs() < 1e-12);
            }
            // next tokens after g (and after the empty prefix)
            for prefix in [&g[..], &[][..]] {
                let (want, eod) = naive_next(&f.docs, prefix);
                let nt = idx.next_tokens(prefix, usize::MAX).unwrap();
                let got: BTreeMap<u32, u64> = nt.tokens.iter().map(|t| (t.token, t.count)).collect();
                assert_eq!(got, want, "next after {prefix:?}");
                assert_eq!(nt.end_of_document, eod);
                assert_eq!(nt.prefix_count, naive_count(&f.docs, prefix));
                // sorted by count desc
                assert!(nt.tokens.windows(2).all(|w| w[0].count >= w[1].count));
                let top = idx.next_tokens(prefix, 2).unwrap();
                assert!(top.tokens.len() <= 2);
                assert_eq!(&top.tokens[..], &nt.tokens[..top.tokens.len()]);
            }
            // infini-gram: context g, token 1
            let ig = idx.infgram_prob(&g, 1).unwrap();
            let mut l = g.len();
            while l > 0 && naive_count(&f.docs, &g[g.len() - l..]) == 0 {
                l -= 1;
            }
            assert_eq!(ig.suffix_len, l);
            let suf = &g[g.len() - l..];
            let mut full = suf.to_vec();
            full.push(1);
            assert_eq!(ig.prefix_count, naive_count(&f.docs, suf));
            assert_eq!(ig.count, naive_count(&f.docs, &full));
        }
        // CNF: (w0 w1 OR w5) AND (w2)
        let cnf = vec![vec![vec![1, 2], vec![6]], vec![vec![3]]];
        let want: Vec<u64> = f
            .docs
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                (naive_count(&[d.to_vec()], &[1, 2]) > 0 || d.contains(&6)) && d.contains(&3)
            })
            .map(|(i, _)| i as u64)
            .collect();
        let got = idx.search_documents(&cnf, usize::MAX, 1_000_000).unwrap();
        assert_eq!(got.docs, want);
        assert_eq!(got.count, want.len() as u64);
        assert!(!got.approx);
        let capped = idx.search_documents(&cnf, 3, 2).unwrap();
        assert!(capped.approx);
        assert!(capped.docs.len() <= 3 && capped.docs.iter().all(|d| want.contains(d)));
        // contamination
        let c = idx.contamination(&["w0 w1 w2 zzz w0", "w3"], 2).unwrap();
        let toks = idx.encode("w0 w1 w2 zzz w0").unwrap();
        let found = toks.windows(2).filter(|w| naive_count(&f.docs, w) > 0).count() as u64;
        assert_eq!((c[0].ngrams, c[0].found), (4, found));
        assert_eq!((c[1].ngrams, c[1].share), (0, 0.0));
    }
}

#[test]
fn large_vocabulary_u32_ids() {
    // 70,000 distinct words: token ids above 65535 and an alphabet that needs 32-bit SA input.
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<String> = (0..70_000).map(|i| format!("t{i}")).collect();
    let tok = dir.path().join("tok.json");
    write_tokenizer(&tok, &words);
    let texts: Vec<String> = (0..70)
        .map(|d| (0..1000).map(|k| words[(d * 1000 + k * 7) % 70_000].as_str()).collect::<Vec<_>>().join(" "))
        .collect();
    let opts = BuildOptions { tokenizer: Some(tok), ..Default::default() };
    let idx = NgramIndex::build(texts.iter().map(|t| Ok(Document::new(t.clone()))), &dir.path().join("i"), &opts)
        .unwrap();
    assert_eq!(idx.stats().vocab_size, Some(70_001));
    let q = idx.encode("t69999").unwrap();
    assert_eq!(q, vec![70_000]);
    let docs: Vec<Vec<u32>> = texts.iter().map(|t| idx.encode(t).unwrap()).collect();
    assert_eq!(idx.count(&q).unwrap(), naive_count(&docs, &q));
    assert_eq!(idx.document(69, 0, None).unwrap(), docs[69]);
    let g = docs[5][10..13].to_vec();
    assert_eq!(idx.count(&g).unwrap(), naive_count(&docs, &g));
    let nt = idx.next_tokens(&g[..1], 10).unwrap();
    assert_eq!(nt.tokens[0].token, g[1]);
}

#[test]
fn reopen_token_index_and_missing_tokenizer() {
    let f = fixture(BitvectorKind::Compressed, 1 << 30);
    let dir = f.idx.dir().to_path_buf();
    let again = NgramIndex::open(&dir).unwrap();
    assert_eq!(again.count(&[1]).unwrap(), f.idx.count(&[1]).unwrap());
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(NgramIndex::open(&dir).unwrap_err().code(), "QUARRY_CORRUPT_INDEX");
}
