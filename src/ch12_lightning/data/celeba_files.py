"""Find a CelebA copy on disk and read its attribute and partition lists.

Two layouts are in common use and both are read:

- the official one: ``img_align_celeba/``, ``list_attr_celeba.txt`` (a count, a line of 40
  names, then ``file v1 ... v40`` with 1/-1) and ``list_eval_partition.txt`` (``file 0|1|2``);
- the CSV re-distribution: ``list_attr_celeba.csv`` and ``list_eval_partition.csv`` with header
  rows, and the images one folder deeper, in ``img_align_celeba/img_align_celeba/``.

In the official layout the faces may also stay in ``img_align_celeba.zip`` as downloaded: the
archive is read in place.

The bbox, landmark and identity files are not needed. A partial copy is fine: only the images
that are on disk are used.
"""

import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ch12_lightning.data.picture_store import PictureStore
from ch12_lightning.errors import ConfigError, InputError, MissingDataError, invalid

PARTITIONS = {"train": 0, "val": 1, "test": 2}


class CelebAFormatError(InputError, ValueError):
    """A CelebA metadata file is missing or does not have the expected format."""


@dataclass(frozen=True)
class CelebALayout:
    """Where the images and metadata files of one CelebA copy are."""

    root: Path
    images: PictureStore
    attr_file: Path
    partition_file: Path

    @classmethod
    def find(cls, root: str | Path) -> "CelebALayout":
        root = Path(root).expanduser()
        for suffix in (".txt", ".csv"):
            attr = root / f"list_attr_celeba{suffix}"
            partition = root / f"list_eval_partition{suffix}"
            images = _images(root)
            if attr.is_file() and partition.is_file() and images is not None:
                return cls(root, images, attr, partition)
        raise MissingDataError(
            f"No CelebA copy in {root}. Expected img_align_celeba/ with list_attr_celeba.txt and "
            "list_eval_partition.txt (official layout; img_align_celeba.zip as downloaded is read "
            "without extracting it), or img_align_celeba/img_align_celeba/ with "
            "list_attr_celeba.csv and list_eval_partition.csv (CSV layout). Point "
            "dataset.data_dir (or CH12_DATA_DIR, which holds celeba/) at such a folder; "
            "CelebA is not downloaded automatically."
        )


def _images(root: Path) -> PictureStore | None:
    """The folder of faces, or the official ``img_align_celeba.zip`` read as it is."""
    folder = root / "img_align_celeba"
    if (folder / "img_align_celeba").is_dir():
        return PictureStore(folder / "img_align_celeba")
    if folder.is_dir():
        return PictureStore(folder)
    archive = root / "img_align_celeba.zip"
    if not archive.is_file():
        return None
    try:
        with zipfile.ZipFile(archive) as opened:
            names = opened.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise CelebAFormatError(
            f"{archive} cannot be read as a zip archive ({err}): it is cut short or damaged. "
            f"Download it again; if your unzip can still read it, extract it with "
            f"`unzip {archive} -d {root}`, which makes {folder}/."
        ) from err
    inner = "img_align_celeba/" if any(n.startswith("img_align_celeba/") for n in names) else ""
    return PictureStore(archive, inner)


def _rows(path: Path) -> tuple[list[str], Iterator[list[str]]]:
    """Header and data rows of a metadata file, in either layout. Rows are read one at a time:
    the attribute file's 202,599 rows of 41 fields, held at once, took over 500 MB."""
    f = open(path, newline="" if path.suffix == ".csv" else None)  # noqa: SIM115 (closed by _lines)
    if path.suffix == ".csv":
        reader = csv.reader(_lines(f))
        header = next(reader, None)
        if header is None:
            raise CelebAFormatError(f"{path} is empty")
        return header[1:], (row for row in reader if row)
    lines = _lines(f)
    if path.name.startswith("list_attr"):
        count, names = next(lines, None), next(lines, None)
        if count is None or names is None:
            raise CelebAFormatError(f"{path} is too short: expected a count, a line of names, rows")
        return names.split(), (line.split() for line in lines if line.strip())
    return ["partition"], (line.split() for line in lines if line.strip())


def _lines(f: TextIO) -> Iterator[str]:
    with f:
        yield from f


def read_attribute(path: Path, attribute: str) -> dict[str, int]:
    """Map each image file to 1 where ``attribute`` holds and 0 where it does not."""
    names, rows = _rows(path)
    if attribute not in names:
        reason = f"must be one of the {len(names)} attributes in {path.name}: {', '.join(names)}"
        raise ConfigError(invalid("dataset.attribute", attribute, reason))
    column = names.index(attribute) + 1
    labels = {}
    for number, row in enumerate(rows, start=1):
        if len(row) != len(names) + 1 or row[column] not in ("1", "-1"):
            raise CelebAFormatError(
                f"{path}, data row {number}: expected a file name and {len(names)} values of "
                f"1 or -1, got {' '.join(row)[:120]!r}"
            )
        labels[row[0]] = int(row[column] == "1")
    return labels


def read_partitions(path: Path) -> dict[str, int]:
    """Map each image file to its official partition: 0 train, 1 validation, 2 test."""
    _, rows = _rows(path)
    partitions = {}
    for number, row in enumerate(rows, start=1):
        if len(row) != 2 or row[1] not in ("0", "1", "2"):
            raise CelebAFormatError(
                f"{path}, data row {number}: expected a file name and a partition 0, 1 or 2, "
                f"got {' '.join(row)[:120]!r}"
            )
        partitions[row[0]] = int(row[1])
    return partitions
