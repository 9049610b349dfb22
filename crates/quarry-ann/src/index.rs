//! The vector index: one structure for every kind.
//!
//! Every kind is an inverted file: a coarse quantizer (k-means centroids)
//! sends each vector to one list (or a few, with posting-list closure), and
//! each list holds the vectors' codes in the kind's encoding. The non-IVF
//! kinds (`flat`, `sq8`, `pq`, `binary`) are the same structure with a single
//! list and no coarse quantizer, so search, filters, removal, re-ranking and
//! persistence have one implementation.
//!
//! Internally every score is a key where smaller is nearer: the squared L2
//! distance, or the negated inner product / cosine similarity. Results are
//! turned back into the user's form (distance for L2, similarity otherwise).
//!
//! Positions: each added vector gets the next position (`0, 1, ...`); lists,
//! raw vectors, ids and labels are addressed by position. Removal sets a
//! tombstone; saving compacts positions.

use std::collections::HashMap;

use quarry_simd::VectorsRef;
use crate::reservoir::Reservoir;
use quarry_simd::topk::may_enter;
use rayon::prelude::*;

use crate::binary::BinaryCodec;
use crate::error::{AnnError, Result, invalid};
use crate::fastscan::{self, Collector, QuantizedLut};
use crate::kmeans::{self, KMeansConfig};
use crate::opq::Opq;
use crate::pq::ProductQuantizer;
use crate::sq8::Sq8;
use crate::storage::{Bitset, Slab};
use crate::{Control, Metric, check_finite};

/// What a list stores per vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Full f32 vectors (exact search).
    Flat,
    /// Full f32 vectors in an inverted file.
    IvfFlat,
    /// 8-bit per-dimension scalar codes.
    Sq8,
    /// 8-bit scalar codes in an inverted file.
    IvfSq8,
    /// Product-quantization codes (8-bit: table lookups; 4-bit: fast-scan).
    Pq,
    /// PQ codes of the residual to the list's centroid, in an inverted file.
    IvfPq,
    /// Sign bits / multi-bit residual binarisation.
    Binary,
    /// Binary codes in an inverted file.
    IvfBinary,
}

impl Kind {
    /// Every kind, in the order of their names.
    pub const ALL: [Kind; 8] =
        [Kind::Flat, Kind::IvfFlat, Kind::Sq8, Kind::IvfSq8, Kind::Pq, Kind::IvfPq, Kind::Binary, Kind::IvfBinary];

    /// The API name (`flat`, `ivf-flat`, `sq8`, `ivf-sq8`, `pq`, `ivf-pq`, `binary`, `ivf-binary`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Flat => "flat",
            Kind::IvfFlat => "ivf-flat",
            Kind::Sq8 => "sq8",
            Kind::IvfSq8 => "ivf-sq8",
            Kind::Pq => "pq",
            Kind::IvfPq => "ivf-pq",
            Kind::Binary => "binary",
            Kind::IvfBinary => "ivf-binary",
        }
    }

    /// Parses an API name.
    pub fn parse(s: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| invalid(format!("unknown index kind '{s}' (one of {})", Kind::names())))
    }

    fn names() -> String {
        Kind::ALL.map(Kind::name).join(", ")
    }

    /// Whether the kind has a coarse quantizer.
    pub fn is_ivf(self) -> bool {
        matches!(self, Kind::IvfFlat | Kind::IvfSq8 | Kind::IvfPq | Kind::IvfBinary)
    }

    pub(crate) fn code(self) -> u32 {
        Kind::ALL.iter().position(|&k| k == self).unwrap_or(0) as u32
    }

    pub(crate) fn from_code(c: u32) -> Option<Kind> {
        Kind::ALL.get(c as usize).copied()
    }
}

/// SPANN-style posting-list closure: a vector is also stored in its next
/// nearest lists when their centroid is almost as near as the nearest one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closure {
    /// Most lists one vector is stored in (≥ 2 to have an effect).
    pub max_copies: usize,
    /// A further list `j` takes the vector when `d(x, c_j) ≤ (1 + ratio) · d(x, c_1)`
    /// (squared L2 distances to the centroids).
    pub ratio: f32,
}

/// How to build an index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    pub dim: usize,
    pub metric: Metric,
    pub kind: Kind,
    /// Lists of an IVF kind (ignored otherwise).
    pub nlist: usize,
    /// PQ sub-spaces (must divide `dim`).
    pub pq_m: usize,
    /// PQ bits per code: 8 (table lookups) or 4 (fast-scan).
    pub pq_bits: u32,
    /// Learn an OPQ rotation before quantizing (PQ kinds).
    pub opq: bool,
    /// OPQ alternating-optimisation rounds.
    pub opq_iterations: usize,
    /// Bits per dimension of binary codes (1 = sign bits).
    pub binary_levels: u32,
    /// Keep the full vectors for exact re-ranking (always true for flat kinds,
    /// whose codes are the vectors).
    pub store_vectors: bool,
    /// k-means iterations (coarse quantizer).
    pub kmeans_iterations: usize,
    /// Training sub-sample: at most this many points per centroid.
    pub max_points_per_centroid: usize,
    /// Balanced k-means: list sizes bounded by `ceil(f · n / nlist)`.
    pub balance: Option<f32>,
    /// Posting-list closure.
    pub closure: Option<Closure>,
    /// Seed of every random choice (training is deterministic given it).
    pub seed: u64,
    /// The caller uses 64-bit ids (the binding returns them as such).
    pub wide_ids: bool,
}

