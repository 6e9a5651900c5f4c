"""Pictures as a notebook holds them (PIL images, NumPy arrays, torch tensors), made into the
same ``Picture``s that files become, so they are prepared for the model exactly as files are.

An array or tensor is taken as 8-bit pixels, as a picture file holds them: integers 0-255
(uint8) as they are, floats 0-1 scaled to 0-255 and rounded (a uint8 picture divided by 255
comes back to the same levels). It becomes a PIL image (gray, RGB, or RGBA, whose transparency is
filled as a file's is) and goes through ``picture_decode.held_picture``: a digit given as an array
gives the tensor that the same digit saved as a PNG file gives, and for MNIST with
``preprocess=none`` the very tensor training used.

The layout is read from the shape, by each library's own convention: NumPy arrays (as PIL and
matplotlib hold pictures) are channels-last, (H, W, C); torch tensors (as torchvision holds them)
channels-first, (C, H, W). A size of 1, 3 or 4 is taken for channels (gray, RGB, RGBA):

- (H, W): one gray picture;
- 3 dimensions, a NumPy array: (H, W, C) if the last size is 1, 3 or 4, else a batch of gray
  pictures (N, H, W), so ``X[:3]`` of MNIST's (N, 28, 28) digits is three digits, not one RGB
  picture; a torch tensor: (C, H, W) if the first size is 1, 3 or 4, else a batch (N, H, W);
- 4 dimensions: a batch, (N, H, W, C) for an array and (N, C, H, W) for a tensor; one whose
  channels sit only at the other place is read so too ((N, 1, H, W) of gray arrays, say).
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ch12_lightning.data.picture_decode import held_picture
from ch12_lightning.errors import ConfigError
from ch12_lightning.trained.predict import HeldPicture, image_files

PictureInput = str | Path | Image.Image | np.ndarray | torch.Tensor
CHANNELS = (1, 3, 4)  # gray, RGB, RGBA
TAKEN = (
    "this run predicts pictures: give files, a folder, PIL images, NumPy arrays of one picture "
    "(H, W), (H, W, C) or a batch (N, H, W), (N, H, W, C), torch tensors of one picture (H, W), "
    "(C, H, W) or a batch (N, H, W), (N, C, H, W) (C: 1, 3 or 4 channels), integers 0-255 "
    "(uint8) or floats 0-1; or a list of these"
)


def not_taken(what: str) -> ConfigError:
    """The one message for anything a picture run cannot predict: what was wrong, then what it
    takes."""
    return ConfigError(f"{what}: {TAKEN}")


def picture_sources(given: PictureInput | Sequence[PictureInput]) -> list[Path | HeldPicture]:
    """The pictures in ``given``, in order: picture files (a folder: its picture files) and
    pictures held in memory, named ``picture 0``, ``picture 1``, ... in the order given."""
    items = list(given) if isinstance(given, list | tuple) else [given]
    if not items:
        raise not_taken("nothing was given")
    sources: list[Path | HeldPicture] = []
    held = 0
    for item in items:
        if isinstance(item, str | Path):
            if not Path(item).expanduser().exists():
                raise not_taken(f"{str(item)!r} is no file or folder")
            sources.extend(image_files(str(item)).files)
            continue
        for image in [item] if isinstance(item, Image.Image) else _images(item):
            sources.append(HeldPicture(Path(f"picture {held}"), held_picture(image)))
            held += 1
    return sources


def _images(item: object) -> list[Image.Image]:
    """The pictures of an array or tensor, as 8-bit PIL images."""
    channels_first = isinstance(item, torch.Tensor)  # torchvision's way; NumPy's, PIL's: last
    if isinstance(item, torch.Tensor):
        item = item.detach().cpu()
        item = (item.double() if item.is_floating_point() else item).numpy()
    if not isinstance(item, np.ndarray):
        raise not_taken(f"a value of type {type(item).__name__} is not a picture")
    batch = _eight_bit(_channels_last_batch(item, channels_first))
    pixels = batch[..., 0] if batch.shape[-1] == 1 else batch  # gray as (H, W): mode L
    return [Image.fromarray(np.ascontiguousarray(picture)) for picture in pixels]


def _channels_last_batch(array: np.ndarray, channels_first: bool) -> np.ndarray:
    """``array`` as (N, H, W, C), by the layout rules of this module's docstring
    (``channels_first``: a torch tensor's convention, else NumPy's)."""
    shape = tuple(array.shape)
    if 0 in shape:
        raise not_taken(f"an array of shape {shape} holds no pixels")
    if array.ndim == 2:
        return array[None, :, :, None]
    if array.ndim == 3:
        if channels_first:
            return array.transpose(1, 2, 0)[None] if shape[0] in CHANNELS else array[..., None]
        return array[None] if shape[-1] in CHANNELS else array[..., None]
    if array.ndim == 4:
        first, last = shape[1] in CHANNELS, shape[-1] in CHANNELS
        if first and (channels_first or not last):
            return array.transpose(0, 2, 3, 1)
        if last:
            return array
    raise not_taken(f"an array of shape {shape} is not a picture nor a batch of pictures")


def _eight_bit(array: np.ndarray) -> np.ndarray:
    """Integer levels 0-255 as uint8; float levels 0-1 scaled to them and rounded."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise not_taken(f"integer levels run from {array.min()} to {array.max()}, not 0-255")
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise not_taken("the levels hold NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise not_taken(
                f"float levels run from {low:.4g} to {high:.4g}, not 0-1 (a normalized tensor? "
                "give the picture before its normalization, which predict applies itself)"
            )
        return np.rint(array.astype(np.float64) * 255).astype(np.uint8)
    raise not_taken(f"levels of dtype {array.dtype} are not pixels")
