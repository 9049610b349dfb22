mod common;

use common::{Planted, Rng, masked_naive, max_head_err, planted};
use proptest::prelude::*;
use quarry_attn::*;

type KeySets = Vec<(Vec<[u32; 2]>, Vec<u32>)>;

/// Random key sets; `panel_aligned`: ranges only, each starting on a 16-key GEMM panel
/// boundary (the layout block top-k produces, run on K/V packed once).
fn random_sets(shape: &AttnShape, block: usize, r: &mut Rng, panel_aligned: bool) -> KeySets {
    let tiles = shape.q_len.div_ceil(block);
    (0..shape.heads * tiles)
        .map(|_| {
            let nr = r.below(4);
            let ranges = (0..nr)
                .map(|_| {
                    let s = if panel_aligned { r.below(shape.kv_len) / 16 * 16 } else { r.below(shape.kv_len) };
                    let e = (s + 1 + r.below(2 * block)).min(shape.kv_len);
                    [s as u32, e as u32]
                })
                .collect();
            let nc = if panel_aligned { 0 } else { r.below(40) };
            let cols = (0..nc).map(|_| r.below(shape.kv_len) as u32).collect();
            (ranges, cols)
        })
        .collect()
}

fn check_sparse_kernel(shape: AttnShape, opts: AttnOptions, seed: u64) {
    check_sparse_kernel_sets(shape, opts, seed, false);
    check_sparse_kernel_sets(shape, opts, seed, true);
}

fn check_sparse_kernel_sets(shape: AttnShape, opts: AttnOptions, seed: u64, panel_aligned: bool) {
    let mut r = Rng(seed);
    let q = r.vec(shape.q_elems(), 1.0);
    let k = r.vec(shape.kv_elems(), 1.0);
    let v = r.vec(shape.kv_elems(), 1.0);
    let sets = random_sets(&shape, opts.block, &mut r, panel_aligned);
    let index = SparseIndex::from_key_sets(&shape, &opts, &sets).unwrap();
    // The normalised index means exactly the union of the given keys.
    let tiles = index.tiles();
    for h in 0..shape.heads {
        for i in 0..shape.q_len {
            let (ranges, cols) = &sets[h * tiles + i / opts.block];
            for j in 0..shape.kv_len {
                let visible = !opts.causal || j <= shape.q_pos(i);
                let given = ranges.iter().any(|&[s, e]| (s as usize..e as usize).contains(&j)) || cols.contains(&(j as u32));
                assert_eq!(index.contains(h, i, j), visible && given, "h{h} i{i} j{j}");
            }
        }
    }
    check_index_kernel(&q, &k, &v, &shape, &opts, &index);
}

