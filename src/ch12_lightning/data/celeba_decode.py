"""CelebA's JPEGs to 8-bit pixels: resized, in parallel, with a progress line.

This module imports Pillow and NumPy only, so decoding processes start in a fraction of a
second. Each process decodes a chunk of files into one uint8 array that travels back through a
pipe: no tensor handed back through shared memory, so neither the open-file limit (``ulimit -n``)
nor a small ``/dev/shm`` bounds how many images a run can prepare.
"""

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

CHUNK = 256  # files per task: large enough that a task costs far more than its round trip
PROGRESS_SECONDS = 10.0
# JPEG can decode at 1/2, 1/4 or 1/8 scale directly (Pillow's ``draft``). Asking for at least
# twice the target size keeps a real resize after it: against a full decode the pixels differ by
# 0.3-0.6 levels of 255 on average and at most 5 (CelebA, 32 px gray and 64 px RGB), while a
# draft straight to the target size differs by up to 81.
DRAFT_MARGIN = 2


def picture_pixels(picture: Image.Image, image_size: int, grayscale: bool) -> np.ndarray:
    """A picture of any size and mode as a (C, image_size, image_size) uint8 array: RGB,
    resized with Pillow's antialiased bilinear filter, then to luma (ITU-R 601-2) if gray.

    Training data and the pictures ``predict`` is given go through this one function.
    """
    side = image_size * DRAFT_MARGIN
    picture.draft("RGB", (side, side))  # JPEGs only; a no-op for other formats
    resized = picture.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    if grayscale:
        return np.asarray(resized.convert("L"))[None]
    return np.asarray(resized).transpose(2, 0, 1)


def decode_chunk(
    paths: list[str], image_size: int, grayscale: bool
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode ``paths`` into one (N, C, H, W) array; unreadable files stay zero and are
    returned by position with their error text, so the caller can name them."""
    pixels = _pixel_array(len(paths), image_size, grayscale)
    errors = {}
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as picture:
                pixels[i] = picture_pixels(picture, image_size, grayscale)
        except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
            errors[i] = str(err)
    return pixels, errors


def decode_all(
    paths: list[Path], image_size: int, grayscale: bool, workers: int
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode every file into one preallocated array (memory: the result and a chunk per
    worker), with ``workers`` processes (0: in this one); log progress every few seconds."""
    pixels = _pixel_array(len(paths), image_size, grayscale)
    errors: dict[int, str] = {}
    progress = _Progress(len(paths))
    for start, (chunk, chunk_errors) in _decoded_chunks(paths, image_size, grayscale, workers):
        pixels[start : start + len(chunk)] = chunk
        errors.update({start + i: error for i, error in chunk_errors.items()})
        progress.advance(len(chunk))
    progress.finish()
    return pixels, errors


def _pixel_array(count: int, image_size: int, grayscale: bool) -> np.ndarray:
    """Zeros (so an unreadable file's row is defined) of ``count`` images' uint8 pixels."""
    channels = 1 if grayscale else 3
    return np.zeros((count, channels, image_size, image_size), dtype=np.uint8)


def _decoded_chunks(
    paths: list[Path], image_size: int, grayscale: bool, workers: int
) -> Iterator[tuple[int, tuple[np.ndarray, dict[int, str]]]]:
    starts = range(0, len(paths), CHUNK)
    chunks = [[str(path) for path in paths[start : start + CHUNK]] for start in starts]
    if workers == 0 or len(chunks) == 1:
        decoded = (decode_chunk(chunk, image_size, grayscale) for chunk in chunks)
        yield from zip(starts, decoded, strict=True)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        sizes, grays = [image_size] * len(chunks), [grayscale] * len(chunks)
        yield from zip(starts, pool.map(decode_chunk, chunks, sizes, grays), strict=True)


class _Progress:
    """Images done, rate and time left, every ``PROGRESS_SECONDS``, to the run's log."""

    def __init__(self, total: int) -> None:
        self.total = total
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
                "CelebA: decoded %s of %s images (%.0f images/s), about %s left",
                f"{self.done:,}", f"{self.total:,}", rate, _duration(left),
            )  # fmt: skip

    def finish(self) -> None:
        seconds = time.perf_counter() - self.start
        rate = self.total / seconds if seconds > 0 else 0.0
        total = f"{self.total:,}"
        log.info("CelebA: decoded %s images in %.1f s (%.0f images/s)", total, seconds, rate)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
