"""What the command-line entry points share: bad input (or a full disk) ends the command with
its message alone.

Hydra and the standard library only, so that ``--help`` and ``--cfg job`` stay light.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import CompactHydraException

from ch12_lightning.errors import Explained


class InvalidInput(CompactHydraException):
    """Bad input (a config value, a data file, a checkpoint) or a full disk. Hydra prints the
    message of a ``CompactHydraException`` alone, without a traceback, exits with status 1, and
    shows the whole trace, the original error's included, with ``HYDRA_FULL_ERROR=1``."""


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """Re-raise an ``Explained`` error from the block as ``InvalidInput``: one readable message."""
    try:
        yield
    except Explained as err:
        raise InvalidInput(str(err)) from err