impl IndexConfig {
    /// Defaults for `kind`: nlist 1024, PQ with 2-dimensional sub-spaces at
    /// 4 bits (when `dim` is even), vectors kept for re-ranking.
    pub fn new(dim: usize, metric: Metric, kind: Kind) -> Self {
        IndexConfig {
            dim,
            metric,
            kind,
            nlist: 1024,
            pq_m: if dim.is_multiple_of(2) { dim / 2 } else { dim },
            pq_bits: 4,
            opq: false,
            opq_iterations: 10,
            binary_levels: 1,
            store_vectors: true,
            kmeans_iterations: 10,
            max_points_per_centroid: 256,
            balance: None,
            closure: None,
            seed: 0x5eed,
            wide_ids: false,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(invalid("dim must be at least 1"));
        }
        if self.kind.is_ivf() && self.nlist == 0 {
            return Err(invalid("nlist must be at least 1"));
        }
        if matches!(self.kind, Kind::Pq | Kind::IvfPq) {
            if self.pq_m == 0 || !self.dim.is_multiple_of(self.pq_m) {
                return Err(invalid(format!("pq.m = {} must divide dim = {}", self.pq_m, self.dim)));
            }
            if self.pq_bits != 4 && self.pq_bits != 8 {
                return Err(invalid(format!("pq.bits must be 4 or 8, got {}", self.pq_bits)));
            }
        } else if self.opq {
            return Err(invalid("opq applies to the PQ kinds only"));
        }
        if matches!(self.kind, Kind::Binary | Kind::IvfBinary) && !(1..=8).contains(&self.binary_levels) {
            return Err(invalid(format!("binary levels must be in 1..=8, got {}", self.binary_levels)));
        }
        if let Some(c) = self.closure {
            if !self.kind.is_ivf() {
                return Err(invalid("closure applies to IVF kinds only"));
            }
            if c.max_copies == 0 || !(c.ratio >= 0.0 && c.ratio.is_finite()) {
                return Err(invalid("closure needs maxCopies ≥ 1 and a finite ratio ≥ 0"));
            }
        }
        if let Some(b) = self.balance
            && !(b >= 1.0 && b.is_finite())
        {
            return Err(invalid(format!("balance must be a finite factor ≥ 1, got {b}")));
        }
        Ok(())
    }

    /// Whether PQ codes encode the residual to the list centroid.
    fn by_residual(&self) -> bool {
        self.kind == Kind::IvfPq
    }
}

/// The quantizer of a list's codes.
#[derive(Debug, Clone)]
pub enum Encoder {
    /// Codes are the vectors themselves (in `List::floats`).
    Flat,
    Sq8(Sq8),
    /// 8-bit PQ scanned with float tables.
    Pq(ProductQuantizer),
    /// 4-bit PQ packed in blocks of 32 and scanned with byte shuffles.
    FastScan(ProductQuantizer),
    Binary(BinaryCodec),
}

impl Encoder {
    /// Bytes per vector in a list (fast-scan: per vector of a full block).
    pub(crate) fn code_size(&self, dim: usize) -> usize {
        match self {
            Encoder::Flat => dim * 4,
            Encoder::Sq8(_) => dim,
            Encoder::Pq(pq) | Encoder::FastScan(pq) => pq.code_size(),
            Encoder::Binary(b) => b.code_size(),
        }
    }
}

/// One inverted list.
#[derive(Debug, Clone, Default)]
pub struct List {
    /// Position of each entry.
    pub positions: Slab<u32>,
    /// Codes of each entry (fast-scan: packed blocks of 32).
    pub codes: Slab<u8>,
    /// Vectors of each entry (flat kinds only).
    pub floats: Slab<f32>,
}

impl List {
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    fn heap_bytes(&self) -> usize {
        self.positions.heap_bytes() + self.codes.heap_bytes() + self.floats.heap_bytes()
    }

    fn mapped_bytes(&self) -> usize {
        let m = |b: bool, n: usize| if b { n } else { 0 };
        m(self.positions.is_mapped(), self.positions.len() * 4)
            + m(self.codes.is_mapped(), self.codes.len())
            + m(self.floats.is_mapped(), self.floats.len() * 4)
    }
}

/// A filter applied inside the list scans: only matching vectors can be returned.
#[derive(Debug, Clone, Copy, Default)]
pub enum Filter<'a> {
    /// Every vector.
    #[default]
    None,
    /// Only the vectors with these user ids (unknown ids are ignored).
    AllowIds(&'a [u64]),
    /// Only the vectors whose label (given at add time) is this one.
    Label(u32),
    /// Only the vectors whose label is one of these.
    Labels(&'a [u32]),
}

/// Per-call search options.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams<'a> {
    /// Neighbours per query (≥ 1).
    pub k: usize,
    /// Lists scanned per query (IVF kinds; 1..=nlist).
    pub nprobe: usize,
    /// Re-rank this many approximate candidates exactly against the stored
    /// vectors (0 = off). Needs `store_vectors`.
    pub rerank: usize,
    /// Query-aware pruning: skip probed lists whose centroid is farther than
    /// `(1 + eps)` times the nearest one (see [`VectorIndex::search`]).
    pub prune_eps: Option<f32>,
    pub filter: Filter<'a>,
}

impl Default for SearchParams<'_> {
    fn default() -> Self {
        SearchParams { k: 10, nprobe: 8, rerank: 0, prune_eps: None, filter: Filter::None }
    }
}

/// Results of a batch search: `k` per query, best first, row-major. Rows
/// with fewer than `k` matches are padded with id [`NO_ID`] and a NaN score.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub k: usize,
    pub ids: Vec<u64>,
    /// Squared L2 distance (L2) or similarity (inner product, cosine).
    pub distances: Vec<f32>,
}

/// Id of a padding slot in [`SearchResult`] (`-1` as a signed integer).
pub const NO_ID: u64 = u64::MAX;

/// The index contents (see the module docs). [`crate::VectorIndex`] wraps it
/// in a lock for concurrent use.
#[derive(Debug, Clone)]
pub struct IndexData {
    pub config: IndexConfig,
    /// Coarse centroids (`nlist × dim`; empty for non-IVF kinds).
    pub centroids: Vec<f32>,
    pub opq: Option<Opq>,
    pub encoder: Encoder,
    pub lists: Vec<List>,
    /// User id of each position.
    pub ids: Vec<u64>,
    /// Label of each position (empty when no labels were ever given).
    pub labels: Vec<u32>,
    /// Full vectors by position (preprocessed: normalised / rotated), when kept.
    pub vectors: Slab<f32>,
    pub deleted: Bitset,
    /// Live user id → position.
    pub id_map: HashMap<u64, u32>,
    /// The centroids packed for single-query probing (derived on first use).
    pub(crate) coarse: std::sync::OnceLock<crate::coarse::CoarsePanels>,
    /// The PQ codebooks transposed for lookup tables (derived on first use).
    pub(crate) pq_tables: std::sync::OnceLock<Vec<f32>>,
}

