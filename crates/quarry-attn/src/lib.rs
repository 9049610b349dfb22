//! # quarry-attn
//!
//! Attention kernels for long-context serving on CPU.
//!
//! * **Dense** ([`dense_attention`]): tiled, online softmax
//!   (FlashAttention-style), causal or not, grouped-query attention, f32 or
//!   f16 K/V, parallel over heads and query tiles, AVX2+FMA micro-kernels
//!   with runtime dispatch and a scalar fallback. Checked against
//!   [`naive_attention`] (materialised f64 softmax).
//! * **Sparse prefill** ([`sparse_prefill`], [`build_index`],
//!   [`sparse_attention`]): A-shape (StreamingLLM), vertical-slash
//!   (MInference), block top-k with a cumulative threshold (FlexPrefill;
//!   pooled, 4/8-bit or mean-query block estimate), and a per-head pattern
//!   search ([`search_patterns`]). The sparse kernel is the dense tile engine
//!   run over the selected key ranges and gathered columns (over K/V packed
//!   once into GEMM panels when the index is whole aligned ranges).
//! * **Decode** ([`dense_decode`], [`sparse_decode`]) with selectors behind
//!   [`KeySelector`]: Quest pages, Squeezed k-means clusters, streaming,
//!   exact top-k with TidalDecode-style reuse, DuoAttention policy, and
//!   RetrievalAttention ([`RetrievalIndex`]: a quarry-ann inner-product index
//!   over each KV head's keys, searched with the decode query).
//! * **Metrics**: attention recall ([`prefill_recall`], [`decode_recall`]),
//!   output error ([`relative_error`]), density (in every [`AttnOutput`]).
//!
//! Tensors are flat row-major `[heads, tokens, head_dim]` slices with an
//! explicit [`AttnShape`]. Bad input returns an [`AttnError`] with a stable
//! [`AttnError::code`]. Edge cases: `q_len == 0` gives an empty output;
//! budgets larger than the sequence are clamped (the method then equals
//! dense attention).

pub mod api;
pub mod decode;
pub mod dense;
pub mod error;
pub(crate) mod kernel;
pub mod metrics;
pub mod prefill;
pub mod realdata;
pub mod retrieval;
pub mod shape;
pub mod simd;

pub use api::{SparseMethod, SparseResult};
pub use decode::{
    DuoPolicy, KeySelector, QuestIndex, QuestSelector, Selection, SqueezedIndex, SqueezedSelector, StreamingSelector,
    TidalDecode, TopKSelector, decode_recall, dense_decode, sparse_decode,
};
pub use dense::{AttnOutput, dense_attention, dense_lse, naive_attention, naive_probs};
pub use error::{AttnError, Result};
pub use half::f16;
pub use metrics::{Recall, oracle_density, recall_from_lse, relative_error, relative_error_per_head};
pub use prefill::{
    PatternChoice, PrefillPattern, ScoreEstimate, SparseIndex, build_index, build_index_per_head, dense_pairs,
    prefill_recall, search_patterns, search_patterns_sampled, sparse_attention, sparse_lse, sparse_prefill,
};
pub use quarry_ann::Kind as IndexKind;
pub use retrieval::{ProbeOrder, RetrievalIndex, RetrievalParams, RetrievalSelector, RetrievalStats};
pub use shape::{AttnOptions, AttnShape, KernelChoice, KvSlice};
