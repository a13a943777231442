"""Import every backbone module so each registers itself. One line per backbone."""

from . import nerv  # noqa: F401
