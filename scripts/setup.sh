#!/usr/bin/env bash
# One-time set-up on a fresh machine: system libraries for headless rendering, a virtual
# environment in .venv, PyTorch, and gencritic with every extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

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
