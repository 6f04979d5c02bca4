"""Fashion-MNIST (Xiao et al. 2017) from its four IDX files on disk: 60,000 training and 10,000 test 28x28 images,
10 classes. Nothing is downloaded here: `python -m crossprune.data.fashion_setup` puts the files in place once, and
crossprune.data.fashion_files says where they are looked for."""

import hashlib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from crossprune.data.dataset import Dataset
from crossprune.data.fashion_files import SETUP, find
from crossprune.data.idx import read_idx
from crossprune.data.npz import class_index, from_arrays

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def fashion_mnist(
    name: str = "fashion_mnist",
    root: str | None = None,
    classes: list | None = None,
    max_train: int | None = None,
    shift=None,
    val: float = 0.15,
    split_seed: int = 0,
) -> Dataset:
    """The official train and test images, restricted to `classes` (label values 0-9 or names, relabelled 0..k-1 in
    that order); `max_train` keeps a seeded stratified subset of at most that many training images, of which `val` is
    carved out (seeded, stratified); the test split is always the whole official one. `shift` transforms every image."""
    files = find(root)
    arrays, digests = read(tuple((role, str(path), *stats(path)) for role, path in files.items()))
    where = str(files["x_train"].parent)
    picks = [class_index(c, CLASSES, where) for c in (range(10) if classes is None else classes)]
    rows = {split: np.flatnonzero(np.isin(arrays[f"y_{split}"], picks)) for split in ("train", "test")}
    rows["train"] = capped(rows["train"], arrays["y_train"], max_train, split_seed)
    kept = {f"{v}_{split}": arrays[f"{v}_{split}"][r] for split, r in rows.items() for v in "xy"}
    data = from_arrays(name, kept | {"classes": np.array(CLASSES)}, where, list(picks), val, 0.0, split_seed, shift)
    return replace(data, files=tuple((str(files[role]), digests[role]) for role in files))


def capped(rows: np.ndarray, y: np.ndarray, max_train: int | None, seed: int) -> np.ndarray:
    """At most `max_train` of `rows`, a seeded subset stratified by label; all of them for null."""
    if max_train is None or max_train >= len(rows):
        return rows
    if not isinstance(max_train, int) or max_train < 1:
        raise ValueError(f"max_train must be null (every training image) or an integer >= 1, got {max_train!r}")
    try:
        picked, _ = train_test_split(rows, train_size=max_train, stratify=y[rows], random_state=seed)
    except ValueError as e:
        raise ValueError(f"max_train={max_train} is too few to keep every class: {' '.join(str(e).split())}") from e
    return np.sort(picked)


def stats(path: Path) -> tuple[int, int]:
    s = path.stat()
    return s.st_size, s.st_mtime_ns


@lru_cache(maxsize=1)  # a pair's A and B read the same files once; a file rewritten since (size, mtime) reads anew
def read(files: tuple) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Each file's uint8 array and the sha256 of its bytes on disk, by role (x_train, y_train, x_test, y_test)."""
    arrays, digests = {}, {}
    for role, path, _, _ in files:
        path = Path(path)
        try:
            arrays[role] = read_idx(path, "images" if role.startswith("x") else "labels")
        except ValueError as e:  # what is wrong with the file, then how to get a good one
            raise ValueError(f"{e}: replace it with the original ({SETUP} fetches it)") from e
        digests[role] = hashlib.sha256(path.read_bytes()).hexdigest()
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y) or x.shape[1:] != (28, 28) or y.max(initial=0) > 9:
            raise ValueError(f"{Path(files[0][1]).parent} does not hold Fashion-MNIST's {split} split ({len(x)} images of "
                             f"{list(x.shape[1:])}, {len(y)} labels up to {y.max(initial=0)}): run {SETUP} to fetch it again")
    return arrays, digests
