//! Corpus input: documents from strings, JSONL files, and plain text files.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{FmError, Result};

/// One input document: its text (UTF-8 for token indexes; any bytes for byte indexes) and
/// optional metadata (a JSON string, kept verbatim and returned by `NgramIndex::metadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    pub text: Vec<u8>,
    pub metadata: Option<String>,
}

impl Document {
    pub fn new(text: impl Into<Vec<u8>>) -> Self {
        Document { text: text.into(), metadata: None }
    }

    pub fn with_metadata(text: impl Into<Vec<u8>>, metadata: impl Into<String>) -> Self {
        Document { text: text.into(), metadata: Some(metadata.into()) }
    }
}

impl From<String> for Document {
    fn from(s: String) -> Self {
        Document::new(s)
    }
}

impl From<&str> for Document {
    fn from(s: &str) -> Self {
        Document::new(s)
    }
}

impl From<Vec<u8>> for Document {
    fn from(b: Vec<u8>) -> Self {
        Document::new(b)
    }
}

/// How a plain text file is cut into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TextSplit {
    /// The whole file is one document (bytes kept verbatim).
    #[default]
    WholeFile,
    /// Paragraphs: maximal runs of non-blank lines; a line that is empty or only whitespace
    /// separates documents. Line breaks inside a paragraph are kept as `\n` (a trailing `\r` of
    /// each line is dropped); blank lines themselves are not part of any document.
    BlankLines,
}

/// Parse one JSONL line: an object with a string field `text`; all other fields become the
/// document's metadata (a JSON object string), or `None` when there are no other fields.
pub fn parse_jsonl_line(line: &str) -> Result<Document> {
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
        .map_err(|e| FmError::InvalidInput(format!("not a JSON object: {e}")))?;
    let text = match obj.remove("text") {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => return Err(FmError::InvalidInput("field `text` is not a string".into())),
        None => return Err(FmError::InvalidInput("missing field `text`".into())),
    };
    let metadata = if obj.is_empty() {
        None
    } else {
        Some(serde_json::Value::Object(obj).to_string())
    };
    Ok(Document { text: text.into_bytes(), metadata })
}

/// Documents of a JSONL file, one per non-blank line (see [`parse_jsonl_line`]). Errors name the
/// file and line.
pub fn read_jsonl(path: &Path) -> Result<impl Iterator<Item = Result<Document>> + Send + use<>> {
    let f = File::open(path).map_err(|e| FmError::io(path, e))?;
    let p = path.to_path_buf();
    Ok(BufReader::new(f).lines().enumerate().filter_map(move |(i, l)| match l {
        Err(e) => Some(Err(FmError::io(&p, e))),
        Ok(l) if l.trim().is_empty() => None,
        Ok(l) => Some(parse_jsonl_line(&l).map_err(|e| {
            FmError::InvalidInput(format!("{}:{}: {e}", p.display(), i + 1))
        })),
    }))
}

/// Documents of a plain text file. Each gets metadata `{"file": "<path>"}`.
pub fn read_text_file(path: &Path, split: TextSplit) -> Result<Vec<Document>> {
    let bytes = std::fs::read(path).map_err(|e| FmError::io(path, e))?;
    let meta = serde_json::json!({ "file": path.to_string_lossy() }).to_string();
    Ok(match split {
        TextSplit::WholeFile => vec![Document::with_metadata(bytes, meta)],
        TextSplit::BlankLines => split_paragraphs(&bytes)
            .into_iter()
            .map(|p| Document::with_metadata(p, meta.clone()))
            .collect(),
    })
}

pub(crate) fn split_paragraphs(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            if !cur.is_empty() {
                cur.push(b'\n');
            }
            cur.extend_from_slice(line);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Documents from a path: a `.jsonl` file is read as JSONL, any other file as plain text
/// (`split`), and a directory as all its regular files (not recursive) in name order, each by
/// the same rule.
pub fn read_path(
    path: &Path,
    split: TextSplit,
) -> Result<Box<dyn Iterator<Item = Result<Document>> + Send>> {
    let meta = std::fs::metadata(path).map_err(|e| FmError::io(path, e))?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        let mut v = Vec::new();
        for e in std::fs::read_dir(path).map_err(|e| FmError::io(path, e))? {
            let e = e.map_err(|e| FmError::io(path, e))?;
            if e.file_type().map_err(|er| FmError::io(e.path(), er))?.is_file() {
                v.push(e.path());
            }
        }
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let it = files.into_iter().flat_map(move |f| -> Box<dyn Iterator<Item = Result<Document>> + Send> {
        if f.extension().is_some_and(|e| e == "jsonl") {
            match read_jsonl(&f) {
                Ok(it) => Box::new(it),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        } else {
            match read_text_file(&f, split) {
                Ok(v) => Box::new(v.into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        }
    });
    Ok(Box::new(it))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs() {
        let p = split_paragraphs(b"a\nb\r\n\n  \n\nc\n\n");
        assert_eq!(p, vec![b"a\nb".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn jsonl() {
        let d = parse_jsonl_line(r#"{"text":"hi","id":3}"#).unwrap();
        assert_eq!(d.text, b"hi");
        assert_eq!(d.metadata.as_deref(), Some(r#"{"id":3}"#));
        assert!(parse_jsonl_line(r#"{"id":3}"#).is_err());
        assert!(parse_jsonl_line("[1]").is_err());
    }
}
