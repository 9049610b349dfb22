mod bits;
mod buf;
mod error;
mod fm;
mod format;
mod index;
mod input;
mod shard;
mod wm;

pub use error::{FmError, Result};
pub use index::{
    BitvectorKind, BuildOptions, Contamination, DocSearch, Hit, InfgramProb, Mode, NextToken,
    NextTokens, NgramIndex, Prob, Progress, ProgressFn, Stats,
};
pub use input::{Document, TextSplit, parse_jsonl_line, read_jsonl, read_path, read_text_file};
