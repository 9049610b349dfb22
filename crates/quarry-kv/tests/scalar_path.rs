//! The whole cache on the scalar fallback (AVX2 disabled before first use):
//! fused attention still equals naive attention over `dequantize()`.
//! One test only, so nothing else in this binary probes the CPU first.

mod common;
use common::*;
use quarry_kv::reference::{attention, rel_error};
use quarry_kv::{KvCache, Method};

#[test]
fn scalar_fallback_matches_reference() {
    // SAFETY: single-threaded at this point (the only test in this binary).
    unsafe { std::env::set_var("QUARRY_KV_FORCE_SCALAR", "1") };
    assert!(!quarry_kv::kernels::has_avx2());
    let (kvh, d, n) = (2, 64, 300);
    let mut rng = Rng::new(77);
    for m in Method::ALL {
        for &bits in m.supported_bits() {
            let mut c = cfg(m, 1, kvh, d);
            c.bits = bits;
            c.group_size = 16;
            let mut cache = KvCache::new(c).unwrap();
            let k = keys(&mut rng, kvh, n, d);
            let v = rng.vec(kvh * n * d);
            cache.append(0, &k, &v).unwrap();
            let q = rng.vec(3 * kvh * d);
            let (dk, dv) = cache.dequantize(0).unwrap();
            let keep = cache.retained(0).unwrap();
            let want = attention(&q, &dk, &dv, 3 * kvh, kvh, d, 0.125, Some(&keep));
            let got = cache.attend(0, &q, None).unwrap();
            assert!(rel_error(&got, &want) < 2e-5, "{m:?} {bits}");
            // sanity: the scalar decode is a real quantizer, not a copy
            if bits <= 4 {
                assert!(rel_error(&dk, &k) > 1e-3);
            }
        }
    }
}
