"""Picture files to 8-bit pixels: decoded as people have them, resized, in parallel.

The same two steps (``open_picture``, then ``picture_pixels``; ``file_pixels`` is both) turn a
file into the pixels a model sees, for the caches of CelebA and of image folders and for
``predict`` alike, so a picture is prepared the same way wherever it comes from. Decoding
handles pictures as they are found: the EXIF orientation a phone wrote is applied; a file of
several frames gives its first; 16-bit and float pictures are scaled to 8 bits, not clipped; a
transparent canvas is filled with a background that contrasts with what is drawn on it.

This module imports Pillow and NumPy only (and pillow-heif where installed), so decoding processes
start in a fraction of a second. Each process decodes a chunk of files into one uint8 array that
travels back through a pipe: no tensor handed back through shared memory, so neither the open-file
limit (``ulimit -n``) nor a small ``/dev/shm`` bounds how many images a run can prepare. Files may
be members of a zip archive, read in place: each process opens the archive once.

HEIC/HEIF (what iPhones save) is read where ``pillow-heif`` is installed (the ``heic`` extra,
which ``./ch12 setup`` installs): its opener is registered when this module is imported, so in
every decoding process too. Without it, such a file is named with what to do, not as "cannot
identify image file".
"""

import io
import logging
import time
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

HEIF_EXTENSIONS = (".heic", ".heif")
HEIF_HINT = (
    "convert to JPEG, or install pillow-heif to read them (./ch12 setup installs it; "
    "in another environment: pip install pillow-heif)"
)


def _register_heif() -> bool:
    """Whether HEIC/HEIF pictures can be read: pillow-heif's opener registered with Pillow."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


HEIF_READABLE = _register_heif()

CHUNK = 256  # files per task: large enough that a task costs far more than its round trip
PROGRESS_SECONDS = 10.0
# JPEG can decode at 1/2, 1/4 or 1/8 scale directly (Pillow's ``draft``). Asking for at least
# twice the target size keeps a real resize after it: against a full decode the pixels differ by
# 0.3-0.6 levels of 255 on average and at most 5 (CelebA, 32 px gray and 64 px RGB), while a
# draft straight to the target size differs by up to 81.
DRAFT_MARGIN = 2
SMALL_WHAT = "a picture at this run's size"  # predict's words for an image-folder run's pictures
SMALL_SHOWN = 3  # pictures named in the warning about small ones


class UnreadablePicture(ValueError):
    """A file that is not a picture Pillow can decode, or is damaged."""


@dataclass(frozen=True)
class Picture:
    """A decoded picture: 8-bit gray (``L``) or ``RGB``, upright, opaque; with what decoding
    changed, in words."""

    image: Image.Image
    notes: tuple[str, ...] = ()


def open_picture(
    file: str | Path | IO[bytes], draft_side: int | None = None, name: str | None = None
) -> Picture:
    """Decode ``file`` completely (so a damaged file is named here) into a ``Picture``.

    ``draft_side``: a JPEG may be decoded at a reduced scale that keeps both sides at least this
    long (much faster; see ``DRAFT_MARGIN``). ``name``: what the file is called in messages
    (a zip member's archive and name; Pillow would show a buffer's ``repr``)."""
    shown = name or (str(file) if isinstance(file, str | Path) else "the file")
    try:
        with Image.open(file) as opened:
            if draft_side:
                opened.draft("RGB", (draft_side, draft_side))  # JPEGs only
            opened.load()
            return held_picture(opened)
    except UnidentifiedImageError as err:
        if not HEIF_READABLE and shown.lower().endswith(HEIF_EXTENSIONS):
            raise UnreadablePicture(f"a HEIC picture: {HEIF_HINT}") from err
        text = str(err) if shown == str(file) else f"cannot identify image file {shown!r}"
        raise UnreadablePicture(f"{type(err).__name__}: {text}") from err
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as err:
        raise UnreadablePicture(f"{type(err).__name__}: {err}") from err


def small_picture_note(picture: Picture, smallest: int, what: str) -> str | None:
    """A note for a picture with fewer than ``smallest`` pixels a side: training and predict
    warn of the same pictures in the same words (scaled up, it holds little of ``what``)."""
    width, height = picture.image.size
    if min(width, height) < smallest:
        return f"only {width}x{height} pixels: too small to hold {what}"
    return None


def held_picture(image: Image.Image) -> Picture:
    """A decoded image (a file just opened, or a PIL image a program holds) as every picture is
    made: its first frame, upright by its EXIF orientation, 8-bit, opaque. The image itself is
    left as it was."""
    notes: list[str] = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        notes.append(f"first of {frames} frames")
    orientation = image.getexif().get(0x0112, 1)  # the EXIF Orientation tag
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image.copy()
    if orientation != 1:
        notes.append("turned upright (EXIF orientation)")
    return Picture(_opaque(_eight_bit(upright, notes), notes), tuple(notes))


def _eight_bit(image: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit and 32-bit integer and float pictures scaled into 0..255 (Pillow's own
    conversion clips them at 255, which turns a 16-bit picture black and white)."""
    if image.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 1.0 if image.mode == "F" and values.max(initial=0) <= 1 else 65535.0
    top = max(top, float(values.max(initial=0)))
    notes.append(f"{'float' if image.mode == 'F' else '16-bit'} levels scaled to 8 bits")
    return Image.fromarray(np.clip(np.rint(values / top * 255), 0, 255).astype(np.uint8), "L")


