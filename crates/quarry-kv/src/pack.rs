//! Bit packing of b-bit codes (b ∈ {2, 3, 4, 8}) in blocks of 32 codes.
//!
//! Layout of one 32-code block (`4·b` bytes):
//! - b ∈ {2, 4, 8}: with `nb = 4·b` bytes per block, byte `j` holds codes
//!   `j + k·nb` for `k = 0 .. 8/b`, code `j + k·nb` in bits `k·b .. k·b+b`.
//!   (4-bit is llama.cpp's q4_0 nibble order: byte `j` = code `j` in the
//!   low nibble, code `j+16` in the high one.) This order lets AVX2 unpack a
//!   block with one load, shifts and masks, no shuffles.
//! - b = 3: the block is a 96-bit little-endian bit string, code `i` in bits
//!   `3i .. 3i+3`.
//!
//! A row of `n` codes occupies `ceil(n/32)` blocks; codes past `n` are 0.

/// Code widths the packer supports.
pub const SUPPORTED_BITS: [u8; 4] = [2, 3, 4, 8];

/// Bytes of one row of `n` packed `bits`-bit codes.
pub fn row_bytes(bits: u8, n: usize) -> usize {
    n.div_ceil(32) * 4 * bits as usize
}

/// Pack `codes` (each `< 2^bits`) into `out` (`row_bytes(bits, codes.len())` bytes).
pub fn pack(bits: u8, codes: &[u8], out: &mut [u8]) {
    let nblocks = codes.len().div_ceil(32);
    let bb = 4 * bits as usize;
    assert_eq!(out.len(), nblocks * bb);
    out.fill(0);
    for blk in 0..nblocks {
        let mut c = [0u8; 32];
        let end = (blk * 32 + 32).min(codes.len());
        c[..end - blk * 32].copy_from_slice(&codes[blk * 32..end]);
        let o = &mut out[blk * bb..(blk + 1) * bb];
        if bits == 3 {
            let mut acc: u128 = 0;
            for (i, &ci) in c.iter().enumerate() {
                acc |= ((ci & 7) as u128) << (3 * i);
            }
            o.copy_from_slice(&acc.to_le_bytes()[..12]);
        } else {
            let per = 8 / bits as usize;
            let mask = ((1u16 << bits) - 1) as u8;
            for j in 0..bb {
                let mut byte = 0u8;
                for k in 0..per {
                    byte |= (c[j + k * bb] & mask) << (k * bits as usize);
                }
                o[j] = byte;
            }
        }
    }
}

/// Code `i` of a packed row, read on its own (for the few codes a fused
/// kernel needs one at a time, e.g. at the channel of a sparse outlier).
#[inline]
pub fn code_at(bits: u8, packed: &[u8], i: usize) -> u8 {
    // one instance per width, so the block arithmetic is shifts and masks
    match bits {
        2 => code_at_w::<2>(packed, i),
        4 => code_at_w::<4>(packed, i),
        8 => code_at_w::<8>(packed, i),
        _ => {
            let p = &packed[(i / 32) * 12..(i / 32 + 1) * 12];
            let (byte, shift) = (3 * (i % 32) / 8, 3 * (i % 32) % 8);
            let hi = if byte + 1 < 12 { p[byte + 1] } else { 0 };
            ((u16::from_le_bytes([p[byte], hi]) >> shift) & 7) as u8
        }
    }
}

#[inline]
fn code_at_w<const B: usize>(packed: &[u8], i: usize) -> u8 {
    let bb = 4 * B;
    let m = i % 32;
    (packed[(i / 32) * bb + m % bb] >> ((m / bb) * B)) & ((1u16 << B) - 1) as u8
}

