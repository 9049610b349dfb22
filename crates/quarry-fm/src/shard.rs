//! One shard: an FM-index over the reversed concatenation of a contiguous run of documents.
//!
//! Text order: `T = d_0 SEP d_1 SEP ... d_{k-1} SEP` (every document is followed by the
//! separator). Indexed sequence: `R = reverse(T) $`. Text symbols (bytes or token ids) are mapped
//! to dense codes `2..` in increasing symbol order; `SEP` = 1 and `$` = 0 never occur in a
//! pattern, so no match can span a document boundary, and any byte value (NUL included) may
//! appear inside a document.

use std::path::Path;

use rayon::prelude::*;

use crate::bits::{PlainBv, RrrBv};
use crate::buf::Buf;
use crate::error::{FmError, Result};
use crate::fm::{FmCore, Range, Sym};
use crate::format::{SectionReader, SectionWriter};
use crate::sabuf::SaBuf;
use crate::BitvectorKind;

pub(crate) enum Core {
    Plain(FmCore<PlainBv>),
    Rrr(FmCore<RrrBv>),
}

macro_rules! core {
    ($s:expr, $c:ident => $e:expr) => {
        match &$s.core {
            Core::Plain($c) => $e,
            Core::Rrr($c) => $e,
        }
    };
}

/// Rows per parallel task of a locate.
const LOCATE_TASK: usize = 256;

pub(crate) struct Shard {
    core: Core,
    tlen: usize,
    starts: Buf<u64>,
    alphabet: Buf<u32>,
    meta_off: Buf<u64>,
    meta: Buf<u8>,
    pub(crate) file_bytes: u64,
}

pub(crate) type Check<'a> = dyn FnMut(&'static str, usize, usize) -> Result<()> + 'a;

/// Text symbols per parallel task of the passes over a shard's text before the suffix sort.
#[cfg(not(test))]
const TEXT_TASK: usize = 1 << 16;
// small and odd in unit tests, so that tasks split documents at many places
#[cfg(test)]
const TEXT_TASK: usize = 777;

/// Folds the document symbols of `text` (laid out as for [`Shard::build`], document `d` at
/// `starts[d] .. starts[d + 1] - 1`: separator slots skipped) in parallel chunks, whatever the
/// document sizes, and reduces the chunks' results.
fn par_doc_chunks<S: Sym, A: Send + Sync + Clone>(
    text: &[S],
    starts: &[u64],
    init: A,
    fold: impl Fn(A, &[S]) -> A + Sync + Send,
    reduce: impl Fn(A, A) -> A + Sync + Send,
) -> A {
    const CHUNK: usize = TEXT_TASK * 16;
    let ndocs = starts.len() - 1;
    (0..text.len().div_ceil(CHUNK))
        .into_par_iter()
        .fold(
            || init.clone(),
            |mut acc, k| {
                let (a, b) = (k * CHUNK, ((k + 1) * CHUNK).min(text.len()));
                // the last document starting before a, which may reach into the chunk
                let mut d = starts[..ndocs].partition_point(|&p| (p as usize) < a).saturating_sub(1);
                while d < ndocs && (starts[d] as usize) < b {
                    let (s, e) = ((starts[d] as usize).max(a), (starts[d + 1] as usize - 1).min(b));
                    if s < e {
                        acc = fold(acc, &text[s..e]);
                    }
                    d += 1;
                }
                acc
            },
        )
        .reduce(|| init.clone(), reduce)
}

/// `r[i], r[len - 1 - i] = lut[r[len - 1 - i]], lut[r[i]]`: the text reversed and dense-coded
/// in its own buffer, in parallel.
fn reverse_map_in_place<T: Sym>(r: &mut [T], lut: &[u32]) {
    const CHUNK: usize = TEXT_TASK;
    let map = |x: T| T::from_u32(lut[x.into() as usize]);
    let h = r.len() / 2;
    let (lo, rest) = r.split_at_mut(h);
    let (mid, hi) = rest.split_at_mut(rest.len() - h);
    for m in mid {
        *m = map(*m);
    }
    // chunk k of `lo` from the start mirrors chunk k of `hi` from the end
    lo.par_chunks_mut(CHUNK).zip(hi.par_rchunks_mut(CHUNK)).for_each(|(a, b)| {
        debug_assert_eq!(a.len(), b.len());
        let k = b.len();
        for j in 0..k {
            let (x, y) = (a[j], b[k - 1 - j]);
            a[j] = map(y);
            b[k - 1 - j] = map(x);
        }
    });
}