impl IndexData {
    /// Trains the quantizers of `config` on `train` (the vectors to learn
    /// from; a sub-sample is used where the algorithm allows). The index is
    /// empty afterwards; [`IndexData::add`] fills it.
    pub fn train(config: IndexConfig, train: &[f32], ctl: Control) -> Result<IndexData> {
        Self::train_prepared(config, train, ctl).map(|(index, _)| index)
    }

    /// [`IndexData::train`], also returning `train` as the index stores it
    /// (normalised, rotated), so that a build adds it without preparing it
    /// a second time ([`IndexData::add_prepared`]).
    pub(crate) fn train_prepared(config: IndexConfig, train: &[f32], ctl: Control) -> Result<(IndexData, Vec<f32>)> {
        config.validate()?;
        let dim = config.dim;
        if !train.len().is_multiple_of(dim) {
            return Err(AnnError::DimMismatch(format!("{} values are not a whole number of {dim}-dimensional vectors", train.len())));
        }
        check_finite(train, dim)?;
        let n = train.len() / dim;
        if n == 0 {
            return Err(invalid("cannot train an index on zero vectors"));
        }
        let mut data = normalized(train, dim, config.metric);

        let opq = if config.opq {
            let (opq, _) = Opq::train(&data, dim, config.pq_m, config.pq_bits, config.opq_iterations, config.seed, ctl)?;
            let mut rotated = vec![0.0; data.len()];
            opq.apply(&data, &mut rotated)?;
            data = rotated;
            Some(opq)
        } else {
            None
        };
        ctl.check()?;

        let centroids = if config.kind.is_ivf() {
            if n < config.nlist {
                return Err(invalid(format!("nlist = {} needs at least that many training vectors, got {n}", config.nlist)));
            }
            let km = kmeans::train(
                &data,
                dim,
                &KMeansConfig {
                    k: config.nlist,
                    iterations: config.kmeans_iterations,
                    seed: config.seed,
                    max_points_per_centroid: config.max_points_per_centroid,
                    balance: config.balance,
                    spherical: config.metric == Metric::Cosine,
                },
                ctl,
            )?;
            km.centroids
        } else {
            Vec::new()
        };
        ctl.check()?;

        // Codecs learn from a bounded sample: PQ's k-means takes at most 256
        // points per centroid (so 2^bits × 256 rows; residuals of more would
        // be computed for nothing), the scalar codecs 65,536 rows.
        let sample = |max: usize| sample_rows(&data, dim, max, config.seed ^ 0x9e37_79b9);
        let encoder = match config.kind {
            Kind::Flat | Kind::IvfFlat => Encoder::Flat,
            Kind::Sq8 | Kind::IvfSq8 => Encoder::Sq8(Sq8::train(&sample(65_536), dim)?),
            Kind::Binary | Kind::IvfBinary => Encoder::Binary(BinaryCodec::train(&sample(65_536), dim, config.binary_levels)?),
            Kind::Pq | Kind::IvfPq => {
                let sample = sample((256usize << config.pq_bits.min(8)).min(65_536));
                let target = if config.by_residual() { residuals(&sample, dim, &centroids) } else { sample };
                let pq = ProductQuantizer::train(&target, dim, config.pq_m, config.pq_bits, config.seed, ctl)?;
                if config.pq_bits == 4 { Encoder::FastScan(pq) } else { Encoder::Pq(pq) }
            }
        };
        let nlist = if config.kind.is_ivf() { config.nlist } else { 1 };
        let keep_vectors = config.store_vectors && !matches!(encoder, Encoder::Flat);
        let mut config = config;
        config.store_vectors = keep_vectors;
        let index = IndexData {
            config,
            centroids,
            opq,
            encoder,
            lists: vec![List::default(); nlist],
            ids: Vec::new(),
            labels: Vec::new(),
            vectors: Slab::default(),
            deleted: Bitset::default(),
            id_map: HashMap::new(),
            coarse: Default::default(),
            pq_tables: Default::default(),
        };
        Ok((index, data))
    }

    /// Live vectors (added and not removed).
    pub fn size(&self) -> usize {
        self.ids.len() - self.deleted.count()
    }

    /// Lists (1 for non-IVF kinds).
    pub fn nlist(&self) -> usize {
        self.lists.len()
    }

    /// Bytes the index holds on the heap and in mapped files.
    pub fn bytes(&self) -> (usize, usize) {
        let heap = self.centroids.capacity() * 4
            + self.opq.as_ref().map_or(0, |o| o.rotation.capacity() * 4)
            + self.lists.iter().map(List::heap_bytes).sum::<usize>()
            + self.ids.capacity() * 8
            + self.labels.capacity() * 4
            + self.vectors.heap_bytes()
            + self.deleted.heap_bytes()
            + self.id_map.capacity() * 16;
        let mapped = self.lists.iter().map(List::mapped_bytes).sum::<usize>()
            + if self.vectors.is_mapped() { self.vectors.len() * 4 } else { 0 };
        (heap, mapped)
    }

    /// Bytes per stored vector in the lists (codes only).
    pub fn code_size(&self) -> usize {
        self.encoder.code_size(self.config.dim)
    }

    /// Adds vectors with user ids (default: the next positions) and optional
    /// labels. Ids must be new and distinct; on any error nothing is added.
    pub fn add(&mut self, vectors: &[f32], ids: Option<&[u64]>, labels: Option<&[u32]>, ctl: Control) -> Result<()> {
        let dim = self.config.dim;
        if !vectors.len().is_multiple_of(dim) {
            return Err(AnnError::DimMismatch(format!(
                "{} values are not a whole number of {dim}-dimensional vectors",
                vectors.len()
            )));
        }
        check_finite(vectors, dim)?;
        let data = self.preprocess(vectors)?;
        self.add_prepared(data, ids, labels, ctl)
    }

