"""What produced a set of numbers: library versions and the machine, recorded next to the results.

Why: RD points and timings are only comparable between runs with the same encoder builds and
similar hardware, so every output states both. Anything undiscoverable is reported as None.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

from ..versions import usable_cores
from .anchors import ANCHORS


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_commit() -> str | None:
    """The nvcodec source commit, if run from a checkout; with uncommitted changes ``+dirty.`` and
    8 hex digits of their SHA-256 (the diff and the untracked files), so that the point cache never
    hands a changed tree the points of another (it did: a run after a fix reused the broken build's)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None

        def git(*args: str) -> bytes:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=5).stdout

        diff = git("diff", "HEAD", "--binary")
        untracked = [n for n in sorted(git("ls-files", "--others", "--exclude-standard", "-z").split(b"\0")) if n]
        if not diff and not untracked:
            return commit.stdout.strip()
        changes = hashlib.sha256(diff)
        for name in untracked:
            if (root / name.decode()).is_file():
                changes.update(name + (root / name.decode()).read_bytes())
        return f"{commit.stdout.strip()}+dirty.{changes.hexdigest()[:8]}"
    except (OSError, subprocess.SubprocessError):
        return None


def _nvcodec_version() -> str | None:
    try:
        import nvcodec

        version = getattr(nvcodec, "__version__", None)
    except ImportError:
        version = None
    return version or _package_version("nvcodec")


def environment() -> dict[str, object]:
    """Versions of everything in the measurement chain, plus CPU model and core counts."""
    try:
        import torch

        torch_info: dict[str, object] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    except ImportError:
        torch_info = {"version": None, "threads": None}
    return {
        "nvcodec": {"version": _nvcodec_version(), "git_commit": _git_commit()},
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch_info,
        "pyav": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "libav": {name: ".".join(map(str, v)) for name, v in getattr(av, "library_versions", {}).items()},
        "encoders": {cls.encoder_name: cls().version for cls in ANCHORS.values()},
        "matplotlib": _package_version("matplotlib"),
        "machine": {
            "cpu": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "usable_cores": usable_cores(),
            "platform": platform.platform(),
        },
    }
