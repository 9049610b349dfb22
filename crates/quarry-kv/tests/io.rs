//! Save/load round trips and corruption rejection.

mod common;
use common::*;
use quarry_kv::{KvCache, Method, Rope, RopeStyle};

fn filled(m: Method) -> KvCache {
    let mut c = cfg(m, 2, 2, 64);
    c.residual = c.residual.min(8);
    c.group_size = 16;
    if m == Method::KvQuant {
        c.rope = Some(Rope { theta: 10000.0, style: RopeStyle::Half });
    }
    let mut cache = KvCache::new(c).unwrap();
    let mut rng = Rng::new(8);
    for n in [50usize, 1, 1, 20] {
        for l in 0..2 {
            cache.append(l, &keys(&mut rng, 2, n, 64), &rng.vec(2 * n * 64)).unwrap();
            cache.attend(l, &rng.vec(4 * 64), None).unwrap();
        }
    }
    cache
}

#[test]
fn roundtrip_every_method() {
    let dir = tempfile::tempdir().unwrap();
    for m in Method::ALL {
        let mut cache = filled(m);
        let path = dir.path().join(format!("{}.qkv", m.name()));
        cache.save(&path).unwrap();
        assert!(!dir.path().join(format!("{}.qkv.tmp", m.name())).exists());
        let mut back = KvCache::load(&path).unwrap();
        assert_eq!(back, cache, "{m:?}");
        assert_eq!(back.bytes(), cache.bytes());
        let q = Rng::new(1).vec(4 * 64);
        assert_eq!(back.attend(1, &q, None).unwrap(), cache.attend(1, &q, None).unwrap());
        // the loaded cache keeps working
        back.append(0, &q[..128], &q[128..]).unwrap();
    }
}

#[test]
fn corruption_is_rejected() {
    for m in [Method::Kivi, Method::KvQuant, Method::MiKv, Method::H2o, Method::Rotate, Method::Gear] {
        let bytes = filled(m).to_bytes();
        // every truncation point in the header, then a sample through the payload
        let cuts: Vec<usize> = (0..40).chain((40..bytes.len()).step_by(97)).collect();
        for cut in cuts {
            let e = KvCache::from_bytes(&bytes[..cut]).unwrap_err();
            assert_eq!(e.code(), "QUARRY_CORRUPT_INDEX", "cut {cut}");
        }
        for pos in (0..bytes.len()).step_by(53) {
            let mut b = bytes.clone();
            b[pos] ^= 0x5a;
            assert_eq!(KvCache::from_bytes(&b).unwrap_err().code(), "QUARRY_CORRUPT_INDEX", "flip at {pos}");
        }
        let mut b = bytes.clone();
        b.push(0);
        assert_eq!(KvCache::from_bytes(&b).unwrap_err().code(), "QUARRY_CORRUPT_INDEX");
    }
}

#[test]
fn older_format_versions_are_refused() {
    // Version 1 stored KIVI/GEAR key codes row-major; reading such a file
    // as version 2 would give wrong keys, so it is refused by its header.
    let mut b = filled(Method::Kivi).to_bytes();
    assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 2);
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    let e = KvCache::from_bytes(&b).unwrap_err();
    assert_eq!(e.code(), "QUARRY_CORRUPT_INDEX");
    assert!(e.to_string().contains("version 1"), "{e}");
}

#[test]
fn consistent_checksum_but_bad_structure_is_rejected() {
    // An attacker (or bug) that also fixes the checksum must still not
    // cause a panic: re-sign altered payloads and load them.
    let bytes = filled(Method::MiKv).to_bytes();
    let mut rng = Rng::new(3);
    for _ in 0..300 {
        let mut b = bytes.clone();
        let pos = 32 + (rng.next() as usize) % (b.len() - 32);
        b[pos] = rng.next() as u8;
        let sum = xxhash_rust::xxh3::xxh3_64(&b[32..]);
        b[24..32].copy_from_slice(&sum.to_le_bytes());
        let _ = KvCache::from_bytes(&b).map(|mut c| {
            // whatever loads must be usable without panicking
            let _ = c.attend(0, &vec![0.1; 4 * 64], None);
            let _ = c.dequantize(1);
        });
    }
}

#[test]
fn io_errors() {
    let e = KvCache::load("/nonexistent/dir/x.qkv").unwrap_err();
    assert_eq!(e.code(), "QUARRY_IO");
    let e = filled(Method::F16).save("/nonexistent/dir/x.qkv").unwrap_err();
    assert_eq!(e.code(), "QUARRY_IO");
}
