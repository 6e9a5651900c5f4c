"""The picture caches on disk (CelebA's, image folders'): find them, describe them, prune them.

Every combination of settings and files gets its own cache file, and nothing removes them as
settings change, so they pile up unseen (GBs each). This module makes them visible
(``./ch12 cache list``, and one summary line logged on each run that uses one) and lets the
user remove them (``./ch12 cache prune``). Stdlib only: it must not slow down ``--help`` or a
run.

The layout, written by ``data/picture_cache.py``, in ``<cache_dir>/celeba/`` and
``<cache_dir>/image_folder/``:

- ``<key>.pt``: the tensors; ``<key>.json``: a sidecar written after it, whose mtime each run
  that uses the cache touches (so it is the "last used" time);
- ``<key>.pt`` alone: a format-1 cache from an older version (no description; never used again,
  since the key now includes the format);
- ``.<name>.<random>.tmp``: a temporary file of ``files.atomic.atomic_path``, left by a killed
  writer.

Other folders of ``<cache_dir>`` (MNIST extractions, ...) are only counted, never removed.
"""

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# The folders of picture caches, and their data sets' names.
CACHE_KINDS = {"celeba": "CelebA", "image_folder": "image-folder"}
# Display names of the other folders of the cache folder (by data module).
FOLDER_NAMES = {"mnist": "MNIST"}
# A temporary file modified this recently may belong to a writer still at work: left alone.
TEMPORARY_GRACE_S = 3600.0
COMMANDS_HINT = "`./ch12 cache list` shows them, `./ch12 cache prune` removes old ones"


@dataclass
class CacheEntry:
    """One picture cache (its .pt and .json files), or a leftover temporary file."""

    key: str
    files: list[Path]
    size: int
    last_used: float
    created: float | str | None = None
    images: int | None = None
    summary: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    kind: str = "cache"  # "cache", "format 1", "no cache file", "bad sidecar" or "temporary"
    dataset: str = "CelebA"  # the data set's name (CACHE_KINDS)

    @property
    def is_temporary(self) -> bool:
        return self.kind == "temporary"

    def describe(self) -> str:
        """What the cache holds, in one line."""
        if self.kind == "format 1":
            return "no description, written by an older version"
        if self.kind == "temporary":
            return "temporary file left by an interrupted write"
        if self.kind == "no cache file":
            return f"description only, its {self.key}.pt is gone"
        if self.kind == "bad sidecar":
            return f"{self.key}.json cannot be read"
        return self.summary or "no summary"


