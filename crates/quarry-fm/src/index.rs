//! The sharded n-gram index: build, open, and queries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{FmError, Result};
use crate::input::Document;
use crate::sabuf::SaPrefault;
use crate::shard::Shard;

/// One shard's answer to `next_tokens`: (symbol, count) pairs, end-of-document count, prefix count.
type ShardNext = (Vec<(u32, u64)>, u64, u64);
/// A CNF pattern's row range in a shard and the pattern length.
type ClauseRange = ((usize, usize), usize);

/// Which bitvector backs the wavelet matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BitvectorKind {
    /// Uncompressed with a rank9 directory: fastest queries, about 1.25 bits per bit.
    Plain,
    /// RRR-style (127-bit blocks): smaller, slower rank.
    #[default]
    Compressed,
}

/// What the index symbols are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Symbols are bytes (`0..=255`) of the document text.
    Bytes,
    /// Symbols are token ids of a `tokenizer.json` tokenizer.
    Tokens,
}

/// A progress report during [`NgramIndex::build`].
#[derive(Clone, Debug)]
pub struct Progress {
    /// `"read"`, `"tokenize"`, `"suffix array"`, `"bwt"`, `"samples"`, `"wavelet matrix"`,
    /// `"write"`, or `"done"`.
    pub stage: &'static str,
    /// Shard being built (0-based).
    pub shard: usize,
    /// Documents read so far (all shards).
    pub docs: u64,
    /// Steps done / total within the stage (for `"wavelet matrix"`: levels).
    pub done: u64,
    pub total: u64,
}

/// Progress callback type.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options for [`NgramIndex::build`].
#[derive(Clone)]
pub struct BuildOptions {
    /// Path of a `tokenizer.json` (Hugging Face `tokenizers` format). `None` builds a byte index.
    pub tokenizer: Option<PathBuf>,
    /// A shard is closed once its documents reach this many text bytes (default 256 MiB).
    /// Peak build memory is about 5x this for a byte index (the text plus its 32-bit suffix array)
    /// and about 6x for a token index, plus the process (measured on a 103.5 MB corpus).
    pub shard_bytes: u64,
    /// Suffix array sampling rate in SA order; `locate` costs about this many LF steps per
    /// occurrence. `None`: 32 for a byte index, 8 for a token index (token indexes are a sixth of
    /// infini-gram's size at 32, so they spend some of that on 4x faster `locate` and
    /// `search_documents`: +1/3 index size, measured on the bench corpus).
    pub sa_sample_rate: Option<usize>,
    /// Inverse suffix array sampling rate in text order (default 64). `document` walks up to this
    /// many extra LF steps.
    pub isa_sample_rate: usize,
    /// Bitvector variant (default [`BitvectorKind::Compressed`]).
    pub bitvector: BitvectorKind,
    /// Called from the building thread as work advances.
    pub on_progress: Option<ProgressFn>,
    /// When set to `true` the build stops with [`FmError::Aborted`] at the next check point
    /// (the suffix array construction of one shard is not interruptible).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl BuildOptions {
    /// The suffix array sampling rate the build uses (see [`sa_sample_rate`](Self::sa_sample_rate)).
    pub fn sa_rate(&self) -> usize {
        self.sa_sample_rate.unwrap_or(if self.tokenizer.is_some() { 8 } else { 32 })
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            tokenizer: None,
            shard_bytes: 256 << 20,
            sa_sample_rate: None,
            isa_sample_rate: 64,
            bitvector: BitvectorKind::Compressed,
            on_progress: None,
            cancel: None,
        }
    }
}

const MANIFEST: &str = "manifest.json";
const TOKENIZER: &str = "tokenizer.json";
const FORMAT: &str = "quarry-fm";
const MANIFEST_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct ShardEntry {
    file: String,
    docs: u64,
    symbols: u64,
    text_bytes: u64,
    file_bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Manifest {
    format: String,
    version: u32,
    mode: Mode,
    bitvector: BitvectorKind,
    sa_sample_rate: usize,
    isa_sample_rate: usize,
    docs: u64,
    text_bytes: u64,
    symbols: u64,
    vocab_size: Option<u64>,
    tokenizer: Option<String>,
    shards: Vec<ShardEntry>,
    /// xxh3-64 (16 hex digits) of the manifest file with these digits replaced by '0'.
    checksum: String,
}

const ZERO_SUM: &str = "0000000000000000";

fn manifest_bytes(m: &Manifest) -> Result<Vec<u8>> {
    let mut m = m.clone();
    m.checksum = ZERO_SUM.into();
    let mut raw = serde_json::to_vec_pretty(&m).map_err(|e| FmError::Internal(e.to_string()))?;
    raw.push(b'\n');
    let sum = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&raw));
    let at = checksum_pos(&raw).ok_or_else(|| FmError::Internal("checksum placeholder".into()))?;
    raw[at..at + 16].copy_from_slice(sum.as_bytes());
    Ok(raw)
}

