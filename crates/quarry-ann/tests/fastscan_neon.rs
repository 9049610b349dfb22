//! Runs the fast-scan Neon kernel (`src/fastscan/neon.rs`, the very file
//! the library compiles on AArch64) on any host: the file is compiled here
//! against scalar models of the intrinsics it uses, with its
//! `#[target_feature]` attributes left out, and its block sums are checked
//! against the scalar level through the public API. This type-checks the
//! file without an AArch64 toolchain and checks its logic (nibble split,
//! lane order, widening); the intrinsics' semantics are as modelled from
//! Arm's descriptions, with the standard library's signatures.

/// Scalar models of the `core::arch::aarch64` intrinsics `neon.rs` uses,
/// same names and signatures (loads/stores are `unsafe fn`).
#[allow(non_camel_case_types, dead_code)]
mod arch {
    #[derive(Clone, Copy, Debug)]
    pub struct uint8x8_t(pub [u8; 8]);
    #[derive(Clone, Copy, Debug)]
    pub struct uint8x16_t(pub [u8; 16]);
    #[derive(Clone, Copy, Debug)]
    pub struct uint16x8_t(pub [u16; 8]);

    pub unsafe fn vld1q_u8(ptr: *const u8) -> uint8x16_t {
        uint8x16_t(unsafe { ptr.cast::<[u8; 16]>().read_unaligned() })
    }
    pub unsafe fn vst1q_u16(ptr: *mut u16, a: uint16x8_t) {
        unsafe { ptr.cast::<[u16; 8]>().write_unaligned(a.0) }
    }
    pub fn vdupq_n_u8(value: u8) -> uint8x16_t {
        uint8x16_t([value; 16])
    }
    pub fn vdupq_n_u16(value: u16) -> uint16x8_t {
        uint16x8_t([value; 8])
    }
    pub fn vandq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        uint8x16_t(std::array::from_fn(|i| a.0[i] & b.0[i]))
    }
    /// USHR: logical shift right of each byte (1 ≤ N ≤ 8).
    pub fn vshrq_n_u8<const N: i32>(a: uint8x16_t) -> uint8x16_t {
        assert!((1..=8).contains(&N));
        uint8x16_t(a.0.map(|x| ((x as u32) >> N) as u8))
    }
    /// TBL (one register): index ≥ 16 gives 0.
    pub fn vqtbl1q_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
        uint8x16_t(b.0.map(|i| if i < 16 { a.0[i as usize] } else { 0 }))
    }
    pub fn vget_low_u8(a: uint8x16_t) -> uint8x8_t {
        uint8x8_t(std::array::from_fn(|i| a.0[i]))
    }
    /// UADDW: a + zero-extended b, wrapping in u16.
    pub fn vaddw_u8(a: uint16x8_t, b: uint8x8_t) -> uint16x8_t {
        uint16x8_t(std::array::from_fn(|i| a.0[i].wrapping_add(b.0[i] as u16)))
    }
    /// UADDW2: a + zero-extended upper half of b, wrapping in u16.
    pub fn vaddw_high_u8(a: uint16x8_t, b: uint8x16_t) -> uint16x8_t {
        uint16x8_t(std::array::from_fn(|i| a.0[i].wrapping_add(b.0[8 + i] as u16)))
    }
}

macro_rules! neon_target {
    ($($item:item)*) => { $($item)* };
}

#[path = "../src/fastscan/neon.rs"]
mod neon;

use quarry_ann::fastscan::{BLOCK, QuantizedLut, ScanLevel, block_bytes, pack, pairs, scan_with_level};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The emulated Neon sums of every block, truncated to n.
fn neon_sums(packed: &[u8], n: usize, lut: &QuantizedLut) -> Vec<u16> {
    let mut out = Vec::with_capacity(n.div_ceil(BLOCK) * BLOCK);
    for block in packed.chunks_exact(block_bytes(lut.m())) {
        // SAFETY: the models need no CPU feature; block and tables hold pairs × 32 bytes.
        out.extend(unsafe { neon::block_sums(block.as_ptr(), lut.tables().as_ptr(), pairs(lut.m())) });
    }
    out.truncate(n);
    out
}

fn check(codes: &[u8], m: usize, lut_f32: &[f32]) {
    let n = codes.len() / m;
    let lut = QuantizedLut::new(lut_f32, m).unwrap();
    let mut packed = Vec::new();
    pack(codes, m, &mut packed).unwrap();
    let mut expect = vec![0u16; n];
    scan_with_level(ScanLevel::Scalar, &packed, n, &lut, &mut expect).unwrap();
    assert_eq!(neon_sums(&packed, n, &lut), expect, "n {n} m {m}");
}

#[test]
fn emulated_neon_matches_scalar() {
    let mut rng = Rng(17);
    for &(m, n) in &[(1, 1), (2, 32), (3, 33), (16, 300), (50, 300), (63, 95), (200, 64), (256, 40), (300, 70)] {
        let codes: Vec<u8> = (0..n * m).map(|_| (rng.next() & 15) as u8).collect();
        let lut: Vec<f32> = (0..m * 16).map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect();
        check(&codes, m, &lut);
    }
    for _ in 0..30 {
        let m = 1 + (rng.next() % 70) as usize;
        let n = (rng.next() % 200) as usize;
        let codes: Vec<u8> = (0..n * m).map(|_| (rng.next() & 15) as u8).collect();
        let lut: Vec<f32> = (0..m * 16).map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32).collect();
        check(&codes, m, &lut);
    }
}

/// Every vector takes each table's maximum: the largest sums (no u16 wrap).
#[test]
fn emulated_neon_worst_case_sums() {
    for &m in &[255usize, 256, 257, 400] {
        let lut: Vec<f32> = (0..m * 16).map(|i| if i % 16 == 15 { 1.0 } else { 0.0 }).collect();
        check(&vec![15u8; 40 * m], m, &lut);
    }
}
