"""A folder of one's own pictures read as torchvision's ``ImageFolder`` reads one, and checked.

Layouts: ``root/<class>/...`` (a class's pictures may sit in folders of their own below it), or
``root/train|val|test/<class>/...`` where the user split them (split folders alone at the top:
beside other folders, ``train/`` is a class, as ``ImageFolder`` reads it); or any files under
``root`` labelled by a CSV of ``file,label`` rows (``;`` or tab separated, a header of the
common names allowed). Classes are the sorted folder names (or labels), as
``ImageFolder``'s ``find_classes`` gives them; pictures are the files with its extensions, in any
case, and the few more that ``predict`` reads too (``picture_store.PICTURE_EXTENSIONS``: GIF,
AVIF, HEIC with pillow-heif). What ``ImageFolder`` would take for data by mistake is skipped and
counted instead: hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``, ``__MACOSX``),
other files, pictures outside a class folder; HEIC files that cannot be read are counted apart,
with what to do. A folder zipped with its own folder inside (``pets.zip`` holding
``pets/cat/...``) is entered.

Everything that would make a run train on the wrong thing is refused here, before a picture is
decoded, naming the folder or file: no class folders, one class, a class without pictures, split
folders whose classes differ, CSV rows that name missing files.
"""

import csv
import io
import logging
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from ch12_lightning.data.picture_decode import HEIF_HINT
from ch12_lightning.data.picture_store import (
    EXTENSIONS_HINT,
    HEIC_REASON,
    Listing,
    is_hidden,
    is_picture_name,
    passed_over,
)
from ch12_lightning.errors import ConfigError, invalid

log = logging.getLogger(__name__)

# Folder names that mean a split (any case), and the split each means.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test"}  # fmt: skip
# The column names a labels CSV's header may give (any case, either order).
FILE_COLUMNS = ("file", "filename", "image", "path", "name", "id")
LABEL_COLUMNS = ("label", "class", "target", "category")
# Rows below an unknown header row that are read to find which column names files.
HEADER_EVIDENCE = 50
CSV_FORMS = (
    "every row must be a file and its label, separated by ',', ';' or a tab, with or without a "
    f"header row of {'|'.join(FILE_COLUMNS)} and {'|'.join(LABEL_COLUMNS)} (or of any names "
    "above a column of file names)"
)


@dataclass
class FolderScan:
    """The classes, each picture's class index by split (``"all"`` where the folder has no split
    folders), and the files passed over, by reason (with a few names for the log)."""

    classes: list[str]
    pictures: dict[str, list[tuple[str, int]]]
    top: str = ""
    skipped: Counter = field(default_factory=Counter)
    skipped_names: dict[str, list[str]] = field(default_factory=dict)
    split_folders: dict[str, str] = field(default_factory=dict)  # split -> the folder's name

    def skip(self, reason: str, name: str) -> None:
        self.skipped[reason] += 1
        self.skipped_names.setdefault(reason, [])
        if len(self.skipped_names[reason]) < 3:
            self.skipped_names[reason].append(name)

    def skipped_line(self) -> str:
        """What was passed over, e.g. ``skipped 3 files: 2 hidden (.DS_Store, ...), 1 not a
        picture (notes.txt)``; empty if nothing was."""
        if not self.skipped:
            return ""
        parts = []
        for reason, count in sorted(self.skipped.items()):
            names = self.skipped_names[reason]
            more = ", ..." if count > len(names) else ""
            advice = f": {HEIF_HINT}" if reason == HEIC_REASON else ""
            parts.append(f"{count} {reason} ({', '.join(names)}{more}){advice}")
        total = sum(self.skipped.values())
        return f"skipped {total} file{'s' * (total != 1)}: {'; '.join(parts)}"


def scan_folder(
    listing: Listing, root: str, labels: dict[str, str] | None = None, csv_name: str = ""
) -> FolderScan:
    """Classes and pictures of the store ``listing`` describes (``root``: its name in messages),
    labelled by its folders or, when given, by ``labels`` (file name -> label, from the CSV
    ``csv_name``)."""
    top = "" if labels is not None else _wrapping_folder(listing)
    splits = _split_folders(listing, top, root)
    if labels is not None:
        scan = _labelled_by_csv(listing, labels, splits, csv_name)
    else:
        scan = _labelled_by_folders(listing, top, splits, root)
    for link in listing.links_up:
        scan.skip("links to a folder above them, not followed", link)
    scan.top = top
    scan.split_folders = {split: prefix[len(top) :].rstrip("/") for split, prefix in splits.items()}
    return scan