/// Byte offset of the 16 checksum digits (the value of the last `"checksum": "` key).
fn checksum_pos(raw: &[u8]) -> Option<usize> {
    let key = b"\"checksum\": \"";
    let p = raw.windows(key.len()).rposition(|w| w == key)? + key.len();
    (p + 16 <= raw.len()).then_some(p)
}

fn verify_manifest(raw: &[u8], m: &Manifest) -> bool {
    let Some(at) = checksum_pos(raw) else { return false };
    if raw[at..at + 16] != *m.checksum.as_bytes() {
        return false;
    }
    let mut z = raw.to_vec();
    z[at..at + 16].copy_from_slice(ZERO_SUM.as_bytes());
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&z)) == m.checksum
}

/// Summary returned by [`NgramIndex::stats`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub mode: Mode,
    pub bitvector: BitvectorKind,
    pub docs: u64,
    /// Input text bytes (documents' UTF-8 / raw bytes).
    pub bytes: u64,
    /// Number of indexed symbols (bytes in byte mode, tokens in token mode), separators excluded.
    pub symbols: u64,
    /// Token count (token mode only).
    pub tokens: Option<u64>,
    /// Sum of the shard file sizes.
    pub index_bytes: u64,
    pub shards: usize,
    pub sa_sample_rate: usize,
    pub isa_sample_rate: usize,
    pub vocab_size: Option<u64>,
}

/// One occurrence: global document id and offset (in symbols) inside that document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Hit {
    pub doc: u64,
    pub offset: u64,
}

/// Result of [`NgramIndex::prob`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prob {
    /// `count / prefix_count`, `None` when the prefix does not occur.
    pub prob: Option<f64>,
    pub count: u64,
    pub prefix_count: u64,
}

/// One entry of a next-token distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NextToken {
    pub token: u32,
    pub count: u64,
    /// `count / prefix_count`.
    pub prob: f64,
}

/// Result of [`NgramIndex::next_tokens`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NextTokens {
    /// Occurrences of the prefix (for the empty prefix: all symbols).
    pub prefix_count: u64,
    /// Occurrences of the prefix that end their document (no next token).
    pub end_of_document: u64,
    /// Number of distinct next tokens (before `limit`).
    pub distinct: u64,
    /// Most frequent first (ties by token id), at most `limit`.
    pub tokens: Vec<NextToken>,
}

/// Result of [`NgramIndex::infgram_prob`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InfgramProb {
    /// `count / prefix_count` for the longest occurring suffix of the context (`None` only for
    /// an empty index).
    pub prob: Option<f64>,
    /// Length (in symbols) of the context suffix used.
    pub suffix_len: usize,
    /// Occurrences of `suffix + token`.
    pub count: u64,
    /// Occurrences of the suffix (for `suffix_len == 0`: all symbols).
    pub prefix_count: u64,
}

/// Result of [`NgramIndex::search_documents`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocSearch {
    /// Number of matching documents found.
    pub count: u64,
    /// Matching global document ids, ascending, at most `limit`.
    pub docs: Vec<u64>,
    /// `true` when some clause had more than `max_clause_freq` occurrences in a shard and only a
    /// sample of them was examined: `count`/`docs` may then miss documents.
    pub approx: bool,
}

/// Result of [`NgramIndex::contamination`] for one text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Contamination {
    /// Number of n-gram positions of the text (`len - n + 1`, or 0).
    pub ngrams: u64,
    /// How many of them occur in the corpus.
    pub found: u64,
    /// `found / ngrams` (0 when the text has no n-gram).
    pub share: f64,
}

/// A sharded FM-index over bytes or tokens. Cheap to share across threads (`Send + Sync`);
/// all queries take `&self`.
pub struct NgramIndex {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Shard>,
    doc_base: Vec<u64>,
    tokenizer: Option<Tokenizer>,
}

impl std::fmt::Debug for NgramIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgramIndex").field("dir", &self.dir).field("stats", &self.stats()).finish()
    }
}

fn shard_file(generation: &str, k: usize) -> String {
    format!("shard-{generation}-{k:05}.qfm")
}

fn is_shard_file(name: &str) -> bool {
    name.starts_with("shard-") && name.ends_with(".qfm")
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(FmError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| FmError::io(path, e))
}

fn load_tokenizer(path: &Path, err: impl Fn(String) -> FmError) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| err(format!("{}: {e}", path.display())))
}

