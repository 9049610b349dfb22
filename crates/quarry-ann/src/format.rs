//! The single-file index format.
//!
//! ```text
//! header   64 bytes: magic "QRYANNX1", format version u32, endianness tag
//!          0x01020304 u32, section count u32, 36 reserved zero bytes,
//!          xxh3 of the first 56 bytes u64 (header + table integrity)
//! table    32 bytes per section: tag [u8; 8], offset u64, length u64, xxh3 u64
//! sections each starts on a 64-byte boundary (so f32/u32/u64 views of a
//!          mapped file are aligned), little-endian
//! ```
//!
//! Sections: `META` (u64 fields, see [`Meta`]), `CENTROID` (f32), `OPQ` (f32
//! rotation), `CODEC` (the encoder's parameters, f32), `IDS` (u64 per
//! vector), `LABELS` (u32 per vector, optional), `VECTORS` (f32, optional),
//! `LISTLEN` (u64 entries per list), `POSITION` (u32, lists concatenated),
//! `CODES` (u8, lists concatenated, each padded to 64 bytes), `FLOATS` (f32,
//! flat kinds, lists concatenated). Saving compacts: removed vectors are
//! dropped and positions renumbered. Opening checks the header, every
//! checksum, every length against the metadata and every value range, so a
//! truncated or altered file is rejected before use.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use xxhash_rust::xxh3::xxh3_64;

use crate::binary::BinaryCodec;
use crate::error::{AnnError, Result};
use crate::fastscan;
use crate::index::{Closure, Encoder, IndexConfig, IndexData, Kind, List};
use crate::opq::Opq;
use crate::pq::ProductQuantizer;
use crate::sq8::Sq8;
use crate::storage::{Bitset, Slab};
use crate::Metric;

const MAGIC: &[u8; 8] = b"QRYANNX1";
/// Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;
const ENDIAN_TAG: u32 = 0x0102_0304;
const HEADER: usize = 64;
const ENTRY: usize = 32;
const ALIGN: usize = 64;

fn corrupt(msg: impl Into<String>) -> AnnError {
    AnnError::CorruptIndex(msg.into())
}

/// Fixed-size metadata, stored as little-endian u64s in this order.
struct Meta {
    dim: u64,
    metric: u64,
    kind: u64,
    nlist: u64,
    pq_m: u64,
    pq_bits: u64,
    opq: u64,
    binary_levels: u64,
    store_vectors: u64,
    closure_copies: u64,
    closure_ratio_bits: u64,
    count: u64,
    has_labels: u64,
    seed: u64,
    wide_ids: u64,
}

impl Meta {
    const FIELDS: usize = 15;

    fn to_words(&self) -> [u64; Self::FIELDS] {
        [
            self.dim,
            self.metric,
            self.kind,
            self.nlist,
            self.pq_m,
            self.pq_bits,
            self.opq,
            self.binary_levels,
            self.store_vectors,
            self.closure_copies,
            self.closure_ratio_bits,
            self.count,
            self.has_labels,
            self.seed,
            self.wide_ids,
        ]
    }

    fn from_words(w: &[u64]) -> Meta {
        Meta {
            dim: w[0],
            metric: w[1],
            kind: w[2],
            nlist: w[3],
            pq_m: w[4],
            pq_bits: w[5],
            opq: w[6],
            binary_levels: w[7],
            store_vectors: w[8],
            closure_copies: w[9],
            closure_ratio_bits: w[10],
            count: w[11],
            has_labels: w[12],
            seed: w[13],
            wide_ids: w[14],
        }
    }
}

fn metric_code(m: Metric) -> u64 {
    match m {
        Metric::L2 => 0,
        Metric::InnerProduct => 1,
        Metric::Cosine => 2,
    }
}

fn metric_from(c: u64) -> Option<Metric> {
    [Metric::L2, Metric::InnerProduct, Metric::Cosine].get(c as usize).copied()
}

/// Codec parameters as a flat f32 run (see [`decode_codec`]).
fn encode_codec(e: &Encoder) -> Vec<f32> {
    match e {
        Encoder::Flat => Vec::new(),
        Encoder::Sq8(sq) => sq.vmin.iter().chain(&sq.vscale).copied().collect(),
        Encoder::Pq(pq) | Encoder::FastScan(pq) => pq.centroids.clone(),
        Encoder::Binary(b) => b.mean.iter().chain(&b.alphas).copied().collect(),
    }
}

