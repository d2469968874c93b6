#!/usr/bin/env bash
# Prepare, on this machine, what a lent GPU machine needs to run benchmarks/device_check.sh:
# that machine has Python 3.12 with PyTorch, transformers, numpy, pandas... but no internet, no
# moderngl/trimesh/zstandard/open_clip, no GL loader libraries, and no ../shared/data. This puts
# wheels, Debian GL loaders and a copy of the small real data in .devkit/ (git-ignored through
# .git/info/exclude), to be sent with the working tree: `carry: [".devkit"]`. ~25 MiB.
#
#   bash scripts/device_kit.sh        # here, once per session (needs PyPI and Debian mirrors)
#   then run on the device:  bash benchmarks/device_check.sh   (carry .devkit)
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.devkit
grep -qxF "/$KIT/" .git/info/exclude 2>/dev/null || echo "/$KIT/" >> .git/info/exclude
mkdir -p "$KIT/whl" "$KIT/gl" "$KIT/data"

# What gencritic's 3D scoring path imports and the device image lacks (its package list is in
# the device tool's KINDS.md). --no-deps: every needed dependency is named here.
PKGS=(moderngl==5.13.0 glcontext==3.1.0 trimesh==5.2.0 zstandard==0.25.0 open_clip_torch==3.3.0
      ftfy==6.3.1 wcwidth==0.9.4 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0
      typing-inspection==0.4.5 DracoPy==2.2.0)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_5_x86_64; do
  PLATFORMS+=(--platform "$p")
done
PY=${PYTHON:-python3}
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$KIT/whl" "${PKGS[@]}" 2>&1 | grep -v -E "^WARNING: Location" || true
for pkg in "${PKGS[@]}"; do
  name=${pkg%%==*}
  ls "$KIT/whl" | grep -qi "^${name//-/_}-" || { echo "device_kit: no wheel for $pkg" >&2; exit 1; }
done

# GL loaders (glvnd) for EGL on the NVIDIA driver, as the device tool's README says.
if ! ls "$KIT"/gl/libegl1_*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq >/dev/null
  (cd "$KIT/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

# The real meshes and the real CLIP tokenizer the benchmark uses (../shared does not travel).
SHARED=../shared/data
for d in meshes-small clip-vit-b32-tokenizer; do
  if [ -d "$SHARED/$d" ]; then rm -rf "${KIT:?}/data/$d"; cp -r "$SHARED/$d" "$KIT/data/$d"; chmod -R u+w "$KIT/data/$d"; fi
done
du -sh "$KIT"
echo "device_kit: ready; on the device run  bash benchmarks/device_check.sh  with carry [\".devkit\"]"
