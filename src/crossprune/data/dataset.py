"""A dataset is three tensor splits plus the names of its classes."""

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor


@dataclass(frozen=True)
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple  # original class names; two heads share a label space when these are equal
    train: Split
    val: Split
    test: Split

    @property
    def input_shape(self) -> list[int]:
        return list(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def digest(self) -> str:
        """sha256 of the classes and every split's tensors: in the stage keys, so an npz file or an image folder
        replaced at the same path is new data, never a cache hit."""
        h = hashlib.sha256(repr(self.classes).encode())
        for split in (self.train, self.val, self.test):
            for t in (split.x, split.y):
                h.update(repr((t.dtype, tuple(t.shape))).encode() + t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def stratified_splits(name: str, x: np.ndarray, y: np.ndarray, classes: tuple, val: float, test: float, seed: int) -> Dataset:
    """Seeded stratified train/val/test splits; the same seed always gives the same rows."""
    idx = np.arange(len(y))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), stratify=y[rest], random_state=seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    split = lambda rows: Split(xt[np.sort(rows)], yt[np.sort(rows)])  # noqa: E731
    return Dataset(name, tuple(classes), split(train_idx), split(val_idx), split(test_idx))