/// The sparse kernel on `index` equals masked naive attention over `index.contains`, and its
/// density and recall are those of the pairs `contains` names.
fn check_index_kernel(q: &[f32], k: &[f32], v: &[f32], shape: &AttnShape, opts: &AttnOptions, index: &SparseIndex) {
    let (shape, opts) = (*shape, *opts);
    let want = masked_naive(q, k, v, &shape, &opts, |h, i, j| index.contains(h, i, j));
    for kernel in [KernelChoice::Auto, KernelChoice::Scalar] {
        let o = opts.with_kernel(kernel);
        let got = sparse_attention(q, k, v, &shape, &o, index).unwrap();
        let e = max_head_err(&got.output, &want, shape.heads);
        assert!(e < 1e-5, "{kernel:?}: rel err {e}");
    }
    // f16 K/V (widened once for ranges, columns and lines) equal the f32 run on the same values.
    let (k16, v16): (Vec<f16>, Vec<f16>) = (k.iter().map(|&x| f16::from_f32(x)).collect(), v.iter().map(|&x| f16::from_f32(x)).collect());
    let (kw, vw): (Vec<f32>, Vec<f32>) = (k16.iter().map(|x| x.to_f32()).collect(), v16.iter().map(|x| x.to_f32()).collect());
    let got16 = sparse_attention(q, &k16[..], &v16[..], &shape, &opts, index).unwrap();
    let got32 = sparse_attention(q, &kw[..], &vw[..], &shape, &opts, index).unwrap();
    assert!(max_head_err(&got16.output, &got32.output, shape.heads) < 1e-6);
    // Density is the share of visible pairs computed.
    let mut pairs = 0u64;
    for h in 0..shape.heads {
        for i in 0..shape.q_len {
            pairs += (0..shape.kv_len).filter(|&j| index.contains(h, i, j)).count() as u64;
        }
    }
    let dense = dense_pairs(&shape, opts.causal) * shape.heads as u64;
    assert!((index.density() - pairs as f64 / dense as f64).abs() < 1e-12);
    // Recall (lse-based) equals the reference probability mass.
    let rec = prefill_recall(q, k, &shape, &opts, index).unwrap();
    let mut mass = vec![0.0f64; shape.heads];
    naive_probs(q, k, &shape, &opts, |h, i, p| {
        mass[h] += p.iter().enumerate().filter(|&(j, _)| index.contains(h, i, j)).map(|(_, x)| x).sum::<f64>();
    })
    .unwrap();
    for (got, m) in rec.per_head.iter().zip(&mass) {
        let want = m / shape.q_len as f64;
        assert!((got - want).abs() < 1e-4, "recall {got} vs {want}");
    }
}

/// Vertical-slash with `slash_lines`: diagonals computed as lines (mixed with bands and
/// columns, causal and not, GQA, a tile cut short) match the masked reference.
#[test]
fn slash_lines_match_masked_reference() {
    for (shape, opts, vertical, slash, seed) in [
        (AttnShape::prefill(2, 1, 300, 32), AttnOptions::causal().with_block(32), 20, 120, 1u64),
        (AttnShape::prefill(3, 3, 257, 16), AttnOptions::causal(), 8, 120, 2),
        (AttnShape::new(2, 2, 70, 400, 20), AttnOptions::non_causal().with_block(16), 10, 110, 3),
        (AttnShape::new(4, 2, 90, 300, 24), AttnOptions::causal().with_block(16), 30, 110, 4),
    ] {
        let mut r = Rng(seed);
        let q = r.vec(shape.q_elems(), 1.0);
        let k = r.vec(shape.kv_elems(), 1.0);
        let v = r.vec(shape.kv_elems(), 1.0);
        let vs = |slash_lines| PrefillPattern::VerticalSlash { vertical, slash, last_q: 16, spread_q: 8, slash_lines, segment: 0 };
        let lines = vs(true);
        let index = build_index(&q, &k, &shape, &opts, &lines).unwrap();
        let with_lines = (0..shape.heads).flat_map(|h| (0..index.tiles()).map(move |t| (h, t))).filter(|&(h, t)| !index.diagonals(h, t).is_empty()).count();
        assert!(with_lines > 0, "{shape:?}: no diagonal became a line");
        check_index_kernel(&q, &k, &v, &shape, &opts, &index);
        // Lines hold exactly the chosen diagonals' keys: never more pairs than the bands.
        let bands = build_index(&q, &k, &shape, &opts, &vs(false)).unwrap();
        assert!(index.density() <= bands.density() + 1e-12, "{} vs {}", index.density(), bands.density());
        // The search's cost weighs line pairs above block pairs; without lines it is the density.
        for h in 0..shape.heads {
            assert!(index.head_cost(h) > index.head_density(h) || (0..index.tiles()).all(|t| index.diagonals(h, t).is_empty()));
            assert!((bands.head_cost(h) - bands.head_density(h)).abs() < 1e-12);
        }
        for h in 0..shape.heads {
            for i in 0..shape.q_len {
                for j in 0..shape.kv_len {
                    assert!(!index.contains(h, i, j) || bands.contains(h, i, j), "h{h} i{i} j{j} in lines only");
                }
            }
        }
    }
}

