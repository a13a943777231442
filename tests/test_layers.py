"""The import graph keeps its layers: models and compress are maths, bitstream is bytes on top
of compress, and `nvc` starts without torch (tests/test_codec.py checks that decoding a file
loads no training code)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nvcodec"

# layer -> the nvcodec modules it must never import (at any depth of its own files)
FORBIDDEN = {
    "models": ("compress", "bitstream", "train", "render", "encoder", "decoder", "api", "cli", "bench"),
    "compress": ("bitstream", "models", "train", "render", "encoder", "decoder", "api", "cli", "bench"),
    "bitstream": ("models", "train", "render", "encoder", "decoder", "api", "cli", "bench"),
    "train": (
        "families",
        "bitstream",
        "render",
        "encoder",
        "decoder",
        "api",
        "cli",
        "bench",
    ),  # families build on train
    "families": ("bitstream", "render", "encoder", "decoder", "api", "cli", "bench"),
}
# a family's declaration and model are what the decoder loads: no training code in them
DECODER_SIDE = ("families/__init__.py", "families/*/__init__.py", "families/*/model.py")


def imported_modules(path: Path, when_loaded: bool = False) -> set[str]:
    """Absolute names of every nvcodec module a file imports, at top level or inside functions
    (``when_loaded``: only what importing the file itself runs)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body if when_loaded else ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("nvcodec")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_import_goes_up(layer):
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def import_graph() -> dict[str, set[str]]:
    """nvcodec's units (a subpackage, or a top-level module) -> the units they import, at any depth."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for name in imported_modules(path):
            parts = name.split(".")
            other = parts[1] if len(parts) > 1 else ""
            if other and other != unit and ((PACKAGE / other).is_dir() or (PACKAGE / f"{other}.py").is_file()):
                graph.setdefault(unit, set()).add(other)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets (none in a layered package)."""
    found, state, path = [], {}, []

    def walk(unit: str) -> None:
        state[unit] = "open"
        path.append(unit)
        for other in sorted(graph.get(unit, ())):
            if state.get(other) == "open":
                found.append(path[path.index(other) :] + [other])
            elif other not in state:
                walk(other)
        path.pop()
        state[unit] = "done"

    for unit in sorted(graph):
        if unit not in state:
            walk(unit)
    return found


def test_the_import_graph_has_no_cycle():
    """train is below families (a family's objective builds on train's), never the other way:
    training finds a model's family through ``Backbone.declaration``."""
    assert not cycles(import_graph()), [" -> ".join(c) for c in cycles(import_graph())]


def test_families_declare_and_build_without_training_code():
    bad = []
    for pattern in DECODER_SIDE:
        for path in sorted(PACKAGE.glob(pattern)):
            bad += [
                f"{path.relative_to(PACKAGE.parent)} imports {name}"
                for name in imported_modules(path, True)
                if name.startswith("nvcodec.train") or name.endswith(".objective")
            ]
    assert not bad, "\n".join(bad)


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_cli_and_the_declarations_load_without_torch():
    loaded = loaded_after(
        "import nvcodec.cli, nvcodec.settings; from nvcodec.families import declarations; declarations()"
    )
    assert "torch" not in loaded
