"""Errors caused by what a run was given (config values, data files, a checkpoint), not by a bug.

Their messages name the bad value and say what would be valid, so the command line prints the
message alone, without a traceback (see ``train.py``). Standard library only: the data modules,
the validation and the entry point all raise or catch these, and ``--help`` must stay light.
"""

from typing import Any


class InputError(Exception):
    """Bad input from the user; the message alone says what is wrong and how to fix it."""


class ConfigError(InputError, ValueError):
    """A config value that cannot work."""


class MissingDataError(InputError, FileNotFoundError):
    """A data set is not on disk (and could not be downloaded, where downloading is possible)."""


def invalid(key: str, value: Any, reason: str) -> str:
    """``key=value is not valid: reason``, the value written as on the command line."""
    return f"{key}={_as_override(value)} is not valid: {reason}"


def _as_override(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(_as_override(item) for item in value) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value) if value != "" else "''"
