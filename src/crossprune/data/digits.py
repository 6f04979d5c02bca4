"""scikit-learn's embedded 8x8 digits (no download), optionally a subset of classes and a covariate shift."""

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from crossprune.data.dataset import Dataset, stratified_splits


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float32)[:, None], bunch.target


def digits(
    name: str = "digits",
    classes: list[int] | None = None,
    shift: Callable[[torch.Tensor], torch.Tensor] | None = None,
    val: float = 0.15,
    test: float = 0.25,
    split_seed: int = 0,
    size: int | None = None,
) -> Dataset:
    """Digits restricted to `classes` (relabelled 0..k-1 in that order), resized to `size` x `size` (bilinear) if
    given, e.g. 28 to meet Fashion-MNIST; `shift` transforms every image."""
    x, y = _raw()
    classes = list(range(10)) if classes is None else list(classes)
    keep = np.isin(y, classes)
    label = {c: i for i, c in enumerate(classes)}  # relabel in the order the classes were listed
    x, y = x[keep], np.array([label[c] for c in y[keep]])
    if size is not None:
        x = F.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False).numpy()
    if shift is not None:
        x = shift(torch.from_numpy(x)).numpy()
    return stratified_splits(name, x, y, tuple(classes), val, test, split_seed)