#[test]
fn slash_lines_find_a_far_slash_at_a_fraction_of_the_band_cost() {
    let n = 2048;
    let shape = AttnShape::prefill(2, 2, n, 64);
    let plant = Planted { columns: vec![0, 333, 777, 1200, 1500], slashes: vec![0, 700], strength: 10.0 };
    let (q, k, _) = planted(2, n, 64, &plant, 22);
    let vs = |slash_lines| PrefillPattern::VerticalSlash { vertical: 64, slash: 140, last_q: 64, spread_q: 0, slash_lines, segment: 0 };
    let (bands, lines) = (vs(false), vs(true));
    let (rec_b, dens_b) = recall_and_density(&q, &k, &shape, &bands);
    let (rec_l, dens_l) = recall_and_density(&q, &k, &shape, &lines);
    eprintln!("bands recall {rec_b} density {dens_b}; lines recall {rec_l} density {dens_l}");
    assert!(rec_l >= 0.85 && rec_l >= rec_b - 0.05, "lines recall {rec_l} (bands {rec_b})");
    assert!(dens_l < 0.7 * dens_b, "lines density {dens_l} vs bands {dens_b}");
}

#[test]
fn sparse_kernel_matches_masked_reference() {
    check_sparse_kernel(AttnShape::prefill(2, 1, 200, 32), AttnOptions::causal().with_block(32), 1);
    check_sparse_kernel(AttnShape::new(4, 2, 70, 130, 20), AttnOptions::non_causal().with_block(16), 2);
    check_sparse_kernel(AttnShape::new(3, 3, 100, 150, 64), AttnOptions::causal(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn sparse_kernel_random(kvh in 1usize..3, grp in 1usize..3, ql in 1usize..120, extra in 0usize..50,
        d in prop::sample::select(vec![3usize, 16, 40]), causal in any::<bool>(),
        block in prop::sample::select(vec![16usize, 32]), seed in any::<u64>()) {
        let shape = AttnShape::new(kvh * grp, kvh, ql, ql + extra, d);
        let opts = if causal { AttnOptions::causal() } else { AttnOptions::non_causal() }.with_block(block);
        check_sparse_kernel(shape, opts, seed);
    }
}

#[test]
fn every_pattern_at_full_budget_equals_dense() {
    for (shape, opts) in [
        (AttnShape::prefill(4, 2, 300, 64), AttnOptions::causal()),
        (AttnShape::new(2, 1, 100, 260, 32), AttnOptions::causal().with_block(32)),
        (AttnShape::new(2, 2, 90, 150, 16), AttnOptions::non_causal().with_block(16)),
    ] {
        let mut r = Rng(11);
        let q = r.vec(shape.q_elems(), 1.0);
        let k = r.vec(shape.kv_elems(), 1.0);
        let v = r.vec(shape.kv_elems(), 1.0);
        let dense = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
        let n = shape.kv_len;
        for p in [
            PrefillPattern::Dense,
            PrefillPattern::AShape { sink: n, window: 0 },
            PrefillPattern::AShape { sink: 0, window: n },
            PrefillPattern::AShape { sink: 10 * n, window: 10 * n },
            PrefillPattern::VerticalSlash { vertical: n, slash: 2 * n, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 },
            PrefillPattern::VerticalSlash { vertical: 10 * n, slash: 0, last_q: 1000, spread_q: 0, slash_lines: false, segment: 0 },
            PrefillPattern::VerticalSlash { vertical: n, slash: 2 * n, last_q: 16, spread_q: 16, slash_lines: false, segment: 0 },
            PrefillPattern::VerticalSlash { vertical: n, slash: 2 * n, last_q: 1, spread_q: 100_000, slash_lines: false, segment: 0 },
            PrefillPattern::VerticalSlash { vertical: n, slash: 2 * n, last_q: 8, spread_q: 8, slash_lines: true, segment: 0 },
            PrefillPattern::VerticalSlash { vertical: n, slash: 2 * n, last_q: 8, spread_q: 4, slash_lines: true, segment: 1 },
            PrefillPattern::VerticalSlash { vertical: n, slash: 2 * n, last_q: 64, spread_q: 0, slash_lines: false, segment: 100 },
            PrefillPattern::BlockTopK { gamma: 1.0, estimate: ScoreEstimate::Pooled },
            PrefillPattern::BlockTopK { gamma: 5.0, estimate: ScoreEstimate::PooledI4 },
            PrefillPattern::BlockTopK { gamma: 1.0, estimate: ScoreEstimate::MeanQuery },
        ] {
            let out = sparse_prefill(&q, &k, &v, &shape, &opts, &p).unwrap();
            assert!((out.density - 1.0).abs() < 1e-12, "{p:?}: density {}", out.density);
            let e = max_head_err(&out.output, &dense.output, shape.heads);
            assert!(e < 1e-5, "{p:?}: err {e}");
        }
    }
}

fn recall_and_density(q: &[f32], k: &[f32], shape: &AttnShape, p: &PrefillPattern) -> (f64, f64) {
    let opts = AttnOptions::causal();
    let index = build_index(q, k, shape, &opts, p).unwrap();
    let r = prefill_recall(q, k, shape, &opts, &index).unwrap();
    (r.mean, index.density())
}

#[test]
fn a_shape_recall_on_sink_and_local_heads() {
    let n = 2048;
    let shape = AttnShape::prefill(2, 2, n, 64);
    let plant = Planted { columns: vec![0, 1, 2, 3], slashes: vec![0], strength: 10.0 };
    let (q, k, _) = planted(2, n, 64, &plant, 21);
    let (rec, dens) = recall_and_density(&q, &k, &shape, &PrefillPattern::AShape { sink: 64, window: 128 });
    assert!(rec >= 0.9, "recall {rec}");
    assert!(dens <= 0.25, "density {dens}");
}

#[test]
fn vertical_slash_finds_planted_columns_and_far_slash() {
    let n = 2048;
    let shape = AttnShape::prefill(2, 2, n, 64);
    let plant = Planted { columns: vec![0, 333, 777, 1200, 1500], slashes: vec![0, 700], strength: 10.0 };
    let (q, k, _) = planted(2, n, 64, &plant, 22);
    let vs = PrefillPattern::VerticalSlash { vertical: 64, slash: 140, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 };
    let (rec, dens) = recall_and_density(&q, &k, &shape, &vs);
    assert!(rec >= 0.9, "vertical-slash recall {rec}");
    assert!(dens <= 0.4, "density {dens}");
    // A-shape at a similar density misses the far slash and the columns.
    let (rec_a, dens_a) = recall_and_density(&q, &k, &shape, &PrefillPattern::AShape { sink: 64, window: 256 });
    eprintln!("vertical-slash recall {rec} density {dens}; a-shape recall {rec_a} density {dens_a}");
    assert!(rec_a < rec - 0.1, "a-shape {rec_a} vs vertical-slash {rec}");
}

#[test]
fn vertical_slash_spread_queries_find_columns_the_end_does_not_attend() {
    let n = 2048;
    let shape = AttnShape::prefill(2, 2, n, 64);
    let opts = AttnOptions::causal();
    let plant = Planted { columns: vec![100, 400, 900], slashes: vec![0], strength: 10.0 };
    let (mut q, k, v) = planted(2, n, 64, &plant, 24);
    // only the first half of the queries attend to the columns (channel 0 carries them)
    for h in 0..2 {
        for i in n / 2..n {
            q[(h * n + i) * 64] = 0.0;
        }
    }
    let dense = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
    // recall of the rows that see a column and attend to it: [100, n/2) of both heads
    let first_half_recall = |spread_q| {
        let p = PrefillPattern::VerticalSlash { vertical: 64, slash: 100, last_q: 64, spread_q, slash_lines: false, segment: 0 };
        let out = sparse_prefill(&q, &k, &v, &shape, &opts, &p).unwrap();
        let rows: Vec<usize> = (0..2).flat_map(|h| h * n + 100..h * n + n / 2).collect();
        (rows.iter().map(|&i| ((out.lse[i] - dense.lse[i]) as f64).exp()).sum::<f64>() / rows.len() as f64, out.density)
    };
    let (rec_last, _) = first_half_recall(0);
    let (rec_spread, dens_spread) = first_half_recall(64);
    eprintln!("rows 100..n/2: last 64 recall {rec_last}; + 64 spread recall {rec_spread} (density {dens_spread})");
    assert!(rec_spread >= 0.9, "spread recall {rec_spread}");
    assert!(rec_last < rec_spread - 0.3, "last-only recall {rec_last} vs spread {rec_spread}");
    assert!(dens_spread <= 0.25, "density {dens_spread}");
}

/// Segments: a head whose far diagonal moves halfway through the sequence (offset 300 in the
/// first half, 900 in the second). With one free diagonal in the budget, MInference's one
/// estimate from the end keeps 900 for every row; one estimate per half keeps each half's own.
#[test]
fn vertical_slash_segments_follow_a_diagonal_that_moves() {
    let (n, d) = (2048, 64);
    let shape = AttnShape::prefill(2, 2, n, d);
    let opts = AttnOptions::causal();
    let mut r = Rng(25);
    let mut q = r.vec(shape.q_elems(), 0.3);
    let k = r.vec(shape.kv_elems(), 0.3);
    let v = r.vec(shape.kv_elems(), 1.0);
    // query i points at key i - offset: a logit of 10 there, ~N(0, 1.25) elsewhere
    for h in 0..2 {
        for i in 300..n {
            let j = i - if i < n / 2 { 300 } else { 900 };
            let kj = &k[(h * n + j) * d..][..d];
            let norm2: f32 = kj.iter().map(|x| x * x).sum();
            for (qc, kc) in q[(h * n + i) * d..][..d].iter_mut().zip(kj) {
                *qc = 80.0 * kc / norm2;
            }
        }
    }
    let dense = dense_attention(&q, &k, &v, &shape, &opts).unwrap();
    let vs = |segment| PrefillPattern::VerticalSlash { vertical: 64, slash: 101, last_q: 64, spread_q: 0, slash_lines: false, segment };
    // recall of the first half's rows that see the moved diagonal: [300, n/2) of both heads
    let first_half_recall = |p: &PrefillPattern| {
        let out = sparse_prefill(&q, &k, &v, &shape, &opts, p).unwrap();
        let rows: Vec<usize> = (0..2).flat_map(|h| h * n + 300..h * n + n / 2).collect();
        (rows.iter().map(|&i| ((out.lse[i] - dense.lse[i]) as f64).exp()).sum::<f64>() / rows.len() as f64, out.density)
    };
    let (rec_one, dens_one) = first_half_recall(&vs(0));
    let (rec_seg, dens_seg) = first_half_recall(&vs(n / 2));
    eprintln!("rows 300..n/2: one estimate recall {rec_one} (density {dens_one}); per half {rec_seg} (density {dens_seg})");
    assert!(rec_seg >= 0.9, "segment recall {rec_seg}");
    assert!(rec_one < rec_seg - 0.3, "one-estimate recall {rec_one} vs segments {rec_seg}");
    assert!(dens_seg <= dens_one * 1.25, "segment density {dens_seg} vs {dens_one}");
    // the second half, estimated from the same last queries either way, is the same index there;
    // a segment as long as the sequence is the single estimate
    let one = build_index(&q, &k, &shape, &opts, &vs(0)).unwrap();
    let halves = build_index(&q, &k, &shape, &opts, &vs(n / 2)).unwrap();
    for h in 0..2 {
        for t in n / 2 / opts.block..one.tiles() {
            assert_eq!(one.ranges(h, t), halves.ranges(h, t), "h{h} t{t}");
            assert_eq!(one.columns(h, t), halves.columns(h, t), "h{h} t{t}");
        }
    }
    for seg in [n, n + 1, 10 * n] {
        assert_eq!(build_index(&q, &k, &shape, &opts, &vs(seg)).unwrap(), one, "segment {seg}");
    }
}

#[test]
fn block_topk_recall_tracks_gamma() {
    let n = 2048;
    let shape = AttnShape::prefill(2, 2, n, 64);
    // Block-level structure (what pooled scores can see): two bands of
    // heavy keys, plus the local diagonal.
    let plant = Planted { columns: (0..64).chain(896..960).collect(), slashes: vec![0], strength: 6.0 };
    let (q, k, _) = planted(2, n, 64, &plant, 23);
    for est in [ScoreEstimate::Pooled, ScoreEstimate::PooledI8, ScoreEstimate::PooledI4] {
        let (rec, dens) = recall_and_density(&q, &k, &shape, &PrefillPattern::BlockTopK { gamma: 0.9, estimate: est });
        eprintln!("{est:?}: recall {rec} density {dens}");
        assert!(rec >= 0.8, "{est:?}: recall {rec}");
        assert!(dens <= 0.6, "{est:?}: density {dens}");
    }
    // Lower gamma computes less.
    let (_, d_lo) = recall_and_density(&q, &k, &shape, &PrefillPattern::BlockTopK { gamma: 0.5, estimate: ScoreEstimate::Pooled });
    let (_, d_hi) = recall_and_density(&q, &k, &shape, &PrefillPattern::BlockTopK { gamma: 0.95, estimate: ScoreEstimate::Pooled });
    assert!(d_lo <= d_hi);
}

/// Blocks whose attention comes from a few strong keys among opposite ones: pooling the keys
/// averages the strong key away, the mean-query estimate scores every key and keeps them.
#[test]
fn mean_query_estimate_keeps_blocks_pooling_averages_away() {
    let (n, d, b) = (2048, 64, 64);
    let shape = AttnShape::prefill(2, 2, n, d);
    let mut r = Rng(41);
    let mut q = r.vec(2 * n * d, 0.2);
    let mut k = r.vec(2 * n * d, 0.2);
    let amp = (10.0f32 * (d as f32).sqrt()).sqrt(); // a strong pair scores ~10 after scaling
    for h in 0..2 {
        for i in 0..n {
            q[(h * n + i) * d] = amp;
        }
        for j in 0..n {
            let blk = j / b;
            k[(h * n + j) * d] = if blk % 5 == 2 {
                // needle blocks: one strong key, the rest pulling the block's mean to zero
                if j % b == 7 { amp } else { -amp / (b - 1) as f32 }
            } else {
                // every other block mildly above the noise on average
                0.05 * amp
            };
        }
    }
    let mq = PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::MeanQuery };
    let pooled = PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::Pooled };
    let (rec_mq, dens_mq) = recall_and_density(&q, &k, &shape, &mq);
    let (rec_p, dens_p) = recall_and_density(&q, &k, &shape, &pooled);
    eprintln!("mean-query recall {rec_mq} density {dens_mq}; pooled recall {rec_p} density {dens_p}");
    assert!(rec_mq >= 0.85, "mean-query recall {rec_mq}");
    assert!(dens_mq <= 0.4, "mean-query density {dens_mq}");
    assert!(rec_p < rec_mq - 0.2, "pooled {rec_p} vs mean-query {rec_mq}");
}

