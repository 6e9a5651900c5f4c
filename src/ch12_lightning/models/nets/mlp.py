"""The chapter's multilayer perceptron, of configurable depth, width and activation."""

import math
from collections.abc import Sequence

from torch import nn

from ch12_lightning.errors.rules import FRACTION, POSITIVE_INTS, Rule, fraction, positive_ints
from ch12_lightning.models.nets import ACTIVATION_RULE, activation_layer


class MLP(nn.Sequential):
    """Flatten, then Linear -> activation (-> dropout) per hidden layer, then a Linear to the
    outputs. With no hidden layers it is one ``nn.Linear``: the chapter's linear regression.

    Any input shape: a picture is flattened into its pixels, as the chapter does.
    """

    setting_rules: tuple[Rule, ...] = (
        ("hidden_sizes", positive_ints, POSITIVE_INTS),
        ACTIVATION_RULE,
        ("dropout", fraction, FRACTION),
    )

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        hidden_sizes: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), activation_layer(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_outputs))
        super().__init__(*layers)
