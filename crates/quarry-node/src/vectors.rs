//! `VectorIndex`: build, open, search and mutate vector indexes (`quarry-ann`).
//!
//! Vectors, ids and filters are copied out of JS memory before any work
//! leaves the calling thread (the core keeps its own copy of index data).

use crate::errors::{Result, coded, invalid_argument};
use crate::ngram::CancelToken;
use crate::task::Job;
use napi::Status;
use napi::bindgen_prelude::{AsyncTask, BigUint64Array, Either, Float32Array, Uint32Array};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use quarry_ann::{
    AnnError, Closure, Control, Filter, IndexConfig, Kind, Metric, NO_ID, SearchParams, SearchResult, VectorIndex,
};
use std::path::Path;
use std::sync::Arc;

impl From<AnnError> for crate::errors::Coded {
    fn from(e: AnnError) -> Self {
        crate::errors::Coded(crate::errors::node_error(e.code(), &e))
    }
}

/// User ids: 32-bit or 64-bit.
pub type Ids = Either<Uint32Array, BigUint64Array>;

fn ids_vec(ids: &Ids) -> Vec<u64> {
    match ids {
        Either::A(a) => a.iter().map(|&x| x as u64).collect(),
        Either::B(b) => b.to_vec(),
    }
}

fn metric(name: &str) -> Result<Metric> {
    match name {
        "l2" | "l2sq" => Ok(Metric::L2),
        "ip" => Ok(Metric::InnerProduct),
        "cosine" => Ok(Metric::Cosine),
        other => Err(invalid_argument(format!("metric must be 'l2', 'ip' or 'cosine', got '{other}'"))),
    }
}

/// Options of `vectorBuild` (see the facade's `VectorBuildOptions`).
#[napi(object)]
pub struct NativeVectorBuildOptions {
    pub dim: u32,
    pub metric: String,
    pub kind: String,
    pub nlist: Option<u32>,
    pub pq_m: Option<u32>,
    pub pq_bits: Option<u32>,
    pub opq: Option<bool>,
    pub opq_iterations: Option<u32>,
    pub binary_levels: Option<u32>,
    pub store_vectors: Option<bool>,
    pub kmeans_iterations: Option<u32>,
    pub max_points_per_centroid: Option<u32>,
    pub balance: Option<f64>,
    pub closure_copies: Option<u32>,
    pub closure_ratio: Option<f64>,
    pub seed: Option<f64>,
}

fn config(o: &NativeVectorBuildOptions, wide_ids: bool) -> Result<IndexConfig> {
    let kind = Kind::parse(&o.kind).map_err(coded)?;
    let mut c = IndexConfig::new(o.dim as usize, metric(&o.metric)?, kind);
    if let Some(v) = o.nlist {
        c.nlist = v as usize;
    }
    if let Some(v) = o.pq_m {
        c.pq_m = v as usize;
    }
    if let Some(v) = o.pq_bits {
        c.pq_bits = v;
    }
    c.opq = o.opq.unwrap_or(false);
    if let Some(v) = o.opq_iterations {
        c.opq_iterations = v as usize;
    }
    if let Some(v) = o.binary_levels {
        c.binary_levels = v;
    }
    if let Some(v) = o.store_vectors {
        c.store_vectors = v;
    }
    if let Some(v) = o.kmeans_iterations {
        c.kmeans_iterations = v as usize;
    }
    if let Some(v) = o.max_points_per_centroid {
        c.max_points_per_centroid = v as usize;
    }
    c.balance = o.balance.map(|b| b as f32);
    if let Some(copies) = o.closure_copies {
        c.closure = Some(Closure { max_copies: copies as usize, ratio: o.closure_ratio.unwrap_or(0.1) as f32 });
    }
    if let Some(s) = o.seed {
        if !(s.is_finite() && s >= 0.0 && s.fract() == 0.0) {
            return Err(invalid_argument(format!("seed must be a non-negative integer, got {s}")));
        }
        c.seed = s as u64;
    }
    c.wide_ids = wide_ids;
    Ok(c)
}

/// A build progress report: `stage` and the fraction of it done.
#[napi(object)]
#[derive(Clone)]
pub struct VectorProgress {
    pub stage: String,
    pub fraction: f64,
}

/// Trains and fills an index from `vectors` (`n × dim`), off the event loop.
#[napi(ts_return_type = "Promise<NativeVectorIndex>")]
pub fn vector_build(
    vectors: Float32Array,
    ids: Option<Ids>,
    labels: Option<Uint32Array>,
    options: NativeVectorBuildOptions,
    on_progress: Option<ThreadsafeFunction<VectorProgress, (), VectorProgress, Status, false>>,
    cancel: Option<&CancelToken>,
) -> Result<AsyncTask<Job<NativeVectorIndex>>> {
    let wide = matches!(ids, Some(Either::B(_)));
    let config = config(&options, wide)?;
    let vectors = vectors.to_vec();
    let ids = ids.as_ref().map(ids_vec);
    let labels = labels.map(|l| l.to_vec());
    let cancel = cancel.map(|c| c.flag());
    Ok(AsyncTask::new(Job::new(move || {
        let report = move |stage: &str, fraction: f64| {
            if let Some(cb) = &on_progress {
                cb.call(VectorProgress { stage: stage.to_string(), fraction }, ThreadsafeFunctionCallMode::NonBlocking);
            }
        };
        let ctl = Control::new(Some(&report), cancel.as_deref());
        let index = VectorIndex::build(config, &vectors, ids.as_deref(), labels.as_deref(), ctl).map_err(coded)?;
        Ok(NativeVectorIndex { inner: Arc::new(index) })
    })))
}

