//! Shard file container: fixed header, section table, 64-byte aligned sections, xxh3 checksums.
//!
//! Layout (all integers little-endian; files are rejected on big-endian hosts):
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"QRYFMIDX"
//! 8       4     format version (u32, currently 2; 2 = Huffman-shaped wavelet tree)
//! 12      4     endianness marker 0x01020304 (u32)
//! 16      4     header length in bytes = 64 + 48 * section count (u32)
//! 20      4     section count (u32)
//! 24      8     total file length (u64)
//! 32      8     xxh3-64 of bytes [0, header length) with this field zeroed (u64)
//! 40      24    reserved (zero)
//! 64      48*k  section table: name [u8; 24] (NUL padded UTF-8), offset u64, length u64, xxh3-64 of data u64
//! ...           section data, each starting at a multiple of 64 bytes, zero padding between
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytemuck::Pod;
use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::buf::Buf;
use crate::error::{FmError, Result};

pub(crate) const MAGIC: &[u8; 8] = b"QRYFMIDX";
pub(crate) const VERSION: u32 = 2;
const ENDIAN: u32 = 0x0102_0304;
const HEADER: usize = 64;
const ENTRY: usize = 48;
const NAME: usize = 24;
const ALIGN: usize = 64;

#[derive(Default)]
pub(crate) struct SectionWriter<'a> {
    secs: Vec<(String, Cow<'a, [u8]>)>,
}

impl<'a> SectionWriter<'a> {
    pub(crate) fn add(&mut self, name: impl Into<String>, data: &'a [u8]) {
        let name = name.into();
        debug_assert!(name.len() <= NAME);
        self.secs.push((name, Cow::Borrowed(data)));
    }

    pub(crate) fn add_owned(&mut self, name: impl Into<String>, data: Vec<u8>) {
        let name = name.into();
        debug_assert!(name.len() <= NAME);
        self.secs.push((name, Cow::Owned(data)));
    }

    pub(crate) fn add_u64s(&mut self, name: impl Into<String>, vals: &[u64]) {
        self.add_owned(name, bytemuck::cast_slice(vals).to_vec());
    }

