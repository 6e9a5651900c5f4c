"""What pruning saves in ``hparams_search=mnist_optuna``: the same search (same seed, same trial
count) with ``hydra.sweeper.pruner=median`` and with ``pruner=none``, one after the other.

    python benchmarks/pruning.py --data-dir ../shared/data [--trials 12] [--epochs 20]

Printed for each: wall time of the whole command, trials complete / pruned / failed, epochs
trained over all trials (the work, free of the machine's noise), the best ``val/acc_best``;
then the pruned search's share of the unpruned one's wall time and epochs, and the difference
of the two bests. The goal: pruning saves at least 40% of the wall time, and its best is within
0.005 of the unpruned search's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

PRUNERS = ("median", "none")


def search(pruner: str, args: argparse.Namespace, work: Path) -> dict:
    """Run the search in a folder of its own; its figures, read back from the study."""
    folder = work / pruner
    folder.mkdir(parents=True)
    command = [
        sys.executable, "-m", "ch12_lightning.train", "hparams_search=mnist_optuna",
        f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweeper.pruner={pruner}",
        f"trainer.max_epochs={args.epochs}", f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={work / 'cache'}", *args.override,
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"the {pruner} search failed:\n{result.stderr[-3000:]}")
    sweep = folder / "outputs" / "mnist_optuna" / "multiruns" / "mnist_optuna"
    study = optuna.load_study(study_name="mnist_optuna", storage=f"sqlite:///{sweep}/optuna.db")
    states = [trial.state.name for trial in study.trials]
    epochs = sum(json.loads(f.read_text())["epochs"] for f in sweep.glob("*/metrics.json"))
    return {
        "seconds": seconds,
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "epochs": epochs,
        "best": study.best_value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("CH12_REAL_DATA") or os.environ.get("CH12_DATA_DIR", "data")
    parser.add_argument("--data-dir", default=str(Path(default_data).resolve()))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20, help="the search config's max_epochs")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE",
        help="a config override for both searches (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ch12_pruning_") as work:
        figures = {pruner: search(pruner, args, Path(work)) for pruner in PRUNERS}
    print(f"{args.trials} trials of hparams_search=mnist_optuna, max_epochs={args.epochs}")
    print("pruner  wall s  complete  pruned  failed  epochs  best val/acc_best")
    for pruner, f in figures.items():
        print(
            f"{pruner:<7} {f['seconds']:6.0f}  {f['complete']:8d}  {f['pruned']:6d}  "
            f"{f['failed']:6d}  {f['epochs']:6d}  {f['best']:.4f}"
        )
    pruned, whole = figures["median"], figures["none"]
    print(
        f"median / none: wall time {pruned['seconds'] / whole['seconds']:.2f} "
        f"(saves {1 - pruned['seconds'] / whole['seconds']:.0%}), epochs "
        f"{pruned['epochs'] / whole['epochs']:.2f}; best {pruned['best'] - whole['best']:+.4f}"
    )


if __name__ == "__main__":
    main()
