//! MUVERA: FDE inner products track Chamfer similarity; FDE candidates plus
//! Chamfer re-ranking recover the exact Chamfer top-1; structure and errors.

use quarry_ann::kmeans::Rng;
use quarry_ann::muvera::{FdeConfig, Muvera, chamfer};

fn unit_vectors(n: usize, dim: usize, rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.gaussian() as f32).collect();
    for r in v.chunks_exact_mut(dim) {
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        r.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `docs` documents of `per_doc` unit vectors, and `queries` queries made of
/// noisy copies of half the vectors of a random document.
fn corpus(docs: usize, per_doc: usize, dim: usize, queries: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = Rng::new(seed);
    let d: Vec<Vec<f32>> = (0..docs).map(|_| unit_vectors(per_doc, dim, &mut rng)).collect();
    let q = (0..queries)
        .map(|_| {
            let t = rng.below(docs as u64) as usize;
            let mut out = Vec::new();
            for i in 0..per_doc / 2 {
                let src = &d[t][i * 2 * dim..(i * 2 + 1) * dim];
                let mut v: Vec<f32> = src.iter().map(|&x| x + rng.gaussian() as f32 * 0.15).collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                out.extend(v);
            }
            out
        })
        .collect();
    (d, q)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

fn run(cfg: FdeConfig, candidates: usize) -> (f64, f64) {
    let dim = cfg.dim;
    let (docs, queries) = corpus(300, 16, dim, 40, 17);
    let mv = Muvera::new(cfg).unwrap();
    let doc_fde: Vec<Vec<f32>> = docs.iter().map(|d| mv.encode_document(d).unwrap()).collect();
    let mut hits = 0;
    let mut corr = 0.0;
    for q in &queries {
        let qf = mv.encode_query(q).unwrap();
        assert_eq!(qf.len(), mv.output_dim());
        let fde: Vec<f64> = doc_fde.iter().map(|d| dot(&qf, d)).collect();
        let exact: Vec<f64> = docs.iter().map(|d| chamfer(q, d, dim) as f64).collect();
        corr += pearson(&fde, &exact);
        let truth = (0..docs.len()).max_by(|&a, &b| exact[a].total_cmp(&exact[b])).unwrap();
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.sort_by(|&a, &b| fde[b].total_cmp(&fde[a]));
        let best = order[..candidates].iter().copied().max_by(|&a, &b| exact[a].total_cmp(&exact[b])).unwrap();
        hits += (best == truth) as usize;
    }
    (corr / queries.len() as f64, hits as f64 / queries.len() as f64)
}

#[test]
fn fde_tracks_chamfer_and_reranking_recovers_top1() {
    let base = FdeConfig { dim: 32, simhash_bits: 3, repetitions: 16, seed: 3, ..FdeConfig::default() };
    let (corr, recall) = run(base.clone(), 10);
    eprintln!("full: corr {corr:.3} recall {recall:.3}");
    assert!(corr > 0.5, "correlation {corr}");
    assert!(recall >= 0.95, "recall {recall}");
    // With an inner projection and a final count sketch (4× smaller encoding).
    let small = FdeConfig { projection_dim: Some(16), final_dim: Some(1024), ..base };
    let (corr, recall) = run(small, 20);
    eprintln!("projected: corr {corr:.3} recall {recall:.3}");
    assert!(corr > 0.3, "projected correlation {corr}");
    assert!(recall >= 0.9, "projected recall {recall}");
}

#[test]
fn encodings_have_the_documented_structure() {
    let dim = 8;
    let cfg = FdeConfig { dim, simhash_bits: 2, repetitions: 3, fill_empty_partitions: false, seed: 1, ..FdeConfig::default() };
    let mv = Muvera::new(cfg.clone()).unwrap();
    assert_eq!(mv.output_dim(), 3 * 4 * 8);
    let mut rng = Rng::new(4);
    let doc = unit_vectors(1, dim, &mut rng);
    // One vector: the query FDE holds it once per repetition, elsewhere zeros;
    // the document FDE (no filling) the same.
    let q = mv.encode_query(&doc).unwrap();
    let d = mv.encode_document(&doc).unwrap();
    assert_eq!(q, d);
    for rep in 0..3 {
        let blocks: Vec<&[f32]> = q[rep * 32..(rep + 1) * 32].chunks_exact(dim).collect();
        assert_eq!(blocks.iter().filter(|b| b.iter().any(|&x| x != 0.0)).count(), 1);
        assert!(blocks.iter().any(|b| *b == &doc[..]));
    }
    // Filling copies that vector into every empty partition.
    let filled = Muvera::new(FdeConfig { fill_empty_partitions: true, ..cfg.clone() }).unwrap().encode_document(&doc).unwrap();
    for b in filled.chunks_exact(dim) {
        assert_eq!(b, &doc[..]);
    }
    // Query FDEs are sums (linear), document FDEs averages (scale-free in count).
    let two: Vec<f32> = doc.iter().chain(doc.iter()).copied().collect();
    let q2 = mv.encode_query(&two).unwrap();
    assert!(q2.iter().zip(&q).all(|(a, b)| (a - 2.0 * b).abs() < 1e-6));
    assert_eq!(mv.encode_document(&two).unwrap(), d);
    // Same seed, same encoder.
    assert_eq!(Muvera::new(cfg.clone()).unwrap().encode_query(&two).unwrap(), q2);
    assert_ne!(Muvera::new(FdeConfig { seed: 2, ..cfg }).unwrap().encode_query(&two).unwrap(), q2);
}

#[test]
fn chamfer_matches_naive() {
    let mut rng = Rng::new(8);
    for dim in [1usize, 3, 16, 33] {
        let q = unit_vectors(5, dim, &mut rng);
        let d = unit_vectors(7, dim, &mut rng);
        let naive: f64 = q
            .chunks_exact(dim)
            .map(|a| d.chunks_exact(dim).map(|b| dot(a, b)).fold(f64::NEG_INFINITY, f64::max))
            .sum();
        assert!((chamfer(&q, &d, dim) as f64 - naive).abs() < 1e-5);
    }
    assert_eq!(chamfer(&[], &[1.0, 2.0], 2), 0.0);
    assert!(chamfer(&[1.0, 2.0], &[], 2).is_nan());
    assert!(chamfer(&[1.0, 2.0], &[1.0], 2).is_nan());
    assert!(chamfer(&[1.0], &[1.0], 0).is_nan());
}

#[test]
fn muvera_errors() {
    let ok = FdeConfig { dim: 4, ..FdeConfig::default() };
    let code = |c: FdeConfig| Muvera::new(c).unwrap_err().code();
    assert_eq!(code(FdeConfig { dim: 0, ..ok.clone() }), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(FdeConfig { simhash_bits: 17, ..ok.clone() }), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(FdeConfig { repetitions: 0, ..ok.clone() }), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(FdeConfig { projection_dim: Some(0), ..ok.clone() }), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(FdeConfig { final_dim: Some(0), ..ok.clone() }), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(FdeConfig { simhash_bits: 16, repetitions: 1 << 12, ..ok.clone() }), "QUARRY_INVALID_ARGUMENT");
    let mv = Muvera::new(FdeConfig { repetitions: 2, ..ok }).unwrap();
    assert_eq!(mv.encode_query(&[]).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(mv.encode_document(&[]).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(mv.encode_query(&[1.0; 5]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert_eq!(mv.encode_document(&[1.0, 2.0, f32::NAN, 0.0]).unwrap_err().code(), "QUARRY_INVALID_INPUT");
}
