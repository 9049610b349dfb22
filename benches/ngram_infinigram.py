"""infini-gram side of `npm run bench:ngram` (benches/ngram.mjs drives it).

Runs inside the venv that ngram.mjs creates (benches/.data/ngram/venv: PyPI `infini-gram`,
`numpy`). The token ids come pre-tokenized from quarry's token index (same tokenizer.json, same
ids), written by ngram.mjs as infini-gram's own shard files: `tokenized.0` (u16 ids, every
document preceded by the separator 0xFFFF) and `offset.0` (u64 byte offset of each document).
infini-gram's indexer then skips its tokenize step (which needs `transformers` and a model hub)
and builds the suffix array (`table.0`) with its bundled `rust_indexing` binary.

Usage:
  python ngram_infinigram.py build INDEX_DIR CPUS
      Prints one JSON line: {"build_s", "index_bytes", "files": {...}}.
  python ngram_infinigram.py query INDEX_DIR QUERIES_JSON REPS
      QUERIES_JSON: {"groups": [{"name", "op", "items": [...]}]} with op in
      count (ids), ntd (ids), prob ([prompt, cont]), infgram ([prompt, cont]), cnf (cnf).
      Every group runs once as a warm-up, then REPS times; each call is timed on its own through
      the public Python API (InfiniGramEngine). Prints one JSON line per group:
      {"group", "op", "queries", "checksum", "approx", "samples_ns": [median per query]}.
"""

import json
import os
import subprocess
import sys
import time


def build(index_dir, cpus):
    table = os.path.join(index_dir, "table.0")
    if os.path.exists(table):
        os.remove(table)
    t0 = time.perf_counter()
    # --data_dir must exist but is not read: tokenized.0/offset.0 are already there.
    r = subprocess.run(
        [sys.executable, "-m", "infini_gram.indexing", "--data_dir", index_dir, "--save_dir", index_dir,
         "--token_dtype", "u16", "--cpus", str(cpus), "--mem", "16", "--ulimit", "1024"],
        capture_output=True, text=True,
    )
    dt = time.perf_counter() - t0
    if r.returncode != 0 or not os.path.exists(table):
        sys.stderr.write(r.stdout[-2000:] + r.stderr[-2000:])
        sys.exit(1)
    files = {f: os.path.getsize(os.path.join(index_dir, f)) for f in ("tokenized.0", "table.0", "offset.0")}
    print(json.dumps({"build_s": dt, "index_bytes": sum(files.values()), "files": files}))


def query(index_dir, qfile, reps):
    from infini_gram.engine import InfiniGramEngine

    t0 = time.perf_counter()
    # eos_token_id only matters for generation-style queries; vocab 32000 (llama-2).
    eng = InfiniGramEngine(index_dir=index_dir, eos_token_id=2, vocab_size=65535, token_dtype="u16")
    print(json.dumps({"group": "_load", "load_s": time.perf_counter() - t0}), flush=True)
    groups = json.load(open(qfile))["groups"]

    def call(op, it):
        if op == "count":
            r = eng.count(it)
            return r["count"], r["approx"]
        if op == "ntd":
            r = eng.ntd(it)
            return r["prompt_cnt"], r["approx"]
        if op == "prob":
            r = eng.prob(it[0], it[1])
            return r["cont_cnt"], False
        if op == "infgram":
            r = eng.infgram_prob(it[0], it[1])
            return r["suffix_len"], False
        if op == "cnf":
            r = eng.find_cnf(it)
            return r["cnt"], r["approx"]
        raise ValueError(op)

    for g in groups:
        op, items = g["op"], g["items"]
        checksum, approx = 0, 0
        for it in items:  # warm-up, and the answers
            c, a = call(op, it)
            if "error" in (c if isinstance(c, dict) else {}):
                raise RuntimeError(c)
            checksum += c
            approx += int(bool(a))
        samples = [[] for _ in items]
        pc = time.perf_counter_ns
        for _ in range(g.get("reps", reps)):
            for i, it in enumerate(items):
                a = pc()
                call(op, it)
                samples[i].append(pc() - a)
        med = [sorted(s)[len(s) // 2] for s in samples]
        print(json.dumps({"group": g["name"], "op": op, "queries": len(items), "checksum": checksum,
                          "approx": approx, "samples_ns": med}), flush=True)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "build":
        build(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 5 and sys.argv[1] == "query":
        query(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
