"""MNIST-1D (Greydanus 2020) generated offline, optionally a subset of classes and stronger nuisances."""

import hashlib
import json
import os
import random
import zipfile
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

from crossprune.data.dataset import Dataset, stratified_splits
from crossprune.data.shifts import check_severity

# Generator arguments at severity 1; severity s moves each linearly from MNIST-1D's default (severity 0) towards it.
#   scale_coeff       0.4  → 0.8    amplitude × 1 ± c/2: still positive (valid while c < 2)
#   corr_noise_scale  0.25 → 0.5    smooth noise filling the padding around the digit; at 0.75 it looks like digits
#                                   (alone it left a CNN1d trained at defaults at 19%, against 57% at 0.5)
#   iid_noise_scale   0.02 → 0.10   white noise on every position
#   shear_scale       0.75 → 1.5    a linear trend of slope up to ±c/2 across the signal
# Together, a CNN1d trained at defaults (96% there) scores 82/62/35% at severity 0.25/0.5/1, and one trained on B
# 69/45% at 0.5/1: B gets harder as well as different.
# Each only scales a random draw, so every severity consumes the same random stream: B's row i is A's row i (same
# digit, padding, offset and noise draws) with the nuisances turned up. max_translation (48 of 72 positions) stays:
# its draw is rejection-sampled, so another value would desynchronise the stream from that row on.
SEVERE = {"scale_coeff": 0.8, "corr_noise_scale": 0.5, "iid_noise_scale": 0.1, "shear_scale": 1.5}


@lru_cache(maxsize=64)  # a pair's A and B often share one draw
def _raw(num_samples: int, seed: int, severity: float) -> tuple[np.ndarray, np.ndarray]:
    """A draw, from the disk cache when this machine made it before: generating 3,000 takes ~1 s, and a ten-seed
    study's preflight and each of its worker processes drew the same ones again."""
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    for key, top in SEVERE.items():
        setattr(args, key, getattr(args, key) + severity * (top - getattr(args, key)))  # exactly the default at 0
    spec = json.dumps([version("mnist1d"), sorted(vars(args).items())], default=str)  # every generator argument
    cached = cache_dir() / f"{hashlib.sha256(spec.encode()).hexdigest()[:24]}.npz"
    try:
        with np.load(cached) as d:
            return d["x"], d["y"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # not made yet, or damaged: drawn again
        pass
    state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)  # never get_dataset: that one downloads
    finally:  # make_dataset reseeds the global generators; leave them as they were
        random.setstate(state[0])
        np.random.set_state(state[1])
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)[:, None]  # [n, 1 channel, 40 positions]
    y = np.concatenate([d["y"], d["y_test"]])
    keep(cached, x, y)
    return x, y


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crossprune" / "mnist1d"


def keep(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write the draw under a temporary name, then move it into place: a reader never sees half a file. A cache
    that cannot be written (a read-only home) is only slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        making = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez(making, x=x, y=y)
        os.replace(making, path)
    except OSError:
        pass


def mnist1d(
    name: str = "mnist1d",
    classes: list[int] | None = None,
    severity: float = 0.0,
    num_samples: int = 5000,
    val: float = 0.15,
    test: float = 0.25,
    split_seed: int = 0,
    seed: int = 0,
    draw: int = 0,
    parts: int = 1,
) -> Dataset:
    """MNIST-1D drawn with `seed` (num_samples // 10 per class), restricted to `classes` (relabelled 0..k-1). `draw`
    k > 0 is the k-th independent draw of the same distribution for that seed (0: the draw of `seed` itself); with
    `parts` p > 1, the k-th of p class-stratified parts of one draw of p × num_samples instead. Parts are the null's
    samples: mnist1d standardises each draw by its own mean and std, so two draws differ by that affine map too."""
    if not isinstance(num_samples, int) or num_samples < 100:
        raise ValueError(f"num_samples must be an integer of at least 100 (10 per class), got {num_samples!r}")
    if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
        raise ValueError(f"parts must be a positive integer, got {parts!r}")
    if not isinstance(draw, int) or isinstance(draw, bool) or draw < 0 or (parts > 1 and draw >= parts):
        raise ValueError(f"draw must be a non-negative integer{f' below parts={parts}' if parts > 1 else ''}, got {draw!r}")
    if parts > 1:
        x, y = _raw(num_samples * parts, seed, float(check_severity(severity)))
        part = np.sort(np.concatenate([np.flatnonzero(y == c)[draw::parts] for c in np.unique(y)]))
        x, y = x[part], y[part]
    else:
        seed = seed if draw == 0 else int(np.random.SeedSequence([seed, draw]).generate_state(1)[0] % 2**31)
        x, y = _raw(num_samples, seed, float(check_severity(severity)))
    classes = list(range(10)) if classes is None else list(classes)
    keep = np.isin(y, classes)
    label = {c: i for i, c in enumerate(classes)}  # relabel in the order the classes were listed
    x, y = x[keep], np.array([label[c] for c in y[keep]])
    return stratified_splits(name, x, y, tuple(classes), val, test, split_seed)
