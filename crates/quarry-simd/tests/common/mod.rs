//! Checks of one kernel table ([`Kernels`]) against `quarry_simd::reference`,
//! shared by `tests/kernels.rs` (every level this CPU runs) and the
//! `tests/emulated_*.rs` tests (the AVX-512 and Neon files run against
//! scalar models of their intrinsics).
//!
//! # Tolerance rule (float kernels)
//!
//! f16 and bf16 widen exactly to f32, and every product of two widened
//! values is exact in an FMA, so the only error is the f32 accumulation. With
//! `n` the length and `rel(n) = 1e-5 + n·2⁻²⁴` (1e-5, widened by the
//! worst-case f32 summation bound for long vectors), a kernel result `got`
//! must satisfy, against the f64 reference `want`:
//!
//! * dot:    `|got - want| <= rel(n) · Σ|aᵢ·bᵢ| + 1e-30`
//! * l2sq:   `|got - want| <= rel(n) · Σ(aᵢ - bᵢ)² + 1e-30`
//! * cosine: `|got - want| <= 2·rel(n) + 2⁻²³` (the dot error is at most
//!   `rel(n)·|a||b|` by Cauchy–Schwarz, the norms add at most `rel(n)`, plus
//!   the final rounding to f32)
//!
//! The `1e-30` absorbs f32 underflow of products of tiny values. Where the
//! reference is NaN the kernel must return NaN, where it is ±inf the kernel
//! must return the same infinity, and otherwise a finite value (inputs are
//! kept where no f32 partial sum can overflow; see [`extremes`] for what
//! overflow and underflow give).
//!
//! Integer and bit kernels are exact: dot/l2sq/hamming equal the reference,
//! and cosine/jaccard equal the reference rounded to f32 (the integer parts
//! are exact, so the same f64 formula sees the same inputs).

#![allow(dead_code)]

use half::{bf16, f16};
use quarry_simd::{Kernels, MAX_INT_DIM, reference};
use std::panic::{AssertUnwindSafe, catch_unwind};

// ------------------------------------------------------------------ rng --

/// SplitMix64: small, fast, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x243F_6A88_85A3_08D3)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `v` placed at offset `off` in a larger buffer whose other slots hold
/// `pad`; returns the buffer. Pads are chosen so that reading one of them
/// changes the result (NaN for floats, extremes for integers), which makes
/// any read past either end of the slice visible.
pub fn embed<T: Copy>(v: &[T], off: usize, pad: T) -> Vec<T> {
    let mut buf = vec![pad; off + v.len() + 72];
    buf[off..off + v.len()].copy_from_slice(v);
    buf
}

// ------------------------------------------------------------ tolerance --

pub fn rel(n: usize) -> f64 {
    1e-5 + n as f64 * 2f64.powi(-24)
}

/// Asserts `got` matches `want` within `tol`, NaN for NaN, inf for inf.
pub fn expect_close(got: f32, want: f64, tol: f64, what: &dyn Fn() -> String) {
    let g = got as f64;
    if want.is_nan() {
        assert!(got.is_nan(), "{}: got {got}, want NaN", what());
    } else if want.is_infinite() {
        assert_eq!(g, want, "{}: want an infinity", what());
    } else {
        assert!(
            got.is_finite() && (g - want).abs() <= tol,
            "{}: got {got}, want {want} (|diff| {} > tol {tol})",
            what(),
            (g - want).abs()
        );
    }
}

// ----------------------------------------------------------- float sets --

/// One float element type's kernels, references and conversions.
pub struct FloatSet<T> {
    pub name: &'static str,
    pub dot: fn(&[T], &[T]) -> f32,
    pub l2: fn(&[T], &[T]) -> f32,
    pub cos: fn(&[T], &[T]) -> f32,
    pub rdot: fn(&[T], &[T]) -> f64,
    pub rl2: fn(&[T], &[T]) -> f64,
    pub rcos: fn(&[T], &[T]) -> f64,
    pub wide: fn(T) -> f64,
    pub from: fn(f64) -> T,
    pub from_bits: fn(u32) -> T,
    /// Largest finite value.
    pub max: f64,
    pub nans: &'static [u32],
}

