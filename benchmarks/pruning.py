"""What pruning saves in ``hparams_search=mnist_optuna``: the same search (same seed, same trial
count) with ``hydra.sweeper.pruner=median`` and with ``pruner=none``.

    python benchmarks/pruning.py --data-dir ../shared/data [--trials 12] [--epochs 20] [--rounds 2]

The two searches of a round run side by side, one core each (each trains with one thread), so
that the load of this shared machine weighs on both alike. Printed per round and search: wall
time of the whole command, trials complete / pruned / failed, epochs and optimizer steps trained
over all trials (the work, free of the machine's noise), the best ``val/acc_best``; then the
pruned search's share of the unpruned one's wall time and steps, median over the rounds, and
the difference of the two bests. The goal: pruning saves at least 40% of the wall time, and its
best is within 0.005 of the unpruned search's.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

PRUNERS = ("median", "none")


def start(pruner: str, args: argparse.Namespace, work: Path) -> subprocess.Popen:
    """Start the search in a folder of its own."""
    folder = work / pruner
    folder.mkdir(parents=True)
    command = [
        sys.executable, "-m", "ch12_lightning.train", "hparams_search=mnist_optuna",
        f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.pruner={pruner}",
        f"trainer.max_epochs={args.epochs}", f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={work / 'cache'}", *args.override,
    ]  # fmt: skip
    log = (folder / "search.log").open("w")
    return subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)


def figures(pruner: str, work: Path, seconds: float) -> dict:
    """The search's figures, read back from its study and its trials' last checkpoints."""
    sweep = work / pruner / "outputs" / "mnist_optuna" / "multiruns" / "mnist_optuna"
    study = optuna.load_study(study_name="mnist_optuna", storage=f"sqlite:///{sweep}/optuna.db")
    states = [trial.state.name for trial in study.trials]
    last = [torch.load(f, weights_only=True) for f in sweep.glob("*/checkpoints/last.ckpt")]
    return {
        "seconds": seconds,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "epochs": sum(checkpoint["epoch"] + 1 for checkpoint in last),
        "steps": sum(checkpoint["global_step"] for checkpoint in last),
        "best": study.best_value,
    }


def round_of(args: argparse.Namespace) -> dict[str, dict]:
    """Both searches side by side; their figures by pruner."""
    with tempfile.TemporaryDirectory(prefix="ch12_pruning_") as folder:
        work = Path(folder)
        began = time.perf_counter()
        searches = {pruner: start(pruner, args, work) for pruner in PRUNERS}
        seconds = {}
        for pruner, process in searches.items():
            if process.wait() != 0:
                log = (work / pruner / "search.log").read_text()
                sys.exit(f"the {pruner} search failed:\n{log[-3000:]}")
            seconds[pruner] = time.perf_counter() - began
        return {pruner: figures(pruner, work, seconds[pruner]) for pruner in PRUNERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("CH12_REAL_DATA") or os.environ.get("CH12_DATA_DIR", "data")
    parser.add_argument("--data-dir", default=str(Path(default_data).resolve()))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20, help="the search config's max_epochs")
    parser.add_argument("--rounds", type=int, default=2, help="pairs of searches; medians quoted")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="a config override for both searches (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"{args.trials} trials of hparams_search=mnist_optuna, max_epochs={args.epochs}")
    print("round pruner  wall s  complete  pruned  failed  epochs   steps  best val/acc_best")
    wall, steps = [], []
    for number in range(1, args.rounds + 1):
        searches = round_of(args)
        for pruner, f in searches.items():
            print(
                f"{number:5d} {pruner:<7} {f['seconds']:6.0f}  {f['complete']:8d}  "
                f"{f['pruned']:6d}  {f['failed']:6d}  {f['epochs']:6d}  {f['steps']:6d}  "
                f"{f['best']:.4f}",
                flush=True,
            )
        pruned, whole = searches["median"], searches["none"]
        wall.append(pruned["seconds"] / whole["seconds"])
        steps.append(pruned["steps"] / whole["steps"])
    best = pruned["best"] - whole["best"]  # the searches are seeded: every round gives the same
    print(
        f"median / none, median of {args.rounds} round(s): wall time {statistics.median(wall):.2f}"
        f" (saves {1 - statistics.median(wall):.0%}; rounds {', '.join(f'{w:.2f}' for w in wall)})"
        f", steps {statistics.median(steps):.2f}; best {best:+.4f}"
    )


if __name__ == "__main__":
    main()
