"""A progress display that stays readable whether the run writes to a terminal or to a log file."""

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


class EpochLineProgressBar(ProgressBar):
    """One plain line per epoch with its metrics, instead of carriage-return redraws.

    tqdm redraws its bar with carriage returns; in a log file (a batch job, CI, ``nohup``) that
    becomes one endless line. This bar prints a complete line when an epoch ends.
    """

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._epoch_start = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A mark in the log (the benchmark times start-up up to this line).
        if self._enabled:
            self.print(f"training starts: {trainer.max_epochs} epochs")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled:
            return
        seconds = time.perf_counter() - self._epoch_start
        metrics = self.get_metrics(trainer, pl_module)
        shown = " ".join(
            f"{name}={value:.4f}" if isinstance(value, float) else f"{name}={value}"
            for name, value in sorted(metrics.items())
            if name != "v_num"
        )
        self.print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} ({seconds:.1f}s) {shown}"
        )


# The test metrics a notebook's bar prints when the test ends.
TEST_LINE = ("test/acc", "test/loss")


class NotebookProgressBar(TQDMProgressBar):
    """Training's bar alone, one widget per run, its metrics updated at each epoch's end.

    In a Jupyter cell every tqdm bar is a widget of its own that stays in the cell's outputs:
    Lightning's sanity-check, validation and test bars would add one per validation (over a
    hundred for a 100-epoch run)."""

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_predict_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The test's result in one line, in place of Lightning's table (a line per metric,
        ten of them per-class accuracies for MNIST)."""
        super().on_test_end(trainer, pl_module)
        metrics = trainer.callback_metrics
        shown = [f"{name} {float(metrics[name]):.4f}" for name in TEST_LINE if name in metrics]
        samples = f" ({int(metrics['test/samples'])} samples)" if "test/samples" in metrics else ""
        if shown and trainer.is_global_zero:  # no bar is open to write beneath by now
            print(f"Test: {', '.join(shown)}{samples}")


def in_jupyter_kernel() -> bool:
    """This process is a Jupyter kernel (a notebook's cell shows what it prints)."""
    return "ipykernel" in sys.modules


def progress_bar(refresh_rate: int = 20) -> ProgressBar:
    """tqdm's bars on an interactive terminal, training's bar alone in a Jupyter kernel (a
    widget in the cell where ipywidgets is installed), one line per epoch anywhere else."""
    if in_jupyter_kernel():
        return NotebookProgressBar(refresh_rate=refresh_rate)
    if sys.stderr.isatty():
        return TQDMProgressBar(refresh_rate=refresh_rate)
    return EpochLineProgressBar()