pub fn f32_set(k: &Kernels) -> FloatSet<f32> {
    FloatSet {
        name: "f32",
        dot: k.f32_dot,
        l2: k.f32_l2sq,
        cos: k.f32_cosine,
        rdot: reference::f32_dot,
        rl2: reference::f32_l2sq,
        rcos: reference::f32_cosine,
        wide: |x| x as f64,
        from: |x| x as f32,
        from_bits: f32::from_bits,
        max: f32::MAX as f64,
        nans: &[0x7fc0_0000, 0xffc0_0000, 0x7f80_0001, 0x7fff_ffff],
    }
}

pub fn f16_set(k: &Kernels) -> FloatSet<f16> {
    FloatSet {
        name: "f16",
        dot: k.f16_dot,
        l2: k.f16_l2sq,
        cos: k.f16_cosine,
        rdot: reference::f16_dot,
        rl2: reference::f16_l2sq,
        rcos: reference::f16_cosine,
        wide: |x| x.to_f64(),
        from: f16::from_f64,
        from_bits: |b| f16::from_bits(b as u16),
        max: f16::MAX.to_f64(),
        nans: &[0x7e00, 0xfe00, 0x7c01, 0x7fff, 0xfd55],
    }
}

pub fn bf16_set(k: &Kernels) -> FloatSet<bf16> {
    FloatSet {
        name: "bf16",
        dot: k.bf16_dot,
        l2: k.bf16_l2sq,
        cos: k.bf16_cosine,
        rdot: reference::bf16_dot,
        rl2: reference::bf16_l2sq,
        rcos: reference::bf16_cosine,
        wide: |x| x.to_f64(),
        from: bf16::from_f64,
        from_bits: |b| bf16::from_bits(b as u16),
        max: bf16::MAX.to_f64(),
        nans: &[0x7fc0, 0xffc0, 0x7f81, 0x7fff],
    }
}

impl<T: Copy> FloatSet<T> {
    fn nan(&self) -> T {
        (self.from)(f64::NAN)
    }

    /// Checks all three metrics on `(a, b)` against the reference.
    pub fn check(&self, level: &str, a: &[T], b: &[T], ctx: &str) {
        let n = a.len();
        let (mut s_ab, mut s_l2) = (0f64, 0f64);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = ((self.wide)(x), (self.wide)(y));
            s_ab += (x * y).abs();
            s_l2 += (x - y) * (x - y);
        }
        let what = |m: &'static str| move || format!("{level} {}_{m} n={n} {ctx}", self.name);
        expect_close((self.dot)(a, b), (self.rdot)(a, b), rel(n) * s_ab + 1e-30, &what("dot"));
        expect_close((self.l2)(a, b), (self.rl2)(a, b), rel(n) * s_l2 + 1e-30, &what("l2sq"));
        expect_close((self.cos)(a, b), (self.rcos)(a, b), 2.0 * rel(n) + 2f64.powi(-23), &what("cosine"));
    }

    /// Checks `(a, b)` placed at offsets `oa`/`ob` inside NaN-padded buffers.
    pub fn check_at(&self, level: &str, a: &[T], b: &[T], oa: usize, ob: usize, ctx: &str) {
        let (ba, bb) = (embed(a, oa, self.nan()), embed(b, ob, self.nan()));
        let n = a.len();
        self.check(level, &ba[oa..oa + n], &bb[ob..ob + n], &format!("offsets {oa}/{ob} {ctx}"));
    }

    /// `n` values `scale · U(-1, 1)`.
    pub fn random(&self, rng: &mut Rng, n: usize, scale: f64) -> Vec<T> {
        (0..n).map(|_| (self.from)(scale * rng.signed())).collect()
    }
}