/// Opens a saved index, validating it; with `mmap` its lists stay in the file.
#[napi]
pub fn vector_open(path: String, mmap: bool) -> Result<NativeVectorIndex> {
    let index = VectorIndex::open(Path::new(&path), mmap).map_err(coded)?;
    Ok(NativeVectorIndex { inner: Arc::new(index) })
}

/// Per-call search options (see the facade's `VectorSearchOptions`).
#[napi(object)]
pub struct NativeSearchOptions {
    pub k: u32,
    pub nprobe: Option<u32>,
    pub rerank: Option<u32>,
    pub prune_eps: Option<f64>,
    pub allow: Option<Ids>,
    pub labels: Option<Uint32Array>,
}

/// An owned filter (so it can travel to a worker thread).
enum OwnedFilter {
    None,
    Ids(Vec<u64>),
    Labels(Vec<u32>),
}

struct OwnedSearch {
    k: usize,
    /// `None`: the default (8, clamped to the lists there are).
    nprobe: Option<usize>,
    rerank: usize,
    prune_eps: Option<f32>,
    filter: OwnedFilter,
}

impl OwnedSearch {
    fn new(o: &NativeSearchOptions) -> Result<Self> {
        if o.allow.is_some() && o.labels.is_some() {
            return Err(invalid_argument("give a filter as allowed ids or as labels, not both"));
        }
        let filter = match (&o.allow, &o.labels) {
            (Some(ids), _) => OwnedFilter::Ids(ids_vec(ids)),
            (_, Some(l)) => OwnedFilter::Labels(l.to_vec()),
            _ => OwnedFilter::None,
        };
        Ok(OwnedSearch {
            k: o.k as usize,
            nprobe: o.nprobe.map(|n| n as usize),
            rerank: o.rerank.map_or(0, |r| r as usize),
            prune_eps: o.prune_eps.map(|e| e as f32),
            filter,
        })
    }

    fn params(&self, nlist: usize) -> SearchParams<'_> {
        SearchParams {
            k: self.k,
            // An explicit nprobe is checked by the core; the default is
            // clamped so small indexes work without options.
            nprobe: self.nprobe.unwrap_or_else(|| 8.min(nlist)),
            rerank: self.rerank,
            prune_eps: self.prune_eps,
            filter: match &self.filter {
                OwnedFilter::None => Filter::None,
                OwnedFilter::Ids(ids) => Filter::AllowIds(ids),
                OwnedFilter::Labels(l) => Filter::Labels(l),
            },
        }
    }
}

/// Search results: `k` per query, best first; empty slots have id -1 (all
/// bits set) and a NaN distance.
#[napi(object)]
pub struct VectorSearchResult {
    pub k: u32,
    pub ids: Ids,
    pub distances: Float32Array,
}

fn result(r: SearchResult, wide: bool) -> VectorSearchResult {
    let ids = if wide {
        Either::B(BigUint64Array::new(r.ids))
    } else {
        Either::A(Uint32Array::new(r.ids.into_iter().map(|id| if id == NO_ID { u32::MAX } else { id as u32 }).collect()))
    };
    VectorSearchResult { k: r.k as u32, ids, distances: Float32Array::new(r.distances) }
}

/// Facts about an index.
#[napi(object)]
pub struct VectorIndexInfo {
    pub dim: u32,
    pub metric: String,
    pub kind: String,
    pub nlist: u32,
    pub size: f64,
    pub code_bytes: u32,
    pub heap_bytes: f64,
    pub mapped_bytes: f64,
    pub store_vectors: bool,
    pub wide_ids: bool,
    pub opq: bool,
}

#[napi]
pub struct NativeVectorIndex {
    inner: Arc<VectorIndex>,
}

impl NativeVectorIndex {
    fn run_search(index: &VectorIndex, queries: &[f32], s: &OwnedSearch) -> Result<VectorSearchResult> {
        let (nlist, wide) = index.with_data(|d| (d.nlist(), d.config.wide_ids));
        let r = index.search(queries, &s.params(nlist)).map_err(coded)?;
        Ok(result(r, wide))
    }
}

#[napi]
impl NativeVectorIndex {
    /// Searches a batch of queries on the calling thread.
    #[napi]
    pub fn search_sync(&self, queries: Float32Array, options: NativeSearchOptions) -> Result<VectorSearchResult> {
        let s = OwnedSearch::new(&options)?;
        Self::run_search(&self.inner, &queries, &s)
    }