    /// [`IndexData::add`] of finite vectors already normalised and rotated
    /// as the index stores them.
    pub(crate) fn add_prepared(&mut self, data: Vec<f32>, ids: Option<&[u64]>, labels: Option<&[u32]>, ctl: Control) -> Result<()> {
        let dim = self.config.dim;
        let n = data.len() / dim;
        let first = self.ids.len();
        if first + n > u32::MAX as usize {
            return Err(invalid("an index holds at most 2^32 - 1 vectors (positions are 32-bit)"));
        }
        let ids: Vec<u64> = match ids {
            Some(ids) => {
                if ids.len() != n {
                    return Err(AnnError::DimMismatch(format!("{} ids for {n} vectors", ids.len())));
                }
                ids.to_vec()
            }
            None => (first as u64..(first + n) as u64).collect(),
        };
        self.check_new_ids(&ids)?;
        if let Some(l) = labels
            && l.len() != n
        {
            return Err(AnnError::DimMismatch(format!("{} labels for {n} vectors", l.len())));
        }
        if n == 0 {
            return Ok(());
        }
        ctl.check()?;

        // List assignment (nearest centroid, plus closure copies).
        let assignment = self.assign_lists(&data)?;
        ctl.report("add", 0.3);
        ctl.check()?;

        // Encode every (vector, list) pair, then append per list in order.
        let mut per_list: Vec<Vec<(u32, u32)>> = vec![Vec::new(); self.lists.len()];
        for (i, lists) in assignment.iter().enumerate() {
            for &l in lists {
                per_list[l as usize].push((i as u32, (first + i) as u32));
            }
        }
        let encoded: Vec<(usize, Vec<u8>, Vec<f32>)> = per_list
            .par_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .map(|(l, items)| {
                let (codes, floats) = self.encode_for_list(&data, l, items)?;
                Ok((l, codes, floats))
            })
            .collect::<Result<_>>()?;
        // Validate-then-mutate: nothing below can fail, so a failed add leaves
        // the index as it was.
        ctl.report("add", 0.8);
        for (l, codes, floats) in encoded {
            let items = &per_list[l];
            let list = &mut self.lists[l];
            let before = list.len();
            list.positions.to_mut().extend(items.iter().map(|&(_, p)| p));
            match &self.encoder {
                Encoder::FastScan(pq) => {
                    fastscan::append(list.codes.to_mut(), before, pq.m, &codes).expect("codes of m nibbles each, encoded above")
                }
                Encoder::Flat => list.floats.to_mut().extend_from_slice(&floats),
                _ => list.codes.to_mut().extend_from_slice(&codes),
            }
        }
        if self.config.store_vectors {
            if self.vectors.is_empty() && !self.vectors.is_mapped() {
                self.vectors = Slab::from(data);
            } else {
                self.vectors.to_mut().extend_from_slice(&data);
            }
        }
        match labels {
            Some(l) => {
                if self.labels.len() < first {
                    self.labels.resize(first, 0);
                }
                self.labels.extend_from_slice(l);
            }
            None if !self.labels.is_empty() => self.labels.resize(first + n, 0),
            None => {}
        }
        for (i, &id) in ids.iter().enumerate() {
            self.id_map.insert(id, (first + i) as u32);
        }
        self.ids.extend_from_slice(&ids);
        ctl.report("add", 1.0);
        Ok(())
    }

    fn check_new_ids(&self, ids: &[u64]) -> Result<()> {
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for &id in ids {
            if id == NO_ID {
                return Err(invalid("id 2^64 - 1 is reserved (it pads result rows)"));
            }
            if self.id_map.contains_key(&id) {
                return Err(invalid(format!("id {id} is already in the index")));
            }
            if !seen.insert(id) {
                return Err(invalid(format!("id {id} appears twice in this batch")));
            }
        }
        Ok(())
    }

    /// Removes vectors by user id; returns how many were present.
    pub fn remove(&mut self, ids: &[u64]) -> usize {
        let mut removed = 0;
        for id in ids {
            if let Some(p) = self.id_map.remove(id) {
                self.deleted.insert(p as usize);
                removed += 1;
            }
        }
        removed
    }

    /// Normalises (cosine) and rotates (OPQ) a batch of vectors.
    fn preprocess(&self, vectors: &[f32]) -> Result<Vec<f32>> {
        let dim = self.config.dim;
        let data = normalized(vectors, dim, self.config.metric);
        Ok(match &self.opq {
            Some(opq) => {
                let mut out = vec![0.0; data.len()];
                opq.apply(&data, &mut out)?;
                out
            }
            None => data,
        })
    }

    /// For each vector, the lists it goes to (nearest first).
    fn assign_lists(&self, data: &[f32]) -> Result<Vec<Vec<u32>>> {
        let dim = self.config.dim;
        let n = data.len() / dim;
        if !self.config.kind.is_ivf() {
            return Ok(vec![vec![0]; n]);
        }
        let copies = self.config.closure.map_or(1, |c| c.max_copies.min(self.lists.len()));
        let knn = quarry_simd::knn(
            quarry_simd::Metric::L2sq,
            VectorsRef::F32(data),
            VectorsRef::F32(&self.centroids),
            dim,
            copies,
        )
        .map_err(|e| invalid(e.to_string()))?;
        let ratio = self.config.closure.map_or(0.0, |c| c.ratio);
        Ok((0..n)
            .map(|i| {
                let ids = &knn.ids[i * copies..(i + 1) * copies];
                let d = &knn.distances[i * copies..(i + 1) * copies];
                let bound = d[0] * (1.0 + ratio);
                let mut lists = vec![ids[0]];
                lists.extend((1..copies).filter(|&j| d[j] <= bound).map(|j| ids[j]));
                lists
            })
            .collect())
    }

    /// Codes (or vectors, for flat kinds) of `items` (`(row in data, position)`) for list `l`.
    fn encode_for_list(&self, data: &[f32], l: usize, items: &[(u32, u32)]) -> Result<(Vec<u8>, Vec<f32>)> {
        let dim = self.config.dim;
        let mut rows = Vec::with_capacity(items.len() * dim);
        for &(i, _) in items {
            let v = &data[i as usize * dim..(i as usize + 1) * dim];
            if self.config.by_residual() {
                let c = &self.centroids[l * dim..(l + 1) * dim];
                rows.extend(v.iter().zip(c).map(|(x, c)| x - c));
            } else {
                rows.extend_from_slice(v);
            }
        }
        let n = items.len();
        let mut codes = vec![0; n * self.encoder.code_size(dim)];
        match &self.encoder {
            Encoder::Flat => return Ok((Vec::new(), rows)),
            Encoder::Sq8(sq) => sq.encode(&rows, &mut codes)?,
            Encoder::Pq(pq) => pq.encode(&rows, &mut codes)?,
            Encoder::FastScan(pq) => {
                codes.resize(n * pq.m, 0);
                pq.codes_unpacked(&rows, &mut codes)?
            }
            Encoder::Binary(b) => b.encode(&rows, &mut codes)?,
        }
        Ok((codes, Vec::new()))
    }

