"""The split a run used, kept in its checkpoints and checked against the pictures as they are now.

A seeded split drawn again from a folder that has changed is another split: one picture added
reorders every class's shuffle, and a model is then measured on pictures it trained on. So a
picture data module records the files it used (name, label, size and stamp as the store lists
them, and a digest of the content) in its state (Lightning's ``state_dict``, saved in every
checkpoint); ``eval`` and resuming use exactly those files, and stop, saying how many are gone
or changed, unless told to use the ones still there.
"""

import logging
from dataclasses import dataclass
from typing import Any

from ch12_lightning.data.picture_decode import content_digest
from ch12_lightning.data.picture_store import PictureStore
from ch12_lightning.errors import InputError

log = logging.getLogger(__name__)

# The files of one split as recorded: [name in the store, label, size, stamp, content digest].
Recorded = dict[str, list[list[Any]]]
SHOWN = 3  # names shown of each kind of problem
# What the message says when resuming (``{kept}``: the count still there; see ``remedy``).
RESUMING = (
    "A resumed run trains and validates on the pictures it started with: put them back, or "
    "start a new run."
)


class SplitChangedError(InputError, ValueError):
    """Pictures of a run's recorded split are gone or changed."""


@dataclass
class RecordedSplit:
    """A run's recorded files; ``needed``: the splits that must be as recorded (the others are
    used as far as they still are); ``skip_changed``: use what is still there instead of
    stopping; ``remedy``: what the message says next, for the command at hand (``{kept}``: the
    count still there); ``found_in``: where the run found them, said where that is elsewhere."""

    files: Recorded
    needed: tuple[str, ...]
    skip_changed: bool = False
    remedy: str = RESUMING
    found_in: str = ""  # where the run found its pictures (``PictureStore.where``), if known

    def usable(
        self, stamps: dict[str, list[int]], store: PictureStore, where: str
    ) -> tuple[list[tuple[str, str, int]], str]:
        """(split, name, label) of the recorded files that ``store`` (``where``; ``stamps``:
        name -> [size, stamp] of every file now in it) still holds unchanged, and a line saying
        what was left out. A needed file whose time changed but not its size is read: the same
        content (a copy that did not keep times) is the same picture."""
        usable: list[tuple[str, str, int]] = []
        notes = []
        for split, recorded in self.files.items():
            gone, changed = [], []
            for name, label, size, stamp, *digest in recorded:
                now = stamps.get(name)
                if now is None:
                    gone.append(name)
                elif list(now) == [size, stamp] or (
                    split in self.needed
                    and digest
                    and now[0] == size
                    and content_digest(store.read(name)) == digest[0]
                ):
                    usable.append((split, name, int(label)))
                else:
                    changed.append(name)
            if split not in self.needed or not (gone or changed):
                continue
            kept = len(recorded) - len(gone) - len(changed)
            elsewhere = self.found_in and self.found_in != where
            place = (
                f"{where} (the run found its pictures in {self.found_in})" if elsewhere else where
            )
            problem = _problem(split, len(recorded), gone, changed, place)
            if not kept:
                raise SplitChangedError(f"{problem}: none is left to use. Put them back.")
            if not self.skip_changed:
                raise SplitChangedError(f"{problem}. {self.remedy.format(kept=kept)}")
            log.warning("%s: using the %d still there, unchanged.", problem, kept)
            notes.append(f"{split}: {len(gone) + len(changed)} gone or changed left out")
        return usable, "; ".join(notes)


def _problem(split: str, count: int, gone: list[str], changed: list[str], where: str) -> str:
    """``The test split the run recorded has changed: 1 of its 6 pictures is gone (...)``."""
    parts = []
    if gone:
        parts.append(f"{_count(len(gone), count)} gone ({_names(gone)})")
    if changed:
        parts.append(
            f"{_count(len(changed), count) if not gone else len(changed)} changed (other "
            f"content: {_names(changed)})"
        )
    return f"The {split} split the run recorded has changed in {where}: {', '.join(parts)}"


def _count(some: int, count: int) -> str:
    return f"{some} of its {count} pictures {'is' if some == 1 else 'are'}"


def _names(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more
