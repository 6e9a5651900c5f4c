"""Finding the run that ``ckpt_path=last`` or ``ckpt_path=<run folder>`` continues.

A run killed mid-epoch keeps ``checkpoints/last.ckpt`` from its last complete epoch. Resuming
it in its own folder (not in the new folder Hydra made for the resuming command) keeps one
TensorBoard log whose curves go on where they stopped, and one set of checkpoints.
"""

from pathlib import Path

from ch12_lightning.errors import ConfigError

LAST = Path("checkpoints") / "last.ckpt"


def resume_folder(ckpt_path: str | None, runs_dir: Path) -> Path | None:
    """The run folder to continue in, for ``ckpt_path=last`` (the newest run below
    ``runs_dir`` with a last checkpoint) or a run folder; None for a checkpoint file or none."""
    if ckpt_path == "last":
        candidates = sorted(runs_dir.glob(f"*/{LAST.as_posix()}"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise ConfigError(
                f"ckpt_path=last is not valid: no run below {runs_dir} has {LAST}. Give a run "
                "folder or a checkpoint file instead."
            )
        return candidates[-1].parent.parent
    if ckpt_path and Path(ckpt_path).is_dir():
        folder = Path(ckpt_path).resolve()
        if not (folder / LAST).is_file():
            raise ConfigError(
                f"ckpt_path={ckpt_path} is not valid: the folder has no {LAST}; give a run "
                "folder (outputs/<task>/runs/<date>_<time>) or a checkpoint file."
            )
        return folder
    return None
