"""A dataset is three splits plus the names of its classes; a split is held in memory (Split) or streamed (Stream)."""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor


@dataclass(frozen=True)
class Split:
    """Rows held whole as tensors. Consumers read a split through `batches` and `take`, which a Stream
    (crossprune.data.stream) implements too; `x` exists only here."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def sample_shape(self) -> list[int]:
        return list(self.x.shape[1:])

    def batches(self, batch_size: int, rows: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """(x, y) batches of every row in order, or of `rows` in the order given (a shuffle, a subset)."""
        for start in range(0, len(self) if rows is None else len(rows), batch_size):
            part = slice(start, start + batch_size) if rows is None else rows[start : start + batch_size]
            yield self.x[part], self.y[part]

    def take(self, rows) -> "Split":
        """The rows `rows`, in that order, in memory."""
        return Split(self.x[rows], self.y[rows])

    def update_digest(self, h) -> None:
        for t in (self.x, self.y):
            h.update(repr((t.dtype, tuple(t.shape))).encode() + t.contiguous().numpy().tobytes())


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple  # original class names; two heads share a label space when these are equal
    train: Split  # or a Stream: anything with len, y, sample_shape, batches, take and update_digest
    val: Split
    test: Split
    files: tuple = ()  # (path, sha256) of each file the data was read from, for the run's Datasets panel

    @property
    def input_shape(self) -> list[int]:
        return self.train.sample_shape

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def digest(self) -> str:
        """sha256 of the classes and every split's content: in the stage keys, so an npz file or an image folder
        replaced at the same path is new data, never a cache hit."""
        h = hashlib.sha256(repr(self.classes).encode())
        for split in (self.train, self.val, self.test):
            split.update_digest(h)
        return h.hexdigest()[:16]


def stratified_rows(y: np.ndarray, val: float, test: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified train/val/test row indices, each sorted; the same seed always gives the same rows."""
    idx = np.arange(len(y))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), stratify=y[rest], random_state=seed)
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


def stratified_splits(name: str, x: np.ndarray, y: np.ndarray, classes: tuple, val: float, test: float, seed: int) -> Dataset:
    """The splits of `stratified_rows`, in memory."""
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    return Dataset(name, tuple(classes), *(Split(xt[rows], yt[rows]) for rows in stratified_rows(y, val, test, seed)))
