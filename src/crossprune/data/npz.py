"""Your own data as a .npz file (numpy.savez), held whole in memory.

The layout: arrays `x` and `y`, split here like digits; or pre-split `x_train`, `y_train`, `x_test`, `y_test`, with
`x_val`, `y_val` optional (carved out of train when absent). An optional `classes` array names the classes, `y`
indexing it; without it the classes are the sorted distinct labels. `x` is channels first: [n, d] stays flat,
[n, H, W] gets one channel, [n, C, H, W] stays; uint8 is scaled by 1/255, other numbers are taken as they are.
torchvision datasets within max_gb are decoded into this same layout (crossprune.data.vision), so both share
`from_arrays`; larger ones stream (crossprune.data.stream), split into the same rows by the same row functions.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from crossprune.data.dataset import Dataset, Split, stratified_splits

WHOLE = ("x", "y")
PRESPLIT = ("x_train", "y_train", "x_test", "y_test")
VAL = ("x_val", "y_val")
EXPECTED = "x and y, or x_train, y_train, x_test, y_test (x_val, y_val and classes optional)"


def npz(
    name: str,
    path: str,
    classes: list | None = None,
    val: float = 0.15,
    test: float = 0.25,
    split_seed: int = 0,
    shift: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Dataset:
    """The dataset in `path`, restricted to `classes` (names or label values, relabelled 0..k-1 in that order)."""
    return from_arrays(name, read(path), str(path), classes, val, test, split_seed, shift)


def read(path: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file, never unpickling anything."""
    file = Path(path)
    if not file.is_file():
        where = "is a folder" if file.is_dir() else f"does not exist (relative to {Path.cwd()})"
        raise ValueError(f"npz file {path} {where}: give the path of an .npz file written by numpy.savez")
    try:
        f = np.load(file, allow_pickle=False)  # a pickle inside could run code: refused, not loaded
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array: a .npy file")
        with f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # numpy says zip, EOF, pickle or dtype in many ways; each means the same to the user
        reason = " ".join(str(e).split()).split(". If you trust")[0] or type(e).__name__
        raise ValueError(f"{path} is not a readable .npz file ({reason}): write numeric arrays with "
                         f"numpy.savez(path, x=..., y=...), and classes as strings") from e


def from_arrays(
    name: str,
    arrays: dict[str, np.ndarray],
    where: str,
    classes: list | None = None,
    val: float = 0.15,
    test: float = 0.25,
    split_seed: int = 0,
    shift: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Dataset:
    """A Dataset from arrays in the npz layout; `where` names their source in every error."""
    parts = layout(arrays, where)
    for x_key, y_key in parts:
        check_pair(arrays[x_key], arrays[y_key], x_key, y_key, where)
    shapes = {arrays[x].shape[1:] for x, _ in parts}
    if len(shapes) > 1:
        raise ValueError(f"{where}: {', '.join(x for x, _ in parts)} differ in shape per sample ({sorted(shapes)}): save them alike")
    ys, names = label_names([arrays[y] for _, y in parts], arrays.get("classes"), where)
    keep, ys, names = select_classes(ys, names, classes, where)
    xs = [images(arrays[x] if k.all() else arrays[x][k], where) for (x, _), k in zip(parts, keep)]
    if shift is not None:  # one call over every row, as digits shifts before splitting: a seeded draw never repeats per split
        shifted = shift(torch.cat(xs))
        xs = list(shifted.split([len(x) for x in xs]))
    if len(parts) == 1:
        check_fractions(val, test, where)
        return split_or_explain(lambda: stratified_splits(name, xs[0].numpy(), ys[0], names, val, test, split_seed), ys[0], names, where)
    splits = [Split(x, torch.as_tensor(y, dtype=torch.long)) for x, y in zip(xs, ys)]
    if len(parts) == 3:
        return Dataset(name, names, splits[0], splits[1], splits[2])
    check_fractions(val, 0.0, where)
    train, val_split = split_or_explain(lambda: carve(splits[0], val, split_seed), ys[0], names, where)
    return Dataset(name, names, train, val_split, splits[1])


def layout(arrays: dict[str, np.ndarray], where: str) -> list[tuple[str, str]]:
    """The (x, y) key pairs present: one for the whole data, or train, [val,] test."""
    found = set(arrays) - {"classes"}
    if found == set(WHOLE):
        return [WHOLE]
    if found == set(PRESPLIT) | set(VAL):
        return [PRESPLIT[:2], VAL, PRESPLIT[2:]]
    if found == set(PRESPLIT):
        return [PRESPLIT[:2], PRESPLIT[2:]]
    raise ValueError(f"{where} holds arrays {', '.join(sorted(arrays)) or 'none'}; expected {EXPECTED}")


def check_pair(x: np.ndarray, y: np.ndarray, x_key: str, y_key: str, where: str) -> None:
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{where}: {x_key} has dtype {x.dtype}; it must hold numbers (floats, or uint8 images 0-255)")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{where}: {y_key} has dtype {y.dtype}; it must hold integer labels (save y.astype(int))")
    if y.ndim != 1 or x.ndim < 2:
        raise ValueError(f"{where}: {x_key} {list(x.shape)} and {y_key} {list(y.shape)} must be [n, ...] and [n]: one label per row")
    if len(x) != len(y):
        raise ValueError(f"{where}: {x_key} has {len(x)} rows but {y_key} has {len(y)}: each row of x needs one label")