/// Scalar reference: unpack `out.len()` codes (a multiple of 32) as f32.
pub fn unpack_f32_scalar(bits: u8, packed: &[u8], out: &mut [f32]) {
    let bb = 4 * bits as usize;
    for (blk, o) in out.chunks_exact_mut(32).enumerate() {
        let p = &packed[blk * bb..(blk + 1) * bb];
        if bits == 3 {
            let mut b16 = [0u8; 16];
            b16[..12].copy_from_slice(p);
            let acc = u128::from_le_bytes(b16);
            for (i, v) in o.iter_mut().enumerate() {
                *v = ((acc >> (3 * i)) & 7) as f32;
            }
        } else {
            let per = 8 / bits as usize;
            let mask = ((1u16 << bits) - 1) as u8;
            for j in 0..bb {
                for k in 0..per {
                    o[j + k * bb] = ((p[j] >> (k * bits as usize)) & mask) as f32;
                }
            }
        }
    }
}

/// Unpack `out.len()` codes (a multiple of 32) as f32 (AVX2 when available).
#[inline]
pub fn unpack_f32(bits: u8, packed: &[u8], out: &mut [f32]) {
    debug_assert!(out.len().is_multiple_of(32));
    assert!(packed.len() >= row_bytes(bits, out.len()));
    #[cfg(target_arch = "x86_64")]
    if bits != 3 && crate::kernels::has_avx2() {
        // SAFETY: AVX2 present; `packed` holds every block read (asserted).
        unsafe { x86::unpack(bits, packed, out) };
        return;
    }
    unpack_f32_scalar(bits, packed, out)
}

/// Unpack a tile of blocks: block `b` of row `r` lies at byte
/// `r·row_stride + row_offset + b·block_stride`; its 32 codes go to
/// `out[(r·blocks_per_row + b)·32 ..]`. `signed` (8-bit only) reads i8.
#[allow(clippy::too_many_arguments)]
pub fn unpack_tile(
    bits: u8,
    signed: bool,
    src: &[u8],
    rows: usize,
    row_stride: usize,
    row_offset: usize,
    blocks_per_row: usize,
    block_stride: usize,
    out: &mut [f32],
) {
    let bb = 4 * bits as usize;
    if rows == 0 || blocks_per_row == 0 {
        return;
    }
    let last = (rows - 1) * row_stride + row_offset + (blocks_per_row - 1) * block_stride + bb;
    assert!(src.len() >= last && out.len() >= rows * blocks_per_row * 32);
    assert!(!signed || bits == 8);
    #[cfg(target_arch = "x86_64")]
    if bits != 3 && crate::kernels::has_avx2() {
        // SAFETY: AVX2 present; the last block read ends within `src` (asserted).
        unsafe { x86::unpack_tile(bits, signed, src, rows, row_stride, row_offset, blocks_per_row, block_stride, out) };
        return;
    }
    for r in 0..rows {
        for b in 0..blocks_per_row {
            let o = r * row_stride + row_offset + b * block_stride;
            let dst = &mut out[(r * blocks_per_row + b) * 32..(r * blocks_per_row + b + 1) * 32];
            if signed {
                for (x, &c) in dst.iter_mut().zip(&src[o..o + 32]) {
                    *x = c as i8 as f32;
                }
            } else {
                unpack_f32_scalar(bits, &src[o..o + bb], dst);
            }
        }
    }
}