/// Token ids of the documents in `text` (laid out as in [`Batch::text`], lengths `lens`),
/// tokenized in parallel without special tokens, laid out the same way (one zero slot after each
/// document's ids and one at the end), plus per-document token counts. The text is dropped once
/// tokenized, and each document's ids as soon as they are copied.
fn tokenize<T: TryFrom<u32> + Copy + Send + Default>(tok: &Tokenizer, text: Vec<u8>, lens: &[usize]) -> Result<(Vec<T>, Vec<usize>)> {
    let mut ranges = Vec::with_capacity(lens.len());
    let mut at = 0usize;
    for &l in lens {
        ranges.push(at..at + l);
        at += l + 1;
    }
    let toks: Vec<Vec<T>> = ranges
        .into_par_iter()
        .map(|r| {
            let s = std::str::from_utf8(&text[r]).map_err(|_| FmError::InvalidInput("document is not valid UTF-8".into()))?;
            let enc = tok.encode_fast(s, false).map_err(|e| FmError::Tokenizer(e.to_string()))?;
            enc.get_ids()
                .iter()
                .map(|&id| T::try_from(id).map_err(|_| FmError::Internal(format!("token id {id} beyond the vocabulary size"))))
                .collect()
        })
        .collect::<Result<_>>()?;
    drop(text);
    let tlens: Vec<usize> = toks.iter().map(Vec::len).collect();
    let mut ids = Vec::with_capacity(tlens.iter().sum::<usize>() + tlens.len() + 1);
    for t in toks {
        ids.extend_from_slice(&t);
        ids.push(T::default());
    }
    ids.push(T::default());
    Ok((ids, tlens))
}

/// Documents of the shard being collected.
#[derive(Default)]
struct Batch {
    /// Their bytes back to back, each document followed by a zero slot for its separator (the
    /// layout [`Shard::build`] takes, which reverses it in place).
    text: Vec<u8>,
    lens: Vec<usize>,
    metas: Vec<Option<String>>,
    /// Byte mode, once the text is large enough: the suffix array's pages, faulted in as the text
    /// grows.
    prefault: Option<SaPrefault>,
    /// Whether this shard's text reached [`PREFAULT_FROM`] (the buffers are set up once).
    prefault_tried: bool,
}

/// Text bytes from which a byte-mode shard's suffix array is faulted in while reading (below it
/// the array is small and the helper thread not worth starting).
#[cfg(not(test))]
const PREFAULT_FROM: usize = 8 << 20;
/// A shard's text may exceed `shard_bytes` by its last document: the suffix array is reserved
/// for this much more (beyond it, it is allocated when the sort starts).
#[cfg(not(test))]
const PREFAULT_SLACK: u64 = 64 << 20;
// small in unit tests, so that small corpora take every path
#[cfg(test)]
const PREFAULT_FROM: usize = 4 << 10;
#[cfg(test)]
const PREFAULT_SLACK: u64 = 8 << 10;

impl Batch {
    /// Byte mode, on each document: once the text reaches [`PREFAULT_FROM`], move it to a buffer
    /// on huge pages with room for a whole shard and start faulting the suffix array in; then
    /// keep the helper up to date with the array's length (text + the final slot).
    fn grow_prefault(&mut self, shard_bytes: u64) {
        if !self.prefault_tried && self.text.len() >= PREFAULT_FROM {
            self.prefault_tried = true;
            let max_len = shard_bytes.saturating_add(PREFAULT_SLACK).min(i32::MAX as u64) as usize;
            // neither is needed: without the room (strict overcommit, say) the text stays where it
            // is and the suffix array is allocated when the sort starts
            if let Some(mut text) = crate::fm::huge_capacity_vec(max_len.max(self.text.len())) {
                text.extend_from_slice(&self.text);
                self.text = text;
                self.prefault = SaPrefault::start(max_len);
            }
        }
        if let Some(p) = &self.prefault {
            p.grow_to(self.text.len() + 1);
        }
    }
}

struct Builder<'o> {
    opts: &'o BuildOptions,
    dir: PathBuf,
    tokenizer: Option<Tokenizer>,
    shards: Vec<ShardEntry>,
    docs: u64,
    generation: String,
}

impl Builder<'_> {
    fn cancelled(&self) -> Result<()> {
        match &self.opts.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(FmError::Aborted),
            _ => Ok(()),
        }
    }

    fn progress(&self, stage: &'static str, done: u64, total: u64) {
        if let Some(p) = &self.opts.on_progress {
            p(&Progress { stage, shard: self.shards.len(), docs: self.docs, done, total });
        }
    }

    fn flush(&mut self, batch: &mut Batch) -> Result<()> {
        if batch.lens.is_empty() {
            return Ok(());
        }
        let text_bytes = (batch.text.len() - batch.lens.len()) as u64; // without the slots
        let metas = std::mem::take(&mut batch.metas);
        let lens = std::mem::take(&mut batch.lens);
        let mut text = std::mem::take(&mut batch.text);
        text.push(0); // the final slot
        // a buffer on huge pages has its last 2 MiB page faulted in whole: give back the part
        // past the text (glibc shrinks a large block in place)
        text.shrink_to_fit();
        let sa_buf = batch.prefault.take().and_then(|p| p.finish(text.len()));
        batch.prefault_tried = false;
        let opts = self.opts;
        let k = self.shards.len();
        let mut shard = {
            let cancel = opts.cancel.clone();
            let prog = opts.on_progress.clone();
            let docs = self.docs;
            let mut check = move |stage: &'static str, done: usize, total: usize| -> Result<()> {
                if let Some(c) = &cancel
                    && c.load(Ordering::Relaxed)
                {
                    return Err(FmError::Aborted);
                }
                if let Some(p) = &prog {
                    p(&Progress { stage, shard: k, docs, done: done as u64, total: total as u64 });
                }
                Ok(())
            };
            let (bv, sa, isa) = (opts.bitvector, opts.sa_rate(), opts.isa_sample_rate);
            match &self.tokenizer {
                Some(tok) => {
                    check("tokenize", 0, lens.len())?;
                    // ids in 16 bits when the vocabulary fits: half the memory until the
                    // suffix array, whose peak is then the dense-coded ids plus the array
                    if tok.get_vocab_size(true) <= 1 << 16 {
                        let (ids, tlens) = tokenize::<u16>(tok, text, &lens)?;
                        Shard::build(ids, tlens, metas, bv, sa, isa, None, &mut check)?
                    } else {
                        let (ids, tlens) = tokenize::<u32>(tok, text, &lens)?;
                        Shard::build(ids, tlens, metas, bv, sa, isa, None, &mut check)?
                    }
                }
                None => Shard::build(text, lens, metas, bv, sa, isa, sa_buf, &mut check)?,
            }
        };
        self.cancelled()?;
        self.progress("write", 0, 1);
        let file = shard_file(&self.generation, k);
        shard.save(&self.dir.join(&file))?;
        self.shards.push(ShardEntry {
            file,
            docs: shard.ndocs() as u64,
            symbols: shard.symbols(),
            text_bytes,
            file_bytes: shard.file_bytes,
        });
        Ok(())
    }
}