    /// Searches a batch of queries on the libuv pool.
    #[napi(ts_return_type = "Promise<VectorSearchResult>")]
    pub fn search(&self, queries: Float32Array, options: NativeSearchOptions) -> Result<AsyncTask<Job<VectorSearchResult>>> {
        let s = OwnedSearch::new(&options)?;
        let queries = queries.to_vec();
        let index = self.inner.clone();
        Ok(AsyncTask::new(Job::new(move || Self::run_search(&index, &queries, &s))))
    }

    /// Adds vectors with optional ids and labels.
    #[napi]
    pub fn add(&self, vectors: Float32Array, ids: Option<Ids>, labels: Option<Uint32Array>) -> Result<()> {
        let ids = ids.as_ref().map(ids_vec);
        self.inner.add(&vectors, ids.as_deref(), labels.as_deref()).map_err(coded)
    }

    /// Removes vectors by id; returns how many were present.
    #[napi]
    pub fn remove(&self, ids: Ids) -> f64 {
        self.inner.remove(&ids_vec(&ids)) as f64
    }

    /// Saves atomically (removed vectors are compacted away).
    #[napi]
    pub fn save(&self, path: String) -> Result<()> {
        self.inner.save(Path::new(&path)).map_err(coded)
    }

    #[napi(getter)]
    pub fn size(&self) -> f64 {
        self.inner.size() as f64
    }

    #[napi]
    pub fn info(&self) -> VectorIndexInfo {
        self.inner.with_data(|d| {
            let (heap, mapped) = d.bytes();
            VectorIndexInfo {
                dim: d.config.dim as u32,
                metric: d.config.metric.name().to_string(),
                kind: d.config.kind.name().to_string(),
                nlist: d.nlist() as u32,
                size: d.size() as f64,
                code_bytes: d.code_size() as u32,
                heap_bytes: heap as f64,
                mapped_bytes: mapped as f64,
                store_vectors: d.config.store_vectors,
                wide_ids: d.config.wide_ids,
                opq: d.opq.is_some(),
            }
        })
    }
}

/// Options of `MuveraEncoder` (see the facade's `MuveraOptions`).
#[napi(object)]
pub struct NativeMuveraOptions {
    pub dim: u32,
    pub simhash_bits: Option<u32>,
    pub repetitions: Option<u32>,
    pub projection_dim: Option<u32>,
    pub final_dim: Option<u32>,
    pub fill_empty_partitions: Option<bool>,
    pub seed: Option<f64>,
}

/// MUVERA fixed-dimensional encodings: a multi-vector query or document as
/// one vector whose inner products approximate Chamfer similarity.
#[napi]
pub struct NativeMuvera {
    inner: quarry_ann::muvera::Muvera,
}

#[napi]
impl NativeMuvera {
    #[napi(constructor)]
    pub fn new(o: NativeMuveraOptions) -> Result<Self> {
        let d = quarry_ann::muvera::FdeConfig::default();
        let cfg = quarry_ann::muvera::FdeConfig {
            dim: o.dim as usize,
            simhash_bits: o.simhash_bits.unwrap_or(d.simhash_bits),
            repetitions: o.repetitions.map_or(d.repetitions, |r| r as usize),
            projection_dim: o.projection_dim.map(|p| p as usize),
            final_dim: o.final_dim.map(|p| p as usize),
            fill_empty_partitions: o.fill_empty_partitions.unwrap_or(d.fill_empty_partitions),
            seed: o.seed.map_or(d.seed, |s| s as u64),
        };
        Ok(NativeMuvera { inner: quarry_ann::muvera::Muvera::new(cfg).map_err(coded)? })
    }

    #[napi(getter)]
    pub fn output_dim(&self) -> u32 {
        self.inner.output_dim() as u32
    }

    /// FDE of a query's vectors (`n × dim`).
    #[napi]
    pub fn encode_query(&self, vectors: Float32Array) -> Result<Float32Array> {
        Ok(Float32Array::new(self.inner.encode_query(&vectors).map_err(coded)?))
    }

    /// FDE of a document's vectors (`n × dim`).
    #[napi]
    pub fn encode_document(&self, vectors: Float32Array) -> Result<Float32Array> {
        Ok(Float32Array::new(self.inner.encode_document(&vectors).map_err(coded)?))
    }
}

/// Exact Chamfer (MaxSim) similarity `Σ_q max_d <q, d>` of two vector sets.
#[napi]
pub fn chamfer_similarity(query: Float32Array, doc: Float32Array, dim: u32) -> Result<f64> {
    let dim = dim as usize;
    if dim == 0 || !query.len().is_multiple_of(dim) || !doc.len().is_multiple_of(dim) || query.is_empty() || doc.is_empty() {
        return Err(crate::errors::node_error(
            "QUARRY_DIM_MISMATCH",
            format!("chamfer needs non-empty sets of {dim}-dimensional vectors, got {} and {} values", query.len(), doc.len()),
        ));
    }
    quarry_ann::check_finite(&query, dim).map_err(coded)?;
    quarry_ann::check_finite(&doc, dim).map_err(coded)?;
    Ok(quarry_ann::muvera::chamfer(&query, &doc, dim) as f64)
}