    /// Searches a batch of queries (`nq × dim`), in parallel over queries.
    pub fn search(&self, queries: &[f32], params: &SearchParams) -> Result<SearchResult> {
        let dim = self.config.dim;
        if !queries.len().is_multiple_of(dim) {
            return Err(AnnError::DimMismatch(format!(
                "{} query values are not a whole number of {dim}-dimensional vectors",
                queries.len()
            )));
        }
        check_finite(queries, dim)?;
        let k = params.k;
        if k == 0 {
            return Err(invalid("k must be at least 1"));
        }
        let nlist = self.lists.len();
        if self.config.kind.is_ivf() && !(1..=nlist).contains(&params.nprobe) {
            return Err(invalid(format!("nprobe must be in 1..={nlist} (nlist), got {}", params.nprobe)));
        }
        if params.rerank > 0 && !self.config.store_vectors && !matches!(self.encoder, Encoder::Flat) {
            return Err(invalid("rerank needs the full vectors: build with storeVectors (the default)"));
        }
        if let Some(e) = params.prune_eps
            && !(e >= 0.0 && e.is_finite())
        {
            return Err(invalid(format!("pruning epsilon must be a finite value ≥ 0, got {e}")));
        }
        let allow = self.allow_set(params.filter);
        let nq = queries.len() / dim;
        let data = self.preprocess(queries)?;
        let probes = self.probe(&data, params)?;
        let mut ids = vec![NO_ID; nq * k];
        let mut distances = vec![f32::NAN; nq * k];
        let write = |hits: Vec<(f32, u32)>, ids: &mut [u64], dist: &mut [f32]| {
            for (j, (key, pos)) in hits.into_iter().enumerate() {
                ids[j] = self.ids[pos as usize];
                dist[j] = if self.config.metric.is_similarity() { -key } else { key };
            }
        };
        if self.list_major_applies(nq) {
            // One chunk of queries per thread, each scanned list by list (the
            // more queries a chunk holds, the more share each list).
            let per_task = nq.div_ceil(rayon::current_num_threads().max(1)).max(LIST_MAJOR_MIN_QUERIES);
            ids.par_chunks_mut(k * per_task).zip(distances.par_chunks_mut(k * per_task)).enumerate().try_for_each(
                |(c, (ids, dist))| {
                    let (first, count) = (c * per_task, ids.len() / k);
                    let hits = self.search_list_major(
                        &data[first * dim..(first + count) * dim],
                        &probes[first..first + count],
                        params,
                        &allow,
                    )?;
                    for (i, h) in hits.into_iter().enumerate() {
                        write(h, &mut ids[i * k..(i + 1) * k], &mut dist[i * k..(i + 1) * k]);
                    }
                    Ok::<(), AnnError>(())
                },
            )?;
            return Ok(SearchResult { k, ids, distances });
        }
        ids.par_chunks_mut(k).zip(distances.par_chunks_mut(k)).enumerate().try_for_each(|(q, (ids, dist))| {
            let hits = self.search_one(&data[q * dim..(q + 1) * dim], &probes[q], params, &allow)?;
            write(hits, ids, dist);
            Ok::<(), AnnError>(())
        })?;
        Ok(SearchResult { k, ids, distances })
    }

    /// Whether a batch of `nq` queries takes [`IndexData::search_list_major`]:
    /// IVF fast-scan whose lookup table is the same for every list.
    fn list_major_applies(&self, nq: usize) -> bool {
        nq >= LIST_MAJOR_MIN_QUERIES
            && self.config.kind.is_ivf()
            && matches!(self.encoder, Encoder::FastScan(_))
            && (self.config.metric.is_similarity() || !self.config.by_residual())
    }

    /// The results of [`IndexData::search_one`] for each query of a batch,
    /// computed list by list on the calling thread: the queries probing a
    /// list are scanned together (`fastscan::scan_collect_batch` shares each
    /// block's code loads among up to four of them, and the list stays in
    /// cache for the rest). Every query sees the same candidates with the
    /// same keys as in `search_one`; only the order of its lists differs,
    /// which the final candidates do not depend on.
    fn search_list_major(
        &self,
        queries: &[f32],
        probes: &[Vec<(f32, u32)>],
        params: &SearchParams,
        allow: &Allow,
    ) -> Result<Vec<Vec<(f32, u32)>>> {
        let Encoder::FastScan(pq) = &self.encoder else { unreachable!("list-major search is for fast-scan") };
        let dim = self.config.dim;
        let similarity = self.config.metric.is_similarity();
        let mut lut = vec![0.0f32; pq.m * pq.ksub()];
        let mut luts = Vec::with_capacity(probes.len());
        for q in queries.chunks_exact(dim) {
            pq.lut_from_tables(self.pq_tables(pq), q, self.pq_lut_metric(), &mut lut);
            if similarity {
                lut.iter_mut().for_each(|x| *x = -*x);
            }
            luts.push(QuantizedLut::new(&lut, pq.m)?);
        }
        let bias = |coarse_key: f32| if self.config.by_residual() && similarity { coarse_key } else { 0.0 };
        // Each query first scans its nearest list alone: its candidates set
        // a tight threshold early, so the shared scans below offer fewer
        // vectors (lists are visited in index order, not nearest first).
        let depth = self.candidate_depth(params);
        let mut tops = Vec::with_capacity(probes.len());
        for (probed, lut) in probes.iter().zip(&luts) {
            let mut top = Reservoir::new(depth);
            if let Some(&(coarse_key, l)) = probed.first() {
                let list = &self.lists[l as usize];
                let blocks = self.block_masks(allow, l as usize);
                let mut c = ListCollector { index: self, top, positions: &list.positions, bias: bias(coarse_key), allow, blocks };
                fastscan::scan_collect(&list.codes, list.len(), lut, &mut c)?;
                top = c.top;
            }
            tops.push(top);
        }
        // (query, key offset) of the other probes, grouped by list (a counting sort).
        let nlist = self.lists.len();
        let mut starts = vec![0usize; nlist + 1];
        for &(_, l) in probes.iter().flat_map(|p| p.iter().skip(1)) {
            starts[l as usize + 1] += 1;
        }
        for l in 0..nlist {
            starts[l + 1] += starts[l];
        }
        let mut fill = starts.clone();
        let mut by_list = vec![(0u32, 0f32); starts[nlist]];
        for (qi, probed) in probes.iter().enumerate() {
            for &(coarse_key, l) in probed.iter().skip(1) {
                by_list[fill[l as usize]] = (qi as u32, bias(coarse_key));
                fill[l as usize] += 1;
            }
        }
        // One pair of buffers for every group (a group is up to four queries).
        let mut tables: Vec<&QuantizedLut> = Vec::with_capacity(4);
        let mut collectors: Vec<ListCollector> = Vec::with_capacity(4);
        for (l, list) in self.lists.iter().enumerate() {
            let n = list.len();
            if n == 0 || starts[l] == starts[l + 1] {
                continue;
            }
            let blocks = self.block_masks(allow, l);
            for group in by_list[starts[l]..starts[l + 1]].chunks(4) {
                tables.clear();
                tables.extend(group.iter().map(|&(qi, _)| &luts[qi as usize]));
                collectors.extend(group.iter().map(|&(qi, bias)| ListCollector {
                    index: self,
                    top: std::mem::replace(&mut tops[qi as usize], Reservoir::new(0)),
                    positions: &list.positions,
                    bias,
                    allow,
                    blocks,
                }));
                fastscan::scan_collect_batch(&list.codes, n, &tables, &mut collectors)?;
                for (c, &(qi, _)) in collectors.drain(..).zip(group) {
                    tops[qi as usize] = c.top;
                }
            }
        }
        Ok(tops.into_iter().zip(queries.chunks_exact(dim)).map(|(top, q)| self.finish_hits(q, top, params)).collect())
    }

