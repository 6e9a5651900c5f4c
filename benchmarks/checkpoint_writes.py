"""What writing checkpoints whole costs: ``AtomicCheckpointIO`` against Lightning's own.

    python benchmarks/checkpoint_writes.py [--sizes-mb 0.32 10 100] [--rounds 7] [--saves 20]

Both save the same checkpoint into the same folder, in alternating rounds (the machine is shared
and noisy); printed: the median time per save of each and their ratio. Lightning's
``TorchCheckpointIO`` serializes into memory too, then writes through fsspec into the system's
temporary folder and moves the file; ours writes beside the final path and renames it.
0.32 MB is the MNIST MLP's checkpoint (weights and Adam's state).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ch12_lightning.run.checkpoints import AtomicCheckpointIO


def seconds_per_save(io: TorchCheckpointIO, state: dict, path: Path, saves: int) -> float:
    start = time.perf_counter()
    for _ in range(saves):
        io.save_checkpoint(state, path)
    return (time.perf_counter() - start) / saves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[0.32, 10, 100])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--saves", type=int, default=20)
    args = parser.parse_args()
    writers = {"Lightning's TorchCheckpointIO": TorchCheckpointIO(), "ours": AtomicCheckpointIO()}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "last.ckpt"
        for size in args.sizes_mb:
            weights = torch.randn(int(size * 1e6 / 4))
            state = {"state_dict": {"weights": weights}, "epoch": 0, "global_step": 1}
            times: dict[str, list[float]] = {name: [] for name in writers}
            for _ in range(args.rounds):
                for name, io in writers.items():
                    times[name].append(seconds_per_save(io, state, path, args.saves))
            medians = {name: statistics.median(values) for name, values in times.items()}
            cells = ", ".join(f"{name} {1e3 * t:.2f} ms" for name, t in medians.items())
            ratio = medians["ours"] / medians["Lightning's TorchCheckpointIO"]
            print(f"{size:g} MB checkpoint, median per save: {cells}; ours/Lightning {ratio:.2f}")


if __name__ == "__main__":
    main()
