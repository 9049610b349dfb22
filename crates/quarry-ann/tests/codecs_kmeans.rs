//! k-means: against a brute-force Lloyd reference, balanced sizes, empty-cluster
//! repair, determinism, errors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use quarry_ann::kmeans::{self, KMeans, KMeansConfig, Rng};
use quarry_ann::{AnnError, Control};

/// `n` points around `centers` Gaussian blobs (`spread` std), blob sizes
/// proportional to `weights`.
fn blobs(n: usize, dim: usize, centers: usize, spread: f32, weights: Option<&[f32]>, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let c: Vec<f32> = (0..centers * dim).map(|_| rng.gaussian() as f32 * 4.0).collect();
    let w: Vec<f32> = weights.map(|w| w.to_vec()).unwrap_or(vec![1.0; centers]);
    let total: f32 = w.iter().sum();
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        // Deterministic blob choice by cumulative weight.
        let u = (i as f32 + 0.5) / n as f32 * total;
        let mut acc = 0.0;
        let mut b = centers - 1;
        for (j, &wj) in w.iter().enumerate() {
            acc += wj;
            if u < acc {
                b = j;
                break;
            }
        }
        for d in 0..dim {
            out.push(c[b * dim + d] + rng.gaussian() as f32 * spread);
        }
    }
    out
}

fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| ((x - y) as f64).powi(2)).sum()
}

fn nearest(c: &[f32], dim: usize, x: &[f32]) -> (usize, f64) {
    c.chunks_exact(dim).enumerate().map(|(j, cj)| (j, l2(x, cj))).fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
}

fn inertia(c: &[f32], dim: usize, data: &[f32]) -> f64 {
    data.chunks_exact(dim).map(|x| nearest(c, dim, x).1).sum()
}

/// Plain Lloyd from `k` uniformly drawn points, in f64, until no change.
fn reference_lloyd(data: &[f32], dim: usize, k: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    let mut rng = Rng::new(seed);
    let idx = rng.sample_indices(n, k);
    let mut c: Vec<f32> = idx.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].to_vec()).collect();
    let mut assign = vec![usize::MAX; n];
    for _ in 0..200 {
        let new: Vec<usize> = data.chunks_exact(dim).map(|x| nearest(&c, dim, x).0).collect();
        if new == assign {
            break;
        }
        assign = new;
        let mut sum = vec![0f64; k * dim];
        let mut cnt = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            cnt[a] += 1;
            for d in 0..dim {
                sum[a * dim + d] += data[i * dim + d] as f64;
            }
        }
        for j in 0..k {
            if cnt[j] > 0 {
                for d in 0..dim {
                    c[j * dim + d] = (sum[j * dim + d] / cnt[j] as f64) as f32;
                }
            }
        }
    }
    c
}

fn cfg(k: usize) -> KMeansConfig {
    KMeansConfig { k, iterations: 50, seed: 7, max_points_per_centroid: 0, ..KMeansConfig::default() }
}

#[test]
fn inertia_matches_or_beats_reference_lloyd() {
    // dim 8 takes the fused small-dim assignment, dim 12 the GEMM one.
    for (seed, dim) in [(0u64, 8usize), (1, 12), (2, 8), (3, 12)] {
        let data = blobs(600, dim, 12, 0.6, None, seed);
        let k = 12;
        let km = kmeans::train(&data, dim, &KMeansConfig { seed, ..cfg(k) }, Control::none()).unwrap();
        assert_eq!(km.k(), k);
        let ours = inertia(&km.centroids, dim, &data);
        // Best of several reference restarts: k-means++ seeding must be no worse than 5% above it.
        let reference = (0..3).map(|r| inertia(&reference_lloyd(&data, dim, k, seed * 10 + r), dim, &data)).fold(f64::INFINITY, f64::min);
        assert!(ours <= reference * 1.05, "seed {seed}: ours {ours} reference {reference}");
        let reported = km.inertia(&data).unwrap();
        assert!((reported - ours).abs() <= 1e-3 * ours.max(1.0), "{reported} vs {ours}");
    }
}

#[test]
fn converged_centroids_are_a_lloyd_fixed_point() {
    for dim in [5usize, 20] {
        fixed_point(dim);
    }
}

fn fixed_point(dim: usize) {
    let data = blobs(400, dim, 6, 0.3, None, 3);
    let km = kmeans::train(&data, dim, &KMeansConfig { iterations: 100, ..cfg(6) }, Control::none()).unwrap();
    let assign = km.assign(&data);
    for (i, x) in data.chunks_exact(dim).enumerate() {
        // The GEMM-based assignment agrees with exact nearest-centroid search.
        assert_eq!(assign[i].0 as usize, nearest(&km.centroids, dim, x).0);
        assert!((assign[i].1 as f64 - nearest(&km.centroids, dim, x).1).abs() < 1e-3);
    }
    for j in 0..6 {
        let members: Vec<&[f32]> = data.chunks_exact(dim).zip(&assign).filter(|(_, a)| a.0 as usize == j).map(|(x, _)| x).collect();
        assert!(!members.is_empty());
        for d in 0..dim {
            let mean = members.iter().map(|x| x[d] as f64).sum::<f64>() / members.len() as f64;
            assert!((mean - km.centroids[j * dim + d] as f64).abs() < 1e-4, "centroid {j} dim {d}");
        }
    }
}

