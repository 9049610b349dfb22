//! Every bad-input path returns a typed error with a stable code, and the
//! documented edge cases (empty queries, oversized budgets) behave as
//! documented.

use quarry_attn::*;

fn code<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
    r.expect_err("expected an error").code()
}

const DIM: &str = "QUARRY_DIM_MISMATCH";
const ARG: &str = "QUARRY_INVALID_ARGUMENT";

#[test]
fn shape_and_buffer_errors() {
    let shape = AttnShape::prefill(4, 2, 10, 8);
    let q = vec![0.1f32; shape.q_elems()];
    let k = vec![0.1f32; shape.kv_elems()];
    let o = AttnOptions::causal();
    assert_eq!(code(dense_attention(&q[1..], &k, &k, &shape, &o)), DIM);
    assert_eq!(code(dense_attention(&q, &k[1..], &k, &shape, &o)), DIM);
    assert_eq!(code(dense_attention(&q, &k, &k[1..], &shape, &o)), DIM);
    assert_eq!(code(naive_attention(&q, &k, &k[1..], &shape, &o)), DIM);
    assert_eq!(code(dense_lse(&q[1..], &k, &shape, &o)), DIM);
    assert_eq!(code(dense_attention(&q, &k, &k, &AttnShape::prefill(3, 2, 10, 8), &o)), ARG);
    assert_eq!(code(dense_attention(&q, &k, &k, &AttnShape::prefill(0, 2, 10, 8), &o)), ARG);
    assert_eq!(code(dense_attention(&q, &k, &k, &AttnShape::prefill(4, 0, 10, 8), &o)), ARG);
    assert_eq!(code(dense_attention(&q, &k, &k, &AttnShape::prefill(4, 2, 10, 0), &o)), ARG);
    // causal needs q_len <= kv_len
    let long_q = AttnShape::new(4, 2, 11, 10, 8);
    let q11 = vec![0.1f32; long_q.q_elems()];
    assert_eq!(code(dense_attention(&q11, &k, &k, &long_q, &o)), ARG);
    assert!(dense_attention(&q11, &k, &k, &long_q, &AttnOptions::non_causal()).is_ok());
    // queries with no keys
    let no_keys = AttnShape::new(4, 2, 3, 0, 8);
    let q3 = vec![0.1f32; no_keys.q_elems()];
    assert_eq!(code(dense_attention(&q3, &[] as &[f32], &[] as &[f32], &no_keys, &AttnOptions::non_causal())), ARG);
}

#[test]
fn option_errors() {
    let shape = AttnShape::prefill(2, 1, 10, 8);
    let q = vec![0.1f32; shape.q_elems()];
    let k = vec![0.1f32; shape.kv_elems()];
    for block in [0, 8, 24, 512] {
        let o = AttnOptions::causal().with_block(block);
        assert_eq!(code(dense_attention(&q, &k, &k, &shape, &o)), ARG, "block {block}");
    }
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(code(dense_attention(&q, &k, &k, &shape, &AttnOptions::causal().with_scale(scale))), ARG);
    }
}

#[test]
fn empty_sequences_give_empty_output() {
    let o = AttnOptions::causal();
    let shape = AttnShape::prefill(4, 2, 0, 8);
    let out = dense_attention(&[], &[] as &[f32], &[] as &[f32], &shape, &o).unwrap();
    assert!(out.output.is_empty() && out.lse.is_empty());
    let out = sparse_prefill(&[], &[] as &[f32], &[] as &[f32], &shape, &o, &PrefillPattern::AShape { sink: 4, window: 4 }).unwrap();
    assert!(out.output.is_empty());
    let r = prefill_recall(&[], &[] as &[f32], &shape, &o, &build_index(&[], &[] as &[f32], &shape, &o, &PrefillPattern::Dense).unwrap()).unwrap();
    assert_eq!(r.mean, 1.0);
}

