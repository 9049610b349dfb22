"""FAISS side of the k-NN bench: IndexFlatL2 / IndexFlatIP over the same
GloVe-100 files (benches/.data/glove100, written by setup.mjs) that
knn_quarry.mjs reads, with the same protocol: warm-up on the first 100
queries, then full runs (at least --min-reps and --target-s seconds, at most
--max-reps, and no more once the runs add up to --budget-s), median time.
Writes faiss.json and the result ids (u32, queries x k) to --out-dir.

kernels.mjs runs it once per thread count, in the benches venv, with
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS set to that count
as well as faiss.omp_set_num_threads(), so FAISS's OpenMP loops and the BLAS
it calls for batches of queries both use exactly that many threads.

    benches/.data/venv/bin/python benches/knn_faiss.py --threads 1 --out-dir DIR
"""

import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import faiss
except ImportError as e:  # pragma: no cover - reported by the parent
    print(f"faiss is not importable: {e}", file=sys.stderr)
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
GLOVE = os.path.join(HERE, ".data", "glove100")

# name -> (index class, data set); cosine = inner product over unit-normalised rows
METRICS = {
    "l2": (faiss.IndexFlatL2, "raw"),
    "ip": (faiss.IndexFlatIP, "raw"),
    "cosine": (faiss.IndexFlatIP, "norm"),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--metrics", default="l2,ip,cosine")
    p.add_argument("--queries", type=int, default=0)
    p.add_argument("--min-reps", type=int, default=3)
    p.add_argument("--max-reps", type=int, default=5)
    p.add_argument("--target-s", type=float, default=6.0)
    p.add_argument("--budget-s", type=float, default=10.0)
    p.add_argument(
        "--force-blas",
        action="store_true",
        help="distance_compute_blas_threshold = 0: always the sgemm path "
        "(by default FAISS uses it only when nq * d >= the threshold)",
    )
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    faiss.omp_set_num_threads(a.threads)
    if a.force_blas:
        faiss.cvar.distance_compute_blas_threshold = 0

    with open(os.path.join(GLOVE, "meta.json")) as f:
        meta = json.load(f)
    d = meta["dim"]
    nq = meta["queries"] if a.queries <= 0 else min(a.queries, meta["queries"])

    def load(name, rows):
        return np.fromfile(os.path.join(GLOVE, name), dtype="<f4").reshape(rows, d)

    sets = {
        "raw": (load("base.f32", meta["base"]), load("queries.f32", meta["queries"])[:nq]),
        "norm": (load("base_norm.f32", meta["base"]), load("queries_norm.f32", meta["queries"])[:nq]),
    }

    out = {
        "system": "faiss",
        "faiss": faiss.__version__,
        "numpy": np.__version__,
        "compile": faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else "",
        "threads": a.threads,
        "ompMaxThreads": faiss.omp_get_max_threads(),
        "blasThreshold": faiss.cvar.distance_compute_blas_threshold,
        "k": a.k,
        "queries": nq,
        "base": meta["base"],
        "results": {},
    }
    for name in a.metrics.split(","):
        cls, which = METRICS[name]
        base, queries = sets[which]
        queries = np.ascontiguousarray(queries)
        index = cls(d)
        index.add(base)  # not timed: quarry's knn takes the base as is
        index.search(queries[:100], a.k)  # warm-up
        times = []
        total = 0.0
        while (
            len(times) < a.max_reps
            and (len(times) < a.min_reps or total < a.target_s)
            and not (times and total >= a.budget_s)
        ):
            t0 = time.perf_counter()
            D, I = index.search(queries, a.k)
            s = time.perf_counter() - t0
            times.append(s)
            total += s
        med = float(np.median(times))
        I.astype("<u4").tofile(os.path.join(a.out_dir, f"faiss_{name}_ids.u32"))
        D.astype("<f4").tofile(os.path.join(a.out_dir, f"faiss_{name}_dist.f32"))
        out["results"][name] = {
            "index": cls.__name__,
            "data": which,
            "times": times,
            "medianS": med,
            "qps": nq / med,
        }
        print(
            f"knn faiss {name} ({cls.__name__}, blas threshold {faiss.cvar.distance_compute_blas_threshold}) threads={a.threads}: {med:.3f} s median of {len(times)} ({nq / med:.0f} QPS)",
            file=sys.stderr,
        )
        del index
    with open(os.path.join(a.out_dir, "faiss.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
