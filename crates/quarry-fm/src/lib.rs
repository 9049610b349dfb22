//! # quarry-fm — FM-index n-gram engine over bytes or tokens
//!
//! A sharded, memory-mapped FM-index with the infini-gram query set: `count`, `locate`,
//! `document` (extract), `prob`, `next_tokens`, `infgram_prob`, CNF `search_documents`, and
//! `contamination`. The Node binding (`crates/quarry-node`) wraps [`NgramIndex`]; nothing here
//! depends on napi.
//!
//! ## Quick start
//!
//! ```no_run
//! use quarry_fm::{BuildOptions, Document, NgramIndex};
//! # fn main() -> quarry_fm::Result<()> {
//! let docs = ["the cat sat", "the dog sat down"].map(|s| Ok(Document::from(s)));
//! let idx = NgramIndex::build(docs, "/tmp/my-index".as_ref(), &BuildOptions::default())?;
//! let q = idx.encode("sat")?;                  // bytes here; token ids with a tokenizer
//! assert_eq!(idx.count(&q)?, 2);
//! let hits = idx.locate(&q, 10)?;              // [Hit { doc: 0, offset: 8 }, Hit { doc: 1, offset: 8 }]
//! let text = idx.document_text(hits[0].doc)?;  // "the cat sat"
//! let again = NgramIndex::open("/tmp/my-index".as_ref())?; // mmap + full validation
//! # let _ = (text, again); Ok(()) }
//! ```
//!
//! ## Modes and symbols
//!
//! Every query takes and returns **symbols** (`u32`): bytes `0..=255` in [`Mode::Bytes`], token ids
//! in [`Mode::Tokens`] (built with [`BuildOptions::tokenizer`] = a Hugging Face `tokenizer.json`,
//! copied into the index directory). [`NgramIndex::encode`] / [`NgramIndex::decode`] convert
//! between strings and symbols. Offsets and lengths are in symbols (bytes or tokens).
//!
//! ## Documents and separators
//!
//! Documents are concatenated with a separator *symbol* outside the byte/token alphabet (dense
//! code 1; the end sentinel is code 0), so documents may contain **any** byte, NUL included — no
//! escaping, no error — and no match can span a document boundary. Empty documents are allowed.
//! Input sources: any iterator of [`Document`] (`From<&str>`, `From<String>`, `From<Vec<u8>>`);
//! [`read_jsonl`] (JSONL: a string field `text`, all other fields kept as the document's metadata
//! JSON object); [`read_text_file`] / [`read_path`] (plain text: one document per file, or split
//! into paragraphs at blank lines, see [`TextSplit`]).
//!
//! ## Query semantics
//!
//! * `count(p)`: overlapping occurrences inside documents. Empty `p` → `InvalidArgument`; a
//!   symbol that never occurs (or > 255 in byte mode → `InvalidArgument`) gives 0; a pattern
//!   longer than the corpus gives 0.
//! * `locate(p, limit)`: up to `limit` [`Hit`]s `(global doc id, offset)`, sorted. Cost is up to
//!   `sa_sample_rate` LF steps per hit.
//! * `document(doc, start, len)`: symbols of a document, recovered from the index (no separate
//!   text copy is stored), clamped to the document.
//! * `prob(ngram)` = `count(ngram) / count(ngram[..n-1])`; for a 1-gram the denominator is the
//!   number of symbols.
//! * `next_tokens(prefix, limit)`: the distribution of the symbol following `prefix`, computed as
//!   a distinct-values enumeration of a BWT range (the index is built over the **reversed** text,
//!   as in infini-gram, so the BWT of a pattern's range holds the *next* symbols). Occurrences at
//!   the end of a document are reported separately as `end_of_document`.
//! * `infgram_prob(context, token)`: backs off to the longest suffix of `context` that occurs
//!   (found by binary search on its length) and reports `suffix_len`.
//! * `search_documents(cnf, limit, max_clause_freq)`: AND of ORs of patterns; a clause with more
//!   than `max_clause_freq` occurrences in a shard is evenly sampled and `approx` is set.
//! * `contamination(texts, n)`: per text, the share of its n-gram positions present in the
//!   corpus.
//!
//! All queries fan out over shards with rayon and merge; document ids are global.
//!
//! ## Data structures
//!
//! Per shard: libsais suffix array (8/16-bit or 32-bit-integer input chosen by alphabet size,
//! 32/64-bit output by length, sorted on the build's threads with the default `parallel-sa`
//! feature; the build keeps the text in the narrowest integer type — a byte text is read into
//! the buffer it is then reversed and dense-coded in, while a helper thread faults the suffix
//! array's pages in on the other core — and then works inside the suffix array's buffer, so its
//! peak is the sort's, about 5 bytes per symbol for bytes) →
//! BWT → C array + a Huffman-shaped wavelet tree over a dense alphabet (levelwise, pointerless;
//! its shape is a function of the symbol counts, so only the level bitvectors are stored), whose
//! levels are either [`BitvectorKind::Plain`] (rank9-style directory) or
//! [`BitvectorKind::Compressed`] (RRR, 127-bit blocks). SA samples every `sa_sample_rate` rows
//! (SA order) and inverse-SA samples every `isa_sample_rate` text positions, bit-packed. Byte
//! indexes (alphabets up to 258 codes) also store a pair table, the BWT count of every symbol
//! before each symbol's first row, so a pattern's first two symbols cost two lookups.
//! Byte-index defaults mirror infini-gram mini's `csa_wt<wt_huff<rrr_vector<127>>, 32, 64>`; token
//! indexes sample the suffix array every 8 rows by default (faster `locate`, see [`BuildOptions`]).
//!
//! ## On-disk format (directory)
//!
//! * `manifest.json`: format name/version, mode, bitvector kind, sample rates, totals, per-shard
//!   entries (file, docs, symbols, text bytes, file bytes), and an xxh3 checksum of itself.
//! * `shard-<generation>-NNNNN.qfm`: one file per shard (a new generation per build, so an
//!   aborted or failed rebuild never touches the shards the current manifest names; files of
//!   older generations are deleted after the new manifest is in place) — 64-byte header (magic `QRYFMIDX`, version,
//!   endianness marker, section table length, file length, header checksum), a table of named
//!   sections (offset, length, xxh3-64 each), sections aligned to 64 bytes for mmap, zero
//!   padding checked. See the `format` module docs for the byte layout.
//! * `tokenizer.json` (token mode).
//!
//! Every file is written to a temporary file, fsynced, and renamed. [`NgramIndex::open`] maps
//! the shards and validates headers, every checksum, padding, and the structure (directory
//! counts, C array vs. the ones in every wavelet-tree node, sample ranges, document tables)
//! before use; any mismatch is [`FmError::CorruptIndex`] (`QUARRY_CORRUPT_INDEX`). Files are little-endian.
//!
//! ## Errors
//!
//! [`FmError`] with stable [`FmError::code`] strings: `QUARRY_CORRUPT_INDEX`,
//! `QUARRY_INVALID_ARGUMENT`, `QUARRY_INVALID_INPUT`, `QUARRY_TOKENIZER`, `QUARRY_UNSUPPORTED`,
//! `QUARRY_IO`, `QUARRY_ABORTED`, `QUARRY_TOO_LARGE`, `QUARRY_INTERNAL`. Bad input never panics.
//!
//! ## Long builds
//!
//! [`BuildOptions::on_progress`] receives [`Progress`] reports; [`BuildOptions::cancel`] (an
//! `Arc<AtomicBool>`) aborts with `QUARRY_ABORTED` at the next check point, leaving any
//! previous index in the directory intact (the manifest is written last).

mod bits;
mod buf;
mod error;
mod fm;
mod format;
mod index;
mod input;
mod sabuf;
mod shard;
mod wm;

pub use error::{FmError, Result};
pub use index::{
    BitvectorKind, BuildOptions, Contamination, DocSearch, Hit, InfgramProb, Mode, NextToken,
    NextTokens, NgramIndex, Prob, Progress, ProgressFn, Stats,
};
pub use input::{Document, TextSplit, parse_jsonl_line, read_jsonl, read_path, read_text_file};
