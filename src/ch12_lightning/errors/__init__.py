"""Errors caused by what a run was given (config values, data files, a checkpoint) or by the
machine it ran on (a full disk), not by a bug.

Their messages say what is wrong and what would work, so the command line prints the message
alone, without a traceback (see ``errors/messages.py``). Standard library only: the data
modules, the checks and the entry points all raise or catch these, and ``--help`` must stay
light.
"""

from typing import Any


class ShownAsMessage:
    """An exception that a Jupyter cell shows as its message alone, as the command line prints
    it: IPython renders ``_render_traceback_`` instead of a traceback through Hydra's and the
    project's frames (over a hundred lines for a misspelled key)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class Explained(ShownAsMessage, Exception):
    """An error whose message alone says what happened and what to do about it."""


class InputError(Explained):
    """Bad input from the user; the message alone says what is wrong and how to fix it."""


class DiskFullError(Explained):
    """A disk ran full during a run; the message says where, how much, and what is intact."""


class PeerLostError(Explained):
    """A rank of a DDP run stopped because another one went away; that one says why."""


class ConfigError(InputError, ValueError):
    """A config value that cannot work."""


class MissingDataError(InputError, FileNotFoundError):
    """A data set is not on disk (and could not be downloaded, where downloading is possible)."""


class FolderInUse(InputError, RuntimeError):
    """Another process is writing into the folder a run or a sweep was given
    (``run/folder_lock.py``)."""


def invalid(key: str, value: Any, reason: str) -> str:
    """``key=value is not valid: reason``, the value written as on the command line."""
    return f"{key}={_as_override(value)} is not valid: {reason}"


def _as_override(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_as_override(item) for item in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value) if value != "" else "''"
