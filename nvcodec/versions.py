"""What this process runs on: library versions and usable cores, for `nvc --version`, a file's
mETA, worker planning and benchmark records (one place, so they always agree)."""

from __future__ import annotations

import os
from importlib.metadata import version

from . import __version__


def library_versions() -> dict[str, str]:
    """Versions of nvcodec and the native libraries it runs on (for --version and mETA)."""
    import av
    import torch

    return {
        "nvcodec": __version__,
        "torch": torch.__version__,
        "constriction": version("constriction"),
        "av": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", "unknown"),
    }


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
