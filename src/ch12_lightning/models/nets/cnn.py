"""A small convolutional network for pictures: the building blocks of the chapters after this one,
on this chapter's data (MNIST digits, CelebA faces)."""

from collections.abc import Sequence

from torch import nn

from ch12_lightning.errors import ConfigError
from ch12_lightning.errors.rules import (
    FRACTION,
    POSITIVE_INT,
    Rule,
    boolean,
    fraction,
    positive_int,
    positive_ints,
)
from ch12_lightning.models.nets import ACTIVATION_RULE, activation_layer, invalid_setting

POOL = 2  # each block's max pooling halves the height and width


class CNN(nn.Sequential):
    """One block per entry of ``channels``: a convolution with ``kernel_size`` (padded so that it
    keeps the picture's size), batch normalization if ``batch_norm``, the activation, and 2x2 max
    pooling. Then the features are flattened, dropped out with ``dropout``, and a linear head
    gives the outputs.

    The input must be pictures, ``(channels, height, width)``, in which every block's kernel
    fits: the constructor says which setting to change otherwise.
    """

    setting_rules: tuple[Rule, ...] = (
        ("channels", positive_ints, "must be a non-empty list of positive integers, e.g. [16,32]"),
        ("kernel_size", positive_int, POSITIVE_INT),
        ACTIVATION_RULE,
        ("batch_norm", boolean, "must be true or false"),
        ("dropout", fraction, FRACTION),
    )

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        problem = _misfit(type(self), input_shape, channels, kernel_size)
        if problem:
            raise problem
        depth, height, width = input_shape
        layers: list[nn.Module] = []
        for out in channels:
            # Batch norm has a shift of its own: the convolution's bias would duplicate it.
            layers.append(nn.Conv2d(depth, out, kernel_size, padding="same", bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers += [activation_layer(activation), nn.MaxPool2d(POOL)]
            depth, height, width = out, height // POOL, width // POOL
        layers.append(nn.Flatten())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(depth * height * width, num_outputs))
        super().__init__(*layers)


def _misfit(
    network: type, input_shape: Sequence[int], channels: Sequence[int], kernel_size: int
) -> ConfigError | None:
    """Why pictures of ``input_shape`` cannot pass through these blocks, or None."""
    if len(input_shape) != 3:
        reason = (
            f"the data set gives inputs of shape {list(input_shape)}, not pictures (channels, "
            "height, width), and a convolutional network needs pictures; use model=mlp"
        )
        return invalid_setting("net", f"{network.__module__}.{network.__qualname__}", reason)
    height, width = input_shape[1:]
    picture, side = f"the {height}x{width} pictures", min(height, width)
    if kernel_size > side:
        reason = f"a kernel must fit in {picture}; use at most {side}"
        return invalid_setting("kernel_size", kernel_size, reason)
    for block in range(1, len(channels)):
        size = f"{height // POOL**block}x{width // POOL**block}"
        if kernel_size > side // POOL**block:
            reason = (
                f"block {block + 1} sees {size} features ({picture} halved {block} times), "
                f"fewer than the kernel's {kernel_size}x{kernel_size}; use at most {block} blocks "
                "or a smaller model.kernel_size"
            )
            return invalid_setting("channels", list(channels), reason)
    if side // POOL ** len(channels) < 1:
        reason = f"{len(channels)} blocks halve {picture} to nothing; use fewer blocks"
        return invalid_setting("channels", list(channels), reason)
    return None