/// Runs `f` on each float set of `k`.
macro_rules! for_float_sets {
    ($k:expr, |$s:ident| $body:block) => {{
        {
            let $s = $crate::common::f32_set($k);
            $body
        }
        {
            let $s = $crate::common::f16_set($k);
            $body
        }
        {
            let $s = $crate::common::bf16_set($k);
            $body
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use for_float_sets;

// ------------------------------------------------------------- int sets --

/// A kernel with its result widened to i64.
pub type IntKernel<'k, T> = Box<dyn Fn(&[T], &[T]) -> i64 + 'k>;

/// One integer element type's kernels (results widened to i64) and references.
pub struct IntSet<'k, T> {
    pub name: &'static str,
    pub dot: IntKernel<'k, T>,
    pub l2: IntKernel<'k, T>,
    pub cos: fn(&[T], &[T]) -> f32,
    pub rdot: fn(&[T], &[T]) -> i64,
    pub rl2: fn(&[T], &[T]) -> i64,
    pub rcos: fn(&[T], &[T]) -> f64,
    pub make: fn(&mut Rng) -> T,
    pub min: T,
    pub max: T,
}

pub fn i8_set(k: &Kernels) -> IntSet<'_, i8> {
    IntSet {
        name: "i8",
        dot: Box::new(move |a, b| (k.i8_dot)(a, b) as i64),
        l2: Box::new(move |a, b| (k.i8_l2sq)(a, b) as i64),
        cos: k.i8_cosine,
        rdot: reference::i8_dot,
        rl2: reference::i8_l2sq,
        rcos: reference::i8_cosine,
        make: |r| r.next_u64() as i8,
        min: i8::MIN,
        max: i8::MAX,
    }
}

pub fn u8_set(k: &Kernels) -> IntSet<'_, u8> {
    IntSet {
        name: "u8",
        dot: Box::new(move |a, b| (k.u8_dot)(a, b) as i64),
        l2: Box::new(move |a, b| (k.u8_l2sq)(a, b) as i64),
        cos: k.u8_cosine,
        rdot: reference::u8_dot,
        rl2: reference::u8_l2sq,
        rcos: reference::u8_cosine,
        make: |r| r.next_u64() as u8,
        min: u8::MIN,
        max: u8::MAX,
    }
}

impl<T: Copy + std::fmt::Debug> IntSet<'_, T> {
    /// Checks all three metrics on `(a, b)`: exact.
    pub fn check(&self, level: &str, a: &[T], b: &[T], ctx: &str) {
        let n = a.len();
        assert_eq!((self.dot)(a, b), (self.rdot)(a, b), "{level} {}_dot n={n} {ctx}", self.name);
        assert_eq!((self.l2)(a, b), (self.rl2)(a, b), "{level} {}_l2sq n={n} {ctx}", self.name);
        assert_eq!((self.cos)(a, b), (self.rcos)(a, b) as f32, "{level} {}_cosine n={n} {ctx}", self.name);
    }

    /// Checks `(a, b)` at offsets inside buffers padded with extremes.
    pub fn check_at(&self, level: &str, a: &[T], b: &[T], oa: usize, ob: usize, ctx: &str) {
        let (ba, bb) = (embed(a, oa, self.max), embed(b, ob, self.min));
        let n = a.len();
        self.check(level, &ba[oa..oa + n], &bb[ob..ob + n], &format!("offsets {oa}/{ob} {ctx}"));
    }

    pub fn random(&self, rng: &mut Rng, n: usize) -> Vec<T> {
        (0..n).map(|_| (self.make)(rng)).collect()
    }
}

// ----------------------------------------------------------------- bits --

/// Checks Hamming and Jaccard on `(a, b)` at offsets inside 0xFF-padded buffers: exact.
pub fn check_bits_at(k: &Kernels, a: &[u8], b: &[u8], oa: usize, ob: usize, ctx: &str) {
    let (ba, bb) = (embed(a, oa, 0xFF), embed(b, ob, 0xFF));
    let n = a.len();
    let (a, b) = (&ba[oa..oa + n], &bb[ob..ob + n]);
    let level = k.level.name();
    assert_eq!((k.bits_hamming)(a, b) as u64, reference::bits_hamming(a, b), "{level} hamming bytes={n} {ctx}");
    assert_eq!((k.bits_jaccard)(a, b), reference::bits_jaccard(a, b) as f32, "{level} jaccard bytes={n} {ctx}");
}

// --------------------------------------------------------------- checks --

