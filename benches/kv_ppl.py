"""Perplexity of SmolLM2-135M-Instruct with quarry's quantized KV cache in the loop.

The model is loaded exactly as benches/model/dump_activations.py does (the
GGUF from benches/.data/model/dl, dequantized to float32 by transformers, sdpa
attention). Every attention layer's keys and values for the whole held-out
sequence are replaced by quarry's decode(encode(.)) before attention, i.e.
"fake quantization" of the prefill cache as KVQuant evaluates it: each query
attends to the cache as quarry would hold it after a prefill of the full
sequence (quantized chunks plus the method's full-precision residual). The
quantizers are quarry-kv's own, run by its `codec` example as a coprocess
over stdin/stdout (framed f32 arrays), so no quantizer is re-implemented here.

Methods that keep the newest tokens in full precision (KIVI and GEAR: a
residual of 32 tokens, quantized in whole 32-token chunks as they age) are
also run a second way, "decode-time": each query attends to the cache as it
stood when its own token was appended one step at a time, i.e. the rows that
had aged out by then as quarry's decode(encode(.)) and the newer rows as the
residual holds them (f16 for KIVI, f32 for GEAR). That is what a decode step
over quarry's cache computes, and the setting KIVI is designed for; the
prefill view instead quantizes every row but the last window for every query.

Keys are given post-RoPE to every method except kvquant, which gets the
pre-RoPE keys (RoPE is applied again to its decoded keys, as at attention
time). KVQuant is calibrated on the first quarter of the sequence; RotateKV
on the sequence itself. MiKV and H2O decide from accumulated decode-time
attention and have no prefill-only equivalent, so they are not run here.

Usage:
  benches/.data/venv-model/bin/python benches/kv_ppl.py --codec target/release/examples/codec \
      --tokens 1024 --methods f16,q8_0,q4_0,kivi-2,kivi-4 --json out.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch
from transformers import AttentionInterface, AutoModelForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.llama import modeling_llama

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, ".data", "model")
DUMP = os.path.join(DATA, "smollm2-135m-instruct-q4_1")
GGUF = os.path.join(DATA, "dl", "SmolLM2-135M-Instruct.Q4_1.gguf")


class Codec:
    """The quarry-kv `codec` example as a coprocess."""

    def __init__(self, path: str):
        self.p = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def roundtrip(self, method: str, bits: int, k: np.ndarray, v: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray, int]:
        kvh, n, d = k.shape
        hdr = f"{method} {bits} {kvh} {d} {n} {theta}".encode()
        self.p.stdin.write(struct.pack("<I", len(hdr)) + hdr)
        self.p.stdin.write(np.ascontiguousarray(k, dtype="<f4").tobytes())
        self.p.stdin.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
        self.p.stdin.flush()
        size = kvh * n * d * 4
        buf = self._read(2 * size + 8)
        dk = np.frombuffer(buf[:size], dtype="<f4").reshape(kvh, n, d)
        dv = np.frombuffer(buf[size:2 * size], dtype="<f4").reshape(kvh, n, d)
        return dk, dv, struct.unpack("<Q", buf[2 * size:])[0]

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.p.stdout.read(n - len(out))
            if not chunk:
                raise RuntimeError("codec coprocess exited")
            out += chunk
        return bytes(out)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


# quarry-kv's defaults (`KvConfig::new`): (residual tokens, chunk tokens, residual stored in f16)
RESIDUAL = {"kivi": (32, 32, True), "gear": (32, 32, False)}


def quantized_rows(count: int, residual: int, chunk: int) -> int:
    """Rows in quantized storage once `count` tokens were appended one by one
    (quarry-kv's `flush`: whole chunks move out once the window holds a chunk
    more than `residual`)."""
    return max(0, (count - residual) // chunk * chunk)


def decode_time_attention(module, query, key, value, key_hat, value_hat, rule, attention_mask):
    """Causal attention where query `i` sees rows below `quantized_rows(i + 1)`
    dequantized and the rest as the residual holds them."""
    residual, chunk, half = rule
    if half:
        key, value = key.half().float(), value.half().float()
    n, rep = query.shape[2], query.shape[1] // key.shape[1]
    expand = lambda x: x.repeat_interleave(rep, dim=1).double()
    q = query.double()
    s_exact = q @ expand(key).transpose(-1, -2) * module.scaling
    s_hat = q @ expand(key_hat).transpose(-1, -2) * module.scaling
    pos = torch.arange(n)
    bound = torch.tensor([quantized_rows(i + 1, residual, chunk) for i in range(n)])
    quant = pos[None, :] < bound[:, None]
    s = torch.where(quant, s_hat, s_exact).masked_fill(pos[None, :] > pos[:, None], float("-inf"))
    if attention_mask is not None:
        # (a single unpadded causal sequence: the mask adds nothing beyond causality)
        m = attention_mask[..., :n, :n]
        s = s.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else s + m.double()
    p = torch.softmax(s, dim=-1)
    out = (p * quant) @ expand(value_hat) + (p * ~quant) @ expand(value)
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def check_decode_time_attention() -> None:
    """Self-check, run before every measurement: with no rows kept exact it is
    SDPA over the dequantized cache, with none quantized SDPA over the exact
    one, and in between it matches a per-row softmax over the mixed rows."""
    class Module:
        scaling = 0.125
    g = torch.Generator().manual_seed(0)
    n, heads, kvh, d = 200, 9, 3, 64
    q, k, v = (torch.randn(1, h, n, d, generator=g) for h in (heads, kvh, kvh))
    kh, vh = k + 0.1 * torch.randn(k.shape, generator=g), v + 0.1 * torch.randn(v.shape, generator=g)
    sdpa = lambda kk, vv: torch.nn.functional.scaled_dot_product_attention(
        q, kk.repeat_interleave(3, 1), vv.repeat_interleave(3, 1), is_causal=True, scale=0.125).transpose(1, 2)
    for rule, ref in (((0, 1, False), sdpa(kh, vh)), ((10**9, 1, False), sdpa(k, v))):
        out, _ = decode_time_attention(Module(), q, k, v, kh, vh, rule, None)
        assert (out - ref).abs().max().item() < 1e-4, rule
    out, _ = decode_time_attention(Module(), q, k, v, kh, vh, (32, 32, False), None)
    for i in (0, 31, 63, 64, 95, 150, n - 1):
        b = quantized_rows(i + 1, 32, 32)
        for h in (0, 4, 8):
            keys = torch.cat([kh[0, h // 3, :b], k[0, h // 3, b:i + 1]]).double()
            vals = torch.cat([vh[0, h // 3, :b], v[0, h // 3, b:i + 1]]).double()
            o = torch.softmax(keys @ q[0, h, i].double() * 0.125, 0) @ vals
            assert (o.float() - out[0, i, h]).abs().max().item() < 1e-5, (i, h)
    assert [quantized_rows(c, 32, 32) for c in (1, 63, 64, 95, 96, 200)] == [0, 0, 32, 32, 64, 160]


class FakeQuant:
    """Replaces each layer's K/V by quarry's decode(encode(.)) inside attention."""

    def __init__(self, codec: Codec, theta: float):
        self.codec, self.theta = codec, theta
        self.method = None  # (name, bits) or None for the f32 baseline
        self.decode_time = False  # see decode_time_attention
        self.k_pre = None
        self.bytes = 0
        self._orig_rope = modeling_llama.apply_rotary_pos_emb
        modeling_llama.apply_rotary_pos_emb = self._rope
        AttentionInterface.register("quarry_fake_quant", self._attention)

    def _rope(self, q, k, cos, sin, *args, **kwargs):
        self.k_pre = (k, cos, sin)
        return self._orig_rope(q, k, cos, sin, *args, **kwargs)

    def _attention(self, module, query, key, value, attention_mask, **kwargs):
        if self.method is not None:
            name, bits = self.method
            assert key.shape[0] == 1
            v = value[0].detach().float().numpy()
            if name == "kvquant":
                k_pre, cos, sin = self.k_pre
                dk, dv, nbytes = self.codec.roundtrip(name, bits, k_pre[0].detach().float().numpy(), v, self.theta)
                dk_t = torch.from_numpy(dk.copy())[None]
                # Same rotation transformers applied to the real keys.
                _, key_hat = self._orig_rope(dk_t, dk_t, cos, sin)
            else:
                dk, dv, nbytes = self.codec.roundtrip(name, bits, key[0].detach().float().numpy(), v, 0.0)
                key_hat = torch.from_numpy(dk.copy())[None]
            self.bytes += nbytes
            value_hat = torch.from_numpy(dv.copy())[None]
            if self.decode_time:
                return decode_time_attention(module, query, key, value, key_hat, value_hat, RESIDUAL[name], attention_mask)
            key, value = key_hat, value_hat
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", required=True, help="path of quarry-kv's codec example binary")
    ap.add_argument("--tokens", type=int, default=1024, help="first N held-out tokens")
    ap.add_argument("--methods", default="f16,q8_0,q4_0,kivi-2,kivi-4,kvquant-2,kvquant-3,kvquant-4,gear-2,gear-4,rotate-2,rotate-4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    check_decode_time_attention()
    meta = json.load(open(os.path.join(DUMP, "meta.json")))
    ids = np.fromfile(os.path.join(DUMP, "heldout.tokens.u32"), dtype="<u4")[: args.tokens].astype(np.int64)
    t0 = time.time()
    gdir, gfile = os.path.split(GGUF)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    load_s = time.time() - t0
    codec = Codec(args.codec)
    fq = FakeQuant(codec, float(meta["rope_theta"]))
    model.set_attn_implementation("quarry_fake_quant")
    x = torch.tensor(ids[None])
    rows = []
    kv_values = meta["layers"] * meta["kv_heads"] * meta["head_dim"] * 2 * len(ids)

    def run(label, method, decode_time=False):
        fq.method, fq.bytes, fq.decode_time = method, 0, decode_time
        t = time.time()
        with torch.no_grad():
            logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="mean").item()
        nbytes = fq.bytes if method else kv_values * 4
        if decode_time:
            row = next(r for r in rows if r["method"] == label)
            row.update({"ppl_decode": math.exp(nll), "nll_decode": nll, "seconds_decode": time.time() - t})
        else:
            row = {"method": label, "ppl": math.exp(nll), "nll": nll, "bytes": nbytes,
                   "x_f16": nbytes / (kv_values * 2), "seconds": time.time() - t}
            rows.append(row)
        print(json.dumps(row), flush=True)

    run("f32", None)
    for spec in args.methods.split(","):
        name, _, b = spec.partition("-")
        bits = int(b) if b else {"f16": 16, "q8_0": 8, "q4_0": 4}[name]
        run(spec, (name, bits))
        if name in RESIDUAL:
            run(spec, (name, bits), decode_time=True)
    codec.close()
    f16 = next((r["ppl"] for r in rows if r["method"] == "f16"), None)
    for r in rows:
        r["delta_vs_f16"] = r["ppl"] - f16 if f16 is not None else None
        if "ppl_decode" in r:
            r["delta_decode_vs_f16"] = r["ppl_decode"] - f16 if f16 is not None else None
    out = {"model": meta["model"], "text": meta.get("perplexity_text", "heldout.txt"), "tokens": len(ids),
           "load_model_s": load_s, "threads": args.threads, "torch": torch.__version__, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