fn decode_codec(kind: Kind, cfg: &IndexConfig, params: &[f32]) -> Result<Encoder> {
    let dim = cfg.dim;
    Ok(match kind {
        Kind::Flat | Kind::IvfFlat => {
            if !params.is_empty() {
                return Err(corrupt("flat index with codec parameters"));
            }
            Encoder::Flat
        }
        Kind::Sq8 | Kind::IvfSq8 => {
            if params.len() != 2 * dim {
                return Err(corrupt("sq8 parameters of the wrong length"));
            }
            let sq = Sq8 { dim, vmin: params[..dim].to_vec(), vscale: params[dim..].to_vec() };
            sq.validate().map_err(|e| corrupt(format!("sq8 parameters: {e}")))?;
            Encoder::Sq8(sq)
        }
        Kind::Pq | Kind::IvfPq => {
            let ksub = 1usize << cfg.pq_bits;
            if params.len() != ksub * dim {
                return Err(corrupt("pq centroids of the wrong length"));
            }
            let pq = ProductQuantizer { dim, m: cfg.pq_m, nbits: cfg.pq_bits, centroids: params.to_vec() };
            pq.validate().map_err(|e| corrupt(format!("pq codebooks: {e}")))?;
            if cfg.pq_bits == 4 { Encoder::FastScan(pq) } else { Encoder::Pq(pq) }
        }
        Kind::Binary | Kind::IvfBinary => {
            if params.len() != dim * (1 + cfg.binary_levels as usize) {
                return Err(corrupt("binary codec parameters of the wrong length"));
            }
            let b = BinaryCodec { dim, levels: cfg.binary_levels, mean: params[..dim].to_vec(), alphas: params[dim..].to_vec() };
            b.validate().map_err(|e| corrupt(format!("binary codec: {e}")))?;
            Encoder::Binary(b)
        }
    })
}

/// Writes `index` to `path` atomically (temp file in the same directory,
/// fsync, rename), compacting removed vectors away.
pub fn save(index: &IndexData, path: &Path) -> Result<()> {
    let cfg = &index.config;
    let dim = cfg.dim;
    // Compaction: old position -> new position for live vectors.
    let mut remap = vec![u32::MAX; index.ids.len()];
    let mut live = 0u32;
    for (p, slot) in remap.iter_mut().enumerate() {
        if !index.deleted.contains(p) {
            *slot = live;
            live += 1;
        }
    }
    let count = live as usize;
    let ids: Vec<u64> = index.ids.iter().enumerate().filter(|(p, _)| remap[*p] != u32::MAX).map(|(_, &id)| id).collect();
    let labels: Vec<u32> = if index.labels.is_empty() {
        Vec::new()
    } else {
        (0..index.ids.len()).filter(|&p| remap[p] != u32::MAX).map(|p| index.labels.get(p).copied().unwrap_or(0)).collect()
    };
    let vectors: Vec<f32> = if cfg.store_vectors {
        (0..index.ids.len())
            .filter(|&p| remap[p] != u32::MAX)
            .flat_map(|p| index.vectors[p * dim..(p + 1) * dim].iter().copied())
            .collect()
    } else {
        Vec::new()
    };

    let mut list_len = Vec::with_capacity(index.lists.len());
    let mut positions = Vec::new();
    let mut codes: Vec<u8> = Vec::new();
    let mut floats: Vec<f32> = Vec::new();
    let code_size = index.code_size();
    for list in &index.lists {
        let keep: Vec<usize> = (0..list.len()).filter(|&i| remap[list.positions[i] as usize] != u32::MAX).collect();
        list_len.push(keep.len() as u64);
        positions.extend(keep.iter().map(|&i| remap[list.positions[i] as usize]));
        match &index.encoder {
            Encoder::Flat => {
                for &i in &keep {
                    floats.extend_from_slice(&list.floats[i * dim..(i + 1) * dim]);
                }
            }
            Encoder::FastScan(pq) => {
                let mut unpacked = vec![0u8; keep.len() * pq.m];
                for (j, &i) in keep.iter().enumerate() {
                    fastscan::unpack(&list.codes, list.len(), pq.m, i, &mut unpacked[j * pq.m..(j + 1) * pq.m])?;
                }
                let mut packed = Vec::new();
                fastscan::pack(&unpacked, pq.m, &mut packed)?;
                codes.extend_from_slice(&packed);
            }
            _ => {
                for &i in &keep {
                    codes.extend_from_slice(&list.codes[i * code_size..(i + 1) * code_size]);
                }
            }
        }
        codes.resize(codes.len().next_multiple_of(ALIGN), 0);
    }

    let closure = cfg.closure.unwrap_or(Closure { max_copies: 1, ratio: 0.0 });
    let meta = Meta {
        dim: dim as u64,
        metric: metric_code(cfg.metric),
        kind: cfg.kind.code() as u64,
        nlist: index.lists.len() as u64,
        pq_m: cfg.pq_m as u64,
        pq_bits: cfg.pq_bits as u64,
        opq: index.opq.is_some() as u64,
        binary_levels: cfg.binary_levels as u64,
        store_vectors: cfg.store_vectors as u64,
        closure_copies: closure.max_copies as u64,
        closure_ratio_bits: closure.ratio.to_bits() as u64,
        count: count as u64,
        has_labels: !labels.is_empty() as u64,
        seed: cfg.seed,
        wide_ids: cfg.wide_ids as u64,
    };
    let codec = encode_codec(&index.encoder);
    let meta_words = meta.to_words();
    let opq: &[f32] = index.opq.as_ref().map_or(&[], |o| &o.rotation);
    let sections: Vec<(&[u8; 8], &[u8])> = vec![
        (b"META\0\0\0\0", bytemuck::cast_slice(&meta_words)),
        (b"CENTROID", bytemuck::cast_slice(&index.centroids)),
        (b"OPQ\0\0\0\0\0", bytemuck::cast_slice(opq)),
        (b"CODEC\0\0\0", bytemuck::cast_slice(&codec)),
        (b"IDS\0\0\0\0\0", bytemuck::cast_slice(&ids)),
        (b"LABELS\0\0", bytemuck::cast_slice(&labels)),
        (b"VECTORS\0", bytemuck::cast_slice(&vectors)),
        (b"LISTLEN\0", bytemuck::cast_slice(&list_len)),
        (b"POSITION", bytemuck::cast_slice(&positions)),
        (b"CODES\0\0\0", &codes),
        (b"FLOATS\0\0", bytemuck::cast_slice(&floats)),
    ];
    write_sections(path, &sections)
}