/// Every length 1..=257 (crossing every block boundary of every level),
/// each at several unaligned offsets (0..=7 elements) of both operands.
pub fn dims_and_offsets(k: &Kernels, offsets_per_dim: usize) {
    let level = k.level.name();
    let mut rng = Rng::new(1);
    for_float_sets!(k, |s| {
        for n in 1..=257 {
            for j in 0..offsets_per_dim {
                let (oa, ob) = ((n + j) % 8, (3 * n + 5 * j + 1) % 8);
                let scale = [1.0, 1e-3, 1e3][(n + j) % 3];
                let a = s.random(&mut rng, n, scale);
                let mut b = s.random(&mut rng, n, 1.0);
                if j % 2 == 1 {
                    // Nearly parallel vectors: cosine distance close to 0.
                    b = a.iter().map(|&x| (s.from)((s.wide)(x) * 1.5 + 1e-3 * scale * rng.signed())).collect();
                }
                s.check_at(level, &a, &b, oa, ob, "random");
            }
        }
    });
    for n in 1..=257 {
        for j in 0..offsets_per_dim {
            let (oa, ob) = ((n + j) % 8, (5 * n + 3 * j + 2) % 8);
            let s = i8_set(k);
            let (a, b) = (s.random(&mut rng, n), s.random(&mut rng, n));
            s.check_at(level, &a, &b, oa, ob, "random");
            let s = u8_set(k);
            let (a, b) = (s.random(&mut rng, n), s.random(&mut rng, n));
            s.check_at(level, &a, &b, oa, ob, "random");
            // Bits: dense random, and sparse (AND of three random bytes).
            let a: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            let b: Vec<u8> = (0..n).map(|_| (rng.next_u64() & rng.next_u64() & rng.next_u64()) as u8).collect();
            check_bits_at(k, &a, &b, oa, ob, "random");
        }
    }
}

/// Zero vectors: cosine distance 0 between two zero vectors and 1 between a
/// zero and a non-zero vector (see `reference::cosine_from_parts`); Jaccard
/// distance 0 between two empty sets.
pub fn zeros(k: &Kernels) {
    let level = k.level.name();
    let mut rng = Rng::new(2);
    for n in [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 257] {
        for_float_sets!(k, |s| {
            let z = vec![(s.from)(0.0); n];
            let r = s.random(&mut rng, n, 1.0);
            let nz: Vec<_> = vec![(s.from)(-0.0); n];
            s.check(level, &z, &z, "zeros");
            s.check(level, &z, &r, "zero/random");
            s.check(level, &r, &z, "random/zero");
            assert_eq!((s.cos)(&z, &z), 0.0, "{level} {} cosine(0, 0)", s.name);
            assert_eq!((s.cos)(&z, &nz), 0.0, "{level} {} cosine(0, -0)", s.name);
            assert_eq!((s.dot)(&z, &r), 0.0, "{level} {} dot(0, r)", s.name);
            if r.iter().any(|&x| (s.wide)(x) != 0.0) {
                assert_eq!((s.cos)(&z, &r), 1.0, "{level} {} cosine(0, r)", s.name);
                assert_eq!((s.cos)(&r, &z), 1.0, "{level} {} cosine(r, 0)", s.name);
            }
            // Identical vectors: distance (nearly) 0, never negative.
            let c = (s.cos)(&r, &r);
            assert!((0.0..=2.0 * rel(n) as f32 + 1e-6).contains(&c), "{level} {} cosine(r, r) = {c}", s.name);
        });
        let zi = vec![0i8; n];
        let ri = i8_set(k).random(&mut rng, n);
        i8_set(k).check(level, &zi, &zi, "zeros");
        i8_set(k).check(level, &zi, &ri, "zero/random");
        assert_eq!((k.i8_cosine)(&zi, &zi), 0.0);
        let zu = vec![0u8; n];
        let ru = vec![1u8; n];
        u8_set(k).check(level, &zu, &zu, "zeros");
        u8_set(k).check(level, &ru, &zu, "ones/zero");
        assert_eq!((k.u8_cosine)(&zu, &ru), 1.0);
        assert_eq!((k.u8_cosine)(&zu, &zu), 0.0);
        check_bits_at(k, &zu, &zu, 0, 0, "zeros");
        check_bits_at(k, &vec![0xFF; n], &zu, 1, 2, "ones/zeros");
        assert_eq!((k.bits_jaccard)(&zu, &zu), 0.0);
        assert_eq!((k.bits_jaccard)(&vec![0xFF; n], &zu), 1.0);
        assert_eq!((k.bits_hamming)(&vec![0xFF; n], &zu), 8 * n as u32);
    }
}

