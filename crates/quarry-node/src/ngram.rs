//! `NgramIndex`: build, open and query FM-indexes (`quarry-fm`).

use crate::errors::{Result, coded, invalid_argument};
use crate::task::Job;
use napi::bindgen_prelude::{AsyncTask, Either, Uint32Array};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use quarry_fm::{BitvectorKind, BuildOptions, FmError, NgramIndex, Progress, TextSplit, read_path};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

impl From<FmError> for crate::errors::Coded {
    fn from(e: FmError) -> Self {
        crate::errors::Coded(crate::errors::node_error(e.code(), &e))
    }
}

/// A query: text (encoded with the index's tokenizer, or as UTF-8 bytes) or symbols.
pub type Query = Either<String, Uint32Array>;

fn symbols(index: &NgramIndex, q: &Query) -> Result<Vec<u32>> {
    match q {
        Either::A(text) => index.encode(text).map_err(coded),
        Either::B(ids) => Ok(ids.to_vec()),
    }
}

fn count_arg(name: &str, v: f64) -> Result<u64> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_991.0 {
        Ok(v as u64)
    } else {
        Err(invalid_argument(format!("{name} must be a non-negative integer, got {v}")))
    }
}

/// Options of `ngramBuild` (see the facade's `NgramBuildOptions`).
#[napi(object)]
pub struct NativeBuildOptions {
    pub tokenizer: Option<String>,
    pub shard_bytes: Option<f64>,
    pub sa_sample_rate: Option<u32>,
    pub isa_sample_rate: Option<u32>,
    /// `compressed` (default) or `plain`.
    pub bitvector: Option<String>,
    /// `file` (one document per text file, default) or `paragraphs`.
    pub split: Option<String>,
}

/// A build progress report.
#[napi(object)]
#[derive(Clone)]
pub struct NgramProgress {
    pub stage: String,
    pub shard: u32,
    pub docs: f64,
    pub done: f64,
    pub total: f64,
}

impl From<&Progress> for NgramProgress {
    fn from(p: &Progress) -> Self {
        NgramProgress {
            stage: p.stage.to_string(),
            shard: p.shard as u32,
            docs: p.docs as f64,
            done: p.done as f64,
            total: p.total as f64,
        }
    }
}

/// A cancellation flag shared with a running build (the facade trips it from an `AbortSignal`).
#[napi]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        CancelToken { flag: Arc::new(AtomicBool::new(false)) }
    }

    /// The shared flag (other builds take the same token).
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Asks the build to stop at its next check point.
    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
}

fn build_options(o: &NativeBuildOptions) -> Result<(BuildOptions, TextSplit)> {
    let mut opts = BuildOptions { tokenizer: o.tokenizer.as_ref().map(PathBuf::from), ..BuildOptions::default() };
    if let Some(b) = o.shard_bytes {
        opts.shard_bytes = count_arg("shardBytes", b)?;
    }
    if let Some(r) = o.sa_sample_rate {
        opts.sa_sample_rate = Some(r as usize);
    }
    if let Some(r) = o.isa_sample_rate {
        opts.isa_sample_rate = r as usize;
    }
    opts.bitvector = match o.bitvector.as_deref() {
        None | Some("compressed") => BitvectorKind::Compressed,
        Some("plain") => BitvectorKind::Plain,
        Some(other) => return Err(invalid_argument(format!("bitvector must be 'compressed' or 'plain', got '{other}'"))),
    };
    let split = match o.split.as_deref() {
        None | Some("file") => TextSplit::WholeFile,
        Some("paragraphs") => TextSplit::BlankLines,
        Some(other) => return Err(invalid_argument(format!("split must be 'file' or 'paragraphs', got '{other}'"))),
    };
    Ok((opts, split))
}

