"""One JSON file per measured point, so an interrupted benchmark resumes where it stopped.

Why keyed by content: the key hashes the clip's decoded frames together with everything that
changes a point's bytes or numbers (codec settings, encoder version, metric definitions). A point
is reused only when all of those match; anything else is simply a cache miss.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..fsutil import atomic_write_bytes

CACHE_SCHEMA = "nvcodec-rd-point/1"


def point_key(clip_sha256: str, identity: dict[str, object]) -> str:
    """A stable hex key for (clip, job identity)."""
    canonical = json.dumps({"clip": clip_sha256, "job": identity}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class PointCache:
    """A folder of ``<label>-<key>.json`` files; unreadable or foreign files count as misses."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str, label: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
        return self.folder / f"{safe}-{key}.json"

    def load(self, key: str, label: str) -> dict[str, object] | None:
        path = self._path(key, label)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("schema") != CACHE_SCHEMA or record.get("key") != key:
            return None
        point = record.get("point")
        return point if isinstance(point, dict) else None

    def store(self, key: str, label: str, point: dict[str, object]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"schema": CACHE_SCHEMA, "key": key, "point": point}
        atomic_write_bytes(self._path(key, label), json.dumps(record, indent=1, sort_keys=True).encode())