/// NaN and ±inf, at the first, a middle and the last position (body and
/// tail of every block width), in either operand.
///
/// What the reference (IEEE arithmetic) gives, and so every kernel:
/// * any NaN in either input makes dot and l2sq NaN, and cosine NaN unless
///   the other vector is all zeros (then cosine is 1 by the zero-vector
///   convention, which looks at the norms before dividing);
/// * ±inf times a finite non-zero value gives ±inf in dot, inf times 0 gives
///   NaN, and +inf and -inf terms together give NaN;
/// * l2sq is +inf when one side is infinite and the other finite, and NaN
///   for inf - inf (the same infinity on both sides);
/// * cosine of a vector containing inf is NaN (inf/inf, or inf·0 in the
///   dot), unless the other vector is all zeros (1, as above).
pub fn non_finite(k: &Kernels) {
    let level = k.level.name();
    let mut rng = Rng::new(3);
    let dims: Vec<usize> = (1..=40).chain([47, 48, 49, 63, 64, 65, 100, 257]).collect();
    for_float_sets!(k, |s| {
        let inf = (s.from)(f64::INFINITY);
        let ninf = (s.from)(f64::NEG_INFINITY);
        for &n in &dims {
            for pos in [0, n / 2, n - 1] {
                let a = s.random(&mut rng, n, 1.0);
                let b = s.random(&mut rng, n, 1.0);
                let zero = vec![(s.from)(0.0); n];
                let with = |v: &[_], x| {
                    let mut v = v.to_vec();
                    v[pos] = x;
                    v
                };
                for &bits in s.nans {
                    let nan = (s.from_bits)(bits);
                    s.check(level, &with(&a, nan), &b, &format!("NaN {bits:#x} in a at {pos}"));
                    s.check(level, &a, &with(&b, nan), &format!("NaN {bits:#x} in b at {pos}"));
                    s.check(level, &with(&a, nan), &zero, &format!("NaN {bits:#x} vs zeros at {pos}"));
                    assert!((s.dot)(&with(&a, nan), &b).is_nan(), "{level} {} dot with NaN", s.name);
                    assert!((s.l2)(&a, &with(&b, nan)).is_nan(), "{level} {} l2sq with NaN", s.name);
                    assert!((s.cos)(&with(&a, nan), &b).is_nan(), "{level} {} cosine with NaN", s.name);
                }
                for (x, name) in [(inf, "+inf"), (ninf, "-inf")] {
                    s.check(level, &with(&a, x), &b, &format!("{name} in a at {pos}"));
                    s.check(level, &a, &with(&b, x), &format!("{name} in b at {pos}"));
                    s.check(level, &with(&a, x), &with(&b, x), &format!("{name} in both at {pos}"));
                    s.check(level, &with(&a, x), &with(&b, (s.from)(0.0)), &format!("{name} times 0 at {pos}"));
                    s.check(level, &with(&a, x), &zero, &format!("{name} vs zeros at {pos}"));
                    assert!((s.l2)(&with(&a, x), &b).is_infinite(), "{level} {} l2sq with {name}", s.name);
                    assert!((s.l2)(&with(&a, x), &with(&b, x)).is_nan(), "{level} {} l2sq inf-inf", s.name);
                }
                if n > 1 {
                    let other = if pos == 0 { n - 1 } else { 0 };
                    let mut c = with(&a, inf);
                    c[other] = ninf;
                    let ones = vec![(s.from)(1.0); n];
                    s.check(level, &c, &ones, &format!("+inf and -inf in a at {pos}/{other}"));
                    assert!((s.dot)(&c, &ones).is_nan(), "{level} {} dot of +inf and -inf", s.name);
                }
            }
        }
    });
}

