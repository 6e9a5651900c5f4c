"""One training run from a composed config: build the pieces, fit, test, record the results."""

import logging
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.strategies.launchers import (
    _MultiProcessingLauncher,
    _SubprocessScriptLauncher,
)
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ch12_lightning.callbacks.progress import in_jupyter_kernel
from ch12_lightning.checks.checkpoint_file import check_checkpoint
from ch12_lightning.checks.config import validate
from ch12_lightning.cluster.launch import on_slurm
from ch12_lightning.errors import InputError
from ch12_lightning.files.atomic import write_json_atomic, write_text_atomic
from ch12_lightning.run.build import build, prepare, refusals_as_config_errors
from ch12_lightning.run.checkpoints import checkpoints_in
from ch12_lightning.run.disk import full_disk_explained
from ch12_lightning.run.folder_lock import hold, released_at_end
from ch12_lightning.run.resume import continue_interrupted_run, resumes
from ch12_lightning.run.split_file import write_split_csv

log = logging.getLogger(__name__)


class SweepStrategyError(InputError, ValueError):
    """A strategy that cannot run inside a sweep."""


def _refuse_script_ddp_in_sweep(trainer: L.Trainer) -> None:
    """Lightning's ``ddp`` starts ranks 1..N-1 by re-running the command line. Inside a sweep
    (``-m``) that command is the whole sweep: each extra rank would run its own sweep, with other
    settings, and nothing would fail. Spawned ranks (``ddp_spawn``) and ranks that torchrun or
    SLURM started (each runs the same sweep, job by job, as one rank of each job's DDP) do not
    re-run the command, so they are fine."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and not (
        launcher.cluster_environment.creates_processes_externally
    ):
        raise SweepStrategyError(
            "DDP that re-runs the command line (strategy ddp: accelerator=ddp or ddp_cpu) cannot "
            "run inside a sweep (-m): every extra rank would start the whole sweep again. Use "
            "accelerator=ddp_spawn or accelerator=ddp_cpu_spawn in sweeps, run one DDP job at a "
            "time without -m, or let torchrun or SLURM start the ranks (torchrun ... -m "
            "ch12_lightning.train -m ..., srun, or launcher=submitit_slurm): each of their "
            "processes runs the sweep as one rank of every job."
        )


def run(cfg: DictConfig, in_sweep: bool = False) -> dict[str, float]:
    """Fit and/or test as the config says; write ``metrics.json`` and return the final metrics.

    ``in_sweep``: this run is one job of a Hydra multirun.
    """
    validate(cfg)
    with released_at_end():  # the folders this run locked: its own, or the one it resumes
        if Path(cfg.paths.output_dir).is_dir():  # Hydra's, or another run's: refused at once
            hold(cfg.paths.output_dir, "resume" if resumes(cfg) else "run")
        continue_interrupted_run(cfg)
        prepare(cfg)
        output_dir = Path(cfg.paths.output_dir)
        with full_disk_explained(output_dir, Path(cfg.paths.cache_dir).expanduser()):
            return _run(cfg, output_dir, in_sweep)


def _run(cfg: DictConfig, output_dir: Path, in_sweep: bool) -> dict[str, float]:
    datamodule, model, trainer = build(cfg)
    if in_sweep:
        _refuse_script_ddp_in_sweep(trainer)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        check_checkpoint(ckpt_path, model)
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        hold(output_dir)  # a folder made here is locked as it is made (held already: no-op)
        write_text_atomic(output_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    with refusals_as_config_errors():
        epochs = trainer.current_epoch
        if cfg.get("train", True):
            _fit(trainer, model, datamodule, ckpt_path, output_dir)
            ckpt_path = _best_checkpoint(trainer)
            if trainer.is_global_zero:
                write_split_csv(_written_checkpoint(trainer), datamodule, output_dir)
            epochs = _epochs_trained(trainer)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if cfg.get("test", True):
            # A notebook's bar says the result in a line (callbacks/progress.py).
            verbose = not in_jupyter_kernel()
            trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=verbose)
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})

    if trainer.is_global_zero:
        write_json_atomic(
            output_dir / "metrics.json",
            {"metrics": metrics, "checkpoint": ckpt_path, "epochs": epochs},
        )
        log.info("Final metrics: %s", {k: round(v, 4) for k, v in sorted(metrics.items())})
        log.info("Run folder: %s", output_dir)
    return metrics


def _fit(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None,
    output_dir: Path,
) -> None:
    """``trainer.fit``, saying how to resume when a signal stops it. Lightning ends a run on
    SIGTERM with exit status 0, as if it had finished; scripts must see a failure (143)."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit as stop:  # Ctrl-C (Lightning exits with 1) or SIGTERM
        if trainer.is_global_zero:
            # In a notebook the stop's own message is the api.train call that resumes.
            hints = [] if in_jupyter_kernel() else [f"Resume with ckpt_path={output_dir} (or "
                                                    "ckpt_path=last)"]  # fmt: skip
            hints += ["a requeued SLURM job resumes by itself"] if on_slurm() else []
            log.error(
                "Training was stopped in epoch %d; the checkpoints of finished epochs are kept.%s",
                trainer.current_epoch + 1,
                f" {'; '.join(hints)}." if hints else "",
            )
        code = 128 + signal.SIGTERM if isinstance(stop, SIGTERMException) else stop.code
        raise SystemExit(code) from stop


def _written_checkpoint(trainer: L.Trainer) -> str | None:
    """A checkpoint this run wrote (the last, else the best), or None."""
    for callback in trainer.checkpoint_callbacks:
        written = getattr(callback, "last_model_path", "") or callback.best_model_path
        if written:
            return written
    return None


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint by a monitored metric, or None to test the weights as they are."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) and callback.best_model_path:
            return callback.best_model_path
    return None


def _epochs_trained(trainer: L.Trainer) -> int | None:
    """The epochs the run has trained after ``fit`` (a resumed run's earlier ones included).

    Lightning's spawn and fork launchers (``ddp_spawn``, ``ddp_notebook`` and their ``_cpu``
    variants) train in processes of their own and bring back to this one the metrics, the
    trainer's state and the best checkpoint's path, but not the loop's progress: here
    ``trainer.current_epoch`` still says 0, and Lightning has no public way to ask for it. What
    rank 0 wrote says it: its furthest checkpoint's count of epochs trained. None where the
    ranks wrote no checkpoint (checkpointing off): not known here, rather than a wrong 0."""
    if not isinstance(trainer.strategy.launcher, _MultiProcessingLauncher):
        return trainer.current_epoch
    folders = set()
    for callback in trainer.checkpoint_callbacks:
        # A dirpath from the config; Lightning's default callback (callbacks=none) chooses its
        # folder in the ranks, so here only its best path, which the launcher brings back, says.
        dirpath = getattr(callback, "dirpath", None)
        best = Path(getattr(callback, "best_model_path", None) or "")
        if dirpath or best.is_file():
            folders.add(Path(dirpath) if dirpath else best.parent)
    found = [c.epochs_trained for folder in folders for c in checkpoints_in(folder) if c.loads]
    return max(found, default=None)
