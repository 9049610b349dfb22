mod common;
use common::*;
use quarry_fm::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn docs() -> Vec<Vec<u8>> {
    (0..30).map(|i| format!("document number {i} says hello {} times", i * 7).into_bytes()).collect()
}

fn shard_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "qfm"))
        .collect();
    v.sort();
    v
}

fn expect_corrupt(dir: &std::path::Path, what: &str) {
    match NgramIndex::open(dir) {
        Err(e) => assert_eq!(e.code(), "QUARRY_CORRUPT_INDEX", "{what}: {e}"),
        Ok(_) => panic!("{what}: opened a corrupt index"),
    }
}

#[test]
fn truncated_and_flipped_shards_are_rejected() {
    for kind in [BitvectorKind::Plain, BitvectorKind::Compressed] {
        let dir = tempfile::tempdir().unwrap();
        build_bytes(&docs(), dir.path(), kind, 1 << 30, 4, 8);
        let shard = shard_files(dir.path())[0].clone();
        let orig = std::fs::read(&shard).unwrap();
        for cut in [0, 7, 63, 64, 100, orig.len() / 2, orig.len() - 1] {
            std::fs::write(&shard, &orig[..cut]).unwrap();
            expect_corrupt(dir.path(), &format!("truncated to {cut}"));
        }
        // flip one bit at many positions: header, table, every section, padding
        let step = (orig.len() / 97).max(1);
        for pos in (0..orig.len()).step_by(step).chain([8, 12, 20, 24, 33, orig.len() - 1]) {
            let mut b = orig.clone();
            b[pos] ^= 0x10;
            std::fs::write(&shard, &b).unwrap();
            expect_corrupt(dir.path(), &format!("flip at {pos}"));
        }
        // appended garbage
        let mut b = orig.clone();
        b.extend_from_slice(&[0u8; 64]);
        std::fs::write(&shard, &b).unwrap();
        expect_corrupt(dir.path(), "appended bytes");
        // missing shard
        std::fs::remove_file(&shard).unwrap();
        expect_corrupt(dir.path(), "missing shard");
        std::fs::write(&shard, &orig).unwrap();
        assert!(NgramIndex::open(dir.path()).is_ok());
    }
}

#[test]
fn corrupt_manifest_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    build_bytes(&docs(), dir.path(), BitvectorKind::Compressed, 200, 32, 64);
    let m = dir.path().join("manifest.json");
    let orig = std::fs::read(&m).unwrap();
    for cut in [0, 1, orig.len() / 2, orig.len() - 2] {
        std::fs::write(&m, &orig[..cut]).unwrap();
        expect_corrupt(dir.path(), &format!("manifest cut {cut}"));
    }
    for pos in 0..orig.len() {
        let mut b = orig.clone();
        b[pos] ^= 0x01;
        std::fs::write(&m, &b).unwrap();
        if NgramIndex::open(dir.path()).is_ok() {
            panic!("manifest flip at {pos} ({:?}) accepted", orig[pos] as char);
        }
    }
    // swapping two shard files is caught (their sizes/doc counts disagree with the manifest)
    std::fs::write(&m, &orig).unwrap();
    let files = shard_files(dir.path());
    let (a, b) = (files[0].clone(), files[1].clone());
    let (da, db) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, &db).unwrap();
    std::fs::write(&b, &da).unwrap();
    assert!(NgramIndex::open(dir.path()).is_err());
}

#[test]
fn cancel_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = Arc::new(AtomicBool::new(true));
    let opts = BuildOptions { cancel: Some(cancel.clone()), ..Default::default() };
    let err = NgramIndex::build(docs().into_iter().map(|d| Ok(Document::new(d))), dir.path(), &opts).unwrap_err();
    assert_eq!(err.code(), "QUARRY_ABORTED");
    assert!(!dir.path().join("manifest.json").exists());

    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let opts = BuildOptions {
        shard_bytes: 300,
        on_progress: Some(Arc::new(move |_p: &Progress| {
            c2.fetch_add(1, Ordering::Relaxed);
        })),
        ..Default::default()
    };
    let idx = NgramIndex::build(docs().into_iter().map(|d| Ok(Document::new(d))), dir.path(), &opts).unwrap();
    assert!(calls.load(Ordering::Relaxed) > 5);
    assert!(idx.stats().shards > 1);
    // input errors propagate
    let bad = vec![Ok(Document::new("x")), Err(FmError::InvalidInput("boom".into()))];
    assert_eq!(NgramIndex::build(bad, dir.path(), &BuildOptions::default()).unwrap_err().code(), "QUARRY_INVALID_INPUT");
    // the earlier index is untouched by the failed build
    assert_eq!(NgramIndex::open(dir.path()).unwrap().num_docs(), 30);
    // ... also when the failure happens after new shards were written
    let mut many: Vec<Result<Document>> = docs().into_iter().map(|d| Ok(Document::new(d))).collect();
    many.push(Err(FmError::InvalidInput("late".into())));
    let opts = BuildOptions { shard_bytes: 100, ..Default::default() };
    assert!(NgramIndex::build(many, dir.path(), &opts).is_err());
    let idx = NgramIndex::open(dir.path()).unwrap();
    assert_eq!(idx.num_docs(), 30);
    assert_eq!(shard_files(dir.path()).len(), idx.stats().shards);
    // a successful rebuild replaces it and removes the old shard files
    let idx = NgramIndex::build(docs().into_iter().take(3).map(|d| Ok(Document::new(d))), dir.path(), &BuildOptions::default()).unwrap();
    assert_eq!(idx.num_docs(), 3);
    assert_eq!(shard_files(dir.path()).len(), 1);
}

#[test]
fn jsonl_and_text_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.jsonl"), "{\"text\":\"alpha beta\",\"id\":1}\n\n{\"text\":\"gamma\"}\n").unwrap();
    std::fs::write(src.join("b.txt"), "para one\nline two\n\n\npara two\n").unwrap();
    let docs = read_path(&src, TextSplit::BlankLines).unwrap();
    let idx = NgramIndex::build(docs, &dir.path().join("idx"), &BuildOptions::default()).unwrap();
    assert_eq!(idx.num_docs(), 4);
    assert_eq!(idx.document_text(0).unwrap(), "alpha beta");
    assert_eq!(idx.metadata(0).unwrap().as_deref(), Some("{\"id\":1}"));
    assert_eq!(idx.metadata(1).unwrap(), None);
    assert_eq!(idx.document_text(2).unwrap(), "para one\nline two");
    assert!(idx.metadata(2).unwrap().unwrap().contains("b.txt"));
    assert_eq!(idx.document_text(3).unwrap(), "para two");
    assert_eq!(idx.count(&sym(b"para")).unwrap(), 2);
    std::fs::write(src.join("c.jsonl"), "{\"txt\":1}\n").unwrap();
    let err = NgramIndex::build(read_path(&src, TextSplit::WholeFile).unwrap(), &dir.path().join("idx2"), &BuildOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "QUARRY_INVALID_INPUT");
    assert!(err.to_string().contains("c.jsonl:1"));
}