/// Extreme magnitudes.
///
/// * Large values as close to the type's maximum as the f32 accumulators
///   allow without overflow (f16: the f16 maximum itself; f32/bf16: ±5e17,
///   whose squared differences summed over 257 elements stay below
///   f32::MAX) match the reference within the tolerance.
/// * Where an f32 partial sum does overflow, the kernels give +inf (e.g.
///   l2sq of f32::MAX against -f32::MAX), although the f64 reference is
///   finite: f32 accumulation is the contract.
/// * Subnormal inputs: f16 subnormals widen to normal f32 values and behave
///   like any other value. f32/bf16 subnormals times normal values are
///   checked against the reference (absolute slack 1e-30). Products of two
///   f32/bf16 subnormals underflow to 0 in f32, so two all-subnormal vectors
///   have squared norms of 0 and cosine distance 0 (the zero-vector
///   convention), whatever the f64 reference says.
pub fn extremes(k: &Kernels) {
    let level = k.level.name();
    let mut rng = Rng::new(4);
    for_float_sets!(k, |s| {
        let big = if s.name == "f16" { s.max } else { 5e17 };
        for n in (1..=257).step_by(8).chain([256, 257]) {
            let sign = |r: &mut Rng| if r.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
            let a: Vec<_> = (0..n).map(|_| (s.from)(sign(&mut rng) * big * (0.9 + 0.1 * rng.unit()))).collect();
            let b: Vec<_> = (0..n).map(|_| (s.from)(sign(&mut rng) * big * (0.9 + 0.1 * rng.unit()))).collect();
            s.check_at(level, &a, &b, n % 8, (n + 3) % 8, "large");
            let m = vec![(s.from)(s.max); n];
            let nm = vec![(s.from)(-s.max); n];
            if s.name == "f16" {
                s.check(level, &m, &nm, "max/-max");
            } else {
                // Overflow in f32: +inf.
                assert_eq!((s.l2)(&m, &nm), f32::INFINITY, "{level} {} l2sq(max, -max)", s.name);
                assert_eq!((s.l2)(&m, &m), 0.0, "{level} {} l2sq(max, max)", s.name);
            }
        }
        for n in (1..=257).step_by(8).chain([256, 257]) {
            // Subnormals of the element type.
            let min_sub = match s.name {
                "f16" => 2f64.powi(-24),
                "bf16" => 2f64.powi(-133),
                _ => 2f64.powi(-149),
            };
            let sub: Vec<_> =
                (0..n).map(|_| (s.from)(min_sub * (1 + rng.below(100)) as f64 * rng.signed().signum())).collect();
            let normal = s.random(&mut rng, n, 1.0);
            let what = "subnormal × normal";
            let (ba, bb) = (embed(&sub, 1, (s.from)(f64::NAN)), embed(&normal, 2, (s.from)(f64::NAN)));
            let (x, y) = (&ba[1..1 + n], &bb[2..2 + n]);
            if s.name == "f16" {
                s.check(level, x, y, what);
                s.check(level, x, x, "subnormal × subnormal");
            } else {
                let tol = |t: f64| rel(n) * t + 1e-30;
                let sab: f64 = x.iter().zip(y).map(|(&p, &q)| ((s.wide)(p) * (s.wide)(q)).abs()).sum();
                expect_close((s.dot)(x, y), (s.rdot)(x, y), tol(sab), &|| format!("{level} {} dot {what}", s.name));
                expect_close((s.l2)(x, y), (s.rl2)(x, y), tol((s.rl2)(x, y)), &|| {
                    format!("{level} {} l2sq {what}", s.name)
                });
                assert!((s.l2)(x, x) == 0.0 && (s.dot)(x, x) == 0.0, "{level} {} subnormal squares underflow", s.name);
                assert_eq!((s.cos)(x, x), 0.0, "{level} {} cosine of subnormal vectors", s.name);
            }
        }
    });
    // Integer extremes (short vectors; the long ones are in `int_max_dim`).
    for n in [1, 15, 16, 17, 31, 32, 33, 64, 100, 257] {
        let s = i8_set(k);
        for (x, y) in [(-128i8, -128i8), (-128, 127), (127, 127), (127, -128)] {
            s.check_at(level, &vec![x; n], &vec![y; n], 1, 3, &format!("{x}/{y}"));
        }
        let s = u8_set(k);
        for (x, y) in [(255u8, 255u8), (255, 0), (0, 255)] {
            s.check_at(level, &vec![x; n], &vec![y; n], 2, 5, &format!("{x}/{y}"));
        }
    }
}

