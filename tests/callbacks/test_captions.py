"""Captions of the misclassified grid: any class name people give, and its probability whole."""

from PIL import Image, ImageDraw

from ch12_lightning.callbacks.pictures import MARGIN, _fitted, caption_font
from ch12_lightning.callbacks.publish import DISPLAY_WIDTH

CELL = DISPLAY_WIDTH // 3 - 2 * MARGIN


def test_a_long_class_name_is_shortened_and_its_probability_kept():
    draw, font = ImageDraw.Draw(Image.new("RGB", (1, 1))), caption_font()
    fitted = _fitted(draw, "pred Mann_ohne_Bart_und_Brille 0.91", font, CELL)
    assert fitted.startswith("pred Mann_") and fitted.endswith("… 0.91")
    assert draw.textlength(fitted, font=font) <= CELL
    assert _fitted(draw, "pred masculin 0.62", font, CELL) == "pred masculin 0.62"
    assert _fitted(draw, "true Frau_mit_Brille_und_Hut", font, CELL).endswith("…")


def test_accented_and_cyrillic_letters_have_glyphs_of_their_own():
    """A font without a letter draws its one missing-glyph box for all of them."""
    font = caption_font()
    masks = {letter: bytes(font.getmask(letter)) for letter in "éßЁ\uffff"}
    assert len(set(masks.values())) == 4