def _opaque(image: Image.Image, notes: list[str]) -> Image.Image:
    """The picture without transparency, filled behind with white if what is drawn is dark,
    else black."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode != "RGBA":
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    alpha = np.asarray(image.getchannel("A"))
    if alpha.min() == 255:
        return image.convert("RGB")
    drawn = np.asarray(image.convert("L"))[alpha > 127]
    dark = drawn.size == 0 or float(drawn.mean()) < 128
    background = (255, 255, 255) if dark else (0, 0, 0)
    notes.append(f"transparent areas on {'white' if dark else 'black'}")
    canvas = Image.new("RGB", image.size, background)
    canvas.paste(image, mask=image.getchannel("A"))
    return canvas


def picture_pixels(picture: Image.Image, image_size: int, grayscale: bool) -> np.ndarray:
    """A picture of any size and mode as a (C, image_size, image_size) uint8 array: RGB,
    resized with Pillow's antialiased bilinear filter, then to luma (ITU-R 601-2) if gray."""
    resized = picture.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    if grayscale:
        return np.asarray(resized.convert("L"))[None]
    return np.asarray(resized).transpose(2, 0, 1)


def file_pixels(file: str | Path | IO[bytes], image_size: int, grayscale: bool) -> np.ndarray:
    """A picture file as training data holds it: ``open_picture`` (a JPEG drafted at
    ``DRAFT_MARGIN`` times the size), then ``picture_pixels``."""
    picture = open_picture(file, image_size * DRAFT_MARGIN)
    return picture_pixels(picture.image, image_size, grayscale)


# The zip archive this process reads its files from, opened once per process (see _reading).
_archive: zipfile.ZipFile | None = None


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """The zip archive at ``path``, its members also found by their names with ``/`` where the
    archiver wrote ``\\``: Windows PowerShell 5's ``Compress-Archive`` (and .NET Framework 4.5)
    write ``faces\\female\\x.jpg``, which every other reader takes for one file name."""
    opened = zipfile.ZipFile(path)
    for info in opened.infolist():
        if "\\" in info.filename:
            opened.NameToInfo.setdefault(info.filename.replace("\\", "/"), info)
    return opened


def _open_archive(path: str | None) -> None:
    global _archive
    _archive = open_zip(path) if path else None


@contextmanager
def _reading(archive: str | None) -> Iterator[None]:
    """In this process, read files from ``archive`` (None: from the file system)."""
    _open_archive(archive)
    try:
        yield
    finally:
        if _archive is not None:
            _archive.close()
        _open_archive(None)


def _opened(source: str, image_size: int) -> tuple[Picture, int]:
    """``open_picture`` of a path, or of a member of this process's archive (named in messages
    by the archive and the member, as ``PictureStore.where`` names it), and the CRC-32 of its
    bytes (``content_digest``), read once for both."""
    if _archive is None:
        data, name = Path(source).read_bytes(), source
    else:
        data, name = _archive.read(source), f"{_archive.filename} (member {source})"
    return open_picture(io.BytesIO(data), image_size * DRAFT_MARGIN, name), content_digest(data)


def content_digest(data: bytes) -> int:
    """What identifies a file's content in a run's recorded split: its bytes' CRC-32, as a zip
    stores it, so a picture copied without its modification time is still known as itself."""
    return zlib.crc32(data)


Decoded = tuple[np.ndarray, dict[int, str], dict[int, str], list[int]]


class DecodedFiles(NamedTuple):
    """Every file's pixels (zeros where unreadable), the unreadable ones' errors by position,
    and each file's ``content_digest`` (0 where unreadable)."""

    pixels: np.ndarray
    errors: dict[int, str]
    digests: list[int]