def human_size(size: float) -> str:
    """Decimal units as disks are sold: 812 B, 9.87 MB, 52 MB, 1.23 GB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            break
        size /= 1000
    if unit == "B":
        return f"{int(size)} B"
    return f"{size:.2f} {unit}" if size < 10 else f"{size:.0f} {unit}"


def cache_entries(cache_dir: Path) -> list[CacheEntry]:
    """The picture caches and leftover temporaries in ``cache_dir``, most recently used first.

    Files that vanish while they are read (another process pruning) are skipped, never raised.
    """
    entries = []
    for folder_name, dataset in CACHE_KINDS.items():
        for entry in _entries_in(Path(cache_dir) / folder_name):
            entry.dataset = dataset
            entries.append(entry)
    return sorted(entries, key=lambda e: (-e.last_used, e.key))


def _entries_in(folder: Path) -> list[CacheEntry]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    stats = {}
    for name in names:
        try:
            stats[name] = (folder / name).stat()
        except OSError:
            continue
    entries = []
    for name, stat in stats.items():
        path = folder / name
        if name.startswith(".") and name.endswith(".tmp"):
            entries.append(CacheEntry(name, [path], stat.st_size, stat.st_mtime, kind="temporary"))
        elif name.endswith(".pt") and not name.startswith("."):
            key = name[: -len(".pt")]
            sidecar = stats.get(f"{key}.json")
            entry = _entry(folder, key, stat, sidecar)
            if entry is not None:
                entries.append(entry)
        elif name.endswith(".json") and not name.startswith("."):
            key = name[: -len(".json")]
            if f"{key}.pt" not in stats:
                entries.append(
                    CacheEntry(key, [path], stat.st_size, stat.st_mtime, kind="no cache file")
                )
    return entries


def _entry(
    folder: Path, key: str, pt: os.stat_result, sidecar: os.stat_result | None
) -> CacheEntry | None:
    pt_path = folder / f"{key}.pt"
    if sidecar is None:
        return CacheEntry(key, [pt_path], pt.st_size, pt.st_mtime, pt.st_mtime, kind="format 1")
    json_path = folder / f"{key}.json"
    files = [pt_path, json_path]
    size = pt.st_size + sidecar.st_size
    try:
        meta = json.loads(json_path.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return None  # pruned meanwhile
    except (OSError, ValueError):
        return CacheEntry(key, files, size, sidecar.st_mtime, pt.st_mtime, kind="bad sidecar")
    settings = meta.get("settings")
    images = meta.get("images")
    return CacheEntry(
        key,
        files,
        size,
        last_used=sidecar.st_mtime,
        created=meta.get("created") or pt.st_mtime,
        images=images if isinstance(images, int) else None,
        summary=str(meta["summary"]) if meta.get("summary") else None,
        settings=settings if isinstance(settings, dict) else {},
    )


def other_folders(cache_dir: Path) -> list[tuple[str, int]]:
    """Each folder of ``cache_dir`` other than the picture caches' (name, total bytes), by
    name."""
    try:
        names = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    folders = []
    for name in names:
        path = Path(cache_dir) / name
        if name not in CACHE_KINDS and path.is_dir() and not path.is_symlink():
            folders.append((FOLDER_NAMES.get(name, name), _tree_size(path)))
    return folders


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder, onerror=lambda _: None):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def cache_folder_summary(cache_dir: Path, hint: bool = True) -> str:
    """One line on what the cache folder holds, logged on each run that uses a picture cache
    so it never grows unseen (``hint``: with the commands that list and prune it). Fast (no file
    is opened but the small sidecars) and never raises."""
    try:
        return _summary(Path(cache_dir), hint)
    except Exception as err:  # a log line must never stop a run
        return f"the cache folder {cache_dir} could not be read ({type(err).__name__}: {err})"


def _summary(cache_dir: Path, hint: bool) -> str:
    if not cache_dir.is_dir():
        return f"the cache folder {cache_dir} does not exist yet (nothing cached)"
    entries = cache_entries(cache_dir)
    temporaries = [e for e in entries if e.is_temporary]
    folders = other_folders(cache_dir)
    parts = []
    for dataset in CACHE_KINDS.values():
        caches = [e for e in entries if not e.is_temporary and e.dataset == dataset]
        if caches:
            size = human_size(_total(caches))
            parts.append(f"{_count(len(caches), f'{dataset} cache')} ({size})")
    if temporaries:
        size = human_size(_total(temporaries))
        parts.append(f"{_count(len(temporaries), 'leftover temporary file')} ({size})")
    parts += [f"{name} ({human_size(size)})" for name, size in folders]
    if not parts:
        return f"the cache folder {cache_dir} is empty"
    total = _total(entries) + sum(size for _, size in folders)
    held = f"the cache folder {cache_dir} holds {human_size(total)}: {', '.join(parts)}"
    return f"{held}; {COMMANDS_HINT}" if hint else held


def list_caches(cache_dir: Path, now: float | None = None) -> str:
    """The report of ``./ch12 cache list``: every picture cache, then the other folders."""
    now = time.time() if now is None else now
    cache_dir = Path(cache_dir)
    lines = [cache_folder_summary(cache_dir, hint=False)]
    for folder_name, dataset in CACHE_KINDS.items():
        entries = [e for e in cache_entries(cache_dir) if e.dataset == dataset]
        if entries:
            title = f"{dataset} caches in {cache_dir / folder_name}, most recently used first:"
            lines += ["", title[0].upper() + title[1:], *_listed(entries, now)]
    folders = other_folders(cache_dir)
    if folders:
        lines += ["", f"Other folders in {cache_dir} (prune leaves them alone):"]
        lines += [f"  {name}  {human_size(size)}" for name, size in folders]
    return "\n".join(lines)


def _listed(entries: list[CacheEntry], now: float) -> list[str]:
    lines = []
    for entry in entries:
        when = _when(entry.last_used, now)
        if entry.is_temporary:
            fresh = now - entry.last_used < TEMPORARY_GRACE_S
            note = "may still be written; prune waits an hour" if fresh else "prune removes it"
            lines.append(f"  {entry.key}  {human_size(entry.size)}  modified {when}")
            lines.append(f"      {entry.describe()} ({note})")
            continue
        images = f"{entry.images:,} images  " if entry.images is not None else ""
        created = f"created {_when(entry.created, now)}  " if entry.kind == "cache" else ""
        lines.append(f"  {entry.key}  {human_size(entry.size)}  {images}{created}last used {when}")
        lines.append(f"      {entry.describe()}")
        if entry.settings:
            settings = " ".join(f"{k}={v}" for k, v in sorted(entry.settings.items()))
            lines.append(f"      {settings}")
    return lines


def select_for_pruning(
    entries: list[CacheEntry],
    older_than_days: float | None = None,
    keep_last: int | None = None,
    remove_all: bool = False,
    now: float | None = None,
) -> list[CacheEntry]:
    """The entries to remove: caches not used for ``older_than_days`` and outside the
    ``keep_last`` most recently used (both must hold when both are given), or all of them.

    Leftover temporaries go whatever the selector, unless modified within the last hour, when
    a writer may still be at work. With no selector nothing is selected: pruning never
    removes everything by default.
    """
    if older_than_days is None and keep_last is None and not remove_all:
        return []
    now = time.time() if now is None else now
    caches = sorted((e for e in entries if not e.is_temporary), key=lambda e: (-e.last_used, e.key))
    chosen = []
    for rank, entry in enumerate(caches):
        old = older_than_days is None or now - entry.last_used > older_than_days * 86400
        beyond = keep_last is None or rank >= keep_last
        if remove_all or (old and beyond):
            chosen.append(entry)
    stale = [e for e in entries if e.is_temporary and now - e.last_used >= TEMPORARY_GRACE_S]
    return chosen + stale


def prune(entries: list[CacheEntry], dry_run: bool = False) -> list[str]:
    """Remove ``entries`` (the .pt first, so an interruption leaves a sidecar that list shows and
    prune removes, never a cache that looks like an old one). Returns one line per entry and a
    last line with the space freed."""
    lines, freed = [], 0
    verb = "would remove" if dry_run else "removed"
    for entry in entries:
        if not dry_run:
            try:
                for path in entry.files:
                    path.unlink(missing_ok=True)
            except OSError as err:
                lines.append(f"could not remove {entry.key}: {err}")
                continue
        freed += entry.size
        what = entry.key if entry.is_temporary else f"{entry.dataset} cache {entry.key}"
        lines.append(f"{verb} {what} ({human_size(entry.size)}): {entry.describe()}")
    total = f"{'would free' if dry_run else 'freed'} {human_size(freed)}"
    lines.append(f"{total} ({_count(len(entries), 'entry', 'entries')})")
    return lines


def _total(entries: list[CacheEntry]) -> int:
    return sum(e.size for e in entries)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _when(moment: float | str | None, now: float) -> str:
    if moment is None:
        return "unknown"
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment).timestamp()
        except ValueError:
            return moment
    stamp = datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M")
    days = (now - moment) / 86400
    ago = "today" if days < 1 else f"{_count(int(days), 'day')} ago"
    return f"{stamp} ({ago})"
