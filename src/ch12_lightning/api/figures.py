"""Pictures of a run as matplotlib Figures, which a notebook shows inline. A Figure of its own,
drawn by Agg, needs no pyplot: no backend to choose, no global state between runs."""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image


def picture_figure(picture: Image.Image, title: str = "") -> Figure:
    """``picture`` pixel for pixel (at 100 dots per inch), with ``title`` above it."""
    width, height = picture.size
    figure = Figure(figsize=(width / 100, height / 100 + (0.3 if title else 0)), dpi=100)
    axes = figure.add_axes((0, 0, 1, height / (height + (30 if title else 0))))
    axes.imshow(np.asarray(picture.convert("RGB")))
    axes.set_axis_off()
    if title:
        figure.suptitle(title, y=0.99, va="top")
    return figure


def text_figure(text: str) -> Figure:
    """A line of text where a picture would be (a model that gets everything right)."""
    figure = Figure(figsize=(6, 0.5), dpi=100)
    figure.text(0.5, 0.5, text, ha="center", va="center")
    return figure


def saved_picture(path: Path, what: str) -> Figure:
    """The picture a run wrote, or a clear error naming the file it lacks and why."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run drew no {what}")
    with Image.open(path) as picture:
        return picture_figure(picture.copy())
