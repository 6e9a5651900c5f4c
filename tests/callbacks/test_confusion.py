"""The confusion matrix picture: every label inside it, whatever the class names."""

import numpy as np
import pytest

from ch12_lightning.callbacks.confusion import confusion_picture
from ch12_lightning.callbacks.publish import DISPLAY_WIDTH


@pytest.mark.parametrize(
    "names",
    [
        ["setosa", "versicolor", "virginica"],  # Iris's: long names pushed "true class" out
        [str(digit) for digit in range(10)],
        ["female", "male"],
    ],
)
def test_every_label_is_inside_the_picture(names: list[str]):
    counts = np.diag(np.full(len(names), 1000)) + 7
    picture = confusion_picture(counts, names, "test: a title")
    assert picture.width == DISPLAY_WIDTH
    gray = np.asarray(picture.convert("L"))
    # The edges are background: nothing drawn reaches them (no label cut off).
    for edge in (gray[:, :2], gray[:, -2:], gray[:2], gray[-2:]):
        assert edge.min() == 255
