"""FAISS side of `npm run bench:vectors` (benches/vectors.mjs), and the exact
ground truth every system is scored against.

    python vectors_faiss.py gt   --data-dir D --base-rows N
    python vectors_faiss.py run  --data-dir D --base-rows N --queries Q --config NAME --out FILE
                                 [--build-threads 2] [--threads 1,2] [--modes batch,single] [--quick]

`gt` (numpy only, no FAISS: brute force by BLAS matrix products over the
unit-normalised GloVe rows, i.e. cosine) writes into D, once per base size:
    gt_n{N}.ids.i32 / .sims.f32        top-100 of every query (1,000 x 100)
    allow_n{N}_p{P}.u32                sorted allow-set of base ids, P% of the base (seeded)
    gt_n{N}_p{P}.ids.i32 / .sims.f32   exact top-10 within that allow-set
`run` builds one FAISS configuration (one process per configuration, so its
peak memory is its own), then sweeps its search parameter at each thread count
and mode, scoring recall@10 against that ground truth, and writes one JSON.

Thread counts: the build runs at --build-threads; each search sweep sets
faiss.omp_set_num_threads(t). The wheel's OpenBLAS is the OpenMP build
(libopenblaso), which re-reads omp_get_max_threads() on every call, so the
BLAS parts (coarse quantizer assignment of a batch) follow the same count.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GLOVE = os.path.join(HERE, ".data", "glove100")
K = 10
GT_K = 100
SELECTIVITIES = [1, 10]  # percent; 100% is the unfiltered ground truth
ALLOW_SEED = 20261123


def load_glove(base_rows):
    with open(os.path.join(GLOVE, "meta.json")) as f:
        meta = json.load(f)
    d = meta["dim"]
    base = np.fromfile(os.path.join(GLOVE, "base_norm.f32"), dtype="<f4").reshape(meta["base"], d)
    queries = np.fromfile(os.path.join(GLOVE, "queries_norm.f32"), dtype="<f4").reshape(meta["queries"], d)
    n = meta["base"] if base_rows <= 0 else min(base_rows, meta["base"])
    return np.ascontiguousarray(base[:n]), queries, meta


def exact_topk(queries, base, k, chunk=32768):
    """Exact top-k by inner product (= cosine on unit rows): BLAS products per base chunk, merged."""
    nq = queries.shape[0]
    best_s = np.full((nq, k), -np.inf, dtype=np.float32)
    best_i = np.full((nq, k), -1, dtype=np.int64)
    for lo in range(0, base.shape[0], chunk):
        s = queries @ base[lo : lo + chunk].T
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + lo], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i, best_s


def gt_paths(data_dir, n, pct=None):
    stem = f"gt_n{n}" if pct is None else f"gt_n{n}_p{pct}"
    return os.path.join(data_dir, stem + ".ids.i32"), os.path.join(data_dir, stem + ".sims.f32")


def allow_path(data_dir, n, pct):
    return os.path.join(data_dir, f"allow_n{n}_p{pct}.u32")


def cmd_gt(a):
    os.makedirs(a.data_dir, exist_ok=True)
    base, queries, meta = load_glove(a.base_rows)
    n = base.shape[0]
    t0 = time.perf_counter()
    ids, sims = exact_topk(queries, base, GT_K)
    ids.astype("<i4").tofile(gt_paths(a.data_dir, n)[0])
    sims.astype("<f4").tofile(gt_paths(a.data_dir, n)[1])
    # Cross-check a few rows in float64: the f32 BLAS products must pick the same neighbours.
    for q in range(0, queries.shape[0], 97):
        s64 = base.astype(np.float64) @ queries[q].astype(np.float64)
        top = np.argsort(-s64, kind="stable")[:K]
        got = set(ids[q, :K].tolist())
        miss = [int(i) for i in top if int(i) not in got and s64[i] < sims[q, K - 1] - 1e-5]
        if miss:
            print(f"gt: float64 cross-check failed for query {q}: {miss}", file=sys.stderr)
            sys.exit(4)
    rs = np.random.RandomState(ALLOW_SEED)
    for pct in SELECTIVITIES:
        m = max(K, int(round(n * pct / 100)))
        allow = np.sort(rs.choice(n, size=m, replace=False)).astype("<u4")
        allow.tofile(allow_path(a.data_dir, n, pct))
        sub_ids, sub_sims = exact_topk(queries, base[allow], K)
        allow[sub_ids].astype("<i4").tofile(gt_paths(a.data_dir, n, pct)[0])
        sub_sims.astype("<f4").tofile(gt_paths(a.data_dir, n, pct)[1])
    print(f"gt: exact top-{GT_K} of {queries.shape[0]} queries over {n} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


class Truth:
    """Ground truth for one query set; recall@10 counts ties at the 10th similarity as hits."""

    def __init__(self, data_dir, n, nq, pct=None):
        ip, sp = gt_paths(data_dir, n, pct)
        kk = GT_K if pct is None else K
        self.ids = np.fromfile(ip, dtype="<i4").reshape(-1, kk)[:nq, :K]
        self.kth = np.fromfile(sp, dtype="<f4").reshape(-1, kk)[:nq, K - 1]

    def recall(self, I, queries, base):
        hits = 0
        for q in range(I.shape[0]):
            truth = set(self.ids[q].tolist())
            seen = set()
            for r in I[q, :K].tolist():
                if r < 0 or r >= base.shape[0] or r in seen:
                    continue
                seen.add(r)
                if r in truth or float(base[r] @ queries[q]) >= self.kth[q] - 1e-6:
                    hits += 1
        return hits / (I.shape[0] * K)


def vm_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def time_search(fn, nq, min_s, max_reps):
    """Median of up to max_reps full passes (at least one; no more once min_s is spent)."""
    times = []
    res = None
    total = 0.0
    while len(times) < max_reps and (not times or total < min_s):
        t0 = time.perf_counter()
        res = fn()
        s = time.perf_counter() - t0
        times.append(s)
        total += s
    med = float(np.median(times))
    return res, {"seconds": med, "qps": nq / med, "reps": len(times)}


# Configurations: name -> (index_factory string or special, search-parameter grid kind)
NPROBE = [4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128, 192, 256]
NPROBE_QUICK = [2, 4, 8, 16, 32, 64]
KFACTOR = [2, 4, 8, 12, 16]  # re-rank k x factor candidates exactly = 20, 40, 80, 120, 160 for k = 10
HNSW_EF = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384]
HNSW_EF_QUICK = [16, 32, 64, 128]
BINARY_R = [20, 40, 80, 160, 320, 640, 1280, 2560, 5120]
HNSW_M = 16
# A sweep line stops at the first point with recall@10 >= STOP_RECALL: beyond
# the 0.90 target, the next points only cost time.
STOP_RECALL = 0.97
HNSW_EF_CONSTRUCTION = 100

# A ",RFlat" configuration is searched twice: through IndexRefineFlat (exact
# re-ranking of k x k_factor candidates) and through its base index alone,
# which is exactly the index without re-ranking (same training, same codes);
# the second result is reported under "unrefined" with its own bytes/vector.
CONFIGS = {
    # exact search scans all 340k rows per query: 200 queries are plenty for its one point
    "Flat": {"factory": "Flat", "grid": "none", "family": "flat", "maxQueries": 200},
    "IVF1024,Flat": {"factory": "IVF1024,Flat", "grid": "ivf", "family": "ivf-flat", "filter": True},
    "IVF1024,SQ8": {"factory": "IVF1024,SQ8", "grid": "ivf", "family": "ivf-sq8"},
    "IVF1024,PQ50": {"factory": "IVF1024,PQ50", "grid": "ivf", "family": "ivf-pq"},
    "IVF1024,PQ50x4fs,RFlat": {"factory": "IVF1024,PQ50x4fs,RFlat", "grid": "ivf-refine", "family": "ivf-pq", "filter": True, "unrefined": "IVF1024,PQ50x4fs"},
    "OPQ50,IVF1024,PQ50x4fs,RFlat": {"factory": "OPQ50,IVF1024,PQ50x4fs,RFlat", "grid": "ivf-refine", "family": "ivf-pq", "unrefined": "OPQ50,IVF1024,PQ50x4fs"},
    "BinaryFlat+rerank": {"factory": None, "grid": "binary", "family": "binary"},
    "HNSW16,Flat": {"factory": None, "grid": "hnsw", "family": "hnsw"},
}


def sign_bits(x):
    """Sign bits of each row, packed 8 per byte (100 dims -> 13 bytes; the 4 pad bits are 0 everywhere)."""
    return np.packbits(x > 0, axis=1)


class BinaryRerank:
    """IndexBinaryFlat over sign bits (Hamming), then exact inner-product re-ranking of the R nearest codes."""

    def __init__(self, base):
        import faiss

        self.base = base
        codes = sign_bits(base)
        self.index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        self.index.add(codes)

    def search(self, queries, k, r):
        _, cand = self.index.search(sign_bits(queries), r)
        out_i = np.empty((queries.shape[0], k), dtype=np.int64)
        out_d = np.empty((queries.shape[0], k), dtype=np.float32)
        step = max(1, (1 << 22) // (r * queries.shape[1]))  # bounded gather: <= 16 MB per chunk
        for lo in range(0, queries.shape[0], step):
            c = cand[lo : lo + step]
            s = np.einsum("qrd,qd->qr", self.base[np.maximum(c, 0)], queries[lo : lo + step])
            s[c < 0] = -np.inf
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            ts = np.take_along_axis(s, top, axis=1)
            order = np.argsort(-ts, axis=1)
            out_i[lo : lo + step] = np.take_along_axis(np.take_along_axis(c, top, axis=1), order, axis=1)
            out_d[lo : lo + step] = np.take_along_axis(ts, order, axis=1)
        return out_d, out_i


def cmd_run(a):
    import faiss

    cfg = CONFIGS[a.config]
    base, all_queries, meta = load_glove(a.base_rows)
    n, d = base.shape
    nq = min(a.queries, all_queries.shape[0], cfg.get("maxQueries", 1 << 30))
    queries = np.ascontiguousarray(all_queries[:nq])
    truth = Truth(a.data_dir, n, nq)
    mem0 = vm_status()
    common = {
        "system": "faiss",
        "version": faiss.__version__,
        "compile": faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else "",
        "family": cfg["family"],
        "base": n,
        "queries": nq,
        "k": K,
    }

    faiss.omp_set_num_threads(a.build_threads)
    t0 = time.perf_counter()
    train_s = 0.0
    # Build time is train + add only (as quarry's VectorIndex.build); the
    # serialization that measures the index size comes after the timing.
    if cfg["grid"] == "binary":
        index = BinaryRerank(base)
        build_s = time.perf_counter() - t0
        ser = len(faiss.serialize_index_binary(index.index))
        nbytes = {"index": ser, "perVector": ser / n, "code": index.index.code_size, "note": "Hamming codes only; re-ranking also reads the float vectors (400 B/vector)"}
    else:
        if cfg["grid"] == "hnsw":
            index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.index_factory(d, cfg["factory"], faiss.METRIC_INNER_PRODUCT)
            if not index.is_trained:
                index.train(base)
            train_s = time.perf_counter() - t0
        index.add(base)
        build_s = time.perf_counter() - t0
        ser = len(faiss.serialize_index(index))
        nbytes = {"index": ser, "perVector": ser / n, "code": d * 4 if cfg["grid"] == "hnsw" else index.sa_code_size()}
    build = {"threads": a.build_threads, "seconds": build_s, "trainSeconds": train_s}
    print(f"faiss {a.config}: built in {build_s:.1f} s (train {train_s:.1f} s), {nbytes['perVector']:.1f} B/vector", file=sys.stderr, flush=True)

    nprobes = NPROBE_QUICK if a.quick else NPROBE
    threads = [int(t) for t in a.threads.split(",")]
    single_threads = [int(t) for t in a.single_threads.split(",")] if a.single_threads else []
    modes = a.modes.split(",")
    keep_alive = []  # SWIG parameter objects hold raw pointers to these

    def run_variant(name, index, grid_kind, filtered):
        out = {**common, "config": name, "build": build, "bytes": None, "sweeps": [], "filtered": [], "notes": []}

        def params_for(p, sel=None):
            if grid_kind in ("ivf", "ivf-refine"):
                ivfp = faiss.SearchParametersIVF(nprobe=p["nprobe"], sel=sel) if sel is not None else faiss.SearchParametersIVF(nprobe=p["nprobe"])
                if grid_kind == "ivf":
                    return ivfp
                keep_alive.append(ivfp)
                return faiss.IndexRefineSearchParameters(k_factor=p["kFactor"], base_index_params=ivfp)
            if grid_kind == "hnsw":
                return faiss.SearchParametersHNSW(efSearch=p["ef"])
            return None

        def searcher(p, sel=None):
            if grid_kind == "binary":
                return lambda x: index.search(x, K, p["r"])
            prm = params_for(p, sel)
            if prm is None:
                return lambda x: index.search(x, K)
            keep_alive.append(prm)
            return lambda x: index.search(x, K, params=prm)

        if grid_kind == "ivf":
            grid = [{"nprobe": p} for p in nprobes]
        elif grid_kind == "ivf-refine":
            grid = [{"nprobe": p, "kFactor": f} for f in ([4, 16] if a.quick else KFACTOR) for p in nprobes]
        elif grid_kind == "hnsw":
            grid = [{"ef": e} for e in (HNSW_EF_QUICK if a.quick else HNSW_EF)]
        elif grid_kind == "binary":
            grid = [{"r": r} for r in (BINARY_R[2::2] if a.quick else BINARY_R)]
        else:
            grid = [{}]

        def sweep_key(p):
            # points of one sweep line: all but the swept parameter (nprobe / ef / r) are equal
            return tuple((k, v) for k, v in sorted(p.items()) if k not in ("nprobe", "ef", "r"))

        for t in sorted(set(threads) | set(single_threads)):
            faiss.omp_set_num_threads(t)
            for mode in modes:
                if (mode == "batch" and t not in threads) or (mode == "single" and t not in single_threads):
                    continue
                stopped = set()
                last = {}
                for p in grid:
                    key = sweep_key(p)
                    if key in stopped:
                        continue
                    fn = searcher(p)
                    if mode == "batch":
                        fn(queries[: min(50, nq)])  # warm-up
                        (_, I), tm = time_search(lambda: fn(queries), nq, a.min_s, a.max_reps)
                    else:
                        rows = [queries[i : i + 1] for i in range(nq)]
                        for r in rows[: min(50, nq)]:
                            fn(r)

                        def one_by_one():
                            return None, np.concatenate([fn(r)[1] for r in rows], axis=0)

                        (_, I), tm = time_search(one_by_one, nq, a.min_s, a.max_reps)
                    rec = truth.recall(I, queries, base)
                    out["sweeps"].append({"mode": mode, "threads": t, "param": p, "recall": rec, **tm})
                    print(f"faiss {name} {mode} t={t} {p}: recall {rec:.4f}, {tm['qps']:.0f} QPS", file=sys.stderr, flush=True)
                    # further points of this line only cost time: recall saturated or flat, or too slow already
                    hist = last.setdefault(key, [])
                    hist.append(rec)
                    flat = len(hist) >= 3 and all(r == rec for r in hist[-3:])
                    if rec >= STOP_RECALL or flat or tm["seconds"] * tm["reps"] > a.point_cap_s:
                        stopped.add(key)

        if filtered and not a.no_filter:
            t = max(threads)
            faiss.omp_set_num_threads(t)
            fgrid = [p for p in grid if p.get("kFactor", 4) == 4]
            for pct in SELECTIVITIES + [100]:
                if pct == 100:
                    ftruth, sel = truth, None
                else:
                    allow = np.fromfile(allow_path(a.data_dir, n, pct), dtype="<u4")
                    ftruth = Truth(a.data_dir, n, nq, pct)
                    # a bitmap selector (one bit per id, LSB first), tested inside the list scan
                    bitmap = np.zeros((n + 7) // 8, dtype=np.uint8)
                    np.bitwise_or.at(bitmap, allow >> 3, (1 << (allow & 7)).astype(np.uint8))
                    keep_alive.append(bitmap)
                    sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
                    keep_alive.append(sel)
                for p in fgrid + ([{**fgrid[-1], "nprobe": 1024}] if fgrid and pct < 100 else []):
                    try:
                        fn = searcher(p, sel)
                        fn(queries[: min(50, nq)])
                        (_, I), tm = time_search(lambda: fn(queries), nq, a.min_s, a.max_reps)
                    except RuntimeError as e:
                        out["notes"].append(f"filtered search at {pct}% failed: {str(e).splitlines()[0][:200]}")
                        break
                    rec = ftruth.recall(I, queries, base)
                    out["filtered"].append({"selectivity": pct, "mode": "batch", "threads": t, "param": p, "recall": rec, **tm})
                    print(f"faiss {name} filtered {pct}% t={t} {p}: recall {rec:.4f}, {tm['qps']:.0f} QPS", file=sys.stderr, flush=True)
                    if rec >= STOP_RECALL:
                        break
        return out

    results = [run_variant(a.config, index, cfg["grid"], cfg.get("filter", False))]
    results[0]["bytes"] = nbytes
    if cfg.get("unrefined"):
        inner = faiss.downcast_index(index.base_index)
        ser = len(faiss.serialize_index(inner))
        r = run_variant(cfg["unrefined"], inner, "ivf", False)
        r["bytes"] = {"index": ser, "perVector": ser / n, "code": inner.sa_code_size()}
        r["notes"].append(f"the base index of {a.config} searched alone (same build)")
        results.append(r)

    mem1 = vm_status()
    memory = {"rssAfterLoad": mem0.get("VmRSS"), "hwm": mem1.get("VmHWM"), "peakOverData": mem1.get("VmHWM", 0) - mem0.get("VmRSS", 0)}
    for r in results:
        r["memory"] = memory
    with open(a.out, "w") as f:
        json.dump({"results": results}, f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["gt", "run"])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--base-rows", type=int, default=0)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--config", default="IVF1024,Flat")
    p.add_argument("--out")
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--threads", default="1,2", help="thread counts of the batch sweeps")
    p.add_argument("--single-threads", default="1", help="thread counts of the one-query-at-a-time sweeps")
    p.add_argument("--modes", default="batch,single")
    p.add_argument("--min-s", type=float, default=0.5)
    p.add_argument("--max-reps", type=int, default=2)
    p.add_argument("--point-cap-s", type=float, default=20.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-filter", action="store_true")
    a = p.parse_args()
    if a.cmd == "gt":
        cmd_gt(a)
    else:
        cmd_run(a)


if __name__ == "__main__":
    main()