fn write_sections(path: &Path, sections: &[(&[u8; 8], &[u8])]) -> Result<()> {
    let mut table = Vec::with_capacity(sections.len() * ENTRY);
    let mut offset = (HEADER + sections.len() * ENTRY).next_multiple_of(ALIGN);
    let mut layout = Vec::new();
    for (tag, bytes) in sections {
        table.extend_from_slice(*tag);
        table.extend_from_slice(&(offset as u64).to_le_bytes());
        table.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        table.extend_from_slice(&xxh3_64(bytes).to_le_bytes());
        layout.push(offset);
        offset = (offset + bytes.len()).next_multiple_of(ALIGN);
    }
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&ENDIAN_TAG.to_le_bytes());
    header.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    header.resize(56, 0);
    let mut h = header.clone();
    h.extend_from_slice(&table);
    header.extend_from_slice(&xxh3_64(&h).to_le_bytes());

    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        w.write_all(&header)?;
        w.write_all(&table)?;
        let mut at = HEADER + table.len();
        for ((_, bytes), &off) in sections.iter().zip(&layout) {
            w.write_all(&vec![0u8; off - at])?;
            w.write_all(bytes)?;
            at = off + bytes.len();
        }
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| AnnError::Io(e.error))?;
    Ok(())
}

/// A validated, mapped index file.
struct Sections {
    map: Arc<Mmap>,
    entries: HashMap<[u8; 8], (usize, usize)>,
}