    /// Candidates a query keeps from the scan: `k`, or the re-ranking depth,
    /// times the copies closure may have stored of a vector.
    fn candidate_depth(&self, params: &SearchParams) -> usize {
        params.k.max(params.rerank) * self.config.closure.map_or(1, |c| c.max_copies.max(1))
    }

    /// Which positions a filter admits (tombstones are checked separately).
    fn allow_set(&self, filter: Filter) -> Allow {
        match filter {
            Filter::None => Allow::All,
            Filter::AllowIds(ids) => {
                let mut set = Bitset::with_len(self.ids.len());
                for id in ids {
                    if let Some(&p) = self.id_map.get(id) {
                        set.insert(p as usize);
                    }
                }
                // Selective enough that most fast-scan blocks hold no allowed
                // vector: scans skip those blocks (see `block_allowed`).
                let selective = matches!(self.encoder, Encoder::FastScan(_))
                    && set.count().saturating_mul(SELECTIVE_FILTER) < self.ids.len();
                let blocks = selective.then(|| BlockMasks((0..self.lists.len()).map(|_| std::sync::OnceLock::new()).collect()));
                Allow::Positions(set, blocks)
            }
            Filter::Label(l) => Allow::Labels(vec![l]),
            Filter::Labels(ls) => Allow::Labels(ls.to_vec()),
        }
    }

    #[inline]
    fn admits(&self, allow: &Allow, pos: u32) -> bool {
        let p = pos as usize;
        if self.deleted.contains(p) {
            return false;
        }
        match allow {
            Allow::All => true,
            Allow::Positions(set, _) => set.contains(p),
            Allow::Labels(ls) => {
                let label = self.labels.get(p).copied().unwrap_or(0);
                ls.contains(&label)
            }
        }
    }

    /// The probed lists of each (preprocessed) query, nearest first, with
    /// the query-to-centroid key (smaller is nearer). Batches score the
    /// centroids with the GEMM k-NN of `quarry-simd`.
    fn probe(&self, queries: &[f32], params: &SearchParams) -> Result<Vec<Vec<(f32, u32)>>> {
        let dim = self.config.dim;
        let nq = queries.len() / dim;
        if !self.config.kind.is_ivf() {
            return Ok(vec![vec![(0.0, 0)]; nq]);
        }
        let similarity = self.config.metric.is_similarity();
        let np = params.nprobe;
        let nearest: Vec<Vec<(f32, u32)>> = if nq < quarry_simd::knn::GEMM_MIN_QUERIES {
            // A few queries: one matrix-vector product each over the packed centroids.
            let panels = self.coarse.get_or_init(|| crate::coarse::CoarsePanels::new(&self.centroids, dim));
            let mut keys = vec![0.0f32; panels.len()];
            queries
                .chunks_exact(dim)
                .map(|q| {
                    panels.dots(q, &mut keys);
                    if similarity {
                        keys.iter_mut().for_each(|k| *k = -*k);
                    } else {
                        let qq: f32 = q.iter().map(|x| x * x).sum();
                        keys.iter_mut().enumerate().for_each(|(c, k)| *k = (qq + panels.norm(c) - 2.0 * *k).max(0.0));
                    }
                    crate::coarse::smallest(&keys, np)
                })
                .collect()
        } else {
            let metric = if similarity { quarry_simd::Metric::InnerProduct } else { quarry_simd::Metric::L2sq };
            let knn = quarry_simd::knn(metric, VectorsRef::F32(queries), VectorsRef::F32(&self.centroids), dim, np)
                .map_err(|e| AnnError::InvalidArgument(e.to_string()))?;
            (0..nq)
                .map(|q| {
                    knn.distances[q * np..(q + 1) * np]
                        .iter()
                        .zip(&knn.ids[q * np..(q + 1) * np])
                        .map(|(&d, &l)| (if similarity { -d } else { d }, l))
                        .collect()
                })
                .collect()
        };
        Ok(nearest
            .into_iter()
            .map(|mut probed: Vec<(f32, u32)>| {
                if let Some(eps) = params.prune_eps {
                    // Keys as distances ≥ 0: L2 as is; cosine as 1 - cos (its
                    // centroids are unit length); raw inner products relative
                    // to the best.
                    let best = probed[0].0;
                    let bound = match self.config.metric {
                        Metric::L2 => best * (1.0 + eps),
                        Metric::Cosine => -1.0 + (1.0 + best) * (1.0 + eps),
                        Metric::InnerProduct => best + eps * best.abs(),
                    };
                    probed.retain(|&(key, _)| key <= bound);
                }
                probed
            })
            .collect())
    }