/// Two heads of 1024 tokens for the pattern searches: head 0 attends to sinks and its
/// neighbours only, head 1 also to a far diagonal and three columns; three candidates.
fn search_case() -> (Vec<f32>, Vec<f32>, AttnShape, AttnOptions, Vec<PrefillPattern>) {
    let n = 1024;
    let (q0, k0, _) = planted(1, n, 64, &Planted { columns: vec![0, 1], slashes: vec![0], strength: 10.0 }, 31);
    let (q1, k1, _) = planted(1, n, 64, &Planted { columns: vec![0, 400, 800], slashes: vec![0, 300], strength: 10.0 }, 32);
    let cands = vec![
        PrefillPattern::AShape { sink: 64, window: 128 },
        PrefillPattern::VerticalSlash { vertical: 64, slash: 140, last_q: 64, spread_q: 0, slash_lines: false, segment: 0 },
        PrefillPattern::BlockTopK { gamma: 0.95, estimate: ScoreEstimate::Pooled },
    ];
    ([q0, q1].concat(), [k0, k1].concat(), AttnShape::prefill(2, 2, n, 64), AttnOptions::causal(), cands)
}

#[test]
fn pattern_search_picks_the_cheapest_pattern_meeting_the_target() {
    let (q, k, shape, opts, cands) = search_case();
    let n = shape.q_len;
    let choice = search_patterns(&q, &k, &shape, &opts, &cands, 0.9).unwrap();
    // Each head gets the lowest-density candidate that meets the target,
    // checked against an independent evaluation of every candidate.
    for h in 0..2 {
        let hs = AttnShape::prefill(1, 1, n, 64);
        let (qh, kh) = (&q[h * n * 64..(h + 1) * n * 64], &k[h * n * 64..(h + 1) * n * 64]);
        let best = cands
            .iter()
            .map(|p| (p, recall_and_density(qh, kh, &hs, p)))
            .filter(|(_, (r, _))| *r >= 0.9)
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map(|(p, _)| *p)
            .unwrap_or(PrefillPattern::Dense);
        assert_eq!(choice.patterns[h], best, "head {h}: {choice:?}");
    }
    // Head 1's far slash and columns are out of A-shape's reach.
    assert_ne!(choice.patterns[1].name(), "a-shape", "{choice:?}");
    for h in 0..2 {
        assert!(choice.recall[h] >= 0.9);
        assert!(choice.density[h] < 1.0, "{choice:?}");
    }
    // The chosen per-head plan reaches the target when run.
    let idx = build_index_per_head(&q, &k, &shape, &opts, &choice.patterns).unwrap();
    let r = prefill_recall(&q, &k, &shape, &opts, &idx).unwrap();
    assert!(r.per_head.iter().all(|&x| x >= 0.9), "{r:?}");
    // An unreachable target leaves heads dense.
    let strict = search_patterns(&q, &k, &shape, &opts, &cands[..1], 1.0).unwrap();
    assert_eq!(strict.patterns[1], PrefillPattern::Dense);
}