#[test]
fn sparse_errors() {
    let shape = AttnShape::prefill(2, 1, 100, 8);
    let q = vec![0.1f32; shape.q_elems()];
    let k = vec![0.1f32; shape.kv_elems()];
    let o = AttnOptions::causal();
    let vs0 = PrefillPattern::VerticalSlash { vertical: 10, slash: 10, last_q: 0, spread_q: 0, slash_lines: false, segment: 0 };
    assert_eq!(code(build_index(&q, &k, &shape, &o, &vs0)), ARG);
    for gamma in [0.0, -0.5, f32::NAN] {
        let p = PrefillPattern::BlockTopK { gamma, estimate: ScoreEstimate::Pooled };
        assert_eq!(code(build_index(&q, &k, &shape, &o, &p)), ARG);
    }
    assert_eq!(code(build_index_per_head(&q, &k, &shape, &o, &[PrefillPattern::Dense])), DIM);
    assert_eq!(code(build_index(&q[1..], &k, &shape, &o, &PrefillPattern::Dense)), DIM);
    // An index used with another shape / block / causality.
    let idx = build_index(&q, &k, &shape, &o, &PrefillPattern::Dense).unwrap();
    assert_eq!(code(sparse_attention(&q, &k, &k, &shape, &o.with_block(32), &idx)), DIM);
    assert_eq!(code(sparse_attention(&q, &k, &k, &shape, &AttnOptions::non_causal(), &idx)), DIM);
    let other = AttnShape::prefill(2, 2, 50, 8);
    let q2 = vec![0.1f32; other.q_elems()];
    let k2 = vec![0.1f32; other.kv_elems()];
    assert_eq!(code(sparse_attention(&q2, &k2, &k2, &other, &o, &idx)), DIM);
    assert_eq!(code(prefill_recall(&q2, &k2, &other, &o, &idx)), DIM);
    // Explicit key sets: wrong count, keys out of range.
    let tiles = 2; // 100 tokens / 64
    assert_eq!(code(SparseIndex::from_key_sets(&shape, &o, &vec![(vec![], vec![]); 3])), DIM);
    let mut sets = vec![(vec![[0u32, 10]], vec![5u32]); 2 * tiles];
    sets[1].0.push([90, 101]);
    assert_eq!(code(SparseIndex::from_key_sets(&shape, &o, &sets)), ARG);
    sets[1].0.pop();
    sets[2].1.push(100);
    assert_eq!(code(SparseIndex::from_key_sets(&shape, &o, &sets)), ARG);
    sets[2].1.pop();
    sets[3].0.push([20, 10]);
    assert_eq!(code(SparseIndex::from_key_sets(&shape, &o, &sets)), ARG);
    sets[3].0.pop();
    assert!(SparseIndex::from_key_sets(&shape, &o, &sets).is_ok());
    // Search / calibration targets.
    assert_eq!(code(search_patterns(&q, &k, &shape, &o, &[PrefillPattern::Dense], 1.5)), ARG);
    assert_eq!(code(DuoPolicy::calibrate(&q, &k, &shape, &o, 4, 4, -0.1)), ARG);
}

#[test]
fn decode_errors() {
    let shape = AttnShape::decode(4, 2, 50, 8);
    let q = vec![0.1f32; shape.q_elems()];
    let k = vec![0.1f32; shape.kv_elems()];
    let o = AttnOptions::default();
    assert_eq!(code(dense_decode(&q[1..], &k, &k, &shape, &o)), DIM);
    assert_eq!(code(dense_decode(&q, &k, &k[2..], &shape, &o)), DIM);
    let two = AttnShape::new(4, 2, 2, 50, 8);
    assert_eq!(code(dense_decode(&[0.1; 64], &k, &k, &two, &o)), ARG);
    assert_eq!(code(dense_decode(&q, &k, &k, &AttnShape::decode(4, 3, 50, 8), &o)), ARG);
    assert_eq!(code(Selection::new(vec![vec![50]], 50)), ARG);
    let wrong_heads = Selection::all(3, 50);
    assert_eq!(code(sparse_decode(&q, &k, &k, &shape, &o, &wrong_heads)), DIM);
    let wrong_len = Selection::all(4, 49);
    assert_eq!(code(decode_recall(&q, &k, &shape, &o, &wrong_len)), DIM);
    assert_eq!(code(QuestIndex::build(&k, &shape, 0)), ARG);
    assert_eq!(code(QuestIndex::build(&k[1..], &shape, 16)), DIM);
    let quest = QuestIndex::build(&k, &shape, 16).unwrap();
    let other = AttnShape::decode(4, 2, 40, 8);
    assert_eq!(code(quest.selector(16, 0, 0).select(&[0.1; 32], &other)), DIM);
    assert_eq!(code(quest.selector(16, 0, 0).select(&q[1..], &shape)), DIM);
    assert_eq!(code(SqueezedIndex::build(&k, &shape, 0, 3, 1)), ARG);
    let sq = SqueezedIndex::build(&k, &shape, 4, 3, 1).unwrap();
    assert_eq!(code(sq.selector(16, 0, 0).select(&[0.1; 32], &other)), DIM);
    let duo = DuoPolicy { retrieval: vec![true], sink: 1, window: 1, streaming_recall: vec![] };
    assert_eq!(code(duo.select(&q, &shape)), DIM);
    assert_eq!(code(TopKSelector { k: (&k[1..]).into(), budget: 4, sink: 0, recent: 0 }.select(&q, &shape)), DIM);
}

#[test]
fn oversized_budgets_clamp_to_dense() {
    let shape = AttnShape::decode(2, 1, 30, 8);
    let q = vec![0.3f32; shape.q_elems()];
    let k: Vec<f32> = (0..shape.kv_elems()).map(|i| (i % 7) as f32 * 0.1).collect();
    let quest = QuestIndex::build(&k, &shape, 16).unwrap();
    assert_eq!(quest.selector(usize::MAX / 2, usize::MAX / 2, usize::MAX / 2).select(&q, &shape).unwrap(), Selection::all(2, 30));
    let sq = SqueezedIndex::build(&k, &shape, 1000, 2, 1).unwrap();
    assert_eq!(sq.clusters(), 30);
    assert_eq!(StreamingSelector { sink: 100, recent: 100 }.select(&q, &shape).unwrap().density(), 1.0);
}
