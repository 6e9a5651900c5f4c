"""The rules values are checked by: (key, test, what would be valid), reported by ``invalid``.

``checks/config.py`` holds the rules of the run's own settings; a network declares the rules of
its settings beside its code (``models/nets/``) in the same form, so both are checked together,
in one message, before anything is built. Standard library only, like the errors themselves.
"""

from collections.abc import Callable, Iterable
from typing import Any

# (key, test, what would be valid): a value for which ``test`` is false is refused as
# ``key=value is not valid: <what would be valid>``.
Rule = tuple[str, Callable[[Any], bool], str]

POSITIVE_INT = "must be a positive integer"
POSITIVE_INTS = "must be a non-empty list of positive integers, e.g. [32,16]"
FRACTION = "must be in [0, 1)"


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def positive_ints(value: Any) -> bool:
    """A non-empty list of positive integers (layer sizes, channel counts)."""
    return isinstance(value, list) and bool(value) and all(map(positive_int, value))


def fraction(value: Any) -> bool:
    """A probability that leaves something: dropout."""
    return number(value) and 0 <= value < 1


def boolean(value: Any) -> bool:
    return isinstance(value, bool)


def one_of(key: str, names: Iterable[str]) -> Rule:
    """The rule for a name the code looks up in a table (``names``)."""
    valid = sorted(names)
    return key, lambda value: value in valid, f"must be one of {', '.join(valid)}"
