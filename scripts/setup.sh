#!/usr/bin/env bash
# One-time set-up on a fresh machine: system libraries for headless rendering, a virtual
# environment in .venv, PyTorch, and gencritic with every extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# --with-blender: also Blender's Python (bpy) in .venv-blender, for `--renderer cycles` and its tests.
WITH_BLENDER=0
for arg in "$@"; do
  case "$arg" in
    --with-blender) WITH_BLENDER=1 ;;
    *) echo "setup: unknown option $arg (the only one is --with-blender)" >&2; exit 2 ;;
  esac
done

# Headless OpenGL (EGL + Mesa llvmpipe) for the 3D renderer; Chromium for the report browser test.
need_apt=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (Debian/Ubuntu: sudo apt-get install ${need_apt[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torchvision (needed by open_clip and lpips) pairs with torch 2.14.1; see docs/decisions.md.
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v -E "^WARNING: Location" || true
python -m pip install -q -e ".[all,dev]" 2>&1 | grep -v -E "^WARNING: Location" || true
python -c "import gencritic, torch; print('gencritic', gencritic.__version__, 'torch', torch.__version__)"

if [ "$WITH_BLENDER" = 1 ]; then
  # Its own environment: bpy pins numpy 1.26 and its own libraries (docs/rendering.md, "Cycles").
  # bpy 5.0.1 is built for CPython 3.11; the version is pinned because Cycles' pixels change with it.
  BPY_PY=${BLENDER_PYTHON:-python3.11}
  if command -v "$BPY_PY" >/dev/null 2>&1; then
    [ -x .venv-blender/bin/python ] || "$BPY_PY" -m venv .venv-blender
    if ! .venv-blender/bin/python -c "import bpy" >/dev/null 2>&1; then
      .venv-blender/bin/python -m pip install -q "bpy==5.0.1" 2>&1 | grep -v -E "^WARNING: Location" || true
    fi
    .venv-blender/bin/python -c "import bpy; print('blender', bpy.app.version_string, '(export GENCRITIC_BLENDER=$PWD/.venv-blender/bin/python)')"
  else
    echo "setup: --with-blender needs $BPY_PY (bpy's wheels are built for CPython 3.11); set BLENDER_PYTHON" >&2
    exit 1
  fi
fi
