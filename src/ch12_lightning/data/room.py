"""Will a data set fit? The memory and disk a cache of decoded images needs, checked against
what this machine (or its container) has, before an hour of decoding rather than after."""

import math
import os
import shutil
import sys
from pathlib import Path

from ch12_lightning.errors import ConfigError

GB = 1e9
# Besides the pixels: a chunk per decoding process, the targets, the serialization's buffers.
MEMORY_MARGIN = 1.1


class NoRoomError(ConfigError):
    """The chosen settings need more memory or disk than there is."""


def available_memory() -> int:
    """Bytes of memory this process can still use: the kernel's MemAvailable, or less where a
    cgroup (a container, a SLURM job) caps the process."""
    available = _meminfo_available()
    cgroup = Path("/sys/fs/cgroup")
    limit, used = _read_int(cgroup / "memory.max"), _read_int(cgroup / "memory.current")
    if limit is not None and used is not None:
        available = min(available, limit - used)
    return max(available, 0)


def check_room(
    images: int,
    channels: int,
    image_size: int,
    cache_folder: Path,
    memory_limit_gb: float | None,
    title: str,
    fewer_images: str,
) -> None:
    """Refuse at once, with the figures and settings that would fit, when ``images`` of
    ``channels`` x ``image_size``^2 uint8 pixels cannot be held in memory or written to
    ``cache_folder``.

    ``memory_limit_gb`` (``dataset.memory_limit_gb``) replaces the machine's available memory.
    The message names the data set by ``title`` and ``fewer_images`` says which of its settings
    select fewer images.
    """
    bytes_per_image = channels * image_size**2
    pixels = images * bytes_per_image
    memory = available_memory() if memory_limit_gb is None else int(memory_limit_gb * GB)
    disk = shutil.disk_usage(_existing(cache_folder)).free
    needed = {"memory": (pixels * MEMORY_MARGIN, memory), "disk": (pixels, disk)}
    short = [(what, need, have) for what, (need, have) in needed.items() if need > have]
    if not short:
        return
    room = min(have / MEMORY_MARGIN if what == "memory" else have for what, _, have in short)
    fits = max(int(room // bytes_per_image), 0)
    # Pixels per image are channels x size^2: the largest size at which all images fit.
    size = math.isqrt(max(int(room / images / channels), 0))
    where = "memory (dataset.memory_limit_gb)" if memory_limit_gb is not None else "memory"
    lacks = "; ".join(
        f"{need / GB:.2f} GB of {where if what == 'memory' else f'disk in {cache_folder}'}, "
        f"{max(have, 0) / GB:.2f} GB available"
        for what, need, have in short
    )
    raise NoRoomError(
        f"These {title} settings select {images:,} images of {bytes_per_image:,} bytes "
        f"({pixels / GB:.2f} GB of 8-bit pixels) and need {lacks}. At most {fits:,} images of "
        f"this size fit: {fewer_images}, use "
        f"dataset.image_size={size} or less (bytes grow with its square), "
        "dataset.grayscale=true (a third of RGB), or set paths.cache_dir to a larger disk."
    )


def _meminfo_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other Unix systems
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return sys.maxsize  # unknown: do not refuse on a guess


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):  # absent, or "max": no cgroup limit
        return None


def _existing(folder: Path) -> Path:
    """The folder, or its nearest existing parent (the cache folder may not exist yet)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder
