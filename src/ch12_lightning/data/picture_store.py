"""Where a data set's picture files are: a folder, or a zip archive read as it is.

A zip is read in place, never extracted: CelebA's official download leaves the faces in one
``img_align_celeba.zip`` (readers of the book trip over extracting it: rasbt/machine-learning-book
#57, #146), and people zip their folders of pictures to move them. Names inside a store are POSIX
paths relative to its top, the same for both kinds, so what reads a layout never asks which.

Which files are pictures is decided here once (``PICTURE_EXTENSIONS``, ``passed_over``), for
training's folders and for ``predict``'s: a file one of them reads, the other reads too.
"""

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import features
from torchvision.datasets.folder import IMG_EXTENSIONS

from ch12_lightning.data.picture_decode import HEIF_EXTENSIONS, HEIF_READABLE, open_zip

# The one list of picture files, for training's folders and predict's alike: torchvision's
# ``ImageFolder`` extensions, GIF (its first frame: ``picture_decode``), AVIF where this Pillow
# reads it, HEIC/HEIF where pillow-heif is installed. Matched whatever their case.
PICTURE_EXTENSIONS: tuple[str, ...] = (
    *IMG_EXTENSIONS,
    ".gif",
    *((".avif",) if features.check("avif") else ()),
    *(HEIF_EXTENSIONS if HEIF_READABLE else ()),
)
EXTENSIONS_HINT = f"{', '.join(PICTURE_EXTENSIONS)}, in any case"  # the list, for messages
HEIC_REASON = "HEIC pictures"  # how a skipped HEIC file is counted where none can be read


def is_picture_name(name: str) -> bool:
    """Whether the file is read as a picture: one of ``PICTURE_EXTENSIONS``, in any case (as
    ``ImageFolder`` matches its own)."""
    return name.lower().endswith(PICTURE_EXTENSIONS)


def passed_over(name: str) -> str | None:
    """Why the file ``name`` (a POSIX path below a folder given) is not read as a picture, in
    the words of a log line's count (``hidden``, ``HEIC pictures``, ``not pictures``); None
    for a picture. Training's folders and predict's sort files with this one rule."""
    parts = name.split("/")
    if any(is_hidden(part) for part in parts):
        return "hidden"
    if is_picture_name(name):
        return None
    return HEIC_REASON if name.lower().endswith(HEIF_EXTENSIONS) else "not pictures"


def is_zip_name(name: str) -> bool:
    return name.lower().endswith(".zip")


def is_hidden(part: str) -> bool:
    """A name that a file manager or an archiver made, not the user: ``.DS_Store``,
    ``.ipynb_checkpoints``, ``._photo.jpg``, ``__MACOSX``."""
    return part.startswith(".") or part == "__MACOSX"


@dataclass
class Listing:
    """Every file of a store (name -> [size, stamp]: a modification time for a file on disk, a
    CRC in a zip; any change of either changes a cache key) and every folder."""

    files: dict[str, list[int]] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    links_up: list[str] = field(default_factory=list)  # links to a folder above them: not read


@dataclass(frozen=True)
class PictureStore:
    """A folder, or a zip archive whose folder ``inner`` (``""``: all of it) is the top."""

    path: Path
    inner: str = ""

    @property
    def archive(self) -> str | None:
        """The zip file to read members from, or None for a folder."""
        return str(self.path) if is_zip_name(self.path.name) else None

    def where(self, name: str = "") -> str:
        """A file of the store (or the store itself) as a person finds it."""
        if self.archive is None:
            return str(self.path / name) if name else str(self.path)
        inside = f"{self.inner}{name}".rstrip("/")
        return f"{self.path} (member {inside})" if inside else str(self.path)

    def source(self, name: str) -> str:
        """What ``picture_decode`` reads for the file ``name``: a path, or an archive member."""
        return str(self.path / name) if self.archive is None else f"{self.inner}{name}"

    def below(self, folder: str) -> "PictureStore":
        """The store whose top is ``folder`` (``"pets/"``) of this one."""
        if self.archive is None:
            return PictureStore(self.path / folder)
        return PictureStore(self.path, self.inner + folder)

    def read(self, name: str) -> bytes:
        """The bytes of the file ``name``."""
        if self.archive is None:
            return (self.path / name).read_bytes()
        with open_zip(self.path) as opened:
            return opened.read(f"{self.inner}{name}")

    def listing(self) -> Listing:
        return _zip_listing(self.path, self.inner) if self.archive else _folder_listing(self.path)


def _folder_listing(top: Path) -> Listing:
    """Every file and folder below ``top``, following links to folders as ``ImageFolder``
    does: a folder linked into another class is read there too (``a/more_from_b -> ../b``
    gives ``a`` b's pictures as well), and a link back up to a folder it is inside, ``top``
    or a folder above ``top``, is not followed (``ImageFolder`` would loop) but listed."""
    listing = Listing()
    outside = frozenset(_identity(folder) for folder in top.resolve().parents)
    pending: list[tuple[str, Path, frozenset[tuple[int, int]]]] = [("", top, outside)]
    while pending:
        prefix, folder, above = pending.pop()
        try:
            here = _identity(folder)
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable or vanished: what it held is absent
        if here in above:
            listing.links_up.append(prefix.rstrip("/"))
            continue
        for entry in entries:
            name = prefix + entry.name
            try:
                if entry.is_dir():
                    listing.folders.add(name)
                    pending.append((name + "/", Path(entry.path), above | {here}))
                elif entry.is_file():
                    info = entry.stat()
                    listing.files[name] = [info.st_size, info.st_mtime_ns]
            except OSError:  # a link to nowhere
                continue
    return listing


def _identity(folder: Path) -> tuple[int, int]:
    """What a folder is, whatever path reaches it: its device and inode."""
    stat = folder.stat()
    return stat.st_dev, stat.st_ino


def _zip_listing(archive: Path, inner: str) -> Listing:
    listing = Listing()
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            member = info.filename.replace("\\", "/")  # as ``open_zip`` also finds it
            if not member.startswith(inner) or member == inner:
                continue
            name = member[len(inner) :]
            parts = name.rstrip("/").split("/")
            # Archivers may leave out a folder's own entry: its files imply it.
            listing.folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
            if member.endswith("/"):
                listing.folders.add(name.rstrip("/"))
            else:
                listing.files[name] = [info.file_size, info.CRC]
    return listing
