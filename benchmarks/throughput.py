"""Training throughput of ch12_lightning against the hand-written limit and the naive pipeline.

Same model (784-32-16-10 MLP), batch size, optimizer and thread count for all three:

1. naive: torchvision MNIST with a per-sample ToTensor/Normalize transform, a plain DataLoader,
   a hand-written loop;
2. limit: a hand-written loop over the MNIST tensors already in memory (batched indexing);
3. ours: ch12_lightning's own path as ``train`` runs it (DataModule, LightningModule, Trainer with
   the default callbacks and logging).

Each configuration runs in a fresh process (so its peak memory is its own) and reports training
samples per second (median over epochs, the first excluded as warm-up), the wall time of the
whole process and its peak RSS. A second part times the CelebA data preparation: the first build
against a run served from the cache.

    python benchmarks/throughput.py --data-dir ../shared/data
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("naive", "limit", "ours")


def _mnist_tensors(args: argparse.Namespace):
    from ch12_lightning.data.mnist import MNISTDataModule

    datamodule = MNISTDataModule(args.data_dir, args.cache_dir, val_size=args.val_size)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def _model():
    from ch12_lightning.models.mlp import build_mlp

    return build_mlp(784, [32, 16], 10, "relu")


def _hand_loop(batches, model, epochs: int) -> list[float]:
    """Train with a plain loop; return the seconds each epoch took."""
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for inputs, targets in batches():
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_naive(args: argparse.Namespace) -> tuple[list[float], int]:
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from torchvision.datasets import MNIST

    datamodule = _mnist_tensors(args)  # extracts the archives
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.1307, 0.3081)])
    dataset = MNIST(datamodule.root, train=True, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    return _hand_loop(lambda: loader, _model(), args.epochs), len(dataset)


def run_limit(args: argparse.Namespace) -> tuple[list[float], int]:
    import torch

    train = _mnist_tensors(args).splits["train"]
    inputs, targets = train.inputs, train.targets

    def batches():
        order = torch.randperm(len(targets))
        for start in range(0, len(targets), args.batch_size):
            index = order[start : start + args.batch_size]
            yield inputs[index], targets[index]

    return _hand_loop(batches, _model(), args.epochs), len(targets)


def run_ours(args: argparse.Namespace) -> tuple[list[float], int]:
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.callbacks import Callback

    from ch12_lightning import config_dir
    from ch12_lightning.pipeline import build, prepare

    overrides = [
        f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={args.cache_dir}",
        f"paths.root_dir={args.out_dir}",
        f"paths.output_dir={args.out_dir}/ours",
        f"dataset.batch_size={args.batch_size}",
        f"dataset.val_size={args.val_size}",
        f"trainer.max_epochs={args.epochs}",
        f"torch_num_threads={args.threads}",
        f"trainer.accelerator={args.accelerator}",
    ]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)

    class EpochTimer(Callback):
        """Time from the first to the last training batch of each epoch (no validation)."""

        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_validation_start(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking:
                self.seconds.append(time.perf_counter() - self.start)

    prepare(cfg)
    datamodule, model, trainer = build(cfg)
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    return timer.seconds, len(datamodule.splits["train"])


def one(args: argparse.Namespace) -> None:
    """Run one configuration in this process and print its figures as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    start = time.perf_counter()
    seconds, samples = {"naive": run_naive, "limit": run_limit, "ours": run_ours}[args.mode](args)
    rates = [samples / s for s in seconds[1:]] or [samples / seconds[0]]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"samples_per_s": statistics.median(rates), "epochs": len(seconds)}
    figures |= {"run_s": time.perf_counter() - start, "peak_mb": peak_mb}
    print(json.dumps(figures))


def measure(mode: str, batch_size: int, args: argparse.Namespace) -> dict:
    epochs = args.naive_epochs if mode == "naive" else args.epochs
    command = [
        sys.executable, __file__, "--one", mode, "--batch-size", str(batch_size),
        "--epochs", str(epochs), "--threads", str(args.threads), "--data-dir", args.data_dir,
        "--cache-dir", args.cache_dir, "--out-dir", args.out_dir,
        "--accelerator", args.accelerator, "--val-size", str(args.val_size),
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures | {"wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("CH12_REAL_DATA") or os.environ.get("CH12_DATA_DIR", "data")
    parser.add_argument("--data-dir", default=default_data, help="folder holding MNIST/raw")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "ch12_bench"))
    parser.add_argument("--out-dir", default=str(Path(tempfile.gettempdir()) / "ch12_bench_out"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--epochs", type=int, default=4, help="epochs; the first is warm-up")
    parser.add_argument("--naive-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--val-size", type=int, default=5000, help="held out of training")
    parser.add_argument("--accelerator", default="cpu", help="cpu, or gpu where there is one")
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        args.mode = args.one
        one(args)
        return
    print(f"threads={args.threads} accelerator={args.accelerator} data={args.data_dir}")
    print(f"{'batch':>5} {'pipeline':>8} {'samples/s':>10} {'run s':>7} {'wall s':>7} {'MB':>6}")
    for batch_size in args.batch_sizes:
        figures = {mode: measure(mode, batch_size, args) for mode in MODES}
        for mode, f in figures.items():
            print(
                f"{batch_size:>5} {mode:>8} {f['samples_per_s']:>10.0f} {f['run_s']:>7.1f} "
                f"{f['wall_s']:>7.1f} {f['peak_mb']:>6.0f}"
            )
        ours = figures["ours"]["samples_per_s"]
        print(
            f"{batch_size:>5} ratios: ours/limit {ours / figures['limit']['samples_per_s']:.2f}, "
            f"ours/naive {ours / figures['naive']['samples_per_s']:.1f}"
        )


if __name__ == "__main__":
    main()
