//! Every error path returns its typed error and stable code, never panics,
//! and leaves the cache unchanged.

mod common;
use common::*;
use quarry_kv::{KvCache, KvConfig, Method, Rope, RopeStyle};

fn code<T: std::fmt::Debug>(r: quarry_kv::Result<T>) -> &'static str {
    r.unwrap_err().code()
}

#[test]
fn config_errors() {
    let bad = |f: &dyn Fn(&mut KvConfig), m: Method| {
        let mut c = cfg(m, 2, 2, 64);
        f(&mut c);
        code(KvCache::new(c))
    };
    assert_eq!(bad(&|c| c.layers = 0, Method::F32), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.kv_heads = 0, Method::F32), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.head_dim = 0, Method::F32), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.head_dim = 5000, Method::F32), "QUARRY_INVALID_ARGUMENT");
    for m in Method::ALL {
        assert_eq!(bad(&|c| c.bits = 5, m), "QUARRY_UNSUPPORTED", "{m:?}");
        assert_eq!(bad(&|c| c.bits = 1, m), "QUARRY_UNSUPPORTED", "{m:?}");
    }
    assert_eq!(bad(&|c| c.bits = 8, Method::Q4_0), "QUARRY_UNSUPPORTED");
    for m in [Method::Kivi, Method::Gear, Method::Rotate, Method::MiKv] {
        assert_eq!(bad(&|c| c.group_size = 48, m), "QUARRY_INVALID_ARGUMENT", "{m:?}");
        assert_eq!(bad(&|c| c.group_size = 0, m), "QUARRY_INVALID_ARGUMENT", "{m:?}");
    }
    assert_eq!(bad(&|c| c.outlier_fraction = 0.9, Method::KvQuant), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.outlier_fraction = f32::NAN, Method::KvQuant), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.budget = 1.5, Method::MiKv), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.rank = 100, Method::Gear), "QUARRY_INVALID_ARGUMENT");
    let rope = Some(Rope { theta: 10000.0, style: RopeStyle::Half });
    assert_eq!(bad(&|c| c.rope = rope, Method::Kivi), "QUARRY_UNSUPPORTED");
    assert_eq!(bad(&|c| c.rope = Some(Rope { theta: f32::NAN, style: RopeStyle::Half }), Method::KvQuant), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(bad(&|c| c.head_dim = 96, Method::Rotate), "QUARRY_UNSUPPORTED");
    assert_eq!(bad(&|c| c.rotation_block = 24, Method::Rotate), "QUARRY_INVALID_ARGUMENT");
    assert_eq!(code(Method::from_name("int3")), "QUARRY_UNSUPPORTED");
    assert_eq!(Method::from_name("kivi").unwrap(), Method::Kivi);
}

#[test]
fn append_and_attend_errors() {
    for m in Method::ALL {
        let mut c = KvCache::new(cfg(m, 2, 2, 64)).unwrap();
        let mut rng = Rng::new(1);
        let k = rng.vec(2 * 3 * 64);
        // layer out of range
        assert_eq!(code(c.append(2, &k, &k)), "QUARRY_INVALID_ARGUMENT");
        assert_eq!(code(c.attend(2, &k[..128], None)), "QUARRY_INVALID_ARGUMENT");
        assert_eq!(code(c.dequantize(5)), "QUARRY_INVALID_ARGUMENT");
        assert_eq!(code(c.tokens(5)), "QUARRY_INVALID_ARGUMENT");
        assert_eq!(code(c.retained(5)), "QUARRY_INVALID_ARGUMENT");
        // shape mismatches
        assert_eq!(code(c.append(0, &k[..100], &k[..100])), "QUARRY_DIM_MISMATCH");
        assert_eq!(code(c.append(0, &k, &k[..128])), "QUARRY_DIM_MISMATCH");
        assert_eq!(code(c.append(0, &[], &[])), "QUARRY_DIM_MISMATCH");
        // attending an empty layer
        assert_eq!(code(c.attend(0, &k[..128], None)), "QUARRY_INVALID_ARGUMENT");
        // NaN / inf / huge rejected, nothing stored
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut kb = k.clone();
            kb[7] = bad;
            assert_eq!(code(c.append(0, &kb, &k)), "QUARRY_INVALID_INPUT");
            assert_eq!(code(c.append(0, &k, &kb)), "QUARRY_INVALID_INPUT");
        }
        let mut huge = k.clone();
        huge[0] = 1e6;
        if m == Method::F32 {
            c.append(1, &huge, &k).unwrap();
        } else {
            assert_eq!(code(c.append(1, &huge, &k)), "QUARRY_INVALID_INPUT");
        }
        assert_eq!(c.tokens(0).unwrap(), 0);
        c.append(0, &k, &k).unwrap();
        assert_eq!(c.tokens(0).unwrap(), 3);
        // query heads not a multiple of kv heads, wrong length, NaN query, bad scale
        assert_eq!(code(c.attend(0, &k[..3 * 64], None)), "QUARRY_DIM_MISMATCH");
        assert_eq!(code(c.attend(0, &k[..100], None)), "QUARRY_DIM_MISMATCH");
        assert_eq!(code(c.attend(0, &[], None)), "QUARRY_DIM_MISMATCH");
        let mut q = k[..256].to_vec();
        q[3] = f32::NAN;
        assert_eq!(code(c.attend(0, &q, None)), "QUARRY_INVALID_INPUT");
        assert_eq!(code(c.attend(0, &k[..256], Some(f32::INFINITY))), "QUARRY_INVALID_ARGUMENT");
        assert!(c.attend(0, &k[..256], None).is_ok());
        // calibrate after data
        assert_eq!(code(c.calibrate(0, &k, &k)), "QUARRY_INVALID_ARGUMENT");
        assert_eq!(code(c.calibrate(1 + 5, &k, &k)), "QUARRY_INVALID_ARGUMENT");
    }
}

#[test]
fn explicit_calibration_is_used() {
    let mut rng = Rng::new(5);
    let calib = keys(&mut rng, 1, 500, 64);
    let mut c = KvCache::new(cfg(Method::KvQuant, 1, 1, 64)).unwrap();
    c.calibrate(0, &calib, &calib).unwrap();
    let before = c.calibration(0).unwrap().unwrap();
    c.append(0, &calib[..64], &calib[..64]).unwrap();
    assert_eq!(c.calibration(0).unwrap().unwrap(), before);
}
