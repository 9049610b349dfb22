"""PyTorch CPU scaled_dot_product_attention on the same real-model Q/K/V as
quarry's prefill example (crates/quarry-attn/examples/prefill.rs): the first
--heads query heads (and their KV heads) of each --layers layer, the first
--tokens tokens, causal, float32, enable_gqa, the fused flash CPU kernel,
--threads threads. One timed run after a warm-up on a 256-token slice.

Also reports the relative error of SDPA's output against a float64 reference
on the last --check rows (causal attention of those rows over all keys), as a
sanity check that both sides compute the same thing.

Usage: benches/.data/venv-model/bin/python benches/attn_torch_real.py DUMP_DIR \
           --tokens 65536 --heads 3 --layers 0,2 --threads 2 --json out.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "model"))
from dumps import load_layer, load_meta  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--layers", default="0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", type=int, default=64)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    meta = load_meta(args.dump)
    n = min(args.tokens or meta["tokens"], meta["tokens"])
    grp = meta["heads"] // meta["kv_heads"]
    h = min(args.heads or meta["heads"], meta["heads"])
    hk = h // grp
    d = meta["head_dim"]
    for layer in (int(x) for x in args.layers.split(",")):
        q = torch.from_numpy(np.ascontiguousarray(load_layer(args.dump, meta, layer, "q")[:h, :n]))[None]
        k = torch.from_numpy(np.ascontiguousarray(load_layer(args.dump, meta, layer, "k")[:hk, :n]))[None]
        v = torch.from_numpy(np.ascontiguousarray(load_layer(args.dump, meta, layer, "v")[:hk, :n]))[None]
        gqa = h != hk
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            F.scaled_dot_product_attention(q[:, :, :256], k[:, :, :256], v[:, :, :256], is_causal=True, enable_gqa=gqa)
            t = time.perf_counter()
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            secs = time.perf_counter() - t
        # float64 reference for the last rows.
        c = min(args.check, n)
        qq = q[0, :, n - c:].double()
        kk = k[0].double().repeat_interleave(grp, dim=0)
        vv = v[0].double().repeat_interleave(grp, dim=0)
        s = qq @ kk.transpose(1, 2) / d ** 0.5
        pos = torch.arange(n - c, n)[:, None]
        s = s.masked_fill(torch.arange(n)[None, :] > pos, float("-inf"))
        ref = torch.softmax(s, dim=-1) @ vv
        got = out[0, :, n - c:].double()
        err = float((got - ref).norm() / ref.norm())
        flops = 4.0 * d * h * n * (n + 1) / 2
        row = {"layer": layer, "tokens": n, "heads": h, "kv_heads": hk, "method": "torch sdpa (flash, enable_gqa)",
               "seconds": secs, "gflops": flops / secs / 1e9, "check_rel_err_f64": err, "threads": args.threads,
               "torch": torch.__version__}
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        del q, k, v, out


if __name__ == "__main__":
    main()
