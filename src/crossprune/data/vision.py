"""A torchvision dataset named by `_target_` (CIFAR10, SVHN, ImageFolder, FakeData, …): decoded once into memory,
or streamed from disk when its decoded images would take more than `max_gb`."""

import os
from functools import lru_cache, partial
from inspect import signature
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split
from torchvision.transforms import v2  # importable on CPU-only torch: crossprune/__init__ installs the hook

from crossprune.data.dataset import Dataset
from crossprune.data.npz import from_arrays, label_names, select_classes
from crossprune.data.stream import BATCH, Source, read, streamed

# What a dataset's root must hold: nothing is downloaded at run time, so a missing folder names what to put there.
LAYOUTS = {
    "CIFAR10": "<root>/cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)",
    "CIFAR100": "<root>/cifar-100-python/ (train, test, meta)",
    "SVHN": "<root>/train_32x32.mat and <root>/test_32x32.mat",
    "MNIST": "<root>/MNIST/raw/ (train-images-idx3-ubyte, t10k-images-idx3-ubyte and their labels)",
    "FashionMNIST": "<root>/FashionMNIST/raw/ (as MNIST's)",
    "KMNIST": "<root>/KMNIST/raw/ (as MNIST's)",
    "STL10": "<root>/stl10_binary/ (train_X.bin, train_y.bin, test_X.bin, test_y.bin)",
    "ImageFolder": "<root>/<class name>/<image files>, one subfolder per class",
}


def torchvision_dataset(
    name: str,
    train,
    test=None,
    classes: list | None = None,
    max_samples: int | None = None,
    size: int | list[int] | None = None,
    val: float = 0.15,
    test_fraction: float = 0.25,
    split_seed: int = 0,
    shift=None,
    max_gb: float = 8.0,
    workers: int | None = None,
) -> Dataset:
    """The dataset `train` (and `test`) name, every image a float tensor in [0, 1], resized to `size` if given.

    `train` and `test` are configs `{_target_: torchvision.datasets.X, <its arguments>}` (the pair's node sets
    `_recursive_: false`, so they arrive unbuilt, as does `shift`): crossprune builds them itself, with
    download=False. Without `test`, train is split train/val/test (`val`, `test_fraction`,
    seeded and stratified); with it, val is carved out of train. `classes` keeps those (names, or label values)
    relabelled in that order; `max_samples` keeps a seeded stratified subset of at most that many images from each of
    train and test. Decoded images up to `max_gb` (float32, train and test together) are held in memory; more stream,
    every split decoded a batch at a time by `workers` DataLoader processes, with the same rows and numbers."""
    size = (size, size) if isinstance(size, int) else tuple(size) if size is not None else None
    wanted = tuple(classes) if classes is not None else None
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    shift = instantiate(shift) if OmegaConf.is_config(shift) else shift
    sources: dict[str, Source] = {}
    for role, node in (("train", train), ("test", test)):
        if node is None:
            continue
        target, kwargs = spec(node, role, name)
        source = load(target, kwargs, wanted, max_samples, size, split_seed, workers)
        if sources and source.names != sources["train"].names:
            raise ValueError(f"{source.where} has classes {source.names}, train has {sources['train'].names}: test must share train's")
        sources[role] = source
    if sum(s.gb for s in sources.values()) > max_gb:  # more than memory should hold: every split streams
        return streamed(name, list(sources.values()), val, test_fraction, split_seed, shift)
    arrays = {"classes": np.array(sources["train"].names)}
    for role, s in sources.items():
        arrays |= {f"x_{role}": decode(s), f"y_{role}": s.y}
    if test is None:
        arrays["x"], arrays["y"] = arrays.pop("x_train"), arrays.pop("y_train")
    where = " and ".join(s.where for s in sources.values())
    return from_arrays(name, arrays, where, None, val, test_fraction, split_seed, shift)


