"""Runs from Python: train one, or read one back, as an object a notebook can ask questions.

``train`` runs in the calling process exactly what ``./ch12 train`` runs (the same config,
checks, pipeline and run folder); ``load_run`` reads any run folder or checkpoint back, through
``trained/load.py`` (checkpoints with ``weights_only=True``); ``Run`` answers in plain data:
metrics, predictions, the model and its data.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig

from ch12_lightning.api.figures import ShownFigure, picture_figure, saved_picture, text_figure
from ch12_lightning.api.hydra_jobs import composed, listed, path_override, run_job
from ch12_lightning.callbacks.pictures import caption, captioned_grid
from ch12_lightning.checks.config import validate
from ch12_lightning.data.tables import TableData
from ch12_lightning.errors import ConfigError, ShownAsMessage, invalid
from ch12_lightning.run.resume import resume_checkpoint
from ch12_lightning.trained.answers import Estimate, Prediction
from ch12_lightning.trained.inputs import PictureInput, picture_sources
from ch12_lightning.trained.load import TrainedRun
from ch12_lightning.trained.load import load_run as load_trained_run
from ch12_lightning.trained.predict import Unreadable, image_format
from ch12_lightning.trained.predict import predict as predict_pictures
from ch12_lightning.trained.row_predictions import predict_rows
from ch12_lightning.trained.rows import RowsInput

# What ``Run.predict`` takes: pictures for a picture run, rows of raw values for a table run.
Predictable = PictureInput | Sequence[PictureInput] | RowsInput
# The splits whose confusion matrices a run draws (callbacks/confusion.py).
DRAWN_SPLITS = ("test", "val")
# Log records a notebook cell shows: warnings; all of them go to the run's log file.
QUIET_CONSOLE = "++hydra.job_logging.handlers.console.level=WARNING"


def compose(overrides: Sequence[str] | None = None) -> DictConfig:
    """The ``train`` config as ``./ch12 train <overrides>`` composes it, checked by the same
    rules: a bad value raises the ``ConfigError`` the command line prints."""
    cfg = composed("train", listed(overrides))
    validate(cfg)
    return cfg


class TrainingStopped(ShownAsMessage, KeyboardInterrupt):
    """The kernel's stop button (or Ctrl-C) during ``train``: shown in the cell as its message,
    the call that resumes the run, without the traceback of a stop the user asked for."""


def train(overrides: Sequence[str] | None = None, output_dir: str | Path | None = None) -> "Run":
    """Train (and test) in this process as ``./ch12 train <overrides>`` does, into
    ``output_dir`` (None: ``outputs/<task_name>/runs/<time>``); the finished run.

    The log goes to the run folder's ``train.log`` (warnings also to the notebook). Interrupted
    (the kernel's stop button, Ctrl-C), it keeps the checkpoints of finished epochs and raises
    ``KeyboardInterrupt`` with the call that resumes it: ``ckpt_path=<run folder>`` (or
    ``last``) continues that run in its own folder and returns it."""
    from ch12_lightning.run.pipeline import run

    given = listed(overrides)
    folders: list[Path] = []

    def task(cfg: DictConfig) -> Path:
        try:
            run(cfg)
        finally:  # the folder trained in: a resumed run's own, once run() has found it
            folders.append(Path(cfg.paths.output_dir))
        return folders[-1]

    try:
        job = [*given, QUIET_CONSOLE, *_run_folder(given, output_dir)]
        return load_run(run_job("train", job, task))
    except SystemExit as stop:
        if not folders:
            raise
        raise TrainingStopped(
            f"Training stopped; the checkpoints of finished epochs are in {folders[-1]}. Resume "
            f"with {_resume_call(given, folders[-1], output_dir)}"
        ) from stop


def _run_folder(overrides: list[str], output_dir: str | Path | None) -> list[str]:
    """Where Hydra runs the job. A run resumed from Python goes on in its own folder, and its
    log with it: the command line's resume writes its own log into a new folder of its own,
    which from Python would be an empty folder beside the run. Its ``.hydra/`` keeps the
    config that the run was started with."""
    resumed = _resumed_folder(overrides)
    if resumed and (output_dir is None or Path(output_dir).resolve() == resumed):
        return [path_override("hydra.run.dir", resumed), "hydra.output_subdir=null"]
    return [] if output_dir is None else [path_override("hydra.run.dir", Path(output_dir))]


def _resumed_folder(overrides: list[str]) -> Path | None:
    """The run folder that ``ckpt_path=<run folder>`` or ``ckpt_path=last`` continues, as
    ``run.resume`` finds it; None when nothing is resumed."""
    if not any(override.lstrip("+").startswith("ckpt_path=") for override in overrides):
        return None
    cfg = composed("train", overrides)
    if not cfg.get("train", True):
        return None
    runs_dir = Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    checkpoint = resume_checkpoint(cfg.get("ckpt_path"), runs_dir)
    return None if checkpoint is None else checkpoint.parent.parent


def _resume_call(overrides: list[str], folder: Path, output_dir: str | Path | None) -> str:
    """The call that continues the run in ``folder``, as the user would type it."""
    kept = [o for o in overrides if not o.lstrip("+").startswith("ckpt_path=")]
    where = "" if output_dir is None else f", output_dir={str(output_dir)!r}"
    return f"api.train({[*kept, f'ckpt_path={folder}']}{where})"


def load_run(path: str | Path) -> "Run":
    """A run folder (its best checkpoint) or a checkpoint file, read back safely."""
    cfg = composed("predict", [f"ckpt_path={Path(path).resolve()}"])
    return Run(load_trained_run(cfg))


@dataclass
class Run:
    """A trained run: ``folder``, ``config``, ``metrics``, and lazily its ``model`` (eval mode,
    CPU) and ``datamodule`` (splits ready)."""

    trained: TrainedRun = field(repr=False)

    @property
    def folder(self) -> Path:
        return self.trained.folder

    @property
    def checkpoint(self) -> Path:
        return self.trained.checkpoint

    @property
    def config(self) -> DictConfig:
        return self.trained.config

    @property
    def metrics(self) -> dict[str, float]:
        """The final metrics of ``metrics.json`` (empty for a run that did not finish)."""
        path = self.folder / "metrics.json"
        return json.loads(path.read_text())["metrics"] if path.is_file() else {}

    @cached_property
    def model(self) -> L.LightningModule:
        return self.trained.model(self._settings)

    @cached_property
    def datamodule(self) -> L.LightningDataModule:
        """The run's data, every split read; the notebook's own seeds and threads untouched (its
        splits are drawn with the run's ``split_seed``; a picture run's are the pictures it
        recorded, and a message says which are gone or changed)."""
        datamodule = self.trained.datamodule()
        datamodule.prepare_data()
        for stage in ("fit", "test"):  # every split: train, val and test
            datamodule.setup(stage)
        return datamodule

    @cached_property
    def _settings(self) -> L.LightningDataModule:
        """The data module's settings only (predicting reads none of its data)."""
        return self.trained.datamodule()

    def predict(
        self, inputs: Predictable, preprocess: str = "auto"
    ) -> list[Prediction] | list[Estimate]:
        """What the model says of each input, prepared exactly as the run prepared its data
        (as ``./ch12 predict`` prepares files).

        A picture run takes picture files, a folder, PIL images, and NumPy arrays or torch
        tensors of one picture, (H, W), (H, W, C), (C, H, W), or a batch (N, ...), uint8 0-255
        or float 0-1, or a list of these, each library's layout its own (``trained/inputs.py``:
        a NumPy (28, 28, 3) is one RGB picture and (3, 28, 28) three gray ones, a tensor
        (3, 28, 28) one RGB picture); ``preprocess`` as the command's. A table run (Iris, the
        toy regression) takes rows of raw values, as measured, standardized here with the run's
        own statistics (``trained/rows.py``: a row, a list of rows, arrays, tensors, a data
        frame, a CSV file). The answers are named
        ``picture 0``, ``row 0``, ... (files by their path): ``Prediction``s, or a regression's
        ``Estimate``s. Anything else raises one ``ConfigError`` (a ``ValueError``) naming what
        the run takes."""
        if isinstance(self._settings, TableData):
            return predict_rows(self.model, inputs, self._settings)
        sources, input_format = picture_sources(inputs), image_format(self._settings)
        results = list(predict_pictures(self.model, sources, input_format, preprocess=preprocess))
        bad = [result for result in results if isinstance(result, Unreadable)]
        if bad:
            raise ValueError(f"{bad[0].path} cannot be read ({bad[0].reason})")
        return [result for result in results if isinstance(result, Prediction)]

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """The run's checkpoint on ``split`` (test or val), as ``./ch12 eval`` computes it."""
        from ch12_lightning.trained.evaluate import evaluate

        overrides = [f"ckpt_path={self.checkpoint}", f"split={split}", QUIET_CONSOLE]
        return run_job("eval", overrides, evaluate)

    def learning_curves(self) -> ShownFigure:
        """Loss and accuracy per epoch: the run folder's ``learning_curves.png``."""
        return saved_picture(self.folder / "learning_curves.png", "learning curves (no fit)")

    def confusion_matrix(self, split: str = "test") -> ShownFigure:
        """The run folder's confusion matrix of ``split`` (``test``, or ``val`` at the best
        epoch)."""
        if split not in DRAWN_SPLITS:
            reason = f"the run draws the confusion matrices of {' and '.join(DRAWN_SPLITS)}"
            raise ConfigError(invalid("split", split, reason))
        name = f"confusion_matrix_{split}.png"
        return saved_picture(self.folder / name, f"confusion matrix of {split}")

    def misclassified(self, split: str = "test", n: int = 21) -> ShownFigure:
        """Up to ``n`` pictures of ``split`` the model gets wrong, taken from each true class in
        turn (an equal share, as far as each class has mistakes), captioned as the run folder's
        ``misclassified.png``."""
        splits = self.datamodule.splits
        if split not in splits:
            raise ConfigError(invalid("split", split, f"must be one of {', '.join(splits)}"))
        if not (isinstance(n, int) and n > 0):
            raise ConfigError(invalid("n", n, "must be a positive number of pictures"))
        inputs, targets = splits[split].served()
        if inputs.dim() != 4:
            shape = tuple(inputs.shape[1:])
            raise ConfigError(
                f"misclassified draws pictures, and this run's inputs are rows of shape {shape}: "
                f"its confusion matrix shows what it gets wrong (confusion_matrix('{split}'))"
            )
        with torch.inference_mode():
            probabilities = self.model.probabilities(self.model(inputs))
        confidence, predicted = probabilities.max(dim=1)
        names = list(self.model.hparams.class_names)
        chosen = _in_turn_by_class((predicted != targets).nonzero().flatten(), targets, n)
        if not chosen:
            return text_figure(f"The model gets every picture of {split} right.")
        captions = [caption(names[int(targets[i])], names[int(predicted[i])], float(confidence[i]))
                    for i in chosen]  # fmt: skip
        grid = captioned_grid([inputs[i] for i in chosen], captions)
        return picture_figure(grid, f"{len(chosen)} misclassified ({split})")

    def __repr__(self) -> str:
        shown = {k: round(v, 4) for k, v in sorted(self.metrics.items()) if "/" in k}
        return f"Run({self.folder}, {shown})"


def _in_turn_by_class(wrong: torch.Tensor, targets: torch.Tensor, n: int) -> list[int]:
    """Up to ``n`` of the ``wrong`` indices, one of each true class in turn, in data order."""
    by_class: dict[int, list[int]] = {}
    for i in wrong.tolist():
        by_class.setdefault(int(targets[i]), []).append(i)
    queues = [by_class[label] for label in sorted(by_class)]
    chosen: list[int] = []
    for rank in range(max(map(len, queues), default=0)):
        chosen.extend(queue[rank] for queue in queues if rank < len(queue))
    return sorted(chosen[:n])
