"""Serve batches from tensors already in memory by indexing a whole batch at once.

The per-sample path (a PIL image per index, a transform, then ``default_collate``) is tens of
times slower on a CPU than slicing one normalized tensor. These helpers keep the ordinary
``DataLoader`` + sampler design, so shuffling per epoch, workers and Lightning's distributed
sampler keep working: the sampler still yields indices; only fetching them is batched.
"""

from collections.abc import Sequence

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset


class TensorBatches(Dataset):
    """Inputs and targets held as two tensors; ``__getitems__`` returns a whole batch."""

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices)
        return self.inputs[index], self.targets[index]


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
    """A ``DataLoader`` over ``dataset`` that fetches each batch with one indexing operation.

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
    """Serves ``self.splits`` ("train", "val", "test": ``TensorBatches``) in batches.

    Subclasses fill ``self.splits`` in ``setup`` and set ``batch_size``, ``loader_workers`` and
    ``pin_memory``.
    """

    splits: dict[str, TensorBatches]
    batch_size: int
    loader_workers: int = 0
    pin_memory: bool = False

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        return batch_loader(
            self.splits[split],
            self.batch_size,
            shuffle=shuffle,
            num_workers=self.loader_workers,
            pin_memory=self.pin_memory,
            world_size=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
