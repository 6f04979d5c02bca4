"""The IDX files of MNIST-like datasets (LeCun et al. 1998), gzip-compressed (`.gz`) or plain.

A file is a big-endian header, then the values: two zero bytes, a type byte (0x08, unsigned byte: the only one these
datasets use), the number of dimensions, each dimension as a 4-byte integer. The first four bytes read as one number
are the magic: 2049 for labels (1 dimension), 2051 for images (3: count, rows, columns).
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

MAGIC = {"labels": 2049, "images": 2051}


def read_idx(path: Path, kind: str) -> np.ndarray:
    """The uint8 array in the IDX file of `kind` (labels or images) at `path`; a bad file is one line saying why."""
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as e:  # a cut-off or damaged gzip stream says it in several ways
        raise ValueError(f"{path} cannot be read ({' '.join(str(e).split()) or type(e).__name__})") from e
    return parse(data, path, kind)


def parse(data: bytes, path: Path, kind: str) -> np.ndarray:
    """The values of an IDX file's bytes `data`, shaped as its header says; its size must match the header's exactly."""
    magic = int.from_bytes(data[:4], "big")
    if len(data) < 4 or magic != MAGIC[kind]:
        found = f"magic number {magic}" if len(data) >= 4 else f"{len(data)} bytes"
        raise ValueError(f"{path} is not an IDX {kind} file ({found}, expected magic number {MAGIC[kind]})")
    ndim, header = data[3], 4 + 4 * data[3]
    if len(data) < header:
        raise ValueError(f"{path} is truncated: {len(data)} bytes, fewer than its {header}-byte header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size, held = int(np.prod(shape)), len(data) - header
    if held != size:
        how = "truncated" if held < size else "longer than its header says"
        raise ValueError(f"{path} is {how}: its header says {' x '.join(map(str, shape))} = {size} values, it holds {held}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
