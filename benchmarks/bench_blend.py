""".blend -> GLB conversion: gencritic's batches vs one Blender start per file.

The one-per-file loop is how a conversion script is usually written (``blender -b --python
export.py -- file.blend`` in a shell loop); gencritic starts one Blender per core and converts
16 files in each. Both run the same worker (same checks, same export), in one run, on the same
freshly made files, each into an empty cache.

    python benchmarks/bench_blend.py                  # 24 files, ~1 min on a 2-core CPU
    python benchmarks/bench_blend.py --files 64 --jobs 4

Needs Blender (``bash scripts/setup.sh --with-blender``, or GENCRITIC_BLENDER).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MAKER = r'''
import sys
from pathlib import Path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
import bpy
args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
folder, count = Path(args[0]), int(args[1])
for i in range(count):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, segments=64, ring_count=32)
    sphere = bpy.context.active_object
    sphere.modifiers.new("smooth", "SUBSURF").levels = 1
    mat = bpy.data.materials.new("paint")
    mat.use_nodes = True
    mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (i / count, 0.2, 0.5, 1)
    sphere.data.materials.append(mat)
    bpy.ops.mesh.primitive_cube_add(size=0.4, location=(0, 0, 0.7 + i * 0.01))
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / f"toy_{i:03d}.blend"))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=None, help="Blender processes at once (default: one per core)")
    args = parser.parse_args()

    local = ROOT / ".venv-blender" / "bin" / "python"
    if "GENCRITIC_BLENDER" not in os.environ and local.exists():
        os.environ["GENCRITIC_BLENDER"] = str(local)
    from gencritic.blender import blender_command, blender_version
    from gencritic.mesh import blend

    print(f"Blender {blender_version()}, {os.cpu_count()} cores, {args.files} files")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "blends"
        folder.mkdir()
        script = Path(tmp) / "make.py"
        script.write_text(MAKER)
        subprocess.run([*blender_command(script), str(folder), str(args.files)], check=True, capture_output=True)
        files = sorted(folder.glob("*.blend"))

        def timed(cache: str, per_start: int, jobs: int | None) -> float:
            os.environ["GENCRITIC_CACHE_DIR"] = str(Path(tmp) / cache)
            blend.FILES_PER_START = per_start
            start = time.perf_counter()
            outcomes = blend.convert_blend_files(files, jobs=jobs)
            elapsed = time.perf_counter() - start
            failed = [o for o in outcomes.values() if isinstance(o, str)]
            if failed:
                raise SystemExit(f"conversion failed: {failed[0]}")
            return elapsed

        one_each = timed("one-each", 1, 1)
        batched_one = timed("batched-1", 16, 1)
        batched = timed("batched", 16, args.jobs)
        n = len(files)
        print(f"one Blender start per file, in turn : {1000 * one_each / n:7.1f} ms/file")
        print(f"gencritic, batches in one Blender   : {1000 * batched_one / n:7.1f} ms/file "
              f"({one_each / batched_one:.2f}x)")
        print(f"gencritic, batches in parallel      : {1000 * batched / n:7.1f} ms/file "
              f"({one_each / batched:.2f}x)")


if __name__ == "__main__":
    main()
