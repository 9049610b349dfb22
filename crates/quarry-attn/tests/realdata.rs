mod common;

use common::{Planted, planted};
use quarry_attn::realdata::*;
use quarry_attn::*;

/// A synthetic dump in the real format goes through the same loader and
/// evaluation the example runs on model dumps.
#[test]
fn synthetic_dump_round_trips_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let (heads, kv_heads, n, d) = (4, 2, 512, 64);
    let meta = DumpMeta { model: "synthetic".into(), layers: 2, heads, kv_heads, head_dim: d, tokens: n };
    write_meta(dir.path(), &meta).unwrap();
    let mut layers = Vec::new();
    for l in 0..2 {
        let plant = Planted { columns: vec![0, 1, 200], slashes: vec![0], strength: 8.0 };
        let (q, k4, v4) = planted(heads, n, d, &plant, 50 + l as u64);
        // Keep the first kv_heads heads of K/V (GQA dump).
        let k = k4[..kv_heads * n * d].to_vec();
        let v = v4[..kv_heads * n * d].to_vec();
        write_layer(dir.path(), l, &q, &k, &v).unwrap();
        layers.push((q, k, v));
    }
    assert_eq!(read_meta(dir.path()).unwrap(), meta);
    let (q, k, v) = read_layer(dir.path(), &meta, 1).unwrap();
    assert_eq!((&q, &k, &v), (&layers[1].0, &layers[1].1, &layers[1].2));
    assert_eq!(read_layer(dir.path(), &meta, 2).unwrap_err().code(), "QUARRY_INVALID_ARGUMENT");

    let shape = AttnShape::prefill(heads, kv_heads, n, d);
    let plan = EvalPlan::default_for(n);
    let reports = evaluate_layer(&q, &k, &v, &shape, &AttnOptions::causal(), &plan).unwrap();
    assert_eq!(reports.len(), plan.methods.len() + 1);
    for r in &reports {
        assert!(r.density > 0.0 && r.density <= 1.0, "{r:?}");
        assert!((0.0..=1.0).contains(&r.recall.mean), "{r:?}");
        assert!(r.output_error.is_finite() && r.seconds > 0.0 && r.dense_seconds > 0.0);
    }
    let search = reports.last().unwrap();
    assert!(search.recall.per_head.iter().all(|&x| x >= 0.95 - 1e-9), "{search:?}");

    // Truncation keeps the first tokens of every head.
    let t = truncate_tokens(&k, kv_heads, n, d, 100);
    assert_eq!(t.len(), kv_heads * 100 * d);
    assert_eq!(&t[100 * d..101 * d], &k[n * d..n * d + d]);

    // A file of the wrong size is a typed error, not a panic.
    std::fs::write(dir.path().join("L00.v.f32"), [0u8; 12]).unwrap();
    assert_eq!(read_layer(dir.path(), &meta, 0).unwrap_err().code(), "QUARRY_DIM_MISMATCH");
    std::fs::write(dir.path().join("meta.json"), "{\"layers\": 1}").unwrap();
    assert_eq!(read_meta(dir.path()).unwrap_err().code(), "QUARRY_IO");
    // A dump whose model scales attention other than by 1/sqrt(head_dim) is refused; the
    // default scale written out is accepted.
    let with_scale = |s: f64| {
        format!(r#"{{"model":"m","layers":2,"heads":{heads},"kv_heads":{kv_heads},"head_dim":{d},"tokens":{n},"attention_scale":{s}}}"#)
    };
    std::fs::write(dir.path().join("meta.json"), with_scale(0.125)).unwrap();
    assert_eq!(read_meta(dir.path()).unwrap().head_dim, d);
    std::fs::write(dir.path().join("meta.json"), with_scale(0.0625)).unwrap();
    assert_eq!(read_meta(dir.path()).unwrap_err().code(), "QUARRY_IO");
}
