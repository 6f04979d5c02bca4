"""Tiny Fashion-MNIST files for the tests: the four IDX files of 28x28 images whose class is easy to read."""

import gzip
from pathlib import Path

import numpy as np

PER_CLASS = {"train": 20, "test": 4}  # images per class written into each split's files


def idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array: magic 0x0000 08 <ndim>, each dimension as a big-endian 4-byte integer."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def images(split: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """28x28 uint8 images whose class c is a centred square of value 60 + 19c on noise: learnable by an MLP and by a
    CNN that pools globally. Labels interleaved (0, 1, ..., 9, 0, ...), as a real file's are mixed."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(10), PER_CLASS[split]).astype(np.uint8)
    x = rng.integers(0, 40, (len(y), 28, 28)).astype(np.uint8)
    x[:, 8:20, 8:20] = (60 + 19 * y)[:, None, None]
    return x, y


def write(folder: Path, gz: bool = True, seed: int = 0) -> Path:
    """The four files of a tiny Fashion-MNIST in `folder`, gzipped or plain."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = images(split, seed)
        for name, array in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(idx(array)))
            else:
                (folder / name).write_bytes(idx(array))
    return folder