    /// The best `params.k` (key, position) of one preprocessed query.
    fn search_one(&self, q: &[f32], probed: &[(f32, u32)], params: &SearchParams, allow: &Allow) -> Result<Vec<(f32, u32)>> {
        let mut top = Reservoir::new(self.candidate_depth(params));
        let dim = self.config.dim;
        let similarity = self.config.metric.is_similarity();
        let mut buf: Vec<f32> = Vec::new();
        // Per-query tables that do not depend on the list.
        let mut lut = Vec::new();
        let shared_lut = match &self.encoder {
            Encoder::Pq(pq) | Encoder::FastScan(pq) if similarity || !self.config.by_residual() => {
                lut.resize(pq.m * pq.ksub(), 0.0);
                pq.lut_from_tables(self.pq_tables(pq), q, self.pq_lut_metric(), &mut lut);
                if similarity {
                    lut.iter_mut().for_each(|x| *x = -*x);
                }
                true
            }
            _ => false,
        };
        let sq_query = match &self.encoder {
            Encoder::Sq8(sq) => Some(sq.prepare(q, self.config.metric)?),
            _ => None,
        };
        let qlut_shared = match &self.encoder {
            Encoder::FastScan(pq) if shared_lut => Some(QuantizedLut::new(&lut, pq.m)?),
            _ => None,
        };
        let mut residual = vec![0.0f32; if self.config.by_residual() { dim } else { 0 }];

        // Probed lists are scattered in memory: ask for their headers up
        // front and for each next list's first codes while scanning one.
        for &(_, l) in probed {
            prefetch(std::slice::from_ref(&self.lists[l as usize]));
        }
        for (i, &(coarse_key, l)) in probed.iter().enumerate() {
            if let Some(&(_, next)) = probed.get(i + 1) {
                let next = &self.lists[next as usize];
                prefetch(&next.codes[..next.codes.len().min(512)]);
                prefetch(&next.positions[..next.positions.len().min(64)]);
            }
            let l = l as usize;
            let list = &self.lists[l];
            let n = list.len();
            if n == 0 {
                continue;
            }
            let positions = &list.positions[..];
            // Key offset shared by the list: the centroid's part of the score
            // for residual codes with similarity metrics, which is the
            // probing key (-q·c).
            let bias = if self.config.by_residual() && similarity { coarse_key } else { 0.0 };
            if self.config.by_residual() && !similarity {
                let c = &self.centroids[l * dim..(l + 1) * dim];
                residual.iter_mut().zip(q.iter().zip(c)).for_each(|(r, (x, c))| *r = x - c);
            }
            match &self.encoder {
                Encoder::FastScan(pq) => {
                    let local;
                    let qlut = match &qlut_shared {
                        Some(t) => t,
                        None => {
                            lut.resize(pq.m * pq.ksub(), 0.0);
                            pq.lut_from_tables(self.pq_tables(pq), &residual, Metric::L2, &mut lut);
                            local = QuantizedLut::new(&lut, pq.m)?;
                            &local
                        }
                    };
                    let blocks = self.block_masks(allow, l);
                    let mut collector = ListCollector { index: self, top, positions, bias, allow, blocks };
                    fastscan::scan_collect(&list.codes, n, qlut, &mut collector)?;
                    top = collector.top;
                    continue;
                }
                Encoder::Flat => {
                    let k = quarry_simd::kernels();
                    let key = |v: &[f32]| if similarity { -(k.f32_dot)(q, v) } else { (k.f32_l2sq)(q, v) };
                    if !matches!(allow, Allow::All) || self.deleted.count() > 0 {
                        // Test the filter before paying for the distance: at low
                        // selectivity most entries are skipped.
                        for (v, &pos) in list.floats.chunks_exact(dim).zip(positions) {
                            if self.admits(allow, pos) {
                                let key = key(v) + bias;
                                if may_enter(key, top.threshold()) {
                                    top.push(key, pos);
                                }
                            }
                        }
                        continue;
                    }
                    buf.resize(n, 0.0);
                    for (d, v) in buf.iter_mut().zip(list.floats.chunks_exact(dim)) {
                        *d = key(v);
                    }
                }
                Encoder::Sq8(sq) => {
                    buf.resize(n, 0.0);
                    sq.scan(sq_query.as_ref().expect("prepared for sq8"), &list.codes, &mut buf)?;
                    if similarity {
                        buf.iter_mut().for_each(|x| *x = -*x);
                    }
                }
                Encoder::Pq(pq) => {
                    if !shared_lut {
                        lut.resize(pq.m * pq.ksub(), 0.0);
                        pq.lut_from_tables(self.pq_tables(pq), &residual, Metric::L2, &mut lut);
                    }
                    buf.resize(n, 0.0);
                    pq.adc_scan(&list.codes, &lut, &mut buf)?;
                }
                Encoder::Binary(b) => {
                    buf.resize(n, 0.0);
                    b.asym_scan(q, self.config.metric, &list.codes, &mut buf)?;
                    if similarity {
                        buf.iter_mut().for_each(|x| *x = -*x);
                    }
                }
            }
            for (&key, &pos) in buf.iter().zip(positions) {
                let key = key + bias;
                if may_enter(key, top.threshold()) && self.admits(allow, pos) {
                    top.push(key, pos);
                }
            }
        }

        Ok(self.finish_hits(q, top, params))
    }