impl Sections {
    fn read(path: &Path) -> Result<Sections> {
        let file = File::open(path)?;
        // SAFETY: the file is opened read-only; like every mmap user we rely
        // on nobody truncating it while mapped (saves go to a new file and
        // rename, so quarry itself never does).
        let map = Arc::new(unsafe { Mmap::map(&file)? });
        let m = &map[..];
        if m.len() < HEADER || &m[..8] != MAGIC {
            return Err(corrupt("not a quarry vector index (bad magic)"));
        }
        let u32_at = |o: usize| u32::from_le_bytes(m[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(corrupt(format!("format version {version}, this build reads {FORMAT_VERSION}")));
        }
        if u32_at(12) != ENDIAN_TAG {
            return Err(corrupt("written on a machine of the other endianness"));
        }
        let count = u32_at(16) as usize;
        let table_end = HEADER.checked_add(count.checked_mul(ENTRY).ok_or_else(|| corrupt("section count"))?);
        let table_end = table_end.filter(|&e| e <= m.len()).ok_or_else(|| corrupt("truncated section table"))?;
        let mut h = m[..56].to_vec();
        h.extend_from_slice(&m[HEADER..table_end]);
        if xxh3_64(&h) != u64_at(56) {
            return Err(corrupt("header checksum mismatch"));
        }
        let mut entries = HashMap::new();
        for s in 0..count {
            let e = HEADER + s * ENTRY;
            let tag: [u8; 8] = m[e..e + 8].try_into().expect("8 bytes");
            let (off, len, sum) = (u64_at(e + 8) as usize, u64_at(e + 16) as usize, u64_at(e + 24));
            let end = off.checked_add(len).filter(|&end| end <= m.len()).ok_or_else(|| corrupt("truncated file"))?;
            if off % ALIGN != 0 {
                return Err(corrupt("misaligned section"));
            }
            if xxh3_64(&m[off..end]) != sum {
                return Err(corrupt(format!("checksum mismatch in section {}", String::from_utf8_lossy(&tag).trim_end_matches('\0'))));
            }
            entries.insert(tag, (off, len));
        }
        Ok(Sections { map, entries })
    }

    fn range(&self, tag: &[u8; 8]) -> Result<(usize, usize)> {
        self.entries.get(tag).copied().ok_or_else(|| {
            corrupt(format!("missing section {}", String::from_utf8_lossy(tag).trim_end_matches('\0')))
        })
    }

    /// A section's values copied to the heap.
    fn vec<T: bytemuck::Pod>(&self, tag: &[u8; 8]) -> Result<Vec<T>> {
        let (off, len) = self.range(tag)?;
        bytemuck::try_cast_slice::<u8, T>(&self.map[off..off + len])
            .map(|s| s.to_vec())
            .map_err(|_| corrupt("section length is not a whole number of values"))
    }

    /// A sub-range of a section, mapped or copied.
    fn slab<T: bytemuck::Pod>(&self, tag: &[u8; 8], start: usize, len: usize, mmap: bool) -> Result<Slab<T>> {
        let (off, sec_len) = self.range(tag)?;
        let (s, e) = (start * size_of::<T>(), (start + len) * size_of::<T>());
        if e > sec_len {
            return Err(corrupt("list runs past its section"));
        }
        let slab = Slab::<T>::mapped(&self.map, off + s..off + e).ok_or_else(|| corrupt("misaligned list"))?;
        Ok(if mmap { slab } else { Slab::Owned(slab.to_vec()) })
    }
}

/// Opens an index file, validating it entirely. With `mmap`, lists, codes and
/// stored vectors stay in the mapped file; otherwise they are read into memory.
pub fn open(path: &Path, mmap: bool) -> Result<IndexData> {
    let s = Sections::read(path)?;
    let words: Vec<u64> = s.vec(b"META\0\0\0\0")?;
    if words.len() != Meta::FIELDS {
        return Err(corrupt("metadata of the wrong length"));
    }
    let meta = Meta::from_words(&words);
    let kind = Kind::from_code(meta.kind as u32).ok_or_else(|| corrupt("unknown index kind"))?;
    let metric = metric_from(meta.metric).ok_or_else(|| corrupt("unknown metric"))?;
    let dim = meta.dim as usize;
    let nlist = meta.nlist as usize;
    let count = meta.count as usize;
    if dim == 0 || dim > 1 << 20 || nlist == 0 || (!kind.is_ivf() && nlist != 1) || count > u32::MAX as usize {
        return Err(corrupt("metadata out of range"));
    }
    let mut config = IndexConfig::new(dim, metric, kind);
    config.nlist = nlist;
    config.pq_m = meta.pq_m as usize;
    config.pq_bits = meta.pq_bits as u32;
    config.opq = meta.opq != 0;
    config.binary_levels = meta.binary_levels as u32;
    config.store_vectors = meta.store_vectors != 0;
    config.seed = meta.seed;
    config.wide_ids = meta.wide_ids != 0;
    config.closure = (meta.closure_copies > 1).then(|| Closure {
        max_copies: meta.closure_copies as usize,
        ratio: f32::from_bits(meta.closure_ratio_bits as u32),
    });
    if matches!(kind, Kind::Pq | Kind::IvfPq)
        && (config.pq_m == 0 || !dim.is_multiple_of(config.pq_m) || !(config.pq_bits == 4 || config.pq_bits == 8))
    {
        return Err(corrupt("PQ parameters out of range"));
    }

    let centroids: Vec<f32> = s.vec(b"CENTROID")?;
    if centroids.len() != if kind.is_ivf() { nlist * dim } else { 0 } {
        return Err(corrupt("centroids of the wrong length"));
    }
    let rotation: Vec<f32> = s.vec(b"OPQ\0\0\0\0\0")?;
    let opq = if config.opq {
        if rotation.len() != dim * dim {
            return Err(corrupt("OPQ rotation of the wrong length"));
        }
        let opq = Opq { dim, rotation };
        opq.validate().map_err(|e| corrupt(format!("OPQ rotation: {e}")))?;
        Some(opq)
    } else {
        None
    };
    let encoder = decode_codec(kind, &config, &s.vec::<f32>(b"CODEC\0\0\0")?)?;
    let ids: Vec<u64> = s.vec(b"IDS\0\0\0\0\0")?;
    if ids.len() != count {
        return Err(corrupt("id table of the wrong length"));
    }
    let labels: Vec<u32> = s.vec(b"LABELS\0\0")?;
    if labels.len() != if meta.has_labels != 0 { count } else { 0 } {
        return Err(corrupt("label table of the wrong length"));
    }
    let list_len: Vec<u64> = s.vec(b"LISTLEN\0")?;
    if list_len.len() != nlist {
        return Err(corrupt("list table of the wrong length"));
    }
    let vec_len = if config.store_vectors { count * dim } else { 0 };
    let vectors = s.slab::<f32>(b"VECTORS\0", 0, vec_len, mmap)?;
    if s.range(b"VECTORS\0")?.1 != vec_len * 4 {
        return Err(corrupt("stored vectors of the wrong length"));
    }

    let mut id_map = HashMap::with_capacity(count);
    for (p, &id) in ids.iter().enumerate() {
        if id == crate::index::NO_ID || id_map.insert(id, p as u32).is_some() {
            return Err(corrupt("duplicate or reserved id"));
        }
    }

    let code_size = encoder.code_size(dim);
    let mut lists = Vec::with_capacity(nlist);
    let (mut pos_at, mut code_at, mut float_at) = (0usize, 0usize, 0usize);
    let mut entries = 0usize;
    for &len in &list_len {
        let len = usize::try_from(len).map_err(|_| corrupt("list length"))?;
        entries = entries.checked_add(len).filter(|&e| e <= count.saturating_mul(nlist.max(1))).ok_or_else(|| corrupt("list lengths"))?;
        let positions = s.slab::<u32>(b"POSITION", pos_at, len, mmap)?;
        if positions.iter().any(|&p| p as usize >= count) {
            return Err(corrupt("list entry points past the vectors"));
        }
        pos_at += len;
        let (codes, floats) = match &encoder {
            Encoder::Flat => {
                let f = s.slab::<f32>(b"FLOATS\0\0", float_at, len * dim, mmap)?;
                float_at += len * dim;
                (Slab::default(), f)
            }
            Encoder::FastScan(pq) => {
                let n = fastscan::packed_len(len, pq.m);
                let c = s.slab::<u8>(b"CODES\0\0\0", code_at, n, mmap)?;
                code_at += n.next_multiple_of(ALIGN);
                (c, Slab::default())
            }
            _ => {
                let n = len * code_size;
                let c = s.slab::<u8>(b"CODES\0\0\0", code_at, n, mmap)?;
                code_at += n.next_multiple_of(ALIGN);
                (c, Slab::default())
            }
        };
        lists.push(List { positions, codes, floats });
    }
    if pos_at != s.range(b"POSITION")?.1 / 4 || code_at != s.range(b"CODES\0\0\0")?.1 || float_at * 4 != s.range(b"FLOATS\0\0")?.1 {
        return Err(corrupt("list sections hold more than the lists"));
    }
    Ok(IndexData {
        config,
        centroids,
        opq,
        encoder,
        lists,
        ids,
        labels,
        vectors,
        deleted: Bitset::default(),
        id_map,
        coarse: Default::default(),
        pq_tables: Default::default(),
    })
}