/// The oracle density against a brute force over the reference probabilities
/// (every row sampled), its limits, and a bound the sparse patterns respect.
#[test]
fn oracle_density_is_the_fewest_pairs_reaching_the_target() {
    let mut r = Rng(91);
    for (causal, heads, kv_heads, n, d) in [(true, 4, 2, 150, 16), (false, 2, 1, 97, 8), (true, 3, 3, 64, 32)] {
        let shape = AttnShape::prefill(heads, kv_heads, n, d);
        let opts = if causal { AttnOptions::causal() } else { AttnOptions::non_causal() };
        let q = r.vec(heads * n * d, 1.5);
        let k = r.vec(kv_heads * n * d, 1.0);
        let mut all = Vec::new();
        naive_probs(&q, &k, &shape, &opts, |_, _, p| all.extend_from_slice(p)).unwrap();
        let visible = all.len();
        all.sort_by(|a, b| b.total_cmp(a));
        for target in [0.5, 0.8, 0.95, 0.99] {
            let need = target * (heads * n) as f64;
            let (mut mass, mut c) = (0.0, 0);
            while mass < need {
                mass += all[c];
                c += 1;
            }
            let got = oracle_density(&q, &k, &shape, &opts, target, n).unwrap();
            let want = c as f64 / visible as f64;
            // f32 vs f64 probabilities may swap the order of near-equal pairs at the cut
            assert!((got - want).abs() <= 2.0 / visible as f64, "{causal} {target}: {got} vs {want}");
        }
        let full = oracle_density(&q, &k, &shape, &opts, 1.0, n).unwrap();
        assert!(full > 0.99, "{full}");
        // a sparse pattern reaching the target computes at least the oracle's share
        let p = PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::Pooled };
        if causal {
            let (rec, dens) = recall_and_density(&q, &k, &shape, &p);
            let o = oracle_density(&q, &k, &shape, &opts, rec.min(1.0), n).unwrap();
            assert!(dens >= o - 2.0 / visible as f64, "pattern density {dens} below the oracle {o} at recall {rec}");
        }
    }
    // One key holding all the mass: one pair per row, and only as many rows as the mean needs
    // (48 rows at recall 1 and 2 at 0 average 0.96 >= 0.95).
    let (n, d) = (200, 8);
    let shape = AttnShape::prefill(1, 1, n, d);
    let mut k = vec![0.01f32; n * d];
    k[0] = 10.0;
    let mut q = vec![0.0f32; n * d];
    for i in 0..n {
        q[i * d] = 10.0;
    }
    let opts = AttnOptions::non_causal();
    let got = oracle_density(&q, &k, &shape, &opts, 0.95, 50).unwrap();
    assert_eq!(got, 48.0 / (50 * n) as f64);
    // sampled rows: evenly spread, density of those rows only
    let causal = oracle_density(&q, &k, &shape, &AttnOptions::causal(), 0.95, 4).unwrap();
    let vis: usize = [25usize, 75, 125, 175].iter().map(|i| i + 1).sum();
    assert_eq!(causal, 4.0 / vis as f64);
    assert_eq!(oracle_density(&q, &k, &shape, &opts, 0.0, 4).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(oracle_density(&q, &k, &shape, &opts, 0.9, 0).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(oracle_density(&q[1..], &k, &shape, &opts, 0.9, 4).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
}

/// The sampled search: every tile = the full search; a few tiles = the cheapest candidate
/// meeting the target on exactly those tiles' rows (densities still the full indexes').
#[test]
fn sampled_pattern_search_measures_recall_on_the_sampled_tiles() {
    let (q, k, shape, opts, mut cands) = search_case();
    cands.push(PrefillPattern::BlockTopK { gamma: 0.9, estimate: ScoreEstimate::MeanQuery });
    let n = shape.q_len;
    let all = search_patterns(&q, &k, &shape, &opts, &cands, 0.9).unwrap();
    assert_eq!(search_patterns_sampled(&q, &k, &shape, &opts, &cands, 0.9, 0).unwrap(), all);
    assert_eq!(search_patterns_sampled(&q, &k, &shape, &opts, &cands, 0.9, 16).unwrap(), all);
    let (tiles, s) = (n / 64, 3);
    let sampled: Vec<usize> = (0..s).map(|i| (2 * i + 1) * tiles / (2 * s)).collect();
    let full = dense_lse(&q, &k, &shape, &opts).unwrap();
    for target in [0.8, 0.9, 0.97] {
        let got = search_patterns_sampled(&q, &k, &shape, &opts, &cands, target, s).unwrap();
        let mut want = (vec![PrefillPattern::Dense; 2], vec![1.0f64; 2], vec![1.0f64; 2]);
        for c in &cands {
            let idx = build_index(&q, &k, &shape, &opts, c).unwrap();
            let sel = sparse_lse(&q, &k, &shape, &opts, &idx).unwrap();
            for h in 0..2 {
                let rows: Vec<usize> = (0..n).filter(|i| sampled.contains(&(i / 64))).collect();
                let rec = rows.iter().map(|&i| ((sel[h * n + i] - full[h * n + i]) as f64).exp().min(1.0)).sum::<f64>() / rows.len() as f64;
                if rec >= target && idx.head_density(h) < want.2[h] {
                    want.0[h] = *c;
                    want.1[h] = rec;
                    want.2[h] = idx.head_density(h);
                }
            }
        }
        assert_eq!(got.patterns, want.0, "target {target}");
        for h in 0..2 {
            assert!((got.recall[h] - want.1[h]).abs() < 1e-4, "target {target} head {h}: {} vs {}", got.recall[h], want.1[h]);
            assert_eq!(got.density[h], want.2[h]);
        }
    }
}

