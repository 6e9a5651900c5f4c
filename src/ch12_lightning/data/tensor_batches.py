"""Serve batches from tensors already in memory by indexing a whole batch at once.

The per-sample path (a PIL image per index, a transform, then ``default_collate``) is tens of
times slower on a CPU than slicing one normalized tensor. These helpers keep the ordinary
``DataLoader`` + sampler design, so shuffling per epoch, workers and Lightning's distributed
sampler keep working: the sampler still yields indices; only fetching them is batched.
"""

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class TensorBatches(Dataset):
    """Inputs and targets held as two tensors; ``__getitems__`` returns a whole batch.

    ``serve`` turns stored inputs into model inputs as a batch is cut (8-bit pixels into
    normalized floats: a quarter of the memory, and the arithmetic runs on the batch's device).
    It must be picklable (a module-level function or a ``functools.partial`` of one) for
    loader workers.
    """

    def __init__(
        self, inputs: Tensor, targets: Tensor, serve: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets
        self.serve = serve

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self._served(self.inputs[index]), self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, device=self.targets.device)
        return self._served(self.inputs[index]), self.targets[index]

    def served(self) -> tuple[Tensor, Tensor]:
        """The whole split as the model sees it."""
        return self._served(self.inputs), self.targets

    def _served(self, inputs: Tensor) -> Tensor:
        return inputs if self.serve is None else self.serve(inputs)

    def to(self, device: torch.device) -> "TensorBatches":
        return TensorBatches(self.inputs.to(device), self.targets.to(device), self.serve)


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Collate function for ``TensorBatches``: the batch is already stacked."""
    return batch


def batch_loader(
    dataset: TensorBatches,
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    world_size: int = 1,
    rank: int = 0,
) -> DataLoader:
    """A ``DataLoader`` over ``dataset`` that fetches each batch with one indexing operation and
    yields plain ``(inputs, targets)`` mini-batches.

    For evaluation (``shuffle=False``) under several processes, every rank gets its own unpadded
    slice, so each sample is counted exactly once; a plain ``DistributedSampler`` would pad the
    split to a multiple of the world size and count some samples twice. Lightning leaves a
    sampler that is already distributed in place. Training keeps Lightning's usual sampler.
    """
    sampler = None
    if world_size > 1 and not shuffle:
        sampler = UnrepeatedDistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=False
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=keep_batch,
    )


class InMemoryDataModule(L.LightningDataModule):
    """Serves ``self.splits`` ("train", "val", "test": ``TensorBatches``) in mini-batches.

    With ``data_on_device`` the split tensors move once to the device the model trains on (a
    GPU), so batches are cut there and no batch crosses from host to device; on a CPU nothing
    changes.

    Validation and test batches hold ``eval_batch_size`` samples (None: ``batch_size``):
    evaluation needs no gradients, so larger batches cover the split in fewer passes through
    Lightning's loop; every sample still counts once.

    Subclasses pass the serving settings to ``__init__`` and fill ``self.splits`` in ``setup``.
    """

    task = "classification"  # or "regression": which models fit (``run.build`` checks)
    # One input's shape: (channels, height, width) for pictures, (features,) for a table.
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]

    def __init__(
        self,
        batch_size: int,
        data_on_device: bool = False,
        loader_workers: int = 0,
        pin_memory: bool = False,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.data_on_device = data_on_device
        self.loader_workers = loader_workers
        self.pin_memory = pin_memory
        self.splits: dict[str, TensorBatches] = {}

    @property
    def model_arguments(self) -> dict[str, Any]:
        """What the model must know about the data, passed to it by ``run.build``."""
        return {
            "input_shape": self.input_shape,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
        }

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        on_device = bool(
            trainer and self.data_on_device and trainer.strategy.root_device.type != "cpu"
        )
        if on_device:
            self.splits[split] = self.splits[split].to(trainer.strategy.root_device)
        return batch_loader(
            self.splits[split],
            self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            # Worker processes cannot share device tensors, and they are not pinned memory.
            num_workers=0 if on_device else self.loader_workers,
            pin_memory=self.pin_memory and not on_device,
            world_size=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