def _children(listing: Listing, prefix: str) -> tuple[list[str], list[str]]:
    """Names of the folders and files directly in ``prefix`` (``""``: the top), sorted."""
    depth = prefix.count("/")
    folders = sorted(f[len(prefix) :] for f in listing.folders
                     if f.startswith(prefix) and f.count("/") == depth)  # fmt: skip
    files = sorted(f[len(prefix) :] for f in listing.files
                   if f.startswith(prefix) and f.count("/") == depth)  # fmt: skip
    return folders, files


def _wrapping_folder(listing: Listing) -> str:
    """``"pets/"`` for a store whose only folder holds folders (several, or split folders) and
    no pictures beside them (a zipped folder, or the folder above the one meant): that folder
    is then the top. Else ``""`` (one class folder, whose pictures may also sit below it)."""
    top = ""
    while True:
        folders, files = _visible(*_children(listing, top))
        if len(folders) != 1 or files or folders[0].lower() in SPLIT_FOLDERS:
            return top
        inside, inside_files = _visible(*_children(listing, f"{top}{folders[0]}/"))
        splits = any(f.lower() in SPLIT_FOLDERS for f in inside)
        if inside_files or not (len(inside) > 1 or splits):
            return top
        top = f"{top}{folders[0]}/"


def _visible(folders: list[str], files: list[str]) -> tuple[list[str], list[str]]:
    """The folders that are not hidden, and the pictures."""
    pictures = [f for f in files if not is_hidden(f) and is_picture_name(f)]
    return [f for f in folders if not is_hidden(f)], pictures


def _split_folders(listing: Listing, top: str, root: str) -> dict[str, str]:
    """Split -> its folder, where the user split the pictures; ``{}`` where they did not."""
    folders = [f for f in _children(listing, top)[0] if not is_hidden(f)]
    named = {f: SPLIT_FOLDERS[f.lower()] for f in folders if f.lower() in SPLIT_FOLDERS}
    if not named:
        return {}
    others = [f for f in folders if f not in named]
    if others:  # ImageFolder's reading: every folder a class, whatever its name
        log.warning(
            "dataset.root=%s: %s beside %s: every folder is read as a class, as torchvision's "
            "ImageFolder reads them. For split folders, put the class folders inside train/ "
            "(val/, test/) and nothing else at the top.",
            root,
            ", ".join(f"{f}/" for f in named),
            ", ".join(f"{f}/" for f in others),
        )
        return {}
    splits: dict[str, str] = {}
    for folder, split in named.items():
        if split in splits:
            reason = f"the folders {splits[split]} and {folder} both mean the {split} split"
            raise ConfigError(invalid("dataset.root", root, reason))
        splits[split] = f"{top}{folder}/"
    if "train" not in splits:
        reason = f"it holds split folders ({', '.join(named)}) but no train/ folder"
        raise ConfigError(invalid("dataset.root", root, reason))
    return splits


def _labelled_by_folders(
    listing: Listing, top: str, splits: dict[str, str], root: str
) -> FolderScan:
    places = splits or {"all": top}
    classes_of = {split: [f for f in _children(listing, prefix)[0] if not is_hidden(f)]
                  for split, prefix in places.items()}  # fmt: skip
    classes = classes_of["train" if splits else "all"]
    _check_classes(classes, classes_of, places, root)
    index = {name: i for i, name in enumerate(classes)}
    scan = FolderScan(classes, {split: [] for split in places})
    for name in sorted(listing.files):
        if not name.startswith(top):
            continue
        split = next((s for s, prefix in places.items() if name.startswith(prefix)), None)
        inside = name[len(places[split]) :] if split else name[len(top) :]
        parts = inside.split("/")
        reason = passed_over(inside)
        if reason:
            scan.skip(reason, parts[-1])
        elif split is None or len(parts) == 1:
            scan.skip("pictures outside a class folder", inside)
        else:
            scan.pictures[split].append((name, index[parts[0]]))
    _check_every_class_has_pictures(scan, places, root)
    return scan


