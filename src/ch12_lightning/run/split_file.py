"""``split.csv`` in a picture run's folder: which pictures it trained, validated and tested on.

The split itself travels in every checkpoint (``data/recorded_split.py``), where ``eval`` reads
it; this is the same list for people: to look up whether a picture was a test picture, to copy a
run's test pictures, or to read it into pandas. Written from the checkpoint, not from the data
module, because under ``ddp_spawn`` the data was prepared in other processes.
"""

import csv
import io
from pathlib import Path

import lightning as L
import torch

from ch12_lightning.files.atomic import write_text_atomic

SPLIT_CSV = "split.csv"


def write_split_csv(
    checkpoint: str | None, datamodule: L.LightningDataModule, output_dir: Path
) -> Path | None:
    """Write ``split.csv`` (``split,file,label``: files relative to the data set's root, labels
    by class name) from the split recorded in ``checkpoint``; None where there is none."""
    if not checkpoint:
        return None
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = saved.get(type(datamodule).__qualname__)
    recorded = state.get("split") if isinstance(state, dict) else None
    if not recorded:
        return None
    names = (saved.get("hyper_parameters") or {}).get("class_names") or datamodule.class_names
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["split", "file", "label"])
    for split, files in recorded.items():
        writer.writerows([split, name, names[label]] for name, label, *_ in files)
    path = output_dir / SPLIT_CSV
    write_text_atomic(path, text.getvalue())
    return path
