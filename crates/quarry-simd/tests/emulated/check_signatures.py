#!/usr/bin/env python3
"""Checks that the scalar intrinsic models in this directory have the same
signatures (argument and result types, const generics, `unsafe`) as the real
`core::arch` intrinsics, that those are stable, and that they need no target
feature beyond the ones the kernel files enable, read from the standard library sources that the
`rust-docs` rustup component ships (no AArch64 toolchain needed).

    python3 crates/quarry-simd/tests/emulated/check_signatures.py

Exits non-zero on any difference or on an intrinsic that is not found.
"""
import glob
import html
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {
    "neon_intrinsics.rs": (["aarch64/neon/", "arm_shared/neon/"], {"neon"}),
    "avx512_intrinsics.rs": (
        ["x86/avx512f", "x86/avx512bw", "x86/avx512vpopcntdq", "x86/avx."],
        {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "avx", "fma", "f16c", "popcnt", "avx512vpopcntdq"},
    ),
}

SIG = re.compile(
    r"pub\s+(?:const\s+)?(unsafe\s+)?fn\s+(\w+)\s*(<[^>]*>)?\s*\(([^)]*)\)\s*(?:->\s*([^{;]+?))?\s*(?:\{|where|;)",
    re.S,
)


def norm(unsafe, generics, params, ret):
    types = []
    for p in params.split(","):
        p = p.strip()
        if p:
            types.append(re.sub(r"\s+", " ", p.split(":", 1)[1].strip()))
    gens = re.sub(r"\s+", " ", (generics or "").strip())
    return (bool(unsafe), gens, tuple(types), re.sub(r"\s+", " ", (ret or "()").strip()))


def std_sources(prefixes):
    sysroot = subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip()
    root = os.path.join(sysroot, "share/doc/rust/html/src/core/stdarch/crates/core_arch/src/")
    files = [f for f in glob.glob(root + "**/*.rs.html", recursive=True) if any(p in f[len(root):] for p in prefixes)]
    if not files:
        sys.exit("stdarch sources not found: install the rust-docs component")
    for f in files:
        text = open(f, encoding="utf-8").read()
        code = re.search(r"<code>(.*)</code>", text, re.S).group(1)
        code = re.sub(r'<a[^>]*data-nosnippet[^>]*>.*?</a>', "", code)
        yield html.unescape(re.sub(r"<[^>]+>", "", code))


def main():
    bad = 0
    for model, (prefixes, allowed) in MODELS.items():
        mine = {m.group(2): norm(m.group(1), m.group(3), m.group(4), m.group(5))
                for m in SIG.finditer(open(os.path.join(HERE, model), encoding="utf-8").read())
                if m.group(2).startswith(("_mm", "v"))}
        real = {}
        for src in std_sources(prefixes):
            for m in SIG.finditer(src):
                if m.group(2) in mine:
                    attrs = src[src.rfind("\n}", 0, m.start()):m.start()]
                    if '#[cfg(target_arch = "arm")]' in attrs:
                        continue  # the 32-bit Arm definition
                    # Attributes that apply on 32-bit Arm only do not count.
                    attrs = re.sub(r'cfg_attr\(\s*target_arch = "arm",[^]]*\]', "", attrs, flags=re.S)
                    feats = set(",".join(re.findall(r'target_feature\(enable = "([^"]*)"\)', attrs)).split(","))
                    if not feats <= allowed or "stable(" not in attrs.replace("unstable(", ""):
                        print(f"{model}: {m.group(2)}: needs {sorted(feats)} or is not stable")
                        bad += 1
                    real.setdefault(m.group(2), set()).add(norm(m.group(1), m.group(3), m.group(4), m.group(5)))
        for name, sig in sorted(mine.items()):
            if name not in real:
                print(f"{model}: {name}: not found in core::arch")
                bad += 1
            elif sig not in real[name]:
                print(f"{model}: {name}: model {sig} != std {sorted(real[name])}")
                bad += 1
        print(f"{model}: {len(mine)} intrinsics checked")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
