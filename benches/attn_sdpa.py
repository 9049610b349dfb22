"""PyTorch CPU scaled_dot_product_attention timings: the outside reference for
quarry's dense/sparse attention and KV-cache decode benches.

Shapes are the real model's (heads, kv_heads, head_dim from the dump's
meta.json when present, else SmolLM2-135M's 9/3/64). float32, random normal
inputs (SDPA's time does not depend on the values).

  prefill  causal, L queries over L keys, at each --prefill length with the
           number of query heads given by --prefill-heads (fewer heads at long
           lengths keep the run short; kv heads = query heads / (heads/kv_heads),
           at least 1); times are also reported per query head.
  decode   one query per head over L cached keys (not causal: the cache holds
           exactly the past), all heads, at each --decode length.

Each is timed two ways: "expanded" (K/V repeated to the query heads beforehand,
outside the timing, as older PyTorch needs) and "enable_gqa" (PyTorch >= 2.5
broadcasts kv heads itself). The fused flash CPU kernel is requested
explicitly (torch.nn.attention.sdpa_kernel); where PyTorch refuses it, the
default dispatch is timed and the backend recorded as "default".

Usage: benches/.data/venv-model/bin/python benches/attn_sdpa.py --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

DEFAULT_META = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data", "model",
                            "smollm2-135m-instruct-q4_1", "meta.json")


def parse_heads(spec: str) -> dict[int, int]:
    out = {}
    for part in spec.split(","):
        n, h = part.split(":")
        out[int(n)] = int(h)
    return out


def sdpa_call(q, k, v, causal: bool, gqa: bool, flash: bool):
    kw = {"is_causal": causal}
    if gqa:
        kw["enable_gqa"] = True
    if flash:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v, **kw)
    return F.scaled_dot_product_attention(q, k, v, **kw)


def pick_backend(q, k, v, causal: bool, gqa: bool) -> tuple[bool, str]:
    """Try the flash kernel on a small slice of the same shape; fall back to default dispatch."""
    small = min(q.shape[2], 256)
    ks = min(k.shape[2], 256)
    try:
        sdpa_call(q[:, :, :small], k[:, :, :ks], v[:, :, :ks], causal, gqa, True)
        return True, "flash"
    except RuntimeError:
        return False, "default"


def time_it(fn, min_reps: int, max_reps: int, budget_s: float) -> list[float]:
    times = []
    while len(times) < max_reps:
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
        if len(times) >= min_reps and sum(times) >= budget_s:
            break
    return times


def run_case(kind: str, tokens: int, q_heads: int, kv_heads: int, d: int, mode: str, args) -> dict:
    g = torch.Generator().manual_seed(tokens * 31 + q_heads)
    q_len = tokens if kind == "prefill" else 1
    q = torch.randn(1, q_heads, q_len, d, generator=g)
    k = torch.randn(1, kv_heads, tokens, d, generator=g)
    v = torch.randn(1, kv_heads, tokens, d, generator=g)
    gqa = mode == "enable_gqa"
    if not gqa and kv_heads != q_heads:
        rep = q_heads // kv_heads
        k = k.repeat_interleave(rep, dim=1).contiguous()
        v = v.repeat_interleave(rep, dim=1).contiguous()
    causal = kind == "prefill"
    row = {"kind": kind, "tokens": tokens, "q_heads": q_heads, "kv_heads": kv_heads, "head_dim": d, "mode": mode}
    flash, backend = pick_backend(q, k, v, causal, gqa)
    # The math fallback materialises [heads, L, L] scores: refuse what would not fit.
    if not flash and kind == "prefill" and q_heads * tokens * tokens * 4 > args.max_math_bytes:
        row.update({"backend": "default", "skipped": "fused kernel refused and the math path would need "
                    f"{q_heads * tokens * tokens * 4 / 2**30:.1f} GiB"})
        return row
    try:
        sdpa_call(q, k, v, causal, gqa, flash)  # warm-up (allocations, thread pool)
    except RuntimeError as e:
        row.update({"backend": backend, "skipped": str(e).splitlines()[0]})
        return row
    reps = (args.prefill_reps if kind == "prefill" else args.decode_reps)
    times = time_it(lambda: sdpa_call(q, k, v, causal, gqa, flash), 1, reps, args.budget_s)
    best = min(times)
    pairs = tokens * (tokens + 1) / 2 if causal else tokens * q_len
    flops = 4.0 * pairs * d * q_heads  # QK^T and PV, 2 flops per multiply-add
    kv_bytes = 2 * (kv_heads if gqa else q_heads) * tokens * d * 4
    row.update({
        "backend": backend,
        "reps": len(times),
        "seconds_min": best,
        "seconds_median": statistics.median(times),
        "ms_per_q_head": 1e3 * best / q_heads,
        "gflops": flops / best / 1e9,
    })
    if kind == "decode":
        row["kv_gb_per_s"] = kv_bytes / best / 1e9
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--meta", default=DEFAULT_META, help="dump meta.json for the head shapes")
    ap.add_argument("--prefill", default="8192,32768,65536")
    ap.add_argument("--prefill-heads", default="8192:9,32768:3,65536:1",
                    help="tokens:query_heads for each prefill length")
    ap.add_argument("--decode", default="32768,131072")
    ap.add_argument("--modes", default="expanded,enable_gqa")
    ap.add_argument("--prefill-reps", type=int, default=3)
    ap.add_argument("--decode-reps", type=int, default=30)
    ap.add_argument("--budget-s", type=float, default=5.0, help="stop repeating a case after this long")
    ap.add_argument("--max-math-bytes", type=float, default=4 * 2**30)
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if os.path.exists(args.meta):
        with open(args.meta, encoding="utf-8") as f:
            meta = json.load(f)
        heads, kvh, d, model = meta["heads"], meta["kv_heads"], meta["head_dim"], meta["model"]
    else:
        heads, kvh, d, model = 9, 3, 64, "SmolLM2-135M shapes (no dump meta.json found)"
    rep = heads // kvh
    ph = parse_heads(args.prefill_heads)
    modes = [m.strip() for m in args.modes.split(",")]
    t_start = time.time()
    load_before = os.getloadavg()
    rows = []
    for n in (int(s) for s in args.prefill.split(",") if s):
        qh = ph.get(n, heads)
        kv = max(1, qh // rep)
        for mode in modes:
            if mode == "enable_gqa" and kv == qh:
                continue  # nothing to broadcast
            rows.append(run_case("prefill", n, qh, kv, d, mode, args))
            print(json.dumps(rows[-1]), flush=True)
    for n in (int(s) for s in args.decode.split(",") if s):
        for mode in modes:
            rows.append(run_case("decode", n, heads, kvh, d, mode, args))
            print(json.dumps(rows[-1]), flush=True)
    out = {
        "tool": "benches/attn_sdpa.py (torch.nn.functional.scaled_dot_product_attention, CPU, float32)",
        "torch": torch.__version__,
        "threads": args.threads,
        "model_shapes": {"model": model, "heads": heads, "kv_heads": kvh, "head_dim": d},
        "cpu": (torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else None),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "seconds": time.time() - t_start,
        "results": rows,
    }
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.json)
    print(f"done in {out['seconds']:.1f} s, loadavg {load_before} -> {out['loadavg_after']}")


if __name__ == "__main__":
    main()
