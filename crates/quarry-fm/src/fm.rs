//! The FM-index core over a dense integer alphabet.
//!
//! The indexed sequence `R` (length `n`) ends with the unique smallest code 0 (`$`). Code 1 is the
//! document separator; codes `>= 2` are text symbols. `R` is the *reversed* concatenation of the
//! documents (see the shard module), so backward search over `R` consumes a pattern left to
//! right and the BWT symbol of a row is the symbol that *follows* the occurrence in the text.

use crate::bits::{IntVec, RankBv};
use crate::buf::Buf;
use crate::error::{FmError, Result};
use crate::format::{SectionReader, SectionWriter};
use crate::wm::WaveletMatrix;

pub(crate) struct FmCore<Bv> {
    n: usize,
    sigma: usize,
    c: Buf<u64>,
    wm: WaveletMatrix<Bv>,
    sa_rate: usize,
    isa_rate: usize,
    sa: IntVec,
    isa: IntVec,
}

/// Suffix array via libsais, using the narrowest text type the alphabet allows.
pub(crate) enum Sa {
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Sa {
    #[inline]
    fn get(&self, i: usize) -> usize {
        match self {
            Sa::I32(v) => v[i] as usize,
            Sa::I64(v) => v[i] as usize,
        }
    }
}

fn sais_err(e: libsais::LibsaisError) -> FmError {
    FmError::Internal(format!("libsais failed: {e:?}"))
}

pub(crate) fn suffix_array(r: &[u32], sigma: usize) -> Result<Sa> {
    use libsais::SuffixArrayConstruction as S;
    use libsais::suffix_array::AlphabetSize;
    let n = r.len();
    let big = n >= i32::MAX as usize;
    if sigma <= 256 {
        let t: Vec<u8> = r.iter().map(|&x| x as u8).collect();
        if big {
            Ok(Sa::I64(S::for_text(&t).in_owned_buffer64().single_threaded().run().map_err(sais_err)?.into_vec()))
        } else {
            Ok(Sa::I32(S::for_text(&t).in_owned_buffer32().single_threaded().run().map_err(sais_err)?.into_vec()))
        }
    } else if sigma <= 65536 {
        let t: Vec<u16> = r.iter().map(|&x| x as u16).collect();
        if big {
            Ok(Sa::I64(S::for_text(&t).in_owned_buffer64().single_threaded().run().map_err(sais_err)?.into_vec()))
        } else {
            Ok(Sa::I32(S::for_text(&t).in_owned_buffer32().single_threaded().run().map_err(sais_err)?.into_vec()))
        }
    } else if !big {
        let mut t: Vec<i32> = r.iter().map(|&x| x as i32).collect();
        let mut b = S::for_text_mut(&mut t).in_owned_buffer32().single_threaded();
        // SAFETY: all values are in [0, sigma) by construction (dense codes).
        unsafe {
            b = b.with_alphabet_size(AlphabetSize::new(sigma as i32));
        }
        Ok(Sa::I32(b.run().map_err(sais_err)?.into_vec()))
    } else {
        let mut t: Vec<i64> = r.iter().map(|&x| x as i64).collect();
        let mut b = S::for_text_mut(&mut t).in_owned_buffer64().single_threaded();
        // SAFETY: as above.
        unsafe {
            b = b.with_alphabet_size(AlphabetSize::new(sigma as i64));
        }
        Ok(Sa::I64(b.run().map_err(sais_err)?.into_vec()))
    }
}

pub(crate) type Range = (usize, usize);

impl<Bv: RankBv> FmCore<Bv> {
    /// Build from the dense-coded sequence `r` (last value must be the unique 0).
    pub(crate) fn build(
        r: Vec<u32>,
        sigma: usize,
        sa_rate: usize,
        isa_rate: usize,
        check: &mut dyn FnMut(&'static str, usize, usize) -> Result<()>,
    ) -> Result<Self> {
        let n = r.len();
        debug_assert!(n >= 1 && r[n - 1] == 0);
        check("suffix array", 0, 1)?;
        let sa = suffix_array(&r, sigma)?;
        check("bwt", 0, 1)?;
        let mut bwt = vec![0u32; n];
        let mut counts = vec![0u64; sigma + 1];
        for (i, b) in bwt.iter_mut().enumerate() {
            let p = sa.get(i);
            *b = r[if p == 0 { n - 1 } else { p - 1 }];
            counts[*b as usize + 1] += 1;
        }
        drop(r);
        for c in 1..=sigma {
            counts[c] += counts[c - 1];
        }
        check("samples", 0, 1)?;
        let sa_s: Vec<u64> = (0..n).step_by(sa_rate).map(|i| sa.get(i) as u64).collect();
        let mut isa_s = vec![0u64; n.div_ceil(isa_rate)];
        for i in 0..n {
            let p = sa.get(i);
            if p % isa_rate == 0 {
                isa_s[p / isa_rate] = i as u64;
            }
        }
        drop(sa);
        let width = crate::bits::bits_for(n as u64);
        let mut wm = WaveletMatrix::build(&bwt, sigma, |l, nl| check("wavelet matrix", l, nl))?;
        let cnt: Vec<usize> = counts.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
        wm.set_counts(&cnt);
        Ok(FmCore {
            n,
            sigma,
            c: counts.into(),
            wm,
            sa_rate,
            isa_rate,
            sa: IntVec::with_width(&sa_s, width),
            isa: IntVec::with_width(&isa_s, width),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.n
    }

    pub(crate) fn sigma(&self) -> usize {
        self.sigma
    }

    pub(crate) fn size_bytes(&self) -> usize {
        self.c.len() * 8 + self.wm.size_bytes() + self.sa.size_bytes() + self.isa.size_bytes()
    }

    pub(crate) fn wm_levels(&self) -> usize {
        self.wm.num_levels()
    }

    #[inline]
    pub(crate) fn full(&self) -> Range {
        (0, self.n)
    }

    /// Rows whose suffix starts with `code` followed by the strings of `r`.
    #[inline]
    pub(crate) fn extend(&self, r: Range, code: u32) -> Range {
        if code as usize >= self.sigma || r.0 >= r.1 {
            return (0, 0);
        }
        let (ra, rb) = self.wm.rank_pair(code, r.0, r.1);
        let base = self.c[code as usize] as usize;
        (base + ra, base + rb)
    }

    #[inline]
    fn lf(&self, i: usize) -> (u32, usize) {
        let (c, r) = self.wm.access_rank(i);
        (c, self.c[c as usize] as usize + r)
    }

    /// `SA[i]`: position in `R` of the suffix of row `i`.
    pub(crate) fn sa_at(&self, mut i: usize) -> usize {
        let mut steps = 0;
        // `steps <= n` only guards against crafted files whose LF cycles miss every sample.
        while i % self.sa_rate != 0 && steps <= self.n {
            i = self.lf(i).1;
            steps += 1;
        }
        (self.sa.get(i / self.sa_rate) as usize + steps) % self.n
    }

    /// `R[x..y)` in reverse order (that is, in text order), `x <= y <= n`.
    pub(crate) fn extract_rev(&self, x: usize, y: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(y - x);
        if x >= y {
            return out;
        }
        let j = y.next_multiple_of(self.isa_rate);
        let (mut pos, mut row) = if j >= self.n {
            (self.n, self.isa.get(0) as usize)
        } else {
            (j, self.isa.get(j / self.isa_rate) as usize)
        };
        while pos > x {
            let (c, nr) = self.lf(row);
            pos -= 1;
            if pos < y {
                out.push(c);
            }
            row = nr;
        }
        out
    }

    /// Distinct BWT codes in the rows `r` with counts (the symbols that follow the occurrences).
    pub(crate) fn distinct(&self, r: Range) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        self.wm.distinct(r.0, r.1, &mut out);
        out
    }

    pub(crate) fn write<'a>(&'a self, w: &mut SectionWriter<'a>) {
        w.add_u64s(
            "fm.h",
            &[self.n as u64, self.sigma as u64, self.sa_rate as u64, self.isa_rate as u64],
        );
        w.add("fm.c", self.c.as_bytes());
        self.wm.write("wm", w);
        self.sa.write("sa", w);
        self.isa.write("isa", w);
    }

    pub(crate) fn read(r: &SectionReader) -> Result<Self> {
        let h = r.u64s("fm.h", 4)?;
        let (n, sigma, sa_rate, isa_rate) = (h[0] as usize, h[1] as usize, h[2] as usize, h[3] as usize);
        let bad = |m: &str| r.corrupt(format!("fm core: {m}"));
        if n == 0 || sigma < 2 || sigma > (u32::MAX as usize) || sa_rate == 0 || isa_rate == 0 {
            return Err(bad("bad parameters"));
        }
        let c = r.get::<u64>("fm.c")?;
        if c.len() != sigma + 1 || c[0] != 0 || c[sigma] != n as u64 || c.windows(2).any(|w| w[0] > w[1]) {
            return Err(bad("bad C array"));
        }
        // exactly one `$`, and it sorts first
        if c[1] != 1 {
            return Err(bad("bad sentinel count"));
        }
        let mut wm = WaveletMatrix::read("wm", r, n, sigma)?;
        let sa = IntVec::read("sa", r)?;
        let isa = IntVec::read("isa", r)?;
        if sa.len() != n.div_ceil(sa_rate) || isa.len() != n.div_ceil(isa_rate) {
            return Err(bad("sample counts mismatch"));
        }
        if (0..sa.len()).any(|i| sa.get(i) >= n as u64) || (0..isa.len()).any(|i| isa.get(i) >= n as u64) {
            return Err(bad("sample out of range"));
        }
        // per-symbol counts of the wavelet matrix must agree with C
        let mut out = Vec::new();
        wm_counts(&wm, &mut out);
        for &(code, cnt) in &out {
            if code as usize >= sigma {
                return Err(bad("symbol out of alphabet"));
            }
            if c[code as usize + 1] - c[code as usize] != cnt as u64 {
                return Err(bad("C array disagrees with BWT"));
            }
        }
        let cnt: Vec<usize> = c.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
        wm.set_counts(&cnt);
        Ok(FmCore { n, sigma, c, wm, sa_rate, isa_rate, sa, isa })
    }
}

fn wm_counts<Bv: RankBv>(wm: &WaveletMatrix<Bv>, out: &mut Vec<(u32, usize)>) {
    wm.distinct(0, wm.len(), out);
}
