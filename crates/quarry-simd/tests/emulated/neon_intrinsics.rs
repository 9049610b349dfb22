//! Scalar models of the `core::arch::aarch64` intrinsics that `src/arm/neon.rs`
//! uses, with the same names, signatures and safety (pointer loads are
//! `unsafe fn`), written from Arm's instruction descriptions. They let the
//! Neon kernels be type-checked and run on hosts without an AArch64
//! toolchain; `tests/emulated/check_signatures.py` compares these signatures
//! with the ones in the standard library's documentation.
#![allow(non_camel_case_types, dead_code, clippy::needless_range_loop)]

macro_rules! vector_types {
    ($($name:ident = [$e:ty; $n:literal];)*) => {$(
        #[derive(Clone, Copy, Debug)]
        pub struct $name(pub [$e; $n]);
    )*};
}

vector_types! {
    float32x4_t = [f32; 4];
    int8x8_t = [i8; 8];
    int8x16_t = [i8; 16];
    uint8x8_t = [u8; 8];
    uint8x16_t = [u8; 16];
    int16x8_t = [i16; 8];
    uint16x4_t = [u16; 4];
    uint16x8_t = [u16; 8];
    int32x4_t = [i32; 4];
    uint32x4_t = [u32; 4];
}

fn map<A: Copy, R: Copy + Default, const N: usize>(a: [A; N], f: impl Fn(A) -> R) -> [R; N] {
    let mut r = [R::default(); N];
    for i in 0..N {
        r[i] = f(a[i]);
    }
    r
}

fn zip<A: Copy, B: Copy, R: Copy + Default, const N: usize>(a: [A; N], b: [B; N], f: impl Fn(A, B) -> R) -> [R; N] {
    let mut r = [R::default(); N];
    for i in 0..N {
        r[i] = f(a[i], b[i]);
    }
    r
}

// ----------------------------------------------------------------- loads --

pub unsafe fn vld1q_f32(ptr: *const f32) -> float32x4_t {
    float32x4_t(unsafe { ptr.cast::<[f32; 4]>().read_unaligned() })
}
pub unsafe fn vld1_u16(ptr: *const u16) -> uint16x4_t {
    uint16x4_t(unsafe { ptr.cast::<[u16; 4]>().read_unaligned() })
}
pub unsafe fn vld1q_s8(ptr: *const i8) -> int8x16_t {
    int8x16_t(unsafe { ptr.cast::<[i8; 16]>().read_unaligned() })
}
pub unsafe fn vld1q_u8(ptr: *const u8) -> uint8x16_t {
    uint8x16_t(unsafe { ptr.cast::<[u8; 16]>().read_unaligned() })
}

// ---------------------------------------------------------------- floats --

pub fn vdupq_n_f32(value: f32) -> float32x4_t {
    float32x4_t([value; 4])
}
/// FMLA: `a + b * c`, one rounding.
pub fn vfmaq_f32(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
    let mut r = [0f32; 4];
    for i in 0..4 {
        r[i] = b.0[i].mul_add(c.0[i], a.0[i]);
    }
    float32x4_t(r)
}
pub fn vaddq_f32(a: float32x4_t, b: float32x4_t) -> float32x4_t {
    float32x4_t(zip(a.0, b.0, |x, y| x + y))
}
pub fn vsubq_f32(a: float32x4_t, b: float32x4_t) -> float32x4_t {
    float32x4_t(zip(a.0, b.0, |x, y| x - y))
}
/// FADDP twice: `(a0 + a1) + (a2 + a3)`.
pub fn vaddvq_f32(a: float32x4_t) -> f32 {
    (a.0[0] + a.0[1]) + (a.0[2] + a.0[3])
}

// ------------------------------------------------------------ u32 lanes --

pub fn vdupq_n_u32(value: u32) -> uint32x4_t {
    uint32x4_t([value; 4])
}
pub fn vdupq_n_s32(value: i32) -> int32x4_t {
    int32x4_t([value; 4])
}
/// UXTL: zero-extend.
pub fn vmovl_u16(a: uint16x4_t) -> uint32x4_t {
    uint32x4_t(map(a.0, u32::from))
}
pub fn vandq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
    uint32x4_t(zip(a.0, b.0, |x, y| x & y))
}
pub fn vorrq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
    uint32x4_t(zip(a.0, b.0, |x, y| x | y))
}
pub fn vaddq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
    uint32x4_t(zip(a.0, b.0, u32::wrapping_add))
}
pub fn vaddq_s32(a: int32x4_t, b: int32x4_t) -> int32x4_t {
    int32x4_t(zip(a.0, b.0, i32::wrapping_add))
}
/// CMHS: all ones where `a >= b` (unsigned).
pub fn vcgeq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
    uint32x4_t(zip(a.0, b.0, |x, y| if x >= y { u32::MAX } else { 0 }))
}
/// CMHI with swapped operands: all ones where `a < b` (unsigned).
pub fn vcltq_u32(a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
    uint32x4_t(zip(a.0, b.0, |x, y| if x < y { u32::MAX } else { 0 }))
}
/// BSL: bits of `b` where `a` is set, bits of `c` elsewhere.
pub fn vbslq_u32(a: uint32x4_t, b: uint32x4_t, c: uint32x4_t) -> uint32x4_t {
    let mut r = [0u32; 4];
    for i in 0..4 {
        r[i] = (a.0[i] & b.0[i]) | (!a.0[i] & c.0[i]);
    }
    uint32x4_t(r)
}
/// SHL: `a << N`, N in 0..=31.
pub fn vshlq_n_u32<const N: i32>(a: uint32x4_t) -> uint32x4_t {
    assert!((0..=31).contains(&N));
    uint32x4_t(map(a.0, |x| x << N))
}
/// USHLL/SHLL: zero-extend, then `<< N`, N in 0..=16.
pub fn vshll_n_u16<const N: i32>(a: uint16x4_t) -> uint32x4_t {
    assert!((0..=16).contains(&N));
    uint32x4_t(map(a.0, |x| (x as u32) << N))
}
pub fn vreinterpretq_f32_u32(a: uint32x4_t) -> float32x4_t {
    float32x4_t(map(a.0, f32::from_bits))
}
pub fn vreinterpretq_u32_f32(a: float32x4_t) -> uint32x4_t {
    uint32x4_t(map(a.0, f32::to_bits))
}
/// ADDV: sum across lanes, modulo 2^32.
pub fn vaddvq_u32(a: uint32x4_t) -> u32 {
    a.0.iter().fold(0u32, |s, &x| s.wrapping_add(x))
}
/// ADDV: sum across lanes, modulo 2^32.
pub fn vaddvq_s32(a: int32x4_t) -> i32 {
    a.0.iter().fold(0i32, |s, &x| s.wrapping_add(x))
}

