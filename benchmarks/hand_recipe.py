"""The book's MNIST recipe written by hand in plain PyTorch: the yardstick for the whole command.

What ``python -m ch12_lightning.train experiment=mnist_book`` does, as a person who knows
PyTorch well would write it without a framework: the 60,000 training digits decoded once into a
normalized tensor, the same 55,000 / 5,000 split, the 784-32-16-10 ReLU MLP, Adam (lr 1e-3,
torch's default implementation), batch 64, 20 epochs, validation accuracy after each epoch, the
best epoch's weights saved to a file, and the test set scored with them. One intra-op thread,
like the project's default. Prints one JSON line: the accuracies (the benchmark
times the whole process from outside).

    python benchmarks/hand_recipe.py <folder holding MNIST/raw (extracted)> <output folder>
"""

import argparse
import json
from pathlib import Path

import torch
from torch import nn
from torchvision.datasets import MNIST

MEAN, STD = 0.1307, 0.3081
BATCH_SIZE = 64


def load(root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    data = MNIST(root, train=train, download=False)
    images = data.data.flatten(1).float().div_(255).sub_(MEAN).div_(STD)
    return images, data.targets


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    model.eval()
    correct = sum(
        (model(inputs[i : i + 1000]).argmax(1) == targets[i : i + 1000]).sum().item()
        for i in range(0, len(targets), 1000)
    )
    model.train()
    return correct / len(targets)


def main(root: str, out: Path, epochs: int, val_size: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(1)
    inputs, targets = load(root, train=True)
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(1))
    train, val = order[:-val_size], order[-val_size:]
    x_train, y_train, x_val, y_val = inputs[train], targets[train], inputs[val], targets[val]
    model = nn.Sequential(
        nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    out.mkdir(parents=True, exist_ok=True)
    best = -1.0
    for _ in range(epochs):
        shuffled = torch.randperm(len(y_train))
        for start in range(0, len(y_train), BATCH_SIZE):
            index = shuffled[start : start + BATCH_SIZE]
            loss = loss_fn(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        val_acc = accuracy(model, x_val, y_val)
        if val_acc > best:
            best = val_acc
            torch.save(model.state_dict(), out / "best.pt")
    model.load_state_dict(torch.load(out / "best.pt", weights_only=True))
    test_acc = accuracy(model, *load(root, train=False))
    print(json.dumps({"val_acc_best": best, "test_acc": test_acc}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder holding MNIST/raw, extracted")
    parser.add_argument("out", type=Path, help="where the best weights are saved")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--val-size", type=int, default=5000)
    args = parser.parse_args()
    main(args.root, args.out, args.epochs, args.val_size)
