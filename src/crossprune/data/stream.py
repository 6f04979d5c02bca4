"""Splits of a torchvision dataset too large for memory: images decoded a batch at a time by a DataLoader's worker
processes, labels held in memory.

A Stream gives the numbers the in-memory Split of the same rows holds (crossprune.data.vision builds one or the
other, by size): the same rows and labels, the same decoding and float conversion, the same shift per row. The one
exception is GaussianNoise, whose single draw over every row cannot be cut into batches: streamed, each row draws its
own (shifts.of_rows).
"""

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from types import FunctionType

import numpy as np
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchvision.transforms.v2.functional import to_dtype as to_float

from crossprune.data.dataset import Dataset, Split, stratified_rows
from crossprune.data.npz import carved_rows, check_fractions, split_or_explain
from crossprune.data.shifts import of_rows
from crossprune.store.provenance import file_stats

BATCH = 256  # images per DataLoader batch when decoding or taking rows


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so a decode can be cached per source
class Source:
    """A torchvision dataset and the rows of it kept (by classes, max_samples), their labels 0..k-1, the class
    names, its description for errors, and its root folder (None for generated data such as FakeData)."""

    ds: torch.utils.data.Dataset
    rows: np.ndarray
    y: np.ndarray
    names: tuple
    where: str
    root: str | None
    workers: int

    @cached_property
    def sample_shape(self) -> list[int]:
        return list(self.ds[int(self.rows[0])][0].shape)

    @property
    def gb(self) -> float:
        """The memory its kept images take decoded (float32)."""
        return len(self.rows) * int(np.prod(self.sample_shape)) * 4 / 2**30

    def fingerprint(self) -> str:
        """What decides its images besides the rows: the dataset, its transform, the torch and torchvision that
        decode them, and every file under its root by path, size, mtime, inode and ctime. Hashing the images
        themselves would read the whole data, as long as an epoch; a replaced or edited file changes one of them
        (crossprune.store.provenance.file_stats). Read afresh at each build (load's cache keeps a Source, and a stream reads its files when it iterates)."""
        parts = [self.where, repr(getattr(self.ds, "transform", None)), torch.__version__, torchvision.__version__]
        parts += [f"{os.path.relpath(path, self.root)} {stamp}" for path, *stamp in file_stats(self.root)] if self.root else []
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Stream:
    """Some rows of a Source, read through `batches` and `take` as a Split is: decoded a batch at a time, made
    float32, then shifted as the in-memory path shifts them. `place` is each row's place in the whole data (train's
    rows, then test's), which a shift drawing per row (GaussianNoise) needs."""

    source: Source
    rows: np.ndarray  # the torchvision dataset's row of each row
    y: Tensor
    place: Tensor
    shift: Callable[[Tensor], Tensor] | None
    fingerprint: str  # the source's, taken when the dataset was built

    def __len__(self) -> int:
        return len(self.y)

    @property
    def sample_shape(self) -> list[int]:
        return self.source.sample_shape

    def batches(self, batch_size: int, rows: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """(x, y) batches of every row in order, or of `rows` in the order given (a shuffle, a subset)."""
        rows = torch.arange(len(self)) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        s = self.source
        images = read(s.ds, self.rows[rows.numpy()], batch_size, s.workers, s.where)
        for start, (x, _) in zip(range(0, len(rows), batch_size), images):
            part = rows[start : start + batch_size]
            yield (x if self.shift is None else of_rows(self.shift, x, self.place[part])), self.y[part]

    def take(self, rows) -> Split:
        """The rows `rows`, in that order, in memory."""
        xs, ys = zip(*self.batches(BATCH, torch.as_tensor(rows, dtype=torch.long)))
        return Split(torch.cat(xs), torch.cat(ys))

    def update_digest(self, h) -> None:
        h.update(f"{len(self)} rows".encode() + self.rows.tobytes() + self.y.numpy().tobytes() + self.place.numpy().tobytes())
        h.update(f"{self.fingerprint} {described(self.shift)}".encode())


def streamed(name: str, sources: list[Source], val: float, test: float, seed: int, shift: Callable | None) -> Dataset:
    """The Dataset npz.from_arrays builds of these sources' images (train, or train and test), each split a Stream
    of the same rows: split by the same row functions, and shifted as from_arrays shifts train's rows then test's."""
    where, names, y = " and ".join(s.where for s in sources), sources[0].names, sources[0].y
    prints = {id(s): s.fingerprint() for s in sources}  # once per source: its three splits share it

    def stream(source: Source, rows: np.ndarray, first: int = 0) -> Stream:
        return Stream(source, source.rows[rows], torch.as_tensor(source.y[rows], dtype=torch.long),
                      torch.as_tensor(first + rows, dtype=torch.long), shift, prints[id(source)])

    if len(sources) == 1:
        check_fractions(val, test, where)
        parts = split_or_explain(lambda: stratified_rows(y, val, test, seed), y, names, where)
        return Dataset(name, names, *(stream(sources[0], rows) for rows in parts))
    check_fractions(val, 0.0, where)
    kept, held = split_or_explain(lambda: carved_rows(y, val, seed), y, names, where)
    tested = stream(sources[1], np.arange(len(sources[1].y)), first=len(y))
    return Dataset(name, names, stream(sources[0], kept), stream(sources[0], held), tested)


def read(ds, rows: np.ndarray, batch_size: int, workers: int, where: str) -> Iterator[tuple[Tensor, Tensor]]:
    """The images of `rows` of `ds`, in that order, float32 in [0, 1], with their labels, a batch at a time from a
    DataLoader with `workers` processes (none for a few batches: starting them costs more than they save)."""
    loader = DataLoader(Subset(ds, rows.tolist()), batch_size=batch_size, num_workers=0 if len(rows) < 4 * batch_size else workers,
                        generator=torch.Generator())  # its own: seeding workers from torch's would move the seeded shuffles
    first = None
    try:
        for images, labels in loader:
            first = images.shape[1:] if first is None else first
            if images.shape[1:] != first:  # each batch alike, but unlike the first
                raise mixed_sizes(where, list(first), list(images.shape[1:]))
            # ToDtype once per batch: per image it costs as much again as decoding the image.
            yield to_float(images, torch.float32, scale=True), labels
    except RuntimeError as e:  # collate could not stack one batch (from a worker, the message holds a traceback)
        sizes = re.search(r"got (\[[\d, ]+\]) at entry \d+ and (\[[\d, ]+\])", str(e))
        if not sizes:
            raise
        raise mixed_sizes(where, sizes[1], sizes[2]) from e


def mixed_sizes(where: str, one, other) -> ValueError:
    return ValueError(f"{where}: images differ in size ({one} and {other}): give size (e.g. pair.size=32) to resize them all")


def described(obj) -> str:
    """A shift's settings as stable text, for the digest: its class and attributes, nested (a default repr holds a
    memory address)."""
    if isinstance(obj, partial):
        return f"partial({described(obj.func)}, {obj.args!r}, {sorted(obj.keywords.items())!r})"
    if isinstance(obj, FunctionType | type):
        return f"{obj.__module__}.{obj.__qualname__}"
    if hasattr(obj, "__dict__"):
        return f"{described(type(obj))}({', '.join(f'{k}={described(v)}' for k, v in sorted(vars(obj).items()))})"
    return repr(obj)
