"""Atomic output: every file nvcodec writes appears whole or not at all (temp file + rename)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from .errors import InputError, NvcError, OutputError


def require_file(path: str | os.PathLike) -> Path:
    """The input file, or the error a user should see when it is missing (exit 3)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _existing_folder(target: Path) -> Path:
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {target}: folder {parent} does not exist")
    return parent


def check_writable(target: str | os.PathLike) -> None:
    """Fail now, naming ``target``, if its folder is missing or cannot take a new file.

    Encodes call this before training, so an unwritable output costs seconds, not the encode.
    """
    target = Path(target)
    parent = _existing_folder(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(name)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; on success rename it over ``target``.

    The temporary is a hidden ``.<name>.XXXX.part`` (writers are told their format, never guess
    it from the name), so even a killed write leaves no partial file under the user's name or
    suffix; ``remove_stale_temporaries`` clears such leftovers. On any exception the temporary is removed
    and ``target`` is left as it was. The result gets the mode a plain ``open()`` would give
    it under the user's umask (temporary files are created 0600), and an ``OSError`` becomes
    an ``OutputError`` (exit 6) naming ``target``.
    """
    target = Path(target)
    parent = _existing_folder(target)
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        yield tmp
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        if directory and target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, NvcError):
            raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete what an earlier, killed write of ``target`` left behind (its temporary siblings).

    ``atomic_path`` removes its temporary on any exception, but not after a SIGKILL or a power
    cut; the next run for the same target clears them, so no partial file lingers.
    """
    target = Path(target)
    stale = [p for p in target.parent.glob(f".{target.name}.*.part") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_measured(
    output: Path, make: Callable[[dict], bytes], metadata: dict, measure: Callable[[Path], dict]
) -> dict:
    """Write ``make(metadata)``, measure that very file (by decoding it) and write it again with
    the measurement as its metadata's ``"measured"``: the output appears once, complete, saying
    what its decoder gives (mETA is ancillary: rewriting it cannot change the decode). Returns
    ``measure``'s result. Both the single-stream and the segmented pipelines write through this."""
    with atomic_path(output) as tmp:
        tmp.write_bytes(make(metadata))
        measured = measure(tmp)
        tmp.write_bytes(make({**metadata, "measured": measured}))
    return measured
