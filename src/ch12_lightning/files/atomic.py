"""Small helpers shared by the pipeline, data modules and the sweep summary (stdlib only)."""

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class NoSpaceError(OSError):
    """A write that the disk had no room for, with the bytes it needed (``needed``, if known)."""

    def __init__(self, path: Path, needed: int | None) -> None:
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        self.needed = needed


@contextmanager
def atomic_path(path: str | Path, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; once the block succeeds, rename it to ``path``.

    Readers see either the old file or the complete new one, never half of it; a failed write
    leaves no temporary file behind. A full disk raises ``NoSpaceError`` naming ``path`` and
    ``size``, the bytes the file needs (if the caller knows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # as open() would create it; mkstemp makes it private
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in NO_SPACE and not isinstance(err, NoSpaceError):
            raise NoSpaceError(path, size) from err
        raise


def write_bytes_atomic(path: str | Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)


def write_serialized_atomic(path: str | Path, save: Callable[[BinaryIO], object]) -> None:
    """Write what ``save`` writes into a file object to ``path``, whole or not at all. It is
    serialized in memory first, so that a full disk can say how many bytes the file needed."""
    buffer = io.BytesIO()
    save(buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