/// Integer kernels are exact at the longest allowed vector, [`MAX_INT_DIM`]
/// elements, with the values that maximise every accumulator: i8 -128·-128
/// (dot and norms 2^30), i8 -128 vs 127 and u8 255 vs 0 (l2sq 65536·65025,
/// above i32::MAX), u8 255·255 (dot 65536·65025); and with random values.
pub fn int_max_dim(k: &Kernels) {
    let level = k.level.name();
    let n = MAX_INT_DIM;
    let mut rng = Rng::new(5);
    let s = i8_set(k);
    for (x, y) in [(-128i8, -128i8), (-128, 127), (127, -128), (127, 127)] {
        s.check_at(level, &vec![x; n], &vec![y; n], 0, 0, &format!("{x}/{y}"));
    }
    let (a, b) = (s.random(&mut rng, n), s.random(&mut rng, n));
    s.check_at(level, &a, &b, 3, 5, "random");
    assert_eq!((k.i8_dot)(&vec![-128; n], &vec![-128; n]), 1 << 30);
    assert_eq!((k.i8_l2sq)(&vec![-128; n], &vec![127; n]), 65536 * 65025);
    let s = u8_set(k);
    for (x, y) in [(255u8, 255u8), (255, 0), (0, 255)] {
        s.check_at(level, &vec![x; n], &vec![y; n], 0, 0, &format!("{x}/{y}"));
    }
    let (a, b) = (s.random(&mut rng, n), s.random(&mut rng, n));
    s.check_at(level, &a, &b, 7, 1, "random");
    assert_eq!((k.u8_dot)(&vec![255; n], &vec![255; n]), 65536 * 65025);
    assert_eq!((k.u8_l2sq)(&vec![255; n], &vec![0; n]), 65536 * 65025);
    assert_eq!((k.u8_cosine)(&vec![255; n], &vec![255; n]), 0.0);
}

/// Every kernel panics (never reads out of bounds) on unequal lengths.
pub fn length_mismatch_panics(k: &Kernels) {
    let f = [1f32; 9];
    let h = [f16::ONE; 9];
    let g = [bf16::ONE; 9];
    let i = [1i8; 9];
    let u = [1u8; 9];
    type Call<'a> = Box<dyn Fn(usize, usize) + 'a>;
    let cases: Vec<(&str, Call)> = vec![
        (
            "f32_dot",
            Box::new(|p, q| {
                let _ = (k.f32_dot)(&f[..p], &f[..q]);
            }),
        ),
        (
            "f32_l2sq",
            Box::new(|p, q| {
                let _ = (k.f32_l2sq)(&f[..p], &f[..q]);
            }),
        ),
        (
            "f32_cosine",
            Box::new(|p, q| {
                let _ = (k.f32_cosine)(&f[..p], &f[..q]);
            }),
        ),
        (
            "f16_dot",
            Box::new(|p, q| {
                let _ = (k.f16_dot)(&h[..p], &h[..q]);
            }),
        ),
        (
            "f16_l2sq",
            Box::new(|p, q| {
                let _ = (k.f16_l2sq)(&h[..p], &h[..q]);
            }),
        ),
        (
            "f16_cosine",
            Box::new(|p, q| {
                let _ = (k.f16_cosine)(&h[..p], &h[..q]);
            }),
        ),
        (
            "bf16_dot",
            Box::new(|p, q| {
                let _ = (k.bf16_dot)(&g[..p], &g[..q]);
            }),
        ),
        (
            "bf16_l2sq",
            Box::new(|p, q| {
                let _ = (k.bf16_l2sq)(&g[..p], &g[..q]);
            }),
        ),
        (
            "bf16_cosine",
            Box::new(|p, q| {
                let _ = (k.bf16_cosine)(&g[..p], &g[..q]);
            }),
        ),
        (
            "i8_dot",
            Box::new(|p, q| {
                let _ = (k.i8_dot)(&i[..p], &i[..q]);
            }),
        ),
        (
            "i8_l2sq",
            Box::new(|p, q| {
                let _ = (k.i8_l2sq)(&i[..p], &i[..q]);
            }),
        ),
        (
            "i8_cosine",
            Box::new(|p, q| {
                let _ = (k.i8_cosine)(&i[..p], &i[..q]);
            }),
        ),
        (
            "u8_dot",
            Box::new(|p, q| {
                let _ = (k.u8_dot)(&u[..p], &u[..q]);
            }),
        ),
        (
            "u8_l2sq",
            Box::new(|p, q| {
                let _ = (k.u8_l2sq)(&u[..p], &u[..q]);
            }),
        ),
        (
            "u8_cosine",
            Box::new(|p, q| {
                let _ = (k.u8_cosine)(&u[..p], &u[..q]);
            }),
        ),
        (
            "bits_hamming",
            Box::new(|p, q| {
                let _ = (k.bits_hamming)(&u[..p], &u[..q]);
            }),
        ),
        (
            "bits_jaccard",
            Box::new(|p, q| {
                let _ = (k.bits_jaccard)(&u[..p], &u[..q]);
            }),
        ),
    ];
    for (name, call) in &cases {
        for (p, q) in [(3, 4), (9, 1), (0, 8)] {
            let r = catch_unwind(AssertUnwindSafe(|| call(p, q)));
            assert!(r.is_err(), "{} {name}: lengths {p} and {q} did not panic", k.level.name());
        }
        call(5, 5);
        call(0, 0);
    }
}