impl NgramIndex {
    /// Build an index of `docs` into directory `dir` (created if needed; an index already there
    /// is replaced), then open it. Documents are packed into shards of about
    /// [`BuildOptions::shard_bytes`] text bytes; global document ids follow input order.
    ///
    /// Token mode tokenizes each document without special tokens (`add_special_tokens = false`)
    /// and needs UTF-8 text. Byte mode accepts any bytes.
    pub fn build<I>(docs: I, dir: &Path, opts: &BuildOptions) -> Result<NgramIndex>
    where
        I: IntoIterator<Item = Result<Document>>,
    {
        if opts.sa_rate() == 0 || opts.isa_sample_rate == 0 {
            return Err(FmError::arg("sample rates must be >= 1"));
        }
        if opts.shard_bytes == 0 {
            return Err(FmError::arg("shard_bytes must be >= 1"));
        }
        std::fs::create_dir_all(dir).map_err(|e| FmError::io(dir, e))?;
        let (tokenizer, tok_json) = match &opts.tokenizer {
            Some(p) => {
                let t = load_tokenizer(p, FmError::Tokenizer)?;
                let bytes = std::fs::read(p).map_err(|e| FmError::io(p, e))?;
                (Some(t), Some(bytes))
            }
            None => (None, None),
        };
        let vocab_size = tokenizer.as_ref().map(|t| t.get_vocab_size(true) as u64);
        let generation = format!(
            "{:x}{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0),
            std::process::id()
        );
        let mut b = Builder { opts, dir: dir.to_path_buf(), tokenizer, shards: Vec::new(), docs: 0, generation };
        let res = Self::build_into(&mut b, docs, tok_json, vocab_size);
        if let Err(e) = res {
            // leave any previous index intact: drop only this build's files
            for s in &b.shards {
                let _ = std::fs::remove_file(dir.join(&s.file));
            }
            let _ = std::fs::remove_file(dir.join(shard_file(&b.generation, b.shards.len())));
            return Err(e);
        }
        // remove shard files of an older index in the same directory
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_shard_file(&name) && !b.shards.iter().any(|s| s.file == name) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        b.progress("done", 1, 1);
        NgramIndex::open(dir)
    }