/// Widen signed bytes to f32 (q8_0 codes), AVX2 when available.
#[inline]
pub fn i8_to_f32(src: &[u8], out: &mut [f32]) {
    assert_eq!(src.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::has_avx2() {
        // SAFETY: AVX2 present; equal lengths.
        unsafe { x86::i8_to_f32(src, out) };
        return;
    }
    for (o, &s) in out.iter_mut().zip(src) {
        *o = s as i8 as f32;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn unpack(bits: u8, packed: &[u8], out: &mut [f32]) {
        let nblocks = out.len() / 32;
        unsafe {
            let po = out.as_mut_ptr();
            let pp = packed.as_ptr();
            for blk in 0..nblocks {
                let o = po.add(blk * 32);
                match bits {
                    2 => {
                        let x = _mm_loadl_epi64(pp.add(blk * 8) as *const __m128i);
                        let m = _mm_set1_epi8(3);
                        let c0 = _mm_and_si128(x, m);
                        let c1 = _mm_and_si128(_mm_srli_epi16::<2>(x), m);
                        let c2 = _mm_and_si128(_mm_srli_epi16::<4>(x), m);
                        let c3 = _mm_and_si128(_mm_srli_epi16::<6>(x), m);
                        _mm256_storeu_ps(o, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c0)));
                        _mm256_storeu_ps(o.add(8), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c1)));
                        _mm256_storeu_ps(o.add(16), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c2)));
                        _mm256_storeu_ps(o.add(24), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c3)));
                    }
                    4 => {
                        let x = _mm_loadu_si128(pp.add(blk * 16) as *const __m128i);
                        let m = _mm_set1_epi8(15);
                        let lo = _mm_and_si128(x, m);
                        let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), m);
                        _mm256_storeu_ps(o, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)));
                        _mm256_storeu_ps(o.add(8), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(lo))));
                        _mm256_storeu_ps(o.add(16), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)));
                        _mm256_storeu_ps(o.add(24), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(hi))));
                    }
                    _ => {
                        for k in 0..4 {
                            let x = _mm_loadl_epi64(pp.add(blk * 32 + 8 * k) as *const __m128i);
                            _mm256_storeu_ps(o.add(8 * k), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x)));
                        }
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn unpack_tile(
        bits: u8,
        signed: bool,
        src: &[u8],
        rows: usize,
        row_stride: usize,
        row_offset: usize,
        bpr: usize,
        block_stride: usize,
        out: &mut [f32],
    ) {
        unsafe {
            let sp = src.as_ptr();
            let op = out.as_mut_ptr();
            for r in 0..rows {
                for b in 0..bpr {
                    let p = sp.add(r * row_stride + row_offset + b * block_stride);
                    let o = op.add((r * bpr + b) * 32);
                    block(bits, signed, p, o);
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn block(bits: u8, signed: bool, pp: *const u8, o: *mut f32) {
        unsafe {
            match bits {
                2 => {
                    let x = _mm_loadl_epi64(pp as *const __m128i);
                    let m = _mm_set1_epi8(3);
                    let c0 = _mm_and_si128(x, m);
                    let c1 = _mm_and_si128(_mm_srli_epi16::<2>(x), m);
                    let c2 = _mm_and_si128(_mm_srli_epi16::<4>(x), m);
                    let c3 = _mm_and_si128(_mm_srli_epi16::<6>(x), m);
                    _mm256_storeu_ps(o, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c0)));
                    _mm256_storeu_ps(o.add(8), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c1)));
                    _mm256_storeu_ps(o.add(16), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c2)));
                    _mm256_storeu_ps(o.add(24), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c3)));
                }
                4 => {
                    let x = _mm_loadu_si128(pp as *const __m128i);
                    let m = _mm_set1_epi8(15);
                    let lo = _mm_and_si128(x, m);
                    let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), m);
                    _mm256_storeu_ps(o, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)));
                    _mm256_storeu_ps(o.add(8), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(lo))));
                    _mm256_storeu_ps(o.add(16), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)));
                    _mm256_storeu_ps(o.add(24), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(hi))));
                }
                _ => {
                    for k in 0..4 {
                        let x = _mm_loadl_epi64(pp.add(8 * k) as *const __m128i);
                        let w = if signed { _mm256_cvtepi8_epi32(x) } else { _mm256_cvtepu8_epi32(x) };
                        _mm256_storeu_ps(o.add(8 * k), _mm256_cvtepi32_ps(w));
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn i8_to_f32(src: &[u8], out: &mut [f32]) {
        let n = src.len();
        let mut i = 0;
        unsafe {
            while i + 8 <= n {
                let x = _mm_loadl_epi64(src.as_ptr().add(i) as *const __m128i);
                _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x)));
                i += 8;
            }
        }
        while i < n {
            out[i] = src[i] as i8 as f32;
            i += 1;
        }
    }
}