#[test]
fn deterministic_across_runs_and_thread_counts() {
    for dim in [6usize, 24] {
        deterministic(dim);
    }
}

fn deterministic(dim: usize) {
    let data = blobs(3000, dim, 20, 1.0, None, 11);
    let c = KMeansConfig { k: 32, iterations: 10, seed: 5, max_points_per_centroid: 40, ..KMeansConfig::default() };
    let a = kmeans::train(&data, dim, &c, Control::none()).unwrap();
    let b = kmeans::train(&data, dim, &c, Control::none()).unwrap();
    assert_eq!(a, b);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    assert_eq!(one.install(|| kmeans::train(&data, dim, &c, Control::none()).unwrap()), a);
    assert_eq!(three.install(|| kmeans::train(&data, dim, &c, Control::none()).unwrap()), a);
    let other = kmeans::train(&data, dim, &KMeansConfig { seed: 6, ..c.clone() }, Control::none()).unwrap();
    assert_ne!(other, a);
}

#[test]
fn balanced_sizes_are_bounded() {
    let dim = 4;
    let n = 2000;
    // 80% of the points in one blob.
    let data = blobs(n, dim, 4, 0.8, Some(&[8.0, 0.7, 0.7, 0.6]), 2);
    let k = 8;
    for factor in [1.0f32, 1.2, 2.0] {
        let km = kmeans::train(&data, dim, &KMeansConfig { balance: Some(factor), ..cfg(k) }, Control::none()).unwrap();
        let cap = (factor as f64 * n as f64 / k as f64).ceil() as usize;
        let a = km.assign_balanced(&data, factor).unwrap();
        let mut sizes = vec![0usize; k];
        for &(c, d) in &a {
            sizes[c as usize] += 1;
            assert!(d >= 0.0);
        }
        assert!(sizes.iter().all(|&s| s <= cap), "factor {factor}: sizes {sizes:?} cap {cap}");
        assert_eq!(sizes.iter().sum::<usize>(), n);
    }
    // A factor of k never binds: the balanced assignment is the nearest one.
    let km = kmeans::train(&data, dim, &cfg(k), Control::none()).unwrap();
    let loose = km.assign_balanced(&data, k as f32).unwrap();
    let plain = km.assign(&data);
    assert_eq!(loose.iter().map(|a| a.0).collect::<Vec<_>>(), plain.iter().map(|a| a.0).collect::<Vec<_>>());
    // Unbalanced k-means on this data has a cluster above the 1.2 bound.
    let mut sizes = vec![0usize; k];
    plain.iter().for_each(|a| sizes[a.0 as usize] += 1);
    assert!(sizes.iter().max().unwrap() > &((1.2 * n as f64 / k as f64).ceil() as usize), "{sizes:?}");
}

#[test]
fn empty_clusters_are_repaired_on_duplicate_heavy_data() {
    let dim = 3;
    // 5,000 copies of one point and 5 distinct others: k-means++ seeding on
    // its sub-sample almost surely sees only the duplicates, so training
    // starts with coinciding centroids and must split its way out.
    let mut data = Vec::new();
    for _ in 0..5000 {
        data.extend_from_slice(&[1.0, 1.0, 1.0]);
    }
    for i in 0..5 {
        data.extend_from_slice(&[10.0 * (i + 2) as f32, -3.0 * i as f32, 0.5]);
    }
    for seed in 0..3 {
        let km = kmeans::train(&data, dim, &KMeansConfig { k: 6, seed, ..cfg(6) }, Control::none()).unwrap();
        let a = km.assign(&data);
        let mut sizes = [0usize; 6];
        a.iter().for_each(|x| sizes[x.0 as usize] += 1);
        assert!(sizes.iter().all(|&s| s > 0), "seed {seed}: {sizes:?}");
        assert!(km.inertia(&data).unwrap() < 1e-6);
    }
    // Fewer distinct points than k: training still succeeds (some clusters stay empty).
    let same = vec![2.0f32; 30];
    let km = kmeans::train(&same, 3, &cfg(4), Control::none()).unwrap();
    assert_eq!(km.k(), 4);
    assert!(km.centroids.iter().all(|&x| x == 2.0));
}

