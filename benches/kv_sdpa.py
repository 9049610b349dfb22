"""PyTorch CPU scaled_dot_product_attention decode timings for the KV-cache bench
(benches/kv.mjs): one query per head (9 query heads, 3 KV heads, head_dim 64,
SmolLM2-135M's shape) over L cached f32 keys/values, random normal data.

Two forms are timed: "enable_gqa" (PyTorch broadcasts the 3 KV heads to the 9
query heads itself) and "expanded" (K/V repeated to 9 heads beforehand, outside
the timing). Each (L, threads, form) is repeated for --min-s seconds (at least
5 calls); the median and minimum of the per-call times are reported.

Usage: benches/.data/venv-model/bin/python benches/kv_sdpa.py --tokens 4096,32768 --threads 1,2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="4096,32768,131072")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--min-s", type=float, default=0.5)
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    heads, kv_heads, d = 9, 3, 64
    rows = []
    g = torch.Generator().manual_seed(0)
    for n in [int(x) for x in args.tokens.split(",")]:
        q = torch.randn(1, heads, 1, d, generator=g)
        k = torch.randn(1, kv_heads, n, d, generator=g)
        v = torch.randn(1, kv_heads, n, d, generator=g)
        kx = k.repeat_interleave(heads // kv_heads, dim=1).contiguous()
        vx = v.repeat_interleave(heads // kv_heads, dim=1).contiguous()
        for th in [int(x) for x in args.threads.split(",")]:
            torch.set_num_threads(th)
            for form in ("enable_gqa", "expanded"):
                def call():
                    with torch.no_grad():
                        if form == "enable_gqa":
                            return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                        return F.scaled_dot_product_attention(q, kx, vx)
                call()
                times = []
                t_end = time.perf_counter() + args.min_s
                while len(times) < 5 or time.perf_counter() < t_end:
                    t = time.perf_counter()
                    call()
                    times.append((time.perf_counter() - t) * 1e3)
                row = {"tokens": n, "threads": th, "form": form, "ms_median": statistics.median(times),
                       "ms_min": min(times), "reps": len(times)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
