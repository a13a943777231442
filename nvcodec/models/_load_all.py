"""Import every backbone module so each registers itself. One line per backbone."""

from . import nerv  # noqa: F401
from . import siren  # noqa: F401
from . import enerv  # noqa: F401
from . import coordflow  # noqa: F401
from . import hnerv  # noqa: F401
from . import snerv  # noqa: F401
