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
    """Flatten, then Linear -> activation (-> dropout) per hidden layer, then a Linear to logits."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"Unknown activation {activation!r}; valid names: {', '.join(sorted(ACTIVATIONS))}"
        )
    if not hidden_sizes or not all(isinstance(h, int) and h > 0 for h in hidden_sizes):
        raise ValueError(
            f"hidden_sizes must be a non-empty list of positive integers, got {hidden_sizes!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_size
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    layers.append(nn.Linear(width, output_size))
    return nn.Sequential(*layers)
