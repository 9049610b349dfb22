"""Straightforward NumPy reference for KV-cache quantization quality on real-model
activations (the dumps made by benches/model/setup.sh; format in
benches/model/README.md).

Methods
  f32    exact (the byte baseline)
  f16    IEEE half
  q8_0   llama.cpp style: per token and head, blocks of 32 along head_dim,
         one f16 scale per block, q = round(x / d), d = amax / 127
  q4_0   llama.cpp style: blocks of 32, d = m / -8 where m is the signed value
         of largest magnitude, q = min(15, trunc(x / d + 8.5)), x = (q - 8) d
  kivi   KIVI, asymmetric (f16 scale + f16 zero-point = group minimum):
         keys per channel, each group = `group` consecutive tokens;
         values per token, each group = `group` consecutive channels;
         the most recent tokens stay full precision (--residual-dtype):
           keys:   the first floor(max(T - residual, 0) / group) * group tokens
                   are quantized (whole token groups only, so between
                   residual and residual + group - 1 recent keys stay exact);
           values: the first max(T - residual, 0) tokens are quantized
                   (per-token groups need no token blocking).

Metrics, per layer, for a decode step at query position p (default p = T-1,
the last dumped token) attending over cached positions 0..p (GQA: query head h
reads kv head h // (heads / kv_heads); scale 1/sqrt(head_dim); float64 math):
  k_rel_err, v_rel_err   ||X^ - X||_F / ||X||_F over the layer's cache [kv_heads, T, head_dim]
  attn_rel_err           ||O^ - O||_F / ||O||_F over the layer's decode output [heads, head_dim]
  attn_cos, attn_cos_min mean / min over query heads of cos(O^_h, O_h)
  bytes_per_token        bytes of this layer's K+V cache (codes, scales, zero-points,
                         full-precision residual) / T, all kv heads
  bits_per_value         8 * bytes / (T * kv_heads * head_dim * 2)
With --queries N > 1 the decode is repeated for the last N positions, each with
its own cache of p+1 tokens quantized under the same rules; attn_* are then
means over the N positions (the last-position figures are kept as *_last).

--key-source pre quantizes the pre-RoPE keys and applies RoPE after
dequantization (KVQuant's order); errors are then against the post-RoPE
reference for attention and against the pre-RoPE keys for k_rel_err.

Usage: benches/.data/venv-model/bin/python benches/kv_ref.py \
         --model-dir benches/.data/model/smollm2-135m-instruct-q4_1 --json out.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

# Single-threaded BLAS: the per-decode products are small, and on a shared
# machine multi-threaded OpenBLAS spins (measured: 20 ms -> 1.5 s per decode).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "model"))
from dumps import apply_rope, load_layer, load_meta  # noqa: E402

DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data", "model",
                                 "smollm2-135m-instruct-q4_1")


def f16(x: np.ndarray) -> np.ndarray:
    """Round to IEEE half and back (what a stored f16 scale reads back as)."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


# ---------------------------------------------------------------- quantizers
# Each takes x [kv_heads, L, head_dim] float32 and returns (x_hat float32, bytes).

def quant_f32(x):
    return x.astype(np.float32), x.size * 4


def quant_f16(x):
    return f16(x), x.size * 2


def _blocks32(x):
    h, n, d = x.shape
    if d % 32:
        raise SystemExit(f"q8_0/q4_0 need head_dim divisible by 32, got {d}")
    return x.reshape(h, n, d // 32, 32)


def quant_q8_0(x):
    b = _blocks32(x.astype(np.float32))
    amax = np.abs(b).max(axis=-1, keepdims=True)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    q = np.clip(np.round(b * inv), -127, 127)
    xh = (q * f16(d)).reshape(x.shape)
    nblocks = b.shape[0] * b.shape[1] * b.shape[2]
    return xh.astype(np.float32), nblocks * (32 + 2)


def quant_q4_0(x):
    b = _blocks32(x.astype(np.float32))
    idx = np.abs(b).argmax(axis=-1)[..., None]
    m = np.take_along_axis(b, idx, axis=-1)  # signed value of largest magnitude
    d = m / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d != 0, d, 1.0), 0.0)
    q = np.minimum(15, np.trunc(b * inv + 8.5))
    xh = ((q - 8.0) * f16(d)).reshape(x.shape)
    nblocks = b.shape[0] * b.shape[1] * b.shape[2]
    return xh.astype(np.float32), nblocks * (16 + 2)


