"""The errors nvcodec raises on purpose.

Each class also subclasses the matching builtin (as PyAV does), so callers can catch
``ValueError`` or ``nvcodec.errors.BitstreamError`` alike. ``exit_code`` is what the ``nvc``
command returns for it; the codes are stable and listed in bitstream_spec.md (Annex A.6) and docs/cli.md.
"""

from __future__ import annotations


class NvcError(Exception):
    """Base of every error nvcodec raises deliberately; the CLI prints it on one line."""

    exit_code = 1


class UsageError(NvcError, ValueError):
    """An option or argument that cannot be honoured (bad value, unsupported by the family)."""

    exit_code = 2


class InputError(NvcError, OSError):
    """An input file that is missing, unreadable or not a usable video."""

    exit_code = 3


class RateError(NvcError, ValueError):
    """A rate target that cannot be met, with the reason."""

    exit_code = 4


class BitstreamError(NvcError, ValueError):
    """A .nvc file that is malformed, corrupt, truncated or hostile."""

    exit_code = 5
    code = "E_BITSTREAM"


class SignatureError(BitstreamError):
    code = "E_SIGNATURE"


class TruncatedError(BitstreamError):
    code = "E_TRUNCATED"


class CRCError(BitstreamError):
    code = "E_CRC"


class UnsupportedVersionError(BitstreamError):
    code = "E_VERSION"


class UnknownCriticalChunkError(BitstreamError):
    code = "E_UNKNOWN_CRITICAL"


class StructureError(BitstreamError):
    """Chunks out of order, missing, duplicated, or a field outside its allowed range."""

    code = "E_STRUCTURE"


class LimitError(BitstreamError):
    """A declared size or count above the decoder's resource limits."""

    code = "E_LIMIT"


class ArchitectureError(BitstreamError):
    """Unknown family, bad config, or tensor manifest that does not match the rebuilt model."""

    code = "E_ARCH"


class PayloadError(BitstreamError):
    """An entropy-coded payload that does not decode to exactly the declared symbols."""

    code = "E_PAYLOAD"


class OutputError(NvcError, OSError):
    """An output that cannot be written (unknown extension, unwritable folder)."""

    exit_code = 6