def label_names(ys: list[np.ndarray], classes: np.ndarray | None, where: str) -> tuple[list[np.ndarray], tuple]:
    """Labels as indices 0..k-1 into the class names: the `classes` array, or else the sorted distinct labels."""
    if classes is None:
        values = np.unique(np.concatenate(ys))
        return [np.searchsorted(values, y) for y in ys], tuple(values.tolist())
    names = tuple(np.asarray(classes).reshape(-1).tolist())
    outside = sorted({int(v) for y in ys for v in y[(y < 0) | (y >= len(names))]})
    if outside:
        raise ValueError(f"{where}: labels {outside[:5]} index no class: y must index classes (0..{len(names) - 1})")
    return ys, names


def select_classes(ys: list[np.ndarray], names: tuple, wanted: list | None, where: str) -> tuple[list[np.ndarray], list[np.ndarray], tuple]:
    """Rows to keep per array, their labels relabelled 0..k-1 in the order `wanted` lists the classes, and the kept
    classes' names. A wanted class is a name, or an index into string names; every kept class must have samples."""
    picks = list(range(len(names))) if wanted is None else [class_index(w, names, where) for w in wanted]
    if len(set(picks)) < len(picks):
        raise ValueError(f"{where}: classes lists a class twice: {list(wanted)}")
    label = np.full(len(names), -1)
    label[picks] = np.arange(len(picks))  # relabel in the order the classes were listed
    relabelled = [label[y] for y in ys]
    kept = np.concatenate(relabelled)
    counts = np.bincount(kept[kept >= 0], minlength=len(picks))
    empty = [names[picks[i]] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise ValueError(f"{where}: class {empty[0]!r} has no samples: leave it out of classes (classes=[...])")
    keep = [r >= 0 for r in relabelled]
    return keep, [r[k] for r, k in zip(relabelled, keep)], tuple(names[i] for i in picks)


def class_index(wanted, names: tuple, where: str) -> int:
    if wanted in names:
        return names.index(wanted)
    by_index = isinstance(wanted, int) and all(isinstance(n, str) for n in names) and 0 <= wanted < len(names)
    if by_index:  # string names: an integer is the label value itself
        return wanted
    raise ValueError(f"{where} has no class {wanted!r}; its classes are {', '.join(map(str, names))}")


def images(x: np.ndarray, where: str) -> torch.Tensor:
    """float32, uint8 scaled to [0, 1], [n, H, W] given a channel axis."""
    if x.ndim > 4:
        raise ValueError(f"{where}: x is {list(x.shape)}; expected [n, d], [n, H, W] or [n, C, H, W]")
    if x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] > 4:  # e.g. [n, 32, 32, 3]: a CNN would read rows as channels
        raise ValueError(f"{where}: x is {list(x.shape)}, channels last; save x.transpose(0, 3, 1, 2) ([n, C, H, W])")
    t = torch.from_numpy(np.ascontiguousarray(x))
    # A copy either way: a dataset owns its tensors, never sharing memory with the arrays (vision caches those).
    t = t.float() / 255 if t.dtype == torch.uint8 else t.to(torch.float32, copy=True)
    return t[:, None] if t.ndim == 3 else t


def check_fractions(val: float, test: float, where: str) -> None:
    if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"{where}: val={val} and test={test} must be fractions with val > 0 and val + test < 1")


def carve(train: Split, val: float, seed: int) -> tuple[Split, Split]:
    """A seeded stratified val split out of train (for pre-split data without one)."""
    rest, held = carved_rows(train.y.numpy(), val, seed)
    return train.take(rest), train.take(held)


def carved_rows(y: np.ndarray, val: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted rows kept for train and those carved out for val, seeded and stratified by `y`."""
    rest, held = train_test_split(np.arange(len(y)), test_size=val, stratify=y, random_state=seed)
    return np.sort(rest), np.sort(held)


def split_or_explain(split: Callable, y: np.ndarray, names: tuple, where: str):
    """Run a stratified split; scikit-learn's refusal (a class too small for it) becomes one line naming the class."""
    try:
        return split()
    except ValueError as e:
        counts = np.bincount(y, minlength=len(names))
        small = int(counts.argmin())
        raise ValueError(f"{where}: too few samples per class for a stratified split (class {names[small]!r} has "
                         f"{counts[small]}; {' '.join(str(e).split())}): add samples, or leave small classes out with classes=[...]") from e
