"""``ckpt_path=``: a checkpoint file vetted before Lightning loads it.

Loading a bad file would otherwise end in a zip reader's or ``load_state_dict``'s traceback after
the data is prepared; here it is one ``ConfigError`` naming the file and what is wrong with it.
"""

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ch12_lightning.errors import ConfigError, invalid
from ch12_lightning.models.nets import as_config_names

# Hyperparameters of how a model was trained, not of what it is.
HOW_TRAINED = ("optimizer", "scheduler", "class_names")


def check_checkpoint(path: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded; ``ConfigError`` unless its weights fit ``model``.

    The file is read with ``torch.load(weights_only=True)`` only: a checkpoint holds tensors and
    plain data, and anything else in it (objects that run code when unpickled) is refused.
    """
    if not Path(path).is_file():
        raise ConfigError(invalid("ckpt_path", path, "no such file"))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails on a non-checkpoint with all kinds of errors
        raise ConfigError(invalid("ckpt_path", path, _load_failure(err))) from err
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        reason = "it loads, but is not a Lightning checkpoint (it has no state_dict)"
        raise ConfigError(invalid("ckpt_path", path, reason))
    mismatches = _shape_mismatches(state, model.state_dict())
    if mismatches:
        reason = (
            "its weights do not fit this model"
            + _hparams_differences(checkpoint.get("hyper_parameters"), model)
            + ":\n  "
            + "\n  ".join(mismatches)
            + "\nUse the model and data settings of the run that wrote it."
        )
        raise ConfigError(invalid("ckpt_path", path, reason))
    return checkpoint


def _load_failure(err: Exception) -> str:
    """Why torch.load failed, in one line. torch wraps the unpickler's own reason (kept as the
    error's context) in long advice to load with weights_only=False, which is no advice here."""
    if isinstance(err, pickle.UnpicklingError) and err.__context__ is not None:
        err = err.__context__
    unsafe = re.search(r"GLOBAL (\S+)", str(err))
    if unsafe:
        return (
            f"it holds objects other than tensors and plain data ({unsafe.group(1)}), which "
            "could run code when loaded, so torch.load(weights_only=True) refused it"
        )
    first_line = (str(err).strip().splitlines() or [""])[0][:200]
    return f"not a checkpoint: torch.load cannot read it ({type(err).__name__}: {first_line})"


def _shape(tensor: Any) -> str:
    return str(list(tensor.shape)) if isinstance(tensor, torch.Tensor) else "not a tensor"


def _shape_mismatches(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """``name: [8, 784] in the checkpoint, [16, 784] in this model`` for each differing entry."""
    lines = []
    for name in sorted(found.keys() | expected.keys()):
        ours = _shape(expected[name]) if name in expected else "absent"
        theirs = _shape(found[name]) if name in found else "absent"
        if ours != theirs:
            lines.append(f"{name}: {theirs} in the checkpoint, {ours} in this model")
    return lines


def _hparams_differences(saved: Any, model: torch.nn.Module) -> str:
    """What the checkpoint's model is that this one is not, as `` (hidden_sizes=[8] there, [16]
    here)``: the network and its settings, the input shape and classes; not how it was trained."""
    if not isinstance(saved, dict):
        return ""
    theirs = as_config_names(saved)
    ours = as_config_names(getattr(model, "hparams", {}))
    differ = [
        f"{key}={theirs[key]} there, {ours[key]} here"
        for key in theirs
        if key in ours and key not in HOW_TRAINED and theirs[key] != ours[key]
    ]
    return f" ({'; '.join(differ)})" if differ else ""
