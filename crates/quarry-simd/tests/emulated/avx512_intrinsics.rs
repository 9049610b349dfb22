//! Scalar models of the `core::arch::x86_64` AVX-512 intrinsics that
//! `src/x86/avx512.rs` uses, with the same names, argument types and safety
//! (loads are `unsafe fn`), written from Intel's intrinsic descriptions.
//! Masked loads read only the enabled lanes, like the hardware's fault
//! suppression, so an out-of-bounds read by a wrong mask is caught by the
//! bounds of the test buffers (and by Miri/ASan if run under them).
//! They let the AVX-512 kernels run on CPUs without AVX-512;
//! `tests/emulated/check_signatures.py` compares the signatures with the
//! standard library's.
#![allow(non_camel_case_types, dead_code, clippy::needless_range_loop)]

use half::f16;

#[derive(Clone, Copy, Debug)]
pub struct __m512(pub [f32; 16]);
/// 512 integer bits, little-endian bytes.
#[derive(Clone, Copy, Debug)]
pub struct __m512i(pub [u8; 64]);
/// 256 integer bits, little-endian bytes.
#[derive(Clone, Copy, Debug)]
pub struct __m256i(pub [u8; 32]);
pub type __mmask16 = u16;
pub type __mmask32 = u32;
pub type __mmask64 = u64;

// Lane views of the integer vectors (x86 is little-endian, so a
// transmute is the lane view).
macro_rules! lanes {
    ($get:ident, $from:ident, $v:ident, $t:ty, $n:literal) => {
        fn $get(v: $v) -> [$t; $n] {
            // SAFETY: same size, every bit pattern is valid for both.
            unsafe { core::mem::transmute::<[u8; $n * size_of::<$t>()], [$t; $n]>(v.0) }
        }
        fn $from(l: [$t; $n]) -> $v {
            // SAFETY: same size, every bit pattern is valid for both.
            $v(unsafe { core::mem::transmute::<[$t; $n], [u8; $n * size_of::<$t>()]>(l) })
        }
    };
}
lanes!(i16x32, from_i16x32, __m512i, i16, 32);
lanes!(i32x16, from_i32x16, __m512i, i32, 16);
lanes!(u64x8, from_u64x8, __m512i, u64, 8);
lanes!(u16x16, from_u16x16, __m256i, u16, 16);
lanes!(i8x32, from_i8x32, __m256i, i8, 32);

// ----------------------------------------------------------------- loads --

pub unsafe fn _mm512_loadu_ps(mem_addr: *const f32) -> __m512 {
    __m512(unsafe { mem_addr.cast::<[f32; 16]>().read_unaligned() })
}
/// Lane `i` is read from `mem_addr + i` only where bit `i` of `k` is set;
/// the other lanes are zero and their memory is not touched.
pub unsafe fn _mm512_maskz_loadu_ps(k: __mmask16, mem_addr: *const f32) -> __m512 {
    let mut r = [0f32; 16];
    for (i, x) in r.iter_mut().enumerate() {
        if k >> i & 1 == 1 {
            *x = unsafe { mem_addr.add(i).read_unaligned() };
        }
    }
    __m512(r)
}
pub unsafe fn _mm256_loadu_si256(mem_addr: *const __m256i) -> __m256i {
    __m256i(unsafe { mem_addr.cast::<[u8; 32]>().read_unaligned() })
}
pub unsafe fn _mm512_loadu_si512(mem_addr: *const __m512i) -> __m512i {
    __m512i(unsafe { mem_addr.cast::<[u8; 64]>().read_unaligned() })
}
pub unsafe fn _mm256_maskz_loadu_epi16(k: __mmask16, mem_addr: *const i16) -> __m256i {
    let mut r = [0u16; 16];
    for (i, x) in r.iter_mut().enumerate() {
        if k >> i & 1 == 1 {
            *x = unsafe { mem_addr.add(i).read_unaligned() } as u16;
        }
    }
    from_u16x16(r)
}
pub unsafe fn _mm512_maskz_loadu_epi16(k: __mmask32, mem_addr: *const i16) -> __m512i {
    let mut r = [0i16; 32];
    for (i, x) in r.iter_mut().enumerate() {
        if k >> i & 1 == 1 {
            *x = unsafe { mem_addr.add(i).read_unaligned() };
        }
    }
    from_i16x32(r)
}
pub unsafe fn _mm256_maskz_loadu_epi8(k: __mmask32, mem_addr: *const i8) -> __m256i {
    let mut r = [0u8; 32];
    for (i, x) in r.iter_mut().enumerate() {
        if k >> i & 1 == 1 {
            *x = unsafe { mem_addr.add(i).read() } as u8;
        }
    }
    __m256i(r)
}
pub unsafe fn _mm512_maskz_loadu_epi8(k: __mmask64, mem_addr: *const i8) -> __m512i {
    let mut r = [0u8; 64];
    for (i, x) in r.iter_mut().enumerate() {
        if k >> i & 1 == 1 {
            *x = unsafe { mem_addr.add(i).read() } as u8;
        }
    }
    __m512i(r)
}

// ---------------------------------------------------------------- floats --