    fn build_into<I>(b: &mut Builder<'_>, docs: I, tok_json: Option<Vec<u8>>, vocab_size: Option<u64>) -> Result<()>
    where
        I: IntoIterator<Item = Result<Document>>,
    {
        let opts = b.opts;
        let dir = b.dir.clone();
        let dir = dir.as_path();
        let mut batch = Batch::default();
        let bytes_mode = b.tokenizer.is_none();
        for d in docs {
            let d = d?;
            b.docs += 1;
            // one contiguous buffer: no per-document allocations left behind (fragmented heap)
            // when the shard's large build buffers are allocated
            batch.text.extend_from_slice(&d.text);
            batch.text.push(0);
            batch.lens.push(d.text.len());
            batch.metas.push(d.metadata);
            if bytes_mode {
                batch.grow_prefault(opts.shard_bytes);
            }
            if b.docs.is_multiple_of(4096) {
                b.cancelled()?;
                b.progress("read", 0, 0);
            }
            if batch.text.len() as u64 >= opts.shard_bytes {
                b.flush(&mut batch)?;
            }
        }
        b.flush(&mut batch)?;
        b.cancelled()?;
        if let Some(bytes) = &tok_json {
            write_atomic(&dir.join(TOKENIZER), bytes)?;
        }
        let m = Manifest {
            format: FORMAT.into(),
            version: MANIFEST_VERSION,
            mode: if tok_json.is_some() { Mode::Tokens } else { Mode::Bytes },
            bitvector: opts.bitvector,
            sa_sample_rate: opts.sa_rate(),
            isa_sample_rate: opts.isa_sample_rate,
            docs: b.docs,
            text_bytes: b.shards.iter().map(|s| s.text_bytes).sum(),
            symbols: b.shards.iter().map(|s| s.symbols).sum(),
            vocab_size,
            tokenizer: tok_json.as_ref().map(|_| TOKENIZER.to_string()),
            shards: b.shards.clone(),
            checksum: String::new(),
        };
        write_atomic(&dir.join(MANIFEST), &manifest_bytes(&m)?)
    }

    /// Open an index directory: reads `manifest.json`, maps every shard and validates headers,
    /// checksums and structure. Any inconsistency gives [`FmError::CorruptIndex`].
    pub fn open(dir: &Path) -> Result<NgramIndex> {
        let mpath = dir.join(MANIFEST);
        let raw = std::fs::read(&mpath).map_err(|e| FmError::io(&mpath, e))?;
        let m: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| FmError::corrupt(&mpath, format!("bad manifest: {e}")))?;
        if m.format != FORMAT || m.version != MANIFEST_VERSION {
            return Err(FmError::corrupt(&mpath, "not a quarry-fm manifest of a supported version"));
        }
        if !verify_manifest(&raw, &m) {
            return Err(FmError::corrupt(&mpath, "manifest checksum mismatch"));
        }
        if m.shards.iter().any(|s| !is_shard_file(&s.file) || s.file.contains('/') || s.file.contains('\\')) {
            return Err(FmError::corrupt(&mpath, "bad shard file name"));
        }
        let shards: Vec<Shard> = m
            .shards
            .par_iter()
            .map(|e| {
                let p = dir.join(&e.file);
                let s = Shard::open(&p)?;
                if s.ndocs() as u64 != e.docs
                    || s.symbols() != e.symbols
                    || s.kind() != m.bitvector
                    || s.file_bytes != e.file_bytes
                {
                    return Err(FmError::corrupt(&p, "shard disagrees with manifest"));
                }
                Ok(s)
            })
            .collect::<Result<_>>()?;
        let mut doc_base = vec![0u64];
        for s in &shards {
            doc_base.push(doc_base.last().unwrap() + s.ndocs() as u64);
        }
        if *doc_base.last().unwrap() != m.docs || shards.iter().map(|s| s.symbols()).sum::<u64>() != m.symbols {
            return Err(FmError::corrupt(&mpath, "document/symbol totals disagree with shards"));
        }
        let tokenizer = match (&m.mode, &m.tokenizer) {
            (Mode::Tokens, Some(t)) => {
                if t.contains('/') || t.contains('\\') {
                    return Err(FmError::corrupt(&mpath, "bad tokenizer file name"));
                }
                let p = dir.join(t);
                Some(load_tokenizer(&p, |e| FmError::corrupt(&p, e))?)
            }
            (Mode::Bytes, None) => None,
            _ => return Err(FmError::corrupt(&mpath, "mode and tokenizer disagree")),
        };
        Ok(NgramIndex { dir: dir.to_path_buf(), manifest: m, shards, doc_base, tokenizer })
    }

