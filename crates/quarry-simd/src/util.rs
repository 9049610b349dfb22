//! Small helpers shared by the SIMD levels.

/// Copies `s` (at most `N` elements: the tail of a vector that is shorter than
/// one SIMD block) into the front of a zero-filled block, so the tail can be
/// processed with the same full-width loads as the body, without reading past
/// the end of the input. Zero padding is neutral for every metric here: it
/// adds `0` to dot products, squared norms, squared differences and bit counts.
#[inline(always)]
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
pub(crate) fn tail<T: Copy + Default, const N: usize>(s: &[T]) -> [T; N] {
    let mut block = [T::default(); N];
    block[..s.len()].copy_from_slice(s);
    block
}