def _check_classes(
    classes: list[str], classes_of: dict[str, list[str]], places: dict[str, str], root: str
) -> None:
    where = f"its {places['train']}" if "train" in places else "it"
    if not classes:
        reason = (
            f"{where} holds no class folders: put the pictures of each class in a folder named "
            "after it (root/<class>/<picture>), or give dataset.labels_csv"
        )
        raise ConfigError(invalid("dataset.root", root, reason))
    if len(classes) == 1:
        reason = (
            f"{where} holds one class folder only ({classes[0]}): a classifier needs at "
            "least two classes, each in a folder named after it"
        )
        raise ConfigError(invalid("dataset.root", root, reason))
    differ = [
        f"{split}/ has {', '.join(names) or 'none'}"
        for split, names in classes_of.items()
        if names != classes
    ]
    if differ:
        reason = (
            f"its split folders hold different classes: train/ has {', '.join(classes)}; "
            f"{'; '.join(differ)}. Every split needs a folder for each class"
        )
        raise ConfigError(invalid("dataset.root", root, reason))


def _check_every_class_has_pictures(scan: FolderScan, places: dict[str, str], root: str) -> None:
    empty = []
    for split, pictures in scan.pictures.items():
        held = {label for _, label in pictures}
        prefix = places[split]
        empty += [f"{prefix}{name}" for i, name in enumerate(scan.classes) if i not in held]
    if empty:
        heic = scan.skipped[HEIC_REASON]
        heic_note = f"; {heic} HEIC pictures found: {HEIF_HINT}" if heic else ""
        reason = (
            f"the class folder{'s' * (len(empty) > 1)} {', '.join(empty)} hold"
            f"{'s' * (len(empty) == 1)} no pictures (files ending in {EXTENSIONS_HINT}"
            f"{heic_note}); add pictures, or remove the folder"
        )
        raise ConfigError(invalid("dataset.root", root, reason))


def read_labels_csv(text: str, csv_name: str, files: Collection[str] = ()) -> dict[str, str]:
    """``file,label`` rows as file -> label: separated by ``,``, ``;`` or a tab (detected, as
    Excel writes them by locale), with or without a header row: of the common column names in
    either order (``filename,class``, ``image,label``, ...), or of any names where one column of
    the rows below names files (pictures, or the store's ``files``, with or without their
    extension); file names as POSIX paths relative to the root (``./`` and backslashes as
    written on Windows are taken)."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], ",;\t")
    except csv.Error:  # one column, or too little to tell: the rows say what is wrong
        dialect = csv.excel
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if any(row)]
    order = (0, 1)
    if numbered and numbered[0][0] == 1:
        below = [row for _, row in numbered[1 : 1 + HEADER_EVIDENCE]]
        files_named = _file_names(files)
        header = _header_order(numbered[0][1], below, files_named, dialect.delimiter, csv_name)
        if header:
            order, numbered = header, numbered[1:]
    labels: dict[str, str] = {}
    for number, cells in numbered:
        if len(cells) != 2 or not all(cells):
            reason = f"row {number} is {dialect.delimiter.join(cells)!r}: {CSV_FORMS}"
            raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
        name, label = _file_name(cells[order[0]]), cells[order[1]]
        if labels.get(name, label) != label:
            reason = f"{name} is labelled twice, {labels[name]} and {label}"
            raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
        labels[name] = label
    if not labels:
        reason = f"it has no rows; {CSV_FORMS}"
        raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
    return labels


def _file_name(cell: str) -> str:
    return cell.replace("\\", "/").removeprefix("./")


def _file_names(files: Collection[str]) -> set[str]:
    """The store's file names, and the pictures' without their extension (Kaggle's ids)."""
    return {*files, *(name.rsplit(".", 1)[0] for name in files if is_picture_name(name))}


def _header_order(
    cells: list[str], below: list[list[str]], files: set[str], delimiter: str, csv_name: str
) -> tuple[int, int] | None:
    """(file column, label column) of a header row, None for a row of data. A row of the common
    names is a header; so is a row naming no file above rows whose one column names files
    (``image_id,class``, ``Fichier;Catégorie``). A row of other names, with no column of files
    below it, is refused with the forms understood."""
    names = [cell.lower() for cell in cells]
    if len(names) == 2:
        for file, label in ((0, 1), (1, 0)):
            if names[file] in FILE_COLUMNS and names[label] in LABEL_COLUMNS:
                return file, label

    def names_a_file(cell: str) -> bool:
        return is_picture_name(cell) or _file_name(cell) in files

    if not names or any(names_a_file(cell) for cell in cells):
        return None
    columns = [
        column
        for column in range(len(cells))
        if below
        and sum(len(row) > column and names_a_file(row[column]) for row in below) * 2 > len(below)
    ]
    if len(cells) == 2 and len(columns) == 1:
        file = columns[0]
        log.info(
            "Labels CSV: row 1 (%s) read as a header: files in its column %s, labels in %s",
            delimiter.join(cells), cells[file], cells[1 - file],
        )  # fmt: skip
        return file, 1 - file
    reason = (
        f"row 1 is {delimiter.join(cells)!r}, a header of other names, and no column of the rows "
        f"below it names files under dataset.root: {CSV_FORMS}"
    )
    raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))