#[test]
fn spherical_centroids_are_unit_and_ip_assignment_works() {
    let dim = 8;
    let mut data = blobs(500, dim, 5, 0.3, None, 4);
    for r in data.chunks_exact_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        r.iter_mut().for_each(|x| *x /= n);
    }
    let km = kmeans::train(&data, dim, &KMeansConfig { spherical: true, ..cfg(5) }, Control::none()).unwrap();
    for c in km.centroids.chunks_exact(dim) {
        let n: f32 = c.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5);
    }
    let ip = km.assign_ip(&data).unwrap();
    let l2 = km.assign(&data);
    for (a, b) in ip.iter().zip(&l2) {
        assert_eq!(a.0, b.0);
    }
}

#[test]
fn subsampling_and_nearest_lists() {
    let dim = 4;
    let data = blobs(20_000, dim, 16, 0.5, None, 9);
    let c = KMeansConfig { k: 16, iterations: 15, seed: 1, max_points_per_centroid: 64, ..KMeansConfig::default() };
    let km = kmeans::train(&data, dim, &c, Control::none()).unwrap();
    let full = kmeans::train(&data, dim, &KMeansConfig { max_points_per_centroid: 0, ..c.clone() }, Control::none()).unwrap();
    let (a, b) = (km.inertia(&data).unwrap(), full.inertia(&data).unwrap());
    assert!(a <= b * 1.3, "sub-sampled {a} vs full {b}");
    let (ids, dists) = km.nearest(&data[..10 * dim], 3).unwrap();
    assert_eq!(ids.len(), 30);
    for q in 0..10 {
        assert_eq!(ids[q * 3], km.assign(&data[q * dim..(q + 1) * dim])[0].0);
        assert!(dists[q * 3] <= dists[q * 3 + 1] && dists[q * 3 + 1] <= dists[q * 3 + 2]);
    }
}

#[test]
fn progress_and_cancellation() {
    let dim = 4;
    let data = blobs(1000, dim, 8, 0.5, None, 1);
    let calls = AtomicUsize::new(0);
    let last = std::sync::Mutex::new(0.0f64);
    let progress = |stage: &str, f: f64| {
        assert!(stage.starts_with("kmeans"));
        assert!((0.0..=1.0).contains(&f));
        calls.fetch_add(1, Ordering::Relaxed);
        *last.lock().unwrap() = f;
    };
    kmeans::train(&data, dim, &cfg(8), Control::new(Some(&progress), None)).unwrap();
    assert!(calls.load(Ordering::Relaxed) >= 2);
    assert_eq!(*last.lock().unwrap(), 1.0);
    let cancel = AtomicBool::new(true);
    let err = kmeans::train(&data, dim, &cfg(8), Control::new(None, Some(&cancel))).unwrap_err();
    assert!(matches!(err, AnnError::Aborted));
    assert_eq!(err.code(), "QUARRY_ABORTED");
}

#[test]
fn errors() {
    let data = vec![0.5f32; 40];
    let code = |r: Result<KMeans, AnnError>| r.unwrap_err().code();
    assert_eq!(code(kmeans::train(&data, 4, &cfg(0), Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(kmeans::train(&data, 4, &cfg(11), Control::none())), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(kmeans::train(&data, 3, &cfg(2), Control::none())), "QUARRY_DIM_MISMATCH");
    assert_eq!(code(kmeans::train(&data, 0, &cfg(2), Control::none())), "QUARRY_DIM_MISMATCH");
    assert_eq!(code(kmeans::train(&[], 4, &cfg(1), Control::none())), "QUARRY_INVALID_ARGUMENT");
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut d = data.clone();
        d[17] = bad;
        assert_eq!(code(kmeans::train(&d, 4, &cfg(2), Control::none())), "QUARRY_INVALID_INPUT");
    }
    for f in [0.5f32, f32::NAN, -1.0] {
        assert_eq!(code(kmeans::train(&data, 4, &KMeansConfig { balance: Some(f), ..cfg(2) }, Control::none())), "QUARRY_INVALID_ARGUMENT");
    }
    let km = kmeans::train(&blobs(50, 4, 2, 0.1, None, 0), 4, &cfg(2), Control::none()).unwrap();
    assert_eq!(km.try_assign(&[1.0; 5]).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    assert!(km.assign(&[1.0; 5]).is_empty());
    assert!(km.assign(&[]).is_empty());
    assert_eq!(km.nearest(&[0.0; 4], 3).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(km.nearest(&[0.0; 4], 0).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(km.assign_balanced(&[0.0; 4], 0.9).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(km.assign_balanced(&[f32::NAN; 4], 1.5).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    let empty = KMeans { dim: 4, centroids: Vec::new() };
    assert_eq!(empty.k(), 0);
    assert!(empty.assign(&[0.0; 4]).is_empty());
    assert_eq!(empty.try_assign(&[0.0; 4]).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");
}