/// Builds an index from files (`.jsonl`, text files, directories of them) into `output`.
#[napi(ts_return_type = "Promise<NativeNgramIndex>")]
pub fn ngram_build(
    inputs: Vec<String>,
    output: String,
    options: NativeBuildOptions,
    on_progress: Option<ThreadsafeFunction<NgramProgress, (), NgramProgress, Status, false>>,
    cancel: Option<&CancelToken>,
) -> Result<AsyncTask<Job<NativeNgramIndex>>> {
    if inputs.is_empty() {
        return Err(invalid_argument("input names no files"));
    }
    let (mut opts, split) = build_options(&options)?;
    opts.cancel = cancel.map(|c| c.flag.clone());
    if let Some(cb) = on_progress {
        let cb = Arc::new(cb);
        opts.on_progress = Some(Arc::new(move |p: &Progress| {
            cb.call(NgramProgress::from(p), ThreadsafeFunctionCallMode::NonBlocking);
        }));
    }
    Ok(AsyncTask::new(Job::new(move || {
        let mut sources = Vec::with_capacity(inputs.len());
        for input in &inputs {
            sources.push(read_path(Path::new(input), split).map_err(coded)?);
        }
        let docs = sources.into_iter().flatten();
        let index = NgramIndex::build(docs, Path::new(&output), &opts).map_err(coded)?;
        Ok(NativeNgramIndex { inner: Arc::new(index) })
    })))
}

/// Opens (mmaps and validates) an index directory.
#[napi]
pub fn ngram_open(dir: String) -> Result<NativeNgramIndex> {
    let index = NgramIndex::open(Path::new(&dir)).map_err(coded)?;
    Ok(NativeNgramIndex { inner: Arc::new(index) })
}

#[napi(object)]
pub struct NgramHit {
    pub doc: f64,
    pub offset: f64,
}

#[napi(object)]
pub struct NgramDocument {
    pub doc: f64,
    pub start: f64,
    /// Length of the whole document in symbols.
    pub doc_length: f64,
    pub text: String,
    pub symbols: Uint32Array,
    pub metadata: Option<String>,
}

#[napi(object)]
pub struct NgramProb {
    pub prob: Option<f64>,
    pub count: f64,
    pub prefix_count: f64,
}

#[napi(object)]
pub struct NgramNextToken {
    pub token: u32,
    pub text: String,
    pub count: f64,
    pub prob: f64,
}

#[napi(object)]
pub struct NgramNextTokens {
    pub prefix_count: f64,
    pub end_of_document: f64,
    pub distinct: f64,
    pub tokens: Vec<NgramNextToken>,
}

#[napi(object)]
pub struct NgramInfgram {
    pub prob: Option<f64>,
    pub suffix_len: u32,
    pub count: f64,
    pub prefix_count: f64,
}

#[napi(object)]
pub struct NgramDocSearch {
    pub count: f64,
    pub docs: Vec<f64>,
    pub approx: bool,
}

#[napi(object)]
pub struct NgramContamination {
    pub ngrams: f64,
    pub found: f64,
    pub share: f64,
}

#[napi(object)]
pub struct NgramStats {
    pub mode: String,
    pub bitvector: String,
    pub docs: f64,
    pub bytes: f64,
    pub tokens: Option<f64>,
    pub index_bytes: f64,
    pub shards: u32,
    pub sa_sample_rate: u32,
    pub isa_sample_rate: u32,
    pub vocab_size: Option<f64>,
}

/// The query operations, shared by the sync methods and their async twins.
mod ops {
    use super::*;

    pub fn count(ix: &NgramIndex, q: &[u32]) -> Result<f64> {
        ix.count(q).map(|c| c as f64).map_err(coded)
    }

    pub fn locate(ix: &NgramIndex, q: &[u32], limit: usize) -> Result<Vec<NgramHit>> {
        let hits = ix.locate(q, limit).map_err(coded)?;
        Ok(hits.into_iter().map(|h| NgramHit { doc: h.doc as f64, offset: h.offset as f64 }).collect())
    }

