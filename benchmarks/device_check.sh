#!/usr/bin/env bash
# The GPU checks of the 3D scoring path, as one command for a lent GPU machine (the `device`
# tool). Prepare here first with `bash scripts/device_kit.sh`, then run this there with
# `carry: [".devkit"]`, timeout ~540 s. What comes back under $OUT:
#   gl.txt       which GL implementation rendered (the GPU's, or a CPU fallback) and per-view
#                silhouette sizes of Duck.glb, to compare with the same numbers from llvmpipe
#   duck.png     its 8 views tiled, to look at
#   tests.txt    the rendering tests run against the GPU renderer
#   bench.txt    benchmarks/bench_assets.py on CUDA: the issue's >= 10 assets/s target
#   clip.txt     benchmarks/bench_clip.py on CUDA: CLIP images/s (>= 1,500 target) beside torchmetrics CLIPScore
#   vlm.txt      benchmarks/bench_vlm.py: VQAScore with a 2B-class VLM (Qwen2-VL-2B's shape, random weights)
#                at 448² in bf16, images/s (issue 21's >= 20 target), beside a one-call-per-image loop
# DEVICE_CHECK_LOCAL=1 runs the same steps on this machine's CPU (to test the script itself).
set -uo pipefail
cd "$(dirname "$0")/.."
KIT=.devkit
OUT=${OUT:-/tmp/device-check-out}
mkdir -p "$OUT"
DEVICE=cuda
if [ "${DEVICE_CHECK_LOCAL:-0}" = 1 ]; then
  DEVICE=cpu
else
  for f in "$KIT"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  nv=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$nv" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$nv"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
fi
PY=${PYTHON:-python3}
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$KIT"/whl/*.whl \
  || { echo "device_check: installing the kit's wheels failed" >&2; exit 1; }
export PYTHONPATH="$PWD/src:/tmp/site:$PWD" GENCRITIC_SHARED_DATA="$PWD/$KIT/data" PYTHONUNBUFFERED=1
export GENCRITIC_CACHE_DIR=/tmp/gencritic-cache

echo "== 1. which GL renders, and what it draws"
"$PY" - "$OUT" <<'EOF' 2>&1 | tee "$OUT/gl.txt"
import sys, time
from pathlib import Path
import numpy as np
from PIL import Image
from gencritic.render.api import render_asset
out = Path(sys.argv[1])
duck = Path(".devkit/data/meshes-small/Duck.glb")
for _ in range(2):  # warm-up: context, loader processes, each shader variant's compile
    render_asset(duck, {"cache": False})
t0 = time.perf_counter()
for _ in range(3):
    result = render_asset(duck, {"cache": False})
ms = (time.perf_counter() - t0) * 1000 / 3
print("renderer:", result.meta.get("renderer"), f"| 8 views of Duck.glb at 512² (load, render, composite): {ms:.1f} ms")
tiles = []
for view in result.views:
    if view.image is None:
        print(f"view {view.name}: error={view.error}")
        tiles.append(np.zeros((512, 512, 3), np.uint8))
        continue
    rgb = np.asarray(view.image.rgb)
    print(f"view {view.name}: silhouette_px={int((rgb != 255).any(axis=2).sum())}")
    tiles.append(rgb)
sheet = np.concatenate([np.concatenate(tiles[:4], axis=1), np.concatenate(tiles[4:], axis=1)], axis=0)
Image.fromarray(sheet).resize((sheet.shape[1] // 2, sheet.shape[0] // 2)).save(out / "duck.png")
EOF

echo "== 2. rendering tests against this machine's renderer"
"$PY" -m pytest -q -p no:cacheprovider tests/test_render.py 2>&1 | tail -25 | tee "$OUT/tests.txt"

echo "== 3. end to end: render + encode, assets/s"
"$PY" benchmarks/bench_assets.py --device "$DEVICE" --assets "${ASSETS:-96}" --rounds 2 --render-repeats 5 2>&1 \
  | grep -v -E "slow image processor" | tee "$OUT/bench.txt"

echo "== 4. VQAScore with a 2B-class VLM at 448² (bf16 on CUDA), images/s"
if [ "$DEVICE" = cuda ]; then
  VLM_ARGS=(--shape 2b --device cuda --dtype bf16 --size 448 --n 256 --batch 32 --rounds 3 --loop-n 32)
else  # the local rehearsal: the small model, a few images
  VLM_ARGS=(--shape tiny --n 16 --rounds 1)
fi
"$PY" benchmarks/bench_vlm.py "${VLM_ARGS[@]}" 2>&1 | grep -v -E "slow image processor|fast processor" \
  | tee "$OUT/vlm.txt"

echo "== 5. CLIP image scoring, images/s (issue 24's >= 1,500 on ViT-B/32), beside torchmetrics' CLIPScore"
if [ "$DEVICE" = cuda ]; then
  CLIP_ARGS=(--device cuda --n 2048 --batch 256 --rounds 2)
else  # the local rehearsal
  CLIP_ARGS=(--n 16 --batch 8 --rounds 1)
fi
"$PY" benchmarks/bench_clip.py "${CLIP_ARGS[@]}" 2>&1 | grep -v -E "slow image processor" | tee "$OUT/clip.txt"
