"""The import graph of src/ follows the layer order written in docs/architecture.md: every import
(at module level, inside functions, under TYPE_CHECKING) goes to the same or a lower layer, and
no module imports itself through others (no circle)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

SRC = ROOT / "src" / "gencritic"
DOC = ROOT / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """Unit -> layer number, from the table between the layers markers of docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- layers:", 1)[1].split("<!-- /layers -->", 1)[0]
    out: dict[str, int] = {}
    for line in table.splitlines():
        match = re.match(r"^\|\s*(\d+)\s[^|]*\|([^|]*)\|", line)
        if match:
            for unit in re.findall(r"`([^`]+)`", match.group(2)):
                assert unit not in out, f"{unit} listed twice in {DOC.name}"
                out["" if unit == "(root)" else unit] = int(match.group(1))
    assert out, f"no layer table in {DOC}"
    return out


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every gencritic import in the file, wherever it stands."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.split(".")[0] == "gencritic":
            for alias in node.names:  # "from gencritic.mesh import sidefiles" imports a module
                sub = f"{node.module}.{alias.name}"
                yield node.lineno, sub if sub in MODULES else node.module
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: relative import; write the absolute module")
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "gencritic")


def unit_of(module: str, units: dict[str, int]) -> str | None:
    rel = module.removeprefix("gencritic").removeprefix(".")
    found = [u for u in units if rel == u or (u and rel.startswith(u + "."))]
    return max(found, key=len) if found else None


def test_every_module_has_a_layer() -> None:
    units = layers()
    unlisted = sorted(m for m in MODULES if unit_of(m, units) is None)
    assert not unlisted, f"add these to the layer table of {DOC.name}: {unlisted}"


def test_no_import_goes_to_a_higher_layer() -> None:
    units = layers()
    upward = []
    for module, path in MODULES.items():
        here = unit_of(module, units)
        for line, target in imports(path):
            there = unit_of(target, units)
            assert here is not None and there is not None, (module, target)
            if units[there] > units[here]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target} "
                              f"(layer {units[there]} '{there}' above {units[here]} '{here}')")
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_circle() -> None:
    graph = {m: {t for _, t in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(t):], t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checks_see_imports_inside_functions(tmp_path: Path) -> None:
    """The walker finds an import in a function body (where most of the upward ones used to hide)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from gencritic.scoring.run import score\n    return score\n")
    assert list(imports(probe)) == [(2, "gencritic.scoring.run")]
    units = layers()
    assert units[unit_of("gencritic.scoring.run", units) or ""] > units[unit_of("gencritic.mesh.loaders", units) or ""]