/// Every f16 and bf16 bit pattern widens exactly: `dot([x], [1]) == x`,
/// NaN for every NaN (through the tail path of each level; the body loads
/// widen with the same instructions).
pub fn every_f16_and_bf16(k: &Kernels) {
    let level = k.level.name();
    for bits in 0..=u16::MAX {
        let x = f16::from_bits(bits);
        let (got, want) = ((k.f16_dot)(&[x], &[f16::ONE]), x.to_f32());
        assert!(got == want || (got.is_nan() && want.is_nan()), "{level} f16 {bits:#06x}: {got} vs {want}");
        let x = bf16::from_bits(bits);
        let (got, want) = ((k.bf16_dot)(&[x], &[bf16::ONE]), x.to_f32());
        assert!(got == want || (got.is_nan() && want.is_nan()), "{level} bf16 {bits:#06x}: {got} vs {want}");
    }
}

// ------------------------------------------------------------- proptest --

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Random lengths, values and offsets compared with the reference.
pub fn proptest_table(k: &Kernels, cases: u32) {
    let level = k.level.name();
    let mut runner = TestRunner::new(Config { cases, ..Config::default() });
    let floats = (1usize..700).prop_flat_map(|n| {
        (prop::collection::vec(-1e4f32..1e4, n), prop::collection::vec(-1e4f32..1e4, n), 0usize..8, 0usize..8)
    });
    runner
        .run(&floats, |(a, b, oa, ob)| {
            for_float_sets!(k, |s| {
                let a: Vec<_> = a.iter().map(|&x| (s.from)(x as f64)).collect();
                let b: Vec<_> = b.iter().map(|&x| (s.from)(x as f64)).collect();
                s.check_at(level, &a, &b, oa, ob, "proptest");
            });
            Ok(())
        })
        .unwrap();
    let ints = (1usize..2000).prop_flat_map(|n| {
        (prop::collection::vec(any::<u8>(), n), prop::collection::vec(any::<u8>(), n), 0usize..8, 0usize..8)
    });
    runner
        .run(&ints, |(a, b, oa, ob)| {
            u8_set(k).check_at(level, &a, &b, oa, ob, "proptest");
            let (ia, ib): (Vec<i8>, Vec<i8>) =
                (a.iter().map(|&x| x as i8).collect(), b.iter().map(|&x| x as i8).collect());
            i8_set(k).check_at(level, &ia, &ib, ob, oa, "proptest");
            check_bits_at(k, &a, &b, oa, ob, "proptest");
            Ok(())
        })
        .unwrap();
}