def _asym(groups: np.ndarray, bits: int, axis: int) -> np.ndarray:
    """Asymmetric min/max quantization of `groups` reduced along `axis`, with the
    scale and zero-point (the group minimum) stored as f16."""
    levels = (1 << bits) - 1
    mn = groups.min(axis=axis, keepdims=True)
    mx = groups.max(axis=axis, keepdims=True)
    zero = f16(mn)
    scale = f16((mx - mn) / levels)
    inv = np.where(scale > 0, 1.0 / np.where(scale > 0, scale, 1.0), 0.0)
    q = np.clip(np.round((groups - zero) * inv), 0, levels)
    return (q * scale + zero).astype(np.float32)


def _group_bytes(group: int, bits: int) -> int:
    return math.ceil(group * bits / 8) + 2 + 2  # packed codes + f16 scale + f16 zero-point


def kivi_split(tokens: int, group: int, residual: int) -> tuple[int, int]:
    """Numbers of quantized key and value tokens (the rest stays full precision)."""
    aged = max(tokens - residual, 0)
    return (aged // group) * group, aged


def quant_kivi_keys(x, bits, group, residual, res_bytes, res_round):
    h, n, d = x.shape
    nq, _ = kivi_split(n, group, residual)
    out = res_round(x).astype(np.float32)
    if nq:
        g = x[:, :nq].reshape(h, nq // group, group, d)  # per channel over `group` tokens
        out[:, :nq] = _asym(g, bits, axis=2).reshape(h, nq, d)
    nbytes = h * (nq // group) * d * _group_bytes(group, bits) + h * (n - nq) * d * res_bytes
    return out, nbytes


def quant_kivi_values(x, bits, group, residual, res_bytes, res_round):
    h, n, d = x.shape
    if d % group:
        raise SystemExit(f"kivi: value group {group} does not divide head_dim {d}")
    _, nq = kivi_split(n, group, residual)
    out = res_round(x).astype(np.float32)
    if nq:
        g = x[:, :nq].reshape(h, nq, d // group, group)  # per token over `group` channels
        out[:, :nq] = _asym(g, bits, axis=3).reshape(h, nq, d)
    nbytes = h * nq * (d // group) * _group_bytes(group, bits) + h * (n - nq) * d * res_bytes
    return out, nbytes


# ---------------------------------------------------------------- attention

def decode_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """q [heads, d] against k, v [kv_heads, L, d] -> [heads, d], float64, GQA by h // rep."""
    heads, d = q.shape
    kvh = k.shape[0]
    rep = heads // kvh
    qg = q.astype(np.float64).reshape(kvh, rep, d)
    s = np.matmul(qg, k.astype(np.float64).transpose(0, 2, 1)) * scale  # [kvh, rep, L]
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.matmul(p, v.astype(np.float64)).reshape(heads, d)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    den = np.linalg.norm(ref.astype(np.float64))
    return float(np.linalg.norm(a.astype(np.float64) - ref.astype(np.float64)) / den) if den > 0 else 0.0


def head_cos(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    ref = ref.astype(np.float64)
    num = (a * ref).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(ref, axis=-1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


# ---------------------------------------------------------------- driver

def build_configs(args) -> list[dict]:
    cfgs = []
    for m in args.methods.split(","):
        m = m.strip()
        if m in ("f32", "f16", "q8_0", "q4_0"):
            cfgs.append({"method": m})
        elif m == "kivi":
            for b in (int(s) for s in args.bits.split(",")):
                if not 1 <= b <= 8:
                    raise SystemExit(f"kivi bits must be 1..8, got {b}")
                cfgs.append({"method": "kivi", "bits": b, "group": args.group, "residual": args.residual,
                             "residual_dtype": args.residual_dtype})
        else:
            raise SystemExit(f"unknown method {m!r}")
    for c in cfgs:
        c["key_source"] = args.key_source
    return cfgs


def label(c: dict) -> str:
    if c["method"] != "kivi":
        return c["method"]
    return f"kivi{c['bits']} g{c['group']} r{c['residual']}"


def quantize_kv(c: dict, k: np.ndarray, v: np.ndarray):
    m = c["method"]
    if m == "kivi":
        res_bytes, res_round = (4, lambda a: a) if c["residual_dtype"] == "f32" else (2, f16)
        kh, kb = quant_kivi_keys(k, c["bits"], c["group"], c["residual"], res_bytes, res_round)
        vh, vb = quant_kivi_values(v, c["bits"], c["group"], c["residual"], res_bytes, res_round)
        return kh, vh, kb + vb
    fn = {"f32": quant_f32, "f16": quant_f16, "q8_0": quant_q8_0, "q4_0": quant_q4_0}[m]
    kh, kb = fn(k)
    vh, vb = fn(v)
    return kh, vh, kb + vb


class PrefixCaches:
    """Quantized caches of every length L <= T from one quantization of all T tokens.

    Every rule above is causal and aligned at token 0 (q8_0/q4_0/f16 per token,
    KIVI values per token, KIVI key groups at multiples of `group`), so the cache
    of length L is: the first nq(L) tokens of the all-quantized tensor, then the
    full-precision residual. main() checks this against quantize_kv at L = T.
    """

    def __init__(self, c: dict, k: np.ndarray, v: np.ndarray):
        self.c, self.k, self.v = c, k, v
        h, n, d = k.shape
        if c["method"] == "kivi":
            g = c["group"]
            self.res_bytes, self.res_round = (4, lambda a: a) if c["residual_dtype"] == "f32" else (2, f16)
            self.kq, _ = quant_kivi_keys(k[:, : (n // g) * g], c["bits"], g, 0, 0, self.res_round)
            self.vq, _ = quant_kivi_values(v, c["bits"], g, 0, 0, self.res_round)
        else:
            self.kq, self.vq, _ = quantize_kv(c, k, v)

    def view(self, length: int):
        c, (h, _, d) = self.c, self.k.shape
        if c["method"] != "kivi":
            per_token = {"f32": d * 4, "f16": d * 2, "q8_0": d // 32 * 34, "q4_0": d // 32 * 18}[c["method"]]
            return self.kq[:, :length], self.vq[:, :length], 2 * h * length * per_token
        g, b = c["group"], c["bits"]
        nk, nv = kivi_split(length, g, c["residual"])
        kh = np.concatenate([self.kq[:, :nk], self.res_round(self.k[:, nk:length])], axis=1)
        vh = np.concatenate([self.vq[:, :nv], self.res_round(self.v[:, nv:length])], axis=1)
        nbytes = (h * (nk // g) * d * _group_bytes(g, b) + h * (length - nk) * d * self.res_bytes
                  + h * nv * (d // g) * _group_bytes(g, b) + h * (length - nv) * d * self.res_bytes)
        return kh.astype(np.float32), vh.astype(np.float32), nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--layers", default="all", help="'all' or comma-separated layer indices")
    ap.add_argument("--methods", default="f32,f16,q8_0,q4_0,kivi")
    ap.add_argument("--bits", default="2,3,4,8", help="KIVI bit widths")
    ap.add_argument("--group", type=int, default=32, help="KIVI group size (tokens for keys, channels for values)")
    ap.add_argument("--residual", type=int, default=32, help="KIVI recent tokens kept in full precision")
    ap.add_argument("--residual-dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--key-source", choices=("post", "pre"), default="post",
                    help="quantize post-RoPE keys (KIVI) or pre-RoPE keys with RoPE after dequantization")
    ap.add_argument("--tokens", type=int, default=0, help="use only the first N dumped tokens (0 = all)")
    ap.add_argument("--queries", type=int, default=1, help="decode positions evaluated (the last N)")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()

    t_start = time.time()
    meta = load_meta(args.model_dir)
    T = args.tokens or meta["tokens"]
    if not 1 <= T <= meta["tokens"]:
        raise SystemExit(f"--tokens must be in 1..{meta['tokens']}")
    if not 1 <= args.queries <= T:
        raise SystemExit(f"--queries must be in 1..{T}")
    if args.group < 1:
        raise SystemExit("--group must be >= 1")
    if args.residual < 0:
        raise SystemExit("--residual must be >= 0")
    layers = range(meta["layers"]) if args.layers == "all" else [int(s) for s in args.layers.split(",")]
    heads, kvh, d = meta["heads"], meta["kv_heads"], meta["head_dim"]
    if heads % kvh:
        raise SystemExit("heads must be a multiple of kv_heads")
    scale = 1.0 / math.sqrt(d)
    theta = meta["rope_theta"]
    cfgs = build_configs(args)
    results = {label(c): {**c, "label": label(c), "per_layer": []} for c in cfgs}
    positions = list(range(T - args.queries, T))

    for layer in layers:
        q = load_layer(args.model_dir, meta, layer, "q")[:, :T]
        k_post = load_layer(args.model_dir, meta, layer, "k")[:, :T]
        v = load_layer(args.model_dir, meta, layer, "v")[:, :T]
        k_src = k_post if args.key_source == "post" else load_layer(args.model_dir, meta, layer, "k_pre")[:, :T]
        refs = {p: decode_attention(q[:, p], k_post[:, : p + 1], v[:, : p + 1], scale) for p in positions}
        for c in cfgs:
            row = {"layer": layer}
            errs, coss, cmins = [], [], []
            # The spec case, straightforwardly: the whole dumped cache, quantized once.
            kh, vh, nbytes = quantize_kv(c, k_src, v)
            row["k_rel_err"] = rel_err(kh, k_src)
            row["v_rel_err"] = rel_err(vh, v)
            row["bytes_per_token"] = nbytes / T
            row["bits_per_value"] = 8 * nbytes / (T * kvh * d * 2)
            prefix = PrefixCaches(c, k_src, v) if len(positions) > 1 else None
            if prefix is not None:
                pk, pv, pb = prefix.view(T)
                if pb != nbytes or not (np.array_equal(pk, kh) and np.array_equal(pv, vh)):
                    raise SystemExit(f"internal: prefix caches disagree with quantize_kv for {label(c)}")
                n0 = positions[0] + 1  # and at the shortest cache, quantized on its own
                ak, av, ab = quantize_kv(c, k_src[:, :n0], v[:, :n0])
                pk, pv, pb = prefix.view(n0)
                if pb != ab or not (np.array_equal(pk, ak) and np.array_equal(pv, av)):
                    raise SystemExit(f"internal: prefix cache of {n0} tokens disagrees for {label(c)}")
            full = (kh, vh)
            for p in positions:
                kh, vh = full if p == T - 1 else prefix.view(p + 1)[:2]
                k_att = kh if args.key_source == "post" else apply_rope(kh, theta, angle_dtype=np.float32)
                o = decode_attention(q[:, p], k_att, vh, scale)
                hc = head_cos(o, refs[p])
                errs.append(rel_err(o, refs[p]))
                coss.append(float(hc.mean()))
                cmins.append(float(hc.min()))
            row["attn_rel_err"] = float(np.mean(errs))
            row["attn_cos"] = float(np.mean(coss))
            row["attn_cos_min"] = float(np.min(cmins))
            if len(positions) > 1:
                row["attn_rel_err_last"], row["attn_cos_last"] = errs[-1], coss[-1]
            results[label(c)]["per_layer"].append(row)

    f16_bytes = None
    for r in results.values():
        pl = r["per_layer"]
        r["summary"] = {
            "k_rel_err": float(np.mean([x["k_rel_err"] for x in pl])),
            "v_rel_err": float(np.mean([x["v_rel_err"] for x in pl])),
            "attn_rel_err": float(np.mean([x["attn_rel_err"] for x in pl])),
            "attn_rel_err_max": float(np.max([x["attn_rel_err"] for x in pl])),
            "attn_cos": float(np.mean([x["attn_cos"] for x in pl])),
            "attn_cos_min": float(np.min([x["attn_cos_min"] for x in pl])),
            "bytes_per_token": float(np.sum([x["bytes_per_token"] for x in pl])),  # all listed layers
            "bits_per_value": float(np.mean([x["bits_per_value"] for x in pl])),
        }
        if r["method"] == "f16":
            f16_bytes = r["summary"]["bytes_per_token"]
    f16_bytes = f16_bytes or float(len(list(layers)) * kvh * d * 2 * 2)
    for r in results.values():
        r["summary"]["bytes_vs_f16"] = r["summary"]["bytes_per_token"] / f16_bytes

    out = {
        "tool": "benches/kv_ref.py (NumPy reference)",
        "model_dir": os.path.abspath(args.model_dir),
        "model": {k: meta[k] for k in ("model", "layers", "heads", "kv_heads", "head_dim", "rope_theta")},
        "tokens": T,
        "positions": positions,
        "layers": list(layers),
        "params": {"group": args.group, "residual": args.residual, "residual_dtype": args.residual_dtype,
                   "key_source": args.key_source, "queries": args.queries},
        "numpy": np.__version__,
        "seconds": time.time() - t_start,
        "results": list(results.values()),
    }
    hdr = f"{'method':<18}{'bits/val':>9}{'B/token':>10}{'xf16':>7}{'K relerr':>10}{'V relerr':>10}" \
          f"{'attn relerr':>12}{'max':>9}{'cos':>10}{'cos min':>10}"
    print(f"{meta['model']}: {T} tokens, layers {out['layers'][0]}..{out['layers'][-1]}, "
          f"decode at positions {positions[0]}..{positions[-1]}, key source {args.key_source}")
    print(hdr)
    for r in results.values():
        s = r["summary"]
        print(f"{r['label']:<18}{s['bits_per_value']:>9.3f}{s['bytes_per_token']:>10.0f}{s['bytes_vs_f16']:>7.3f}"
              f"{s['k_rel_err']:>10.4f}{s['v_rel_err']:>10.4f}{s['attn_rel_err']:>12.5f}"
              f"{s['attn_rel_err_max']:>9.4f}{s['attn_cos']:>10.6f}{s['attn_cos_min']:>10.6f}")
    print(f"({out['seconds']:.1f} s)")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