    pub fn next_tokens(ix: &NgramIndex, q: &[u32], limit: usize) -> Result<NgramNextTokens> {
        let n = ix.next_tokens(q, limit).map_err(coded)?;
        let mut tokens = Vec::with_capacity(n.tokens.len());
        for t in n.tokens {
            let text = ix.decode(&[t.token]).map_err(coded)?;
            tokens.push(NgramNextToken { token: t.token, text, count: t.count as f64, prob: t.prob });
        }
        Ok(NgramNextTokens {
            prefix_count: n.prefix_count as f64,
            end_of_document: n.end_of_document as f64,
            distinct: n.distinct as f64,
            tokens,
        })
    }

    pub fn search(ix: &NgramIndex, cnf: &[Vec<Vec<u32>>], limit: usize, max_clause_freq: u64) -> Result<NgramDocSearch> {
        let r = ix.search_documents(cnf, limit, max_clause_freq).map_err(coded)?;
        Ok(NgramDocSearch { count: r.count as f64, docs: r.docs.into_iter().map(|d| d as f64).collect(), approx: r.approx })
    }

    pub fn contamination(ix: &NgramIndex, texts: &[String], n: usize) -> Result<Vec<NgramContamination>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let r = ix.contamination(&refs, n).map_err(coded)?;
        Ok(r.into_iter().map(|c| NgramContamination { ngrams: c.ngrams as f64, found: c.found as f64, share: c.share }).collect())
    }
}

/// An open n-gram index. Queries are thread-safe; async twins run on the libuv pool.
#[napi]
pub struct NativeNgramIndex {
    inner: Arc<NgramIndex>,
}

#[napi]
impl NativeNgramIndex {
    /// Index directory.
    #[napi(getter)]
    pub fn dir(&self) -> String {
        self.inner.dir().display().to_string()
    }

    #[napi]
    pub fn stats(&self) -> NgramStats {
        let s = self.inner.stats();
        NgramStats {
            mode: format!("{:?}", s.mode).to_lowercase(),
            bitvector: format!("{:?}", s.bitvector).to_lowercase(),
            docs: s.docs as f64,
            bytes: s.bytes as f64,
            tokens: s.tokens.map(|t| t as f64),
            index_bytes: s.index_bytes as f64,
            shards: s.shards as u32,
            sa_sample_rate: s.sa_sample_rate as u32,
            isa_sample_rate: s.isa_sample_rate as u32,
            vocab_size: s.vocab_size.map(|v| v as f64),
        }
    }

    /// Text to symbols (token ids, or UTF-8 bytes in byte mode).
    #[napi]
    pub fn encode(&self, text: String) -> Result<Uint32Array> {
        Ok(Uint32Array::new(self.inner.encode(&text).map_err(coded)?))
    }

    /// Symbols back to text.
    #[napi]
    pub fn decode(&self, symbols: Uint32Array) -> Result<String> {
        self.inner.decode(&symbols).map_err(coded)
    }