pub fn _mm512_setzero_ps() -> __m512 {
    __m512([0.0; 16])
}
/// `a * b + c`, one rounding.
pub fn _mm512_fmadd_ps(a: __m512, b: __m512, c: __m512) -> __m512 {
    let mut r = [0f32; 16];
    for i in 0..16 {
        r[i] = a.0[i].mul_add(b.0[i], c.0[i]);
    }
    __m512(r)
}
pub fn _mm512_add_ps(a: __m512, b: __m512) -> __m512 {
    let mut r = a.0;
    for i in 0..16 {
        r[i] += b.0[i];
    }
    __m512(r)
}
pub fn _mm512_sub_ps(a: __m512, b: __m512) -> __m512 {
    let mut r = a.0;
    for i in 0..16 {
        r[i] -= b.0[i];
    }
    __m512(r)
}
/// Pairwise tree sum (the order is unspecified by Intel).
pub fn _mm512_reduce_add_ps(a: __m512) -> f32 {
    let mut v = a.0.to_vec();
    while v.len() > 1 {
        v = v.chunks(2).map(|p| p[0] + p[1]).collect();
    }
    v[0]
}
/// VCVTPH2PS: 16 binary16 values to f32 (exact).
pub fn _mm512_cvtph_ps(a: __m256i) -> __m512 {
    __m512(u16x16(a).map(|h| f16::from_bits(h).to_f32()))
}
pub fn _mm512_castsi512_ps(a: __m512i) -> __m512 {
    __m512(i32x16(a).map(|x| f32::from_bits(x as u32)))
}

// -------------------------------------------------------------- integers --

pub fn _mm512_setzero_si512() -> __m512i {
    __m512i([0; 64])
}
pub fn _mm512_set1_epi32(a: i32) -> __m512i {
    from_i32x16([a; 16])
}
/// VPSLLD: shift each u32 lane left; counts above 31 give 0.
pub fn _mm512_slli_epi32<const IMM8: u32>(a: __m512i) -> __m512i {
    from_i32x16(i32x16(a).map(|x| if IMM8 > 31 { 0 } else { ((x as u32) << IMM8) as i32 }))
}
/// VPMOVSXBW.
pub fn _mm512_cvtepi8_epi16(a: __m256i) -> __m512i {
    from_i16x32(i8x32(a).map(|x| x as i16))
}
/// VPMOVZXBW.
pub fn _mm512_cvtepu8_epi16(a: __m256i) -> __m512i {
    from_i16x32(i8x32(a).map(|x| x as u8 as i16))
}
/// VPMADDWD: `a[2j]*b[2j] + a[2j+1]*b[2j+1]` per i32 lane, modulo 2^32.
pub fn _mm512_madd_epi16(a: __m512i, b: __m512i) -> __m512i {
    let (a, b) = (i16x32(a), i16x32(b));
    let mut r = [0i32; 16];
    for j in 0..16 {
        let s = a[2 * j] as i64 * b[2 * j] as i64 + a[2 * j + 1] as i64 * b[2 * j + 1] as i64;
        r[j] = s as i32;
    }
    from_i32x16(r)
}
pub fn _mm512_sub_epi16(a: __m512i, b: __m512i) -> __m512i {
    let (a, b) = (i16x32(a), i16x32(b));
    let mut r = [0i16; 32];
    for i in 0..32 {
        r[i] = a[i].wrapping_sub(b[i]);
    }
    from_i16x32(r)
}
pub fn _mm512_add_epi32(a: __m512i, b: __m512i) -> __m512i {
    let (a, b) = (i32x16(a), i32x16(b));
    let mut r = [0i32; 16];
    for i in 0..16 {
        r[i] = a[i].wrapping_add(b[i]);
    }
    from_i32x16(r)
}
pub fn _mm512_add_epi64(a: __m512i, b: __m512i) -> __m512i {
    let (a, b) = (u64x8(a), u64x8(b));
    let mut r = [0u64; 8];
    for i in 0..8 {
        r[i] = a[i].wrapping_add(b[i]);
    }
    from_u64x8(r)
}
/// Sum of the i32 lanes, modulo 2^32.
pub fn _mm512_reduce_add_epi32(a: __m512i) -> i32 {
    i32x16(a).iter().fold(0i32, |s, &x| s.wrapping_add(x))
}
/// Sum of the i64 lanes, modulo 2^64.
pub fn _mm512_reduce_add_epi64(a: __m512i) -> i64 {
    u64x8(a).iter().fold(0u64, |s, &x| s.wrapping_add(x)) as i64
}
/// VPOPCNTQ.
pub fn _mm512_popcnt_epi64(a: __m512i) -> __m512i {
    from_u64x8(u64x8(a).map(|x| x.count_ones() as u64))
}
pub fn _mm512_xor_si512(a: __m512i, b: __m512i) -> __m512i {
    let mut r = a.0;
    for i in 0..64 {
        r[i] ^= b.0[i];
    }
    __m512i(r)
}
pub fn _mm512_and_si512(a: __m512i, b: __m512i) -> __m512i {
    let mut r = a.0;
    for i in 0..64 {
        r[i] &= b.0[i];
    }
    __m512i(r)
}
pub fn _mm512_or_si512(a: __m512i, b: __m512i) -> __m512i {
    let mut r = a.0;
    for i in 0..64 {
        r[i] |= b.0[i];
    }
    __m512i(r)
}