    /// Write to `path` through a temporary file in the same directory, fsync, then rename.
    pub(crate) fn write_atomic(&self, path: &Path) -> Result<u64> {
        let header_len = HEADER + ENTRY * self.secs.len();
        let mut offsets = Vec::with_capacity(self.secs.len());
        let mut pos = header_len.next_multiple_of(ALIGN);
        for (_, d) in &self.secs {
            offsets.push(pos);
            pos = (pos + d.len()).next_multiple_of(ALIGN);
        }
        let file_len = pos as u64;
        let mut header = vec![0u8; header_len];
        header[0..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&ENDIAN.to_le_bytes());
        header[16..20].copy_from_slice(&(header_len as u32).to_le_bytes());
        header[20..24].copy_from_slice(&(self.secs.len() as u32).to_le_bytes());
        header[24..32].copy_from_slice(&file_len.to_le_bytes());
        for (k, (name, d)) in self.secs.iter().enumerate() {
            let e = HEADER + ENTRY * k;
            header[e..e + name.len()].copy_from_slice(name.as_bytes());
            header[e + 24..e + 32].copy_from_slice(&(offsets[k] as u64).to_le_bytes());
            header[e + 32..e + 40].copy_from_slice(&(d.len() as u64).to_le_bytes());
            header[e + 40..e + 48].copy_from_slice(&xxh3_64(d).to_le_bytes());
        }
        let sum = xxh3_64(&header);
        header[32..40].copy_from_slice(&sum.to_le_bytes());

        let dir = path.parent().unwrap_or(Path::new("."));
        let fname = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{fname}.tmp{}", std::process::id()));
        let res = (|| -> std::io::Result<()> {
            let f = File::create(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            w.write_all(&header)?;
            let mut cur = header_len;
            let zeros = [0u8; ALIGN];
            for (k, (_, d)) in self.secs.iter().enumerate() {
                w.write_all(&zeros[..offsets[k] - cur])?;
                w.write_all(d)?;
                cur = offsets[k] + d.len();
            }
            w.write_all(&zeros[..file_len as usize - cur])?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(FmError::io(&tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| FmError::io(path, e))?;
        Ok(file_len)
    }
}

pub(crate) struct SectionReader {
    pub(crate) path: PathBuf,
    map: Arc<Mmap>,
    secs: HashMap<String, (usize, usize)>,
}

impl SectionReader {
    /// Map and validate a shard file: header, table, bounds, alignment and every checksum.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let corrupt = |r: &str| FmError::corrupt(path, r.to_string());
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FmError::corrupt(path, "index file missing")
            } else {
                FmError::io(path, e)
            }
        })?;
        let flen = file.metadata().map_err(|e| FmError::io(path, e))?.len();
        if flen < HEADER as u64 {
            return Err(corrupt("file shorter than header"));
        }
        // SAFETY: the file is opened read-only; quarry never modifies index files in place
        // (they are replaced by rename). Concurrent external modification is unsupported.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| FmError::io(path, e))?;
        let b: &[u8] = &map;
        if &b[0..8] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        if u32at(12) != ENDIAN {
            return Err(corrupt("endianness marker mismatch (file written on another byte order?)"));
        }
        let ver = u32at(8);
        if ver != VERSION {
            return Err(corrupt(&format!("unsupported format version {ver} (expected {VERSION})")));
        }
        let header_len = u32at(16) as usize;
        let nsec = u32at(20) as usize;
        if nsec > 100_000 || header_len != HEADER + ENTRY * nsec || header_len > b.len() {
            return Err(corrupt("bad header length / section count"));
        }
        if u64at(24) != b.len() as u64 {
            return Err(corrupt(&format!("file length {} but header says {}", b.len(), u64at(24))));
        }
        let mut hdr = b[..header_len].to_vec();
        hdr[32..40].fill(0);
        if xxh3_64(&hdr) != u64at(32) {
            return Err(corrupt("header checksum mismatch"));
        }
        let mut secs = HashMap::new();
        for k in 0..nsec {
            let e = HEADER + ENTRY * k;
            let raw = &b[e..e + NAME];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(NAME);
            let name = std::str::from_utf8(&raw[..end]).map_err(|_| corrupt("bad section name"))?;
            let off = u64at(e + 24);
            let len = u64at(e + 32);
            let sum = u64at(e + 40);
            let endp = off.checked_add(len).ok_or_else(|| corrupt("section bounds overflow"))?;
            if off % ALIGN as u64 != 0 || off < header_len as u64 || endp > b.len() as u64 {
                return Err(corrupt(&format!("section {name} out of bounds or misaligned")));
            }
            let (off, len) = (off as usize, len as usize);
            if xxh3_64(&b[off..off + len]) != sum {
                return Err(corrupt(&format!("checksum mismatch in section {name}")));
            }
            if secs.insert(name.to_string(), (off, len)).is_some() {
                return Err(corrupt(&format!("duplicate section {name}")));
            }
        }
        // every byte outside the header and the sections must be zero padding
        let mut spans: Vec<(usize, usize)> = secs.values().copied().collect();
        spans.sort_unstable();
        let mut cur = header_len;
        for (off, len) in spans.into_iter().chain(std::iter::once((b.len(), 0))) {
            if off < cur {
                return Err(corrupt("overlapping sections"));
            }
            if b[cur..off].iter().any(|&x| x != 0) {
                return Err(corrupt("non-zero padding"));
            }
            cur = off + len;
        }
        Ok(SectionReader { path: path.to_path_buf(), map: Arc::new(map), secs })
    }

    pub(crate) fn corrupt(&self, reason: impl Into<String>) -> FmError {
        FmError::corrupt(&self.path, reason)
    }

    pub(crate) fn get<T: Pod>(&self, name: &str) -> Result<Buf<T>> {
        let &(off, len) =
            self.secs.get(name).ok_or_else(|| self.corrupt(format!("missing section {name}")))?;
        Buf::mapped(&self.map, off, len)
            .ok_or_else(|| self.corrupt(format!("section {name} has a bad size or alignment")))
    }

    /// A section that older files may lack: `None` when absent.
    pub(crate) fn get_opt<T: Pod>(&self, name: &str) -> Result<Option<Buf<T>>> {
        if self.secs.contains_key(name) { self.get(name).map(Some) } else { Ok(None) }
    }

    /// A section of exactly `n` u64 values.
    pub(crate) fn u64s(&self, name: &str, n: usize) -> Result<Vec<u64>> {
        let v = self.get::<u64>(name)?;
        if v.len() != n {
            return Err(self.corrupt(format!("section {name}: expected {n} values, found {}", v.len())));
        }
        Ok(v.to_vec())
    }
}