    /// Directory the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mode(&self) -> Mode {
        self.manifest.mode
    }

    /// The tokenizer (token mode).
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    pub fn stats(&self) -> Stats {
        let m = &self.manifest;
        Stats {
            mode: m.mode,
            bitvector: m.bitvector,
            docs: m.docs,
            bytes: m.text_bytes,
            symbols: m.symbols,
            tokens: (m.mode == Mode::Tokens).then_some(m.symbols),
            index_bytes: self.shards.iter().map(|s| s.file_bytes).sum(),
            shards: self.shards.len(),
            sa_sample_rate: m.sa_sample_rate,
            isa_sample_rate: m.isa_sample_rate,
            vocab_size: m.vocab_size,
        }
    }

    /// Number of documents.
    pub fn num_docs(&self) -> u64 {
        self.manifest.docs
    }

    /// Turn a string into query symbols: its UTF-8 bytes (byte mode) or its token ids
    /// (token mode, no special tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.tokenizer {
            None => Ok(text.bytes().map(u32::from).collect()),
            Some(t) => Ok(t
                .encode_fast(text, false)
                .map_err(|e| FmError::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec()),
        }
    }

    /// Turn symbols back into text: bytes as (lossy) UTF-8, or token ids decoded by the tokenizer.
    pub fn decode(&self, symbols: &[u32]) -> Result<String> {
        match &self.tokenizer {
            None => {
                let b: Vec<u8> = symbols.iter().map(|&s| s as u8).collect();
                Ok(String::from_utf8_lossy(&b).into_owned())
            }
            Some(t) => t.decode(symbols, false).map_err(|e| FmError::Tokenizer(e.to_string())),
        }
    }

    fn check_pattern(&self, pat: &[u32]) -> Result<()> {
        if pat.is_empty() {
            return Err(FmError::arg("empty pattern"));
        }
        if self.mode() == Mode::Bytes
            && let Some(s) = pat.iter().find(|&&s| s > 255)
        {
            return Err(FmError::arg(format!("symbol {s} is not a byte")));
        }
        Ok(())
    }

    fn total_symbols(&self) -> u64 {
        self.manifest.symbols
    }

    fn count_unchecked(&self, pat: &[u32]) -> u64 {
        if pat.is_empty() {
            return self.total_symbols();
        }
        if self.shards.len() == 1 {
            return self.shards[0].count(pat);
        }
        self.shards.par_iter().map(|s| s.count(pat)).sum()
    }

    /// Number of (possibly overlapping) occurrences of `pattern` inside documents.
    /// An empty pattern is an `InvalidArgument` error; a symbol that never occurs gives 0.
    pub fn count(&self, pattern: &[u32]) -> Result<u64> {
        self.check_pattern(pattern)?;
        Ok(self.count_unchecked(pattern))
    }

    /// Up to `limit` occurrences of `pattern`, sorted by (doc, offset). When there are more than
    /// `limit` occurrences, which ones are returned is unspecified (deterministic per index).
    pub fn locate(&self, pattern: &[u32], limit: usize) -> Result<Vec<Hit>> {
        self.check_pattern(pattern)?;
        let mut out = Vec::new();
        for (k, s) in self.shards.iter().enumerate() {
            if out.len() >= limit {
                break;
            }
            let r = s.range(pattern);
            let take = (r.1 - r.0).min(limit - out.len());
            let base = self.doc_base[k];
            let rows: Vec<usize> = (r.0..r.0 + take).collect();
            let hits = s.locate_rows(&rows, pattern.len());
            out.extend(hits.into_iter().map(|(d, off)| Hit { doc: base + d as u64, offset: off }));
        }
        out.sort_unstable();
        Ok(out)
    }

    fn doc_shard(&self, doc: u64) -> Result<(usize, usize)> {
        if doc >= self.num_docs() {
            return Err(FmError::arg(format!("document {doc} out of range (have {})", self.num_docs())));
        }
        let k = self.doc_base.partition_point(|&b| b <= doc) - 1;
        Ok((k, (doc - self.doc_base[k]) as usize))
    }

    /// Length of document `doc` in symbols.
    pub fn doc_len(&self, doc: u64) -> Result<u64> {
        let (k, d) = self.doc_shard(doc)?;
        Ok(self.shards[k].doc_len(d))
    }

    /// Symbols `[start, start + len)` of document `doc` (clamped to the document; `len = None`
    /// means to the end), recovered from the index itself.
    pub fn document(&self, doc: u64, start: u64, len: Option<u64>) -> Result<Vec<u32>> {
        let (k, d) = self.doc_shard(doc)?;
        Ok(self.shards[k].extract(d, start, len.unwrap_or(u64::MAX)))
    }

    /// The whole document as text (see [`NgramIndex::decode`]).
    pub fn document_text(&self, doc: u64) -> Result<String> {
        let s = self.document(doc, 0, None)?;
        self.decode(&s)
    }

    /// Metadata JSON string of document `doc`, if it had any.
    pub fn metadata(&self, doc: u64) -> Result<Option<String>> {
        let (k, d) = self.doc_shard(doc)?;
        Ok(self.shards[k].metadata(d).map(str::to_string))
    }

    /// `count(ngram) / count(ngram[..len-1])`. For a 1-gram the denominator is the number of
    /// symbols in the corpus. An empty n-gram is an error.
    pub fn prob(&self, ngram: &[u32]) -> Result<Prob> {
        self.check_pattern(ngram)?;
        let count = self.count_unchecked(ngram);
        let prefix_count = self.count_unchecked(&ngram[..ngram.len() - 1]);
        Ok(Prob {
            prob: (prefix_count > 0).then(|| count as f64 / prefix_count as f64),
            count,
            prefix_count,
        })
    }

    /// Distribution of the symbol that follows `prefix` (may be empty: unigram distribution),
    /// as a range enumeration over the BWT of the reversed text. Top `limit` by count.
    pub fn next_tokens(&self, prefix: &[u32], limit: usize) -> Result<NextTokens> {
        if !prefix.is_empty() {
            self.check_pattern(prefix)?;
        }
        let parts: Vec<ShardNext> = self
            .shards
            .par_iter()
            .map(|s| {
                let r = s.range(prefix);
                let (v, eod) = s.next_symbols(r);
                let cnt = if prefix.is_empty() { s.symbols() } else { (r.1 - r.0) as u64 };
                (v, eod, cnt)
            })
            .collect();
        let mut acc: HashMap<u32, u64> = HashMap::new();
        let (mut eod, mut prefix_count) = (0, 0);
        for (v, e, c) in parts {
            for (t, n) in v {
                *acc.entry(t).or_default() += n;
            }
            eod += e;
            prefix_count += c;
        }
        if prefix.is_empty() {
            eod = 0; // every document end is not a continuation of the empty prefix
        }
        let mut v: Vec<(u32, u64)> = acc.into_iter().collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let distinct = v.len() as u64;
        v.truncate(limit);
        Ok(NextTokens {
            prefix_count,
            end_of_document: eod,
            distinct,
            tokens: v
                .into_iter()
                .map(|(token, count)| NextToken { token, count, prob: count as f64 / prefix_count as f64 })
                .collect(),
        })
    }

    /// ∞-gram probability of `token` after `context`: uses the longest suffix of `context` that
    /// occurs in the corpus (binary search on its length, since occurrence is monotone), and
    /// returns `count(suffix + token) / count(suffix)` with the suffix length used.
    pub fn infgram_prob(&self, context: &[u32], token: u32) -> Result<InfgramProb> {
        self.check_pattern(std::slice::from_ref(&token))?;
        if !context.is_empty() {
            self.check_pattern(context)?;
        }
        let k = context.len();
        // largest L in [0, k] with count(context[k-L..]) > 0
        let (mut lo, mut hi) = (0usize, k);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.count_unchecked(&context[k - mid..]) > 0 {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let suffix = &context[k - lo..];
        let prefix_count = self.count_unchecked(suffix);
        let mut full = suffix.to_vec();
        full.push(token);
        let count = self.count_unchecked(&full);
        Ok(InfgramProb {
            prob: (prefix_count > 0).then(|| count as f64 / prefix_count as f64),
            suffix_len: lo,
            count,
            prefix_count,
        })
    }

    /// Documents matching a CNF query: `cnf` is an AND of clauses, each clause an OR of
    /// patterns. Per shard, each clause's occurrences are located (at most `max_clause_freq`
    /// per clause, evenly sampled otherwise, setting `approx`), mapped to documents, and the
    /// clauses' document sets intersected. Returns up to `limit` ids ascending.
    pub fn search_documents(
        &self,
        cnf: &[Vec<Vec<u32>>],
        limit: usize,
        max_clause_freq: u64,
    ) -> Result<DocSearch> {
        if cnf.is_empty() || cnf.iter().any(|c| c.is_empty()) {
            return Err(FmError::arg("CNF needs at least one clause and one pattern per clause"));
        }
        for c in cnf {
            for p in c {
                self.check_pattern(p)?;
            }
        }
        let max = max_clause_freq.max(1) as usize;
        let per_shard: Vec<(Vec<u64>, bool)> = self
            .shards
            .par_iter()
            .enumerate()
            .map(|(k, s)| {
                let mut approx = false;
                // clause ranges, rarest clause first
                let mut clauses: Vec<(usize, Vec<ClauseRange>)> = cnf
                    .iter()
                    .map(|c| {
                        let rs: Vec<_> = c.iter().map(|p| (s.range(p), p.len())).collect();
                        (rs.iter().map(|(r, _)| r.1 - r.0).sum(), rs)
                    })
                    .collect();
                clauses.sort_by_key(|c| c.0);
                let mut acc: Option<Vec<usize>> = None;
                for (total, rs) in clauses {
                    if total == 0 {
                        return (Vec::new(), approx);
                    }
                    let step = if total > max {
                        approx = true;
                        total as f64 / max as f64
                    } else {
                        1.0
                    };
                    let picks = total.min(max);
                    // the picked rows of each pattern of the clause (evenly spaced over the
                    // clause's concatenated ranges), located pattern by pattern
                    let rows_of = |p: usize| rs[p].0.1 - rs[p].0.0;
                    let mut per_pattern: Vec<Vec<usize>> = vec![Vec::new(); rs.len()];
                    let mut p = 0;
                    let mut before = 0; // rows of the patterns before `p`
                    for j in 0..picks {
                        let idx = (j as f64 * step) as usize;
                        while idx >= before + rows_of(p) {
                            before += rows_of(p);
                            p += 1;
                        }
                        per_pattern[p].push(rs[p].0.0 + idx - before);
                    }
                    let mut docs: Vec<usize> = per_pattern
                        .iter()
                        .zip(&rs)
                        .flat_map(|(rows, &(_, m))| s.locate_rows(rows, m).into_iter().map(|(d, _)| d))
                        .collect();
                    docs.sort_unstable();
                    docs.dedup();
                    acc = Some(match acc {
                        None => docs,
                        Some(prev) => intersect(&prev, &docs),
                    });
                    if acc.as_ref().is_some_and(|a| a.is_empty()) {
                        break;
                    }
                }
                let base = self.doc_base[k];
                (acc.unwrap_or_default().into_iter().map(|d| base + d as u64).collect(), approx)
            })
            .collect();
        let approx = per_shard.iter().any(|p| p.1);
        let mut docs: Vec<u64> = per_shard.into_iter().flat_map(|p| p.0).collect();
        docs.sort_unstable();
        let count = docs.len() as u64;
        docs.truncate(limit);
        Ok(DocSearch { count, docs, approx })
    }

    /// For each text, the share of its `n`-gram positions (over its encoded symbols) that occur
    /// in the corpus. `n` must be >= 1.
    pub fn contamination(&self, texts: &[&str], n: usize) -> Result<Vec<Contamination>> {
        let enc: Vec<Vec<u32>> = texts.iter().map(|t| self.encode(t)).collect::<Result<_>>()?;
        self.contamination_symbols(&enc, n)
    }

    /// [`NgramIndex::contamination`] over already encoded symbol sequences.
    pub fn contamination_symbols(&self, texts: &[Vec<u32>], n: usize) -> Result<Vec<Contamination>> {
        if n == 0 {
            return Err(FmError::arg("n must be >= 1"));
        }
        for t in texts {
            if !t.is_empty() {
                self.check_pattern(t)?;
            }
        }
        Ok(texts
            .par_iter()
            .map(|t| {
                let ngrams = (t.len() + 1).saturating_sub(n) as u64;
                let found = (0..ngrams as usize)
                    .filter(|&i| self.shards.iter().any(|s| s.count(&t[i..i + n]) > 0))
                    .count() as u64;
                Contamination {
                    ngrams,
                    found,
                    share: if ngrams == 0 { 0.0 } else { found as f64 / ngrams as f64 },
                }
            })
            .collect())
    }

    #[doc(hidden)]
    pub fn debug_sizes(&self) -> Vec<(usize, usize, u64)> {
        self.shards.iter().map(|s| (s.index_bytes(), s.wm_levels(), s.symbols())).collect()
    }
}

