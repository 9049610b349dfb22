"""Reader for the real-model activation dumps (format: benches/model/README.md).

Used by benches/kv_ref.py and the dump script's own self-check. NumPy only.
"""
from __future__ import annotations

import json
import os

import numpy as np

KINDS = ("q", "k", "q_pre", "k_pre", "v")


def load_meta(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as f:
        return json.load(f)


def layer_path(model_dir: str, layer: int, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown tensor kind {kind!r}; one of {KINDS}")
    return os.path.join(model_dir, f"L{layer:02d}.{kind}.f32")


def load_layer(model_dir: str, meta: dict, layer: int, kind: str) -> np.ndarray:
    """[heads or kv_heads, tokens, head_dim] float32, checked against meta's shape."""
    heads = meta["heads"] if kind.startswith("q") else meta["kv_heads"]
    shape = (heads, meta["tokens"], meta["head_dim"])
    path = layer_path(model_dir, layer, kind)
    data = np.fromfile(path, dtype="<f4")
    if data.size != shape[0] * shape[1] * shape[2]:
        raise ValueError(f"{path}: {data.size} floats, expected {shape}")
    return data.reshape(shape)


def rope_tables(tokens: int, head_dim: int, theta: float, start: int = 0,
                angle_dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [tokens, head_dim] of the half-split (GPT-NeoX / Hugging Face) rotary embedding.

    angle_dtype=np.float32 reproduces how the model computed them (Hugging Face:
    inverse frequencies, the position * frequency product and cos/sin in f32);
    float64 gives the exact angles. The two differ by up to ~position * 2^-24
    radians, about 2e-4 relative at position 4095.
    """
    ft = np.dtype(angle_dtype).type
    exps = np.arange(0, head_dim, 2).astype(ft) / ft(head_dim)
    inv_freq = (ft(1.0) / (ft(theta) ** exps)).astype(ft)
    pos = np.arange(start, start + tokens).astype(ft)
    ang = (pos[:, None] * inv_freq[None, :]).astype(ft)  # [tokens, head_dim/2]
    ang = np.concatenate([ang, ang], axis=1)
    return np.cos(ang).astype(np.float64), np.sin(ang).astype(np.float64)


def apply_rope(x: np.ndarray, theta: float, start: int = 0, angle_dtype=np.float64) -> np.ndarray:
    """x [heads, tokens, head_dim] at positions start..start+tokens-1 -> rotated, float64.

    Channel i pairs with channel i + head_dim/2 (not 2i with 2i+1):
      y[i]       = x[i] cos(p w_i) - x[i + d/2] sin(p w_i)
      y[i + d/2] = x[i + d/2] cos(p w_i) + x[i] sin(p w_i),   w_i = theta^(-2i/d)
    """
    _, tokens, d = x.shape
    cos, sin = rope_tables(tokens, d, theta, start, angle_dtype)
    x = x.astype(np.float64)
    half = d // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[None] + rot * sin[None]