def spec(node, role: str, name: str) -> tuple[type, tuple]:
    """The dataset class and its arguments (hashable) from its config, or from a partial of it."""
    if isinstance(node, dict | DictConfig) and "_target_" in node:
        unset = [k for k in node if OmegaConf.is_config(node) and OmegaConf.is_missing(node, k)]
        if unset:
            key = f"{role}.{unset[0]}"  # Hydra hands the node over detached: its place in the config is unknown here
            raise ValueError(f"{key} of dataset {name} is not set (??? in its pair file): give it on the command line, "
                             f"pair.a.{key}=... or pair.b.{key}=...")
        try:
            node = instantiate(node, _partial_=True)
        except Exception as e:  # Hydra's own line points at HYDRA_FULL_ERROR; the class that was not found says more
            raise ValueError(f"{role} of dataset {name}: no class {node['_target_']} to build (is it spelt as in "
                             f"torchvision.datasets?)") from e
    if not isinstance(node, partial) or not isinstance(node.func, type):
        raise ValueError(f"{role} of {name} must be a dataset config {{_target_: torchvision.datasets.X, ...}}, got "
                         f"{type(node).__name__}: give its pair node _recursive_: false, so crossprune builds it with download=False")
    plain = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in node.keywords.items()}
    return node.func, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in plain.items()))


@lru_cache(maxsize=2)  # a pair's A and B (and the preflight's build and the run's) read the same source once
def load(target: type, kwargs: tuple, classes: tuple | None, max_samples: int | None, size: tuple | None,
         seed: int, workers: int) -> Source:
    """The dataset, the rows kept, their labels 0..k-1, the class names; nothing decoded but what labels need."""
    ds, where = build(target, dict(kwargs), size)
    y = getattr(ds, "targets", getattr(ds, "labels", None))  # what CIFAR, MNIST, ImageFolder (targets) and SVHN, STL10 (labels) keep
    if y is None:  # FakeData makes its labels as it makes its images: read them all (its images are not kept)
        y = torch.cat([labels for _, labels in read(ds, np.arange(len(ds)), BATCH, workers, where)])
    names = getattr(ds, "classes", None)
    [y], names = label_names([np.asarray(y, dtype=np.int64)], np.array(names) if names else None, where)
    [keep], [y], names = select_classes([y], names, list(classes) if classes is not None else None, where)
    rows = np.flatnonzero(keep)
    if max_samples is not None and max_samples < len(rows):  # a seeded stratified subset: every class keeps its share
        try:
            picked, _ = train_test_split(np.arange(len(rows)), train_size=max_samples, stratify=y, random_state=seed)
        except ValueError as e:
            raise ValueError(f"{where}: max_samples={max_samples} cannot keep every class: {' '.join(str(e).split())}") from e
        picked = np.sort(picked)
        rows, y = rows[picked], y[picked]
    return Source(ds, rows, y, names, where, dict(kwargs).get("root"), workers)


def build(target: type, kwargs: dict, size: tuple | None) -> tuple[torch.utils.data.Dataset, str]:
    """The torchvision dataset, never downloading, its images turned into tensors (of their own dtype)."""
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    where = f"{target.__name__}({shown})"
    layout = LAYOUTS.get(target.__name__, "the files its torchvision class reads under <root>")
    if kwargs.get("download"):
        raise ValueError(f"{where}: download=true is refused, crossprune never downloads at run time: "
                         f"fetch the data into {layout} once, and drop download")
    if "download" in signature(target).parameters:
        kwargs["download"] = False
    root = kwargs.get("root")
    if root is not None and not Path(root).is_dir():
        raise ValueError(f"{where}: no folder {root} (relative to {Path.cwd()}); expected {layout}")
    steps = [v2.ToImage(), *([v2.Resize(list(size), antialias=True)] if size else [])]  # ToDtype comes per batch, in stream.read
    try:
        return target(**kwargs, transform=v2.Compose(steps)), where
    except Exception as e:  # torchvision's advice is download=True, which crossprune refuses: say what must be there
        reason = "no data there" if "download=True" in str(e) else " ".join(str(e).split())
        raise ValueError(f"{where} cannot be read ({reason}); expected {layout}") from e


@lru_cache(maxsize=2)  # per Source (by identity), which load's cache keeps alive for the pair's A and B
def decode(source: Source) -> np.ndarray:
    """Every kept row's image [n, C, H, W], float32 in [0, 1], in memory."""
    x = np.empty((len(source.rows), *source.sample_shape), dtype=np.float32)
    done = 0
    for images, _ in read(source.ds, source.rows, BATCH, source.workers, source.where):
        x[done : done + len(images)] = images.numpy()
        done += len(images)
    return x
