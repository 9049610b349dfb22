mod common;
use common::*;
use proptest::prelude::*;
use quarry_fm::*;

fn doc_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    // tiny alphabet (incl. NUL and a UTF-8 multibyte char's bytes) to force many repeats
    let sym = prop::sample::select(vec![b'a', b'b', b'a', b'\0', 0xC3, 0xA9]);
    prop::collection::vec(prop::collection::vec(sym, 0..30), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn count_locate_extract_match_bruteforce(
        docs in doc_strategy(),
        pats in prop::collection::vec(prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'\0', 0xC3, 0xA9]), 1..5), 1..10),
        plain in any::<bool>(),
        sa in 1usize..9,
        isa in 1usize..9,
        shard_bytes in 1u64..80,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let kind = if plain { BitvectorKind::Plain } else { BitvectorKind::Compressed };
        let idx = build_bytes(&docs, dir.path(), kind, shard_bytes, sa, isa);
        for p in &pats {
            check_pattern(&idx, &docs, p);
        }
        check_extract(&idx, &docs);
        // next-symbol distribution of a one-symbol prefix equals naive counts
        let nt = idx.next_tokens(&[b'a' as u32], usize::MAX).unwrap();
        let mut want = std::collections::BTreeMap::new();
        for d in &docs {
            for w in d.windows(2) {
                if w[0] == b'a' { *want.entry(w[1] as u32).or_insert(0u64) += 1; }
            }
        }
        let got: std::collections::BTreeMap<u32, u64> = nt.tokens.iter().map(|t| (t.token, t.count)).collect();
        prop_assert_eq!(got, want);
    }
}
