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
    "train": ("bitstream", "render", "encoder", "decoder", "api", "cli", "bench"),
}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every nvcodec module a file imports, at top level or inside functions."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
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
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_cli_starts_without_torch():
    assert "torch" not in loaded_after("import nvcodec.cli")