    #[napi]
    pub fn count(&self, query: Query) -> Result<f64> {
        ops::count(&self.inner, &symbols(&self.inner, &query)?)
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn count_async(&self, query: Query) -> Result<AsyncTask<Job<f64>>> {
        let (ix, q) = (self.inner.clone(), symbols(&self.inner, &query)?);
        Ok(AsyncTask::new(Job::new(move || ops::count(&ix, &q))))
    }

    #[napi]
    pub fn locate(&self, query: Query, limit: u32) -> Result<Vec<NgramHit>> {
        ops::locate(&self.inner, &symbols(&self.inner, &query)?, limit as usize)
    }

    #[napi(ts_return_type = "Promise<Array<NgramHit>>")]
    pub fn locate_async(&self, query: Query, limit: u32) -> Result<AsyncTask<Job<Vec<NgramHit>>>> {
        let (ix, q) = (self.inner.clone(), symbols(&self.inner, &query)?);
        Ok(AsyncTask::new(Job::new(move || ops::locate(&ix, &q, limit as usize))))
    }

    /// A document, or a window of it (`start`, `length` in symbols; clamped to the document).
    #[napi]
    pub fn document(&self, doc: f64, start: Option<f64>, length: Option<f64>) -> Result<NgramDocument> {
        let doc_id = count_arg("docId", doc)?;
        let start = count_arg("start", start.unwrap_or(0.0))?;
        let len = length.map(|l| count_arg("length", l)).transpose()?;
        let ix = &self.inner;
        let doc_length = ix.doc_len(doc_id).map_err(coded)?;
        let syms = ix.document(doc_id, start, len).map_err(coded)?;
        Ok(NgramDocument {
            doc,
            start: start.min(doc_length) as f64,
            doc_length: doc_length as f64,
            text: ix.decode(&syms).map_err(coded)?,
            symbols: Uint32Array::new(syms),
            metadata: ix.metadata(doc_id).map_err(coded)?,
        })
    }

    #[napi]
    pub fn prob(&self, ngram: Query) -> Result<NgramProb> {
        let p = self.inner.prob(&symbols(&self.inner, &ngram)?).map_err(coded)?;
        Ok(NgramProb { prob: p.prob, count: p.count as f64, prefix_count: p.prefix_count as f64 })
    }

    #[napi]
    pub fn next_tokens(&self, prefix: Query, limit: u32) -> Result<NgramNextTokens> {
        ops::next_tokens(&self.inner, &symbols(&self.inner, &prefix)?, limit as usize)
    }

    #[napi(ts_return_type = "Promise<NgramNextTokens>")]
    pub fn next_tokens_async(&self, prefix: Query, limit: u32) -> Result<AsyncTask<Job<NgramNextTokens>>> {
        let (ix, q) = (self.inner.clone(), symbols(&self.inner, &prefix)?);
        Ok(AsyncTask::new(Job::new(move || ops::next_tokens(&ix, &q, limit as usize))))
    }

    #[napi]
    pub fn infgram_prob(&self, context: Query, token: u32) -> Result<NgramInfgram> {
        let r = self.inner.infgram_prob(&symbols(&self.inner, &context)?, token).map_err(coded)?;
        Ok(NgramInfgram {
            prob: r.prob,
            suffix_len: r.suffix_len as u32,
            count: r.count as f64,
            prefix_count: r.prefix_count as f64,
        })
    }

    fn cnf(&self, cnf: Vec<Vec<Query>>) -> Result<Vec<Vec<Vec<u32>>>> {
        cnf.iter().map(|clause| clause.iter().map(|q| symbols(&self.inner, q)).collect()).collect()
    }

    /// Documents matching an AND of ORs of patterns.
    #[napi]
    pub fn search_documents(&self, cnf: Vec<Vec<Query>>, limit: u32, max_clause_freq: f64) -> Result<NgramDocSearch> {
        let cnf = self.cnf(cnf)?;
        ops::search(&self.inner, &cnf, limit as usize, count_arg("maxClauseFreq", max_clause_freq)?)
    }

    #[napi(ts_return_type = "Promise<NgramDocSearch>")]
    pub fn search_documents_async(
        &self,
        cnf: Vec<Vec<Query>>,
        limit: u32,
        max_clause_freq: f64,
    ) -> Result<AsyncTask<Job<NgramDocSearch>>> {
        let (ix, cnf) = (self.inner.clone(), self.cnf(cnf)?);
        let cap = count_arg("maxClauseFreq", max_clause_freq)?;
        Ok(AsyncTask::new(Job::new(move || ops::search(&ix, &cnf, limit as usize, cap))))
    }

    /// Per text, the share of its `n`-grams found in the corpus.
    #[napi]
    pub fn contamination(&self, texts: Vec<String>, n: u32) -> Result<Vec<NgramContamination>> {
        ops::contamination(&self.inner, &texts, n as usize)
    }

    #[napi(ts_return_type = "Promise<Array<NgramContamination>>")]
    pub fn contamination_async(&self, texts: Vec<String>, n: u32) -> Result<AsyncTask<Job<Vec<NgramContamination>>>> {
        let ix = self.inner.clone();
        Ok(AsyncTask::new(Job::new(move || ops::contamination(&ix, &texts, n as usize))))
    }
}