def _labelled_by_csv(
    listing: Listing, labels: dict[str, str], splits: dict[str, str], csv_name: str
) -> FolderScan:
    labels = _with_extensions(labels, listing)
    missing = sorted(name for name in labels if name not in listing.files)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        reason = (
            f"{len(missing)} of its {len(labels)} files {'does' if len(missing) == 1 else 'do'} "
            f"not exist under dataset.root: {shown} "
            f"(file names are relative to dataset.root{_found_elsewhere(missing[0], listing)})"
        )
        raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
    not_pictures = sorted(name for name in labels if not is_picture_name(name))
    if not_pictures:
        heic = any(passed_over(name) == HEIC_REASON for name in not_pictures)
        reason = (
            f"it names files that are not pictures: {', '.join(not_pictures[:5])} (pictures "
            f"end in {EXTENSIONS_HINT}){f'; HEIC pictures: {HEIF_HINT}' if heic else ''}"
        )
        raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
    places = splits or {"all": ""}
    split_of = {name: next((s for s, p in places.items() if name.startswith(p)), None)
                for name in labels}  # fmt: skip
    outside = sorted(name for name, split in split_of.items() if split is None)
    if outside:
        reason = f"with split folders under dataset.root, these files are in none: {outside[:5]}"
        raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
    classes = sorted(set(labels.values()))
    if len(classes) < 2:
        reason = f"it gives one label only ({classes[0]}): a classifier needs at least two"
        raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
    for split in places.keys() - {"train", "all"}:
        absent = sorted({labels[n] for n, s in split_of.items() if s == split}
                        - {labels[n] for n, s in split_of.items() if s == "train"})  # fmt: skip
        if absent:
            reason = f"labels of its {split} files are absent from its train files: {absent}"
            raise ConfigError(invalid("dataset.labels_csv", csv_name, reason))
    index = {name: i for i, name in enumerate(classes)}
    scan = FolderScan(classes, {split: [] for split in places})
    for name in sorted(labels):
        scan.pictures[split_of[name]].append((name, index[labels[name]]))
    for name in sorted(listing.files.keys() - labels.keys()):
        scan.skip(passed_over(name) or "not in the CSV", name.rsplit("/", 1)[-1])
    return scan


def _with_extensions(labels: dict[str, str], listing: Listing) -> dict[str, str]:
    """The CSV's names with the extension of the one picture each names without it, as
    Kaggle's label files give ids (``001451`` for ``001451.jpg``); other names as they are."""
    stems: dict[str, list[str]] = {}
    for name in listing.files:
        if is_picture_name(name):
            stems.setdefault(name.rsplit(".", 1)[0], []).append(name)
    matched = {name: stems[name][0] for name in labels
               if name not in listing.files and len(stems.get(name, ())) == 1}  # fmt: skip
    if matched:
        first = next(iter(matched.items()))
        log.info(
            "Labels CSV: %d file names without their extension, matched to the one picture of "
            "each name (%s -> %s)", len(matched), *first,
        )  # fmt: skip
    return {matched.get(name, name): label for name, label in labels.items()}


def _found_elsewhere(name: str, listing: Listing) -> str:
    """``; it is at images/001451.jpg`` where a missing file's name is found in a folder below
    the root (the CSV's names are then relative to another folder), else ``""``."""
    base = name.rsplit("/", 1)[-1]
    for file in sorted(listing.files):
        last = file.rsplit("/", 1)[-1]
        if base in (last, last.rsplit(".", 1)[0]):
            return f"; {name} is at {file}: give dataset.root the folder the names start from"
    return ""