fn intersect(a: &[usize], b: &[usize]) -> Vec<usize> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed >> 33
    }

    fn naive(docs: &[Vec<u8>], pat: &[u8]) -> Vec<Hit> {
        let mut out = vec![];
        for (d, doc) in docs.iter().enumerate() {
            for i in 0..(doc.len() + 1).saturating_sub(pat.len()) {
                if &doc[i..i + pat.len()] == pat {
                    out.push(Hit { doc: d as u64, offset: i as u64 });
                }
            }
        }
        out
    }

    /// With the unit-test sizes of `PREFAULT_FROM`, `PREFAULT_SLACK` and the shard's task sizes:
    /// byte shards whose text is reversed in place into a prefaulted suffix array, one whose
    /// last document outgrows the reservation, and one whose alphabet needs 16-bit codes (a
    /// second buffer, the prefaulted pages given back), all checked against the raw documents.
    #[test]
    fn byte_shards_built_in_place_with_prefaulted_suffix_arrays() {
        let mut seed = 11u64;
        let mut docs: Vec<Vec<u8>> = Vec::new();
        let mut random_docs = |docs: &mut Vec<Vec<u8>>, k: usize| {
            for _ in 0..k {
                let len = (lcg(&mut seed) % 150) as usize;
                docs.push((0..len).map(|_| b"abcd \n"[(lcg(&mut seed) % 6) as usize]).collect());
            }
        };
        random_docs(&mut docs, 400);
        docs.push(vec![b'x'; 30_000]); // beyond shard_bytes + PREFAULT_SLACK
        random_docs(&mut docs, 200);
        docs.push((0..=255u8).cycle().take(9000).collect()); // every byte value
        random_docs(&mut docs, 100);
        let dir = tempfile::tempdir().unwrap();
        for kind in [BitvectorKind::Compressed, BitvectorKind::Plain] {
            let opts = BuildOptions { shard_bytes: 20_000, sa_sample_rate: Some(3), isa_sample_rate: 5, bitvector: kind, ..Default::default() };
            let idx = NgramIndex::build(docs.iter().map(|d| Ok(Document::new(d.clone()))), dir.path(), &opts).unwrap();
            assert!(idx.stats().shards >= 4);
            assert_eq!(idx.stats().bytes, docs.iter().map(|d| d.len() as u64).sum::<u64>());
            assert_eq!(idx.stats().symbols, idx.stats().bytes);
            for (d, doc) in docs.iter().enumerate() {
                let got = idx.document(d as u64, 0, None).unwrap();
                assert!(got.iter().map(|&x| x as u8).eq(doc.iter().copied()), "doc {d}");
            }
            let mut pats: Vec<Vec<u8>> = vec![b"x".to_vec(), vec![b'x'; 500], vec![0, 1, 2], vec![255, 0], b"\n".to_vec()];
            for _ in 0..300 {
                let d = (lcg(&mut seed) as usize) % docs.len();
                let (a, l) = (lcg(&mut seed) as usize, 1 + (lcg(&mut seed) % 8) as usize);
                if !docs[d].is_empty() {
                    let a = a % docs[d].len();
                    pats.push(docs[d][a..(a + l).min(docs[d].len())].to_vec());
                }
                // the end of one document and the start of the next: never a match across them
                if d + 1 < docs.len() && !docs[d].is_empty() && !docs[d + 1].is_empty() {
                    let mut p = docs[d][docs[d].len() - 1..].to_vec();
                    p.extend_from_slice(&docs[d + 1][..1]);
                    pats.push(p);
                }
            }
            for p in &pats {
                let want = naive(&docs, p);
                let sym: Vec<u32> = p.iter().map(|&b| b as u32).collect();
                assert_eq!(idx.count(&sym).unwrap(), want.len() as u64, "{p:?}");
                let mut got = idx.locate(&sym, usize::MAX).unwrap();
                got.sort_by_key(|h| (h.doc, h.offset));
                assert_eq!(got, want, "{p:?}");
            }
        }
    }
}
