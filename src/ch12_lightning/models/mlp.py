"""The chapter's multilayer perceptron, of configurable depth, width and activation."""

from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


def build_mlp(
    input_size: int,
    hidden_sizes: Sequence[int],
    output_size: int,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Flatten, then Linear -> activation (-> dropout) per hidden layer, then a Linear to logits.

    The arguments are checked where the config is (``ch12_lightning.checks.config``).
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_size
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, output_size))
    return nn.Sequential(*layers)