impl Shard {
    /// Build over the documents in `text`: back to back, each followed by one zero slot for its
    /// separator, and one more zero slot at the end, so that `text` has the length of the indexed
    /// sequence; `lens` are the documents' lengths (symbols). `sa_buf`: a buffer for the suffix
    /// array, if one is ready (see [`crate::sabuf`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build<S: Sym>(
        text: Vec<S>,
        lens: Vec<usize>,
        metas: Vec<Option<String>>,
        kind: BitvectorKind,
        sa_rate: usize,
        isa_rate: usize,
        sa_buf: Option<SaBuf>,
        check: &mut Check<'_>,
    ) -> Result<Shard> {
        let ndocs = lens.len();
        // document d occupies text[starts[d] .. starts[d] + lens[d]], then its separator slot
        let mut starts = Vec::with_capacity(ndocs + 1);
        let mut p = 0u64;
        for &len in &lens {
            starts.push(p);
            p += len as u64 + 1;
        }
        starts.push(p);
        debug_assert_eq!(text.len() as u64, p + 1);
        drop(lens);
        let max = par_doc_chunks(&text, &starts, 0u32, |m, seg| seg.iter().fold(m, |m, &s| m.max(s.into())), u32::max) as usize;
        let present = par_doc_chunks(
            &text,
            &starts,
            vec![false; max + 1],
            |mut p, seg| {
                for &s in seg {
                    p[s.into() as usize] = true;
                }
                p
            },
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x |= y;
                }
                a
            },
        );
        let alphabet: Vec<u32> = (0..=max as u32).filter(|&s| present[s as usize]).collect();
        drop(present);
        let sigma = alphabet.len() + 2;
        // the metadata in its stored form now, and the per-document vectors dropped as soon as
        // possible: everything still held when the suffix array is sorted adds to the peak
        let mut meta_off = Vec::with_capacity(ndocs + 1);
        let mut meta = Vec::new();
        meta_off.push(0u64);
        for m in metas {
            if let Some(m) = m {
                meta.extend_from_slice(m.as_bytes());
            }
            meta_off.push(meta.len() as u64);
        }
        let core = if sigma <= 1 << 8 {
            Self::build_core::<S, u8>(text, &starts, &alphabet, max, kind, sa_rate, isa_rate, sa_buf, check)?
        } else if sigma <= 1 << 16 {
            Self::build_core::<S, u16>(text, &starts, &alphabet, max, kind, sa_rate, isa_rate, sa_buf, check)?
        } else {
            Self::build_core::<S, u32>(text, &starts, &alphabet, max, kind, sa_rate, isa_rate, sa_buf, check)?
        };
        let tlen = *starts.last().unwrap_or(&0) as usize;
        Ok(Shard {
            core,
            tlen,
            starts: starts.into(),
            alphabet: alphabet.into(),
            meta_off: meta_off.into(),
            meta: meta.into(),
            file_bytes: 0,
        })
    }

    /// The dense-coded reversed text `R` in the narrowest integer type (in `text`'s own buffer
    /// when the types have the same width), then the FM core.
    #[allow(clippy::too_many_arguments)]
    fn build_core<S: Sym, T: Sym>(
        text: Vec<S>,
        starts: &[u64],
        alphabet: &[u32],
        max: usize,
        kind: BitvectorKind,
        sa_rate: usize,
        isa_rate: usize,
        mut sa_buf: Option<SaBuf>,
        check: &mut Check<'_>,
    ) -> Result<Core> {
        let mut lut = vec![0u32; max + 1];
        for (i, &s) in alphabet.iter().enumerate() {
            lut[s as usize] = i as u32 + 2;
        }
        let sigma = alphabet.len() + 2;
        let n = text.len();
        let tlen = n - 1;
        let mut r: Vec<T> = match bytemuck::allocation::try_cast_vec::<S, T>(text) {
            Ok(mut r) => {
                reverse_map_in_place(&mut r[..tlen], &lut);
                r
            }
            Err((_, text)) => {
                // a second buffer while the text is alive: the suffix array's pages, faulted in
                // already, would add to this peak, so they are given back and faulted in again
                // by the sort
                sa_buf = None;
                let mut r: Vec<T> = crate::fm::big_vec(n);
                r[..tlen].par_chunks_mut(TEXT_TASK).enumerate().for_each(|(k, out)| {
                    let q = tlen - k * TEXT_TASK; // out[j] = lut[text[q - 1 - j]]
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = T::from_u32(lut[text[q - 1 - j].into() as usize]);
                    }
                });
                r
            }
        };
        // the separator slot before each document's successor is at text position end - 1
        for &end in &starts[1..] {
            r[tlen - end as usize] = T::from_u32(1);
        }
        r[tlen] = T::from_u32(0);
        drop(lut);
        // the documents read so far were many small allocations, freed by now but kept by
        // malloc in its heap; give them back before the peak (text + suffix array)
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory of the allocator to the OS.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(match kind {
            BitvectorKind::Plain => Core::Plain(FmCore::build(r, sigma, sa_rate, isa_rate, sa_buf, check)?),
            BitvectorKind::Compressed => Core::Rrr(FmCore::build(r, sigma, sa_rate, isa_rate, sa_buf, check)?),
        })
    }

    pub(crate) fn save(&mut self, path: &Path) -> Result<()> {
        let mut w = SectionWriter::default();
        let kind = match self.core {
            Core::Plain(_) => 0u64,
            Core::Rrr(_) => 1,
        };
        w.add_u64s("shard.h", &[self.tlen as u64, self.ndocs() as u64, kind]);
        w.add("docs", self.starts.as_bytes());
        w.add("alpha", self.alphabet.as_bytes());
        w.add("meta.o", self.meta_off.as_bytes());
        w.add("meta.d", self.meta.as_bytes());
        core!(self, c => c.write(&mut w));
        self.file_bytes = w.write_atomic(path)?;
        Ok(())
    }

    pub(crate) fn open(path: &Path) -> Result<Shard> {
        let r = SectionReader::open(path)?;
        let h = r.u64s("shard.h", 3)?;
        let (tlen, ndocs, kind) = (h[0] as usize, h[1] as usize, h[2]);
        let core = match kind {
            0 => Core::Plain(FmCore::read(&r)?),
            1 => Core::Rrr(FmCore::read(&r)?),
            _ => return Err(r.corrupt("unknown bitvector kind")),
        };
        let starts = r.get::<u64>("docs")?;
        let alphabet = r.get::<u32>("alpha")?;
        let meta_off = r.get::<u64>("meta.o")?;
        let meta = r.get::<u8>("meta.d")?;
        let n = match &core {
            Core::Plain(c) => c.len(),
            Core::Rrr(c) => c.len(),
        };
        let bad = |m: &str| r.corrupt(format!("shard: {m}"));
        if n != tlen + 1 {
            return Err(bad("text length mismatch"));
        }
        if starts.len() != ndocs + 1
            || starts[0] != 0
            || starts[ndocs] != tlen as u64
            || starts.windows(2).any(|w| w[1] <= w[0])
        {
            return Err(bad("bad document table"));
        }
        if alphabet.windows(2).any(|w| w[1] <= w[0]) {
            return Err(bad("bad alphabet"));
        }
        let sigma = match &core {
            Core::Plain(c) => c.sigma(),
            Core::Rrr(c) => c.sigma(),
        };
        if alphabet.len() + 2 != sigma {
            return Err(bad("alphabet size mismatch"));
        }
        if meta_off.len() != ndocs + 1
            || meta_off[0] != 0
            || meta_off[ndocs] != meta.len() as u64
            || meta_off.windows(2).any(|w| w[1] < w[0])
            || std::str::from_utf8(&meta).is_err()
        {
            return Err(bad("bad metadata table"));
        }
        let file_bytes = std::fs::metadata(path).map_err(|e| FmError::io(path, e))?.len();
        Ok(Shard { core, tlen, starts, alphabet, meta_off, meta, file_bytes })
    }

    pub(crate) fn ndocs(&self) -> usize {
        self.starts.len() - 1
    }

    /// Number of text symbols (separators excluded).
    pub(crate) fn symbols(&self) -> u64 {
        (self.tlen - self.ndocs()) as u64
    }

    pub(crate) fn kind(&self) -> BitvectorKind {
        match self.core {
            Core::Plain(_) => BitvectorKind::Plain,
            Core::Rrr(_) => BitvectorKind::Compressed,
        }
    }

    pub(crate) fn index_bytes(&self) -> usize {
        core!(self, c => c.size_bytes())
            + self.starts.len() * 8
            + self.alphabet.len() * 4
            + self.meta_off.len() * 8
            + self.meta.len()
    }

    pub(crate) fn wm_levels(&self) -> usize {
        core!(self, c => c.wm_levels())
    }

    #[inline]
    fn code(&self, sym: u32) -> Option<u32> {
        self.alphabet.binary_search(&sym).ok().map(|i| i as u32 + 2)
    }

    /// Rows of the pattern (text order), or an empty range if a symbol is absent from this shard.
    pub(crate) fn range(&self, pat: &[u32]) -> Range {
        let (mut r, rest) = match pat {
            [a, b, rest @ ..] => {
                let (Some(a), Some(b)) = (self.code(*a), self.code(*b)) else { return (0, 0) };
                let r = core!(self, c => c.extend_pair(a, b));
                if r.0 >= r.1 {
                    return (0, 0);
                }
                (r, rest)
            }
            _ => (core!(self, c => c.full()), pat),
        };
        for &s in rest {
            let Some(code) = self.code(s) else { return (0, 0) };
            r = core!(self, c => c.extend(r, code));
            if r.0 >= r.1 {
                return (0, 0);
            }
        }
        r
    }

    pub(crate) fn count(&self, pat: &[u32]) -> u64 {
        let r = self.range(pat);
        (r.1 - r.0) as u64
    }

    /// (local doc, offset) of the occurrence in each row of `rows` of a pattern of length `m`, in
    /// order: tasks of [`LOCATE_TASK`] rows on the pool, each interleaving its rows' walks to a
    /// suffix-array sample.
    pub(crate) fn locate_rows(&self, rows: &[usize], m: usize) -> Vec<(usize, u64)> {
        rows.par_chunks(LOCATE_TASK)
            .flat_map_iter(|ch| {
                let mut q = vec![0usize; ch.len()];
                core!(self, c => c.sa_at_many(ch, &mut q));
                q.into_iter().map(|q| self.doc_offset(q, m))
            })
            .collect()
    }

    /// (local doc, offset) of an occurrence of a length-`m` pattern whose reversal starts at `q`.
    fn doc_offset(&self, q: usize, m: usize) -> (usize, u64) {
        // occurrence of the reversed pattern at R[q..q+m) <=> pattern at T[tlen-q-m ..)
        let p = (self.tlen as u64).saturating_sub((q + m) as u64);
        let doc = self.starts.partition_point(|&s| s <= p).saturating_sub(1);
        (doc, p - self.starts[doc])
    }

    pub(crate) fn doc_len(&self, doc: usize) -> u64 {
        self.starts[doc + 1] - self.starts[doc] - 1
    }

    /// Symbols `[start, start+len)` of local document `doc`, clamped to the document.
    pub(crate) fn extract(&self, doc: usize, start: u64, len: u64) -> Vec<u32> {
        let dl = self.doc_len(doc);
        let a = self.starts[doc] + start.min(dl);
        let b = self.starts[doc] + start.saturating_add(len).min(dl);
        if a >= b {
            return Vec::new();
        }
        let t = self.tlen as u64;
        let codes = core!(self, c => c.extract_rev((t - b) as usize, (t - a) as usize));
        codes.into_iter().map(|c| self.symbol(c).unwrap_or(u32::MAX)).collect()
    }

    #[inline]
    pub(crate) fn symbol(&self, code: u32) -> Option<u32> {
        if code < 2 { None } else { self.alphabet.get(code as usize - 2).copied() }
    }

    /// Symbols following the occurrences in `r` with counts, and the count of end-of-document.
    pub(crate) fn next_symbols(&self, r: Range) -> (Vec<(u32, u64)>, u64) {
        let d = core!(self, c => c.distinct(r));
        let mut eod = 0;
        let mut out = Vec::with_capacity(d.len());
        for (code, cnt) in d {
            match self.symbol(code) {
                Some(s) => out.push((s, cnt as u64)),
                None => eod += cnt as u64,
            }
        }
        (out, eod)
    }

    pub(crate) fn metadata(&self, doc: usize) -> Option<&str> {
        let (a, b) = (self.meta_off[doc] as usize, self.meta_off[doc + 1] as usize);
        if a == b {
            return None;
        }
        std::str::from_utf8(&self.meta[a..b]).ok()
    }
}