    /// A query's final `k`: its candidates re-ranked by exact distance
    /// (when asked), closure duplicates dropped, best first.
    fn finish_hits(&self, q: &[f32], top: Reservoir, params: &SearchParams) -> Vec<(f32, u32)> {
        let dim = self.config.dim;
        let similarity = self.config.metric.is_similarity();
        let copies = self.config.closure.map_or(1, |c| c.max_copies.max(1));
        let exact = params.rerank > 0 && self.config.store_vectors;
        let mut hits = if exact { top.into_unordered() } else { top.into_sorted() };
        if exact {
            let kernels = quarry_simd::kernels();
            // The candidates' rows are scattered over the stored vectors:
            // request them all before reading any, so the misses overlap.
            for h in hits.iter() {
                prefetch(&self.vectors[h.1 as usize * dim..(h.1 as usize + 1) * dim]);
            }
            for h in hits.iter_mut() {
                let v = &self.vectors[h.1 as usize * dim..(h.1 as usize + 1) * dim];
                h.0 = if similarity { -(kernels.f32_dot)(q, v) } else { (kernels.f32_l2sq)(q, v) };
            }
            let by_key = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            if copies == 1 && hits.len() > params.k {
                // Only the best k need ordering.
                hits.select_nth_unstable_by(params.k - 1, by_key);
                hits.truncate(params.k);
            }
            hits.sort_unstable_by(by_key);
        }
        if copies > 1 {
            // Closure stores a vector in several lists: keep its best entry.
            let mut seen = std::collections::HashSet::with_capacity(hits.len());
            hits.retain(|h| seen.insert(h.1));
        }
        hits.truncate(params.k);
        hits
    }

    /// `pq`'s codebooks transposed for lookup tables, computed once (the
    /// quantizer was validated at build or open; queries at search entry).
    fn pq_tables(&self, pq: &crate::pq::ProductQuantizer) -> &[f32] {
        self.pq_tables.get_or_init(|| pq.transposed())
    }

    /// The metric PQ tables are computed in (residual L2 handled by the caller).
    fn pq_lut_metric(&self) -> Metric {
        if self.config.metric.is_similarity() { Metric::InnerProduct } else { Metric::L2 }
    }
}

/// Batches of at least this many queries (per thread) are scanned list by
/// list ([`IndexData::search_list_major`]).
const LIST_MAJOR_MIN_QUERIES: usize = 64;

/// Positions a search may return.
enum Allow {
    All,
    /// Allowed positions, and for a selective set the block masks of the lists.
    Positions(Bitset, Option<BlockMasks>),
    Labels(Vec<u32>),
}

/// An allow-set is "selective" when it admits fewer than one vector in this
/// many: then most 32-vector fast-scan blocks hold none, and scans skip them.
const SELECTIVE_FILTER: usize = 32;

/// Per list, which vectors of each fast-scan block a filter (and the
/// tombstones) admit, built the first time a query of the call scans the list.
struct BlockMasks(Vec<std::sync::OnceLock<Vec<u32>>>);

impl IndexData {
    /// Block masks of list `l` under `allow` (`None`: no masks for this filter).
    fn block_masks<'a>(&self, allow: &'a Allow, l: usize) -> Option<&'a [u32]> {
        let Allow::Positions(_, Some(BlockMasks(lists))) = allow else { return None };
        Some(lists[l].get_or_init(|| {
            let positions = &self.lists[l].positions;
            positions
                .chunks(fastscan::BLOCK)
                .map(|block| block.iter().enumerate().fold(0u32, |m, (j, &p)| m | (u32::from(self.admits(allow, p)) << j)))
                .collect()
        }))
    }
}

/// Feeds a fast-scan list scan into a query's top-k: list offsets become
/// positions, the list's key offset is added, filters and tombstones applied.
struct ListCollector<'a> {
    index: &'a IndexData,
    top: Reservoir,
    positions: &'a [u32],
    bias: f32,
    allow: &'a Allow,
    /// The list's block masks under a selective filter.
    blocks: Option<&'a [u32]>,
}

impl Collector for ListCollector<'_> {
    #[inline]
    fn threshold(&self) -> f32 {
        self.top.threshold() - self.bias
    }

    #[inline]
    fn offer(&mut self, offset: usize, dist: f32) {
        let key = dist + self.bias;
        let pos = self.positions[offset];
        // Vectors outside the block masks are never offered.
        if may_enter(key, self.top.threshold()) && (self.blocks.is_some() || self.index.admits(self.allow, pos)) {
            self.top.push(key, pos);
        }
    }

    #[inline]
    fn block_allowed(&self, block: usize) -> u32 {
        self.blocks.map_or(u32::MAX, |b| b[block])
    }
}

/// A copy of `vectors` with each row scaled to unit length (cosine); zero
/// rows stay zero. Other metrics: an unchanged copy.
pub(crate) fn normalized(vectors: &[f32], dim: usize, metric: Metric) -> Vec<f32> {
    // Copied and normalised in one parallel pass.
    let mut out = vec![0f32; vectors.len()];
    out.par_chunks_mut(dim).zip(vectors.par_chunks(dim)).for_each(|(v, src)| {
        v.copy_from_slice(src);
        if metric == Metric::Cosine {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
    });
    out
}

/// Hints the CPU to bring the cache lines of `data` in (a no-op off x86-64).
#[inline]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = data.as_ptr().cast::<u8>();
        for offset in (0..std::mem::size_of_val(data)).step_by(64) {
            // SAFETY: prefetching is a hint; the address is inside `data`.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.wrapping_add(offset).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Residuals of `data` to their nearest centroid (the coarse assignment).
fn residuals(data: &[f32], dim: usize, centroids: &[f32]) -> Vec<f32> {
    let knn = quarry_simd::knn(quarry_simd::Metric::L2sq, VectorsRef::F32(data), VectorsRef::F32(centroids), dim, 1)
        .expect("shapes checked by the caller");
    let mut out = data.to_vec();
    out.par_chunks_mut(dim).zip(knn.ids.par_iter()).for_each(|(v, &c)| {
        let c = &centroids[c as usize * dim..(c as usize + 1) * dim];
        v.iter_mut().zip(c).for_each(|(x, c)| *x -= c);
    });
    out
}

/// At most `max` rows of `data`, chosen by a seeded shuffle (all rows when fewer).
fn sample_rows(data: &[f32], dim: usize, max: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    if n <= max {
        return data.to_vec();
    }
    // Partial Fisher-Yates with a splitmix64 stream: deterministic, no dependency.
    let mut idx: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in 0..max {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let j = i + (z % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut chosen = idx[..max].to_vec();
    chosen.sort_unstable();
    crate::kmeans::gather_rows(data, dim, &chosen)
}