// ------------------------------------------------------- 8/16-bit lanes --

pub fn vget_low_s8(a: int8x16_t) -> int8x8_t {
    int8x8_t(a.0[..8].try_into().unwrap())
}
pub fn vget_low_u8(a: uint8x16_t) -> uint8x8_t {
    uint8x8_t(a.0[..8].try_into().unwrap())
}
/// SMULL: widening multiply (exact in i16 for i8 operands).
pub fn vmull_s8(a: int8x8_t, b: int8x8_t) -> int16x8_t {
    int16x8_t(zip(a.0, b.0, |x, y| x as i16 * y as i16))
}
/// SMULL2: widening multiply of the upper halves.
pub fn vmull_high_s8(a: int8x16_t, b: int8x16_t) -> int16x8_t {
    let hi = |v: int8x16_t| int8x8_t(v.0[8..].try_into().unwrap());
    vmull_s8(hi(a), hi(b))
}
/// UMULL: widening multiply.
pub fn vmull_u8(a: uint8x8_t, b: uint8x8_t) -> uint16x8_t {
    uint16x8_t(zip(a.0, b.0, |x, y| x as u16 * y as u16))
}
/// UMULL2: widening multiply of the upper halves.
pub fn vmull_high_u8(a: uint8x16_t, b: uint8x16_t) -> uint16x8_t {
    let hi = |v: uint8x16_t| uint8x8_t(v.0[8..].try_into().unwrap());
    vmull_u8(hi(a), hi(b))
}
/// SADALP: `a[i] + b[2i] + b[2i+1]`, widened, modulo 2^32.
pub fn vpadalq_s16(a: int32x4_t, b: int16x8_t) -> int32x4_t {
    let mut r = a.0;
    for i in 0..4 {
        r[i] = r[i].wrapping_add(b.0[2 * i] as i32 + b.0[2 * i + 1] as i32);
    }
    int32x4_t(r)
}
/// UADALP: `a[i] + b[2i] + b[2i+1]`, widened, modulo 2^32.
pub fn vpadalq_u16(a: uint32x4_t, b: uint16x8_t) -> uint32x4_t {
    let mut r = a.0;
    for i in 0..4 {
        r[i] = r[i].wrapping_add(b.0[2 * i] as u32 + b.0[2 * i + 1] as u32);
    }
    uint32x4_t(r)
}
/// UADDLP: `a[2i] + a[2i+1]`, widened.
pub fn vpaddlq_u8(a: uint8x16_t) -> uint16x8_t {
    let mut r = [0u16; 8];
    for i in 0..8 {
        r[i] = a.0[2 * i] as u16 + a.0[2 * i + 1] as u16;
    }
    uint16x8_t(r)
}
/// SABD: `|a - b|` computed exactly, truncated to 8 bits.
pub fn vabdq_s8(a: int8x16_t, b: int8x16_t) -> int8x16_t {
    int8x16_t(zip(a.0, b.0, |x, y| (x as i16 - y as i16).unsigned_abs() as u8 as i8))
}
/// UABD: `|a - b|`.
pub fn vabdq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
    uint8x16_t(zip(a.0, b.0, |x, y| x.abs_diff(y)))
}
pub fn vreinterpretq_u8_s8(a: int8x16_t) -> uint8x16_t {
    uint8x16_t(map(a.0, |x| x as u8))
}
pub fn vreinterpretq_s8_u8(a: uint8x16_t) -> int8x16_t {
    int8x16_t(map(a.0, |x| x as i8))
}
/// Little-endian lane order, as on AArch64 Linux/macOS/Windows.
pub fn vreinterpretq_u32_u8(a: uint8x16_t) -> uint32x4_t {
    let mut r = [0u32; 4];
    for i in 0..4 {
        r[i] = u32::from_le_bytes(a.0[4 * i..4 * i + 4].try_into().unwrap());
    }
    uint32x4_t(r)
}
/// CNT: population count per byte.
pub fn vcntq_u8(a: uint8x16_t) -> uint8x16_t {
    uint8x16_t(map(a.0, |x| x.count_ones() as u8))
}
pub fn veorq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
    uint8x16_t(zip(a.0, b.0, |x, y| x ^ y))
}
pub fn vandq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
    uint8x16_t(zip(a.0, b.0, |x, y| x & y))
}
pub fn vorrq_u8(a: uint8x16_t, b: uint8x16_t) -> uint8x16_t {
    uint8x16_t(zip(a.0, b.0, |x, y| x | y))
}
