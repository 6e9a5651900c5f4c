"""Pictures of a run as matplotlib Figures that a Jupyter cell shows, whatever the backend.

A Figure of its own, drawn by Agg, needs no pyplot: no backend to choose, no global state between
runs. But IPython shows a plain Figure as a picture only where pyplot's inline backend has
registered its formatter (``%matplotlib inline``); once anything has chosen Agg (the project's own
PNG writing, ``MPLBACKEND=Agg``) the cell shows ``<Figure size ... with 1 Axes>``. ``ShownFigure``
carries Jupyter's display protocol itself (``_repr_png_``), so it shows as the value of a cell and
through ``display()``, and still saves to files as any Figure does.
"""

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from ch12_lightning.errors import InputError

# Pixels above a titled picture for its title (12-point text at 100 dots per inch).
TITLE_BAND = 30


class MissingPicture(InputError, FileNotFoundError):
    """A picture the run did not draw; a cell shows the message alone."""


class ShownFigure(Figure):
    """A Figure that IPython displays as its PNG."""

    def _repr_png_(self) -> bytes:
        png = io.BytesIO()
        self.savefig(png, format="png")
        return png.getvalue()


def picture_figure(picture: Image.Image, title: str = "") -> ShownFigure:
    """``picture`` pixel for pixel (at 100 dots per inch), with ``title`` above it."""
    width, height = picture.size
    band = TITLE_BAND if title else 0
    figure = ShownFigure(figsize=(width / 100, (height + band) / 100), dpi=100)
    axes = figure.add_axes((0, 0, 1, height / (height + band)))
    axes.imshow(np.asarray(picture.convert("RGB")))
    axes.set_axis_off()
    if title:  # in the band above the picture, however tall the picture is
        figure.suptitle(title, y=1 - 4 / (height + band), va="top")
    return figure


def text_figure(text: str) -> ShownFigure:
    """A line of text where a picture would be (a model that gets everything right)."""
    figure = ShownFigure(figsize=(6, 0.5), dpi=100)
    figure.text(0.5, 0.5, text, ha="center", va="center")
    return figure


def saved_picture(path: Path, what: str) -> ShownFigure:
    """The picture a run wrote, or a clear error naming the file it lacks and why."""
    if not path.is_file():
        raise MissingPicture(f"{path} does not exist: the run drew no {what}")
    with Image.open(path) as picture:
        return picture_figure(picture.copy())