def decode_chunk(sources: list[str], image_size: int, grayscale: bool) -> Decoded:
    """Decode ``sources`` (paths, or members of this process's archive) into one (N, C, H, W)
    array; unreadable files stay zero and are returned by position with their error text, so
    the caller can name them, and so are pictures smaller than ``image_size`` a side with
    ``small_picture_note``'s words (the size is at hand here; predict warns of the same)."""
    pixels = _pixel_array(len(sources), image_size, grayscale)
    errors, small, digests = {}, {}, [0] * len(sources)
    for i, source in enumerate(sources):
        try:
            picture, digests[i] = _opened(source, image_size)
        except (UnreadablePicture, OSError, KeyError, zipfile.BadZipFile) as err:
            errors[i] = str(err)
            continue
        pixels[i] = picture_pixels(picture.image, image_size, grayscale)
        note = small_picture_note(picture, image_size, SMALL_WHAT)
        if note:
            small[i] = note
    return pixels, errors, small, digests


def decode_all(
    sources: list[str],
    image_size: int,
    grayscale: bool,
    workers: int,
    archive: str | None = None,
    title: str = "pictures",
) -> DecodedFiles:
    """Decode every file (paths, or members of the zip ``archive``) into one preallocated array
    (memory: the result and a chunk per worker), with ``workers`` processes (0: in this one);
    log progress every few seconds, naming the data set by ``title``, and one warning line for
    pictures smaller than ``image_size`` a side."""
    pixels = _pixel_array(len(sources), image_size, grayscale)
    errors: dict[int, str] = {}
    small: dict[int, str] = {}
    digests: list[int] = []
    progress = _Progress(len(sources), title)
    chunks = _decoded_chunks(sources, image_size, grayscale, workers, archive)
    for start, (chunk, chunk_errors, chunk_small, chunk_digests) in chunks:
        pixels[start : start + len(chunk)] = chunk
        errors.update({start + i: error for i, error in chunk_errors.items()})
        small.update({start + i: note for i, note in chunk_small.items()})
        digests += chunk_digests
        progress.advance(len(chunk))
    progress.finish()
    _warn_of_small(small, sources, image_size, archive, title)
    return DecodedFiles(pixels, errors, digests)


def _warn_of_small(
    small: dict[int, str], sources: list[str], image_size: int, archive: str | None, title: str
) -> None:
    """One line counting the pictures smaller than the run's size, naming the first few with
    predict's note: scaled up, such a picture holds little of what a class looks like."""
    if not small:
        return
    shown = [f"{sources[i]} ({small[i]})" for i in sorted(small)[:SMALL_SHOWN]]
    more = f" and {len(small) - SMALL_SHOWN} more" if len(small) > SMALL_SHOWN else ""
    where = f" in {archive}" if archive else ""
    log.warning(
        "%s: %d picture%s%s smaller than %d pixels a side (dataset.image_size), scaled up to "
        "it: %s%s. Predict warns of such pictures too; remove them if they are mistakes.",
        title, len(small), "s" * (len(small) != 1), where, image_size, "; ".join(shown), more,
    )  # fmt: skip


def _pixel_array(count: int, image_size: int, grayscale: bool) -> np.ndarray:
    """Zeros (so an unreadable file's row is defined) of ``count`` images' uint8 pixels."""
    channels = 1 if grayscale else 3
    return np.zeros((count, channels, image_size, image_size), dtype=np.uint8)


def _decoded_chunks(
    sources: list[str], image_size: int, grayscale: bool, workers: int, archive: str | None
) -> Iterator[tuple[int, Decoded]]:
    starts = range(0, len(sources), CHUNK)
    chunks = [sources[start : start + CHUNK] for start in starts]
    if workers == 0 or len(chunks) == 1:
        with _reading(archive):
            decoded = (decode_chunk(chunk, image_size, grayscale) for chunk in chunks)
            yield from zip(starts, decoded, strict=True)
        return
    with ProcessPoolExecutor(workers, initializer=_open_archive, initargs=(archive,)) as pool:
        sizes, grays = [image_size] * len(chunks), [grayscale] * len(chunks)
        yield from zip(starts, pool.map(decode_chunk, chunks, sizes, grays), strict=True)


class _Progress:
    """Images done, rate and time left, every ``PROGRESS_SECONDS``, to the run's log."""

    def __init__(self, total: int, title: str) -> None:
        self.total = total
        self.title = title
        self.done = 0
        self.start = self.shown = time.perf_counter()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.shown >= PROGRESS_SECONDS and self.done < self.total:
            self.shown = now
            rate = self.done / (now - self.start)
            left = (self.total - self.done) / rate
            log.info(
                "%s: decoded %s of %s images (%.0f images/s), about %s left",
                self.title, f"{self.done:,}", f"{self.total:,}", rate, _duration(left),
            )  # fmt: skip

    def finish(self) -> None:
        seconds = time.perf_counter() - self.start
        rate = self.total / seconds if seconds > 0 else 0.0
        total = f"{self.total:,}"
        log.info(
            "%s: decoded %s images in %.1f s (%.0f images/s)", self.title, total, seconds, rate
        )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
