"""Data over max_gb streams through DataLoader workers: the same rows, labels and numbers as in memory, a digest that
sees a changed file, and a pipeline whose metrics equal the in-memory run's."""

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image
from test_byod_data import image_folder

from crossprune.data import Split, build_pair
from crossprune.data.stream import Stream
from crossprune.data.vision import torchvision_dataset

SPLITS = ("train", "val", "test")
STREAM = 1e-6  # max_gb: any data is over it
TINY = ["model=cnn", "pair=imagefolder", "pair.size=16", "pair.head=keep", "train_a.epochs=1", "train.batch_size=8",
        "stages=[train_a,score,prune,finetune_b]"]


def fake(size: int, offset: int = 0):
    return OmegaConf.create({"_target_": "torchvision.datasets.FakeData", "size": size, "image_size": [3, 16, 16],
                             "num_classes": 4, "random_offset": offset})


def corruption(kind: str):
    return OmegaConf.create({"_target_": "crossprune.data.shifts.Corruption", "kind": kind, "severity": 0.8, "seed": 3})


def assert_same_rows(memory, streamed) -> None:
    """Every split: the same labels, and batch by batch (in order, shuffled, taken) the same x."""
    assert streamed.classes == memory.classes and streamed.input_shape == memory.input_shape
    for s in SPLITS:
        held, read = getattr(memory, s), getattr(streamed, s)
        assert isinstance(held, Split) and isinstance(read, Stream)
        assert torch.equal(held.y, read.y)
        shuffled = torch.randperm(len(held), generator=torch.Generator().manual_seed(1))
        for order in (None, shuffled):
            pairs = list(zip(held.batches(8, order), read.batches(8, order), strict=True))
            assert all(torch.equal(xm, xs) and torch.equal(ym, ys) for (xm, ym), (xs, ys) in pairs), (s, order is None)
        assert torch.equal(read.take(shuffled[:5]).x, held.x[shuffled[:5]])


def test_a_stream_of_train_and_test_holds_the_in_memory_numbers():
    """Pre-split FakeData (val carved out of train), rotated per row: over max_gb every split streams, with workers."""
    args = dict(train=fake(160), test=fake(60, offset=1000), shift=corruption("rotate"), workers=2)
    assert_same_rows(torchvision_dataset("m", **args), torchvision_dataset("s", **args, max_gb=STREAM))


def test_a_stream_of_one_folder_holds_the_in_memory_numbers(tmp_path):
    """One ImageFolder split train/val/test here, resized and blurred: the same rows as in memory."""
    node = OmegaConf.create({"_target_": "torchvision.datasets.ImageFolder", "root": image_folder(tmp_path / "f", 20, 0)})
    args = dict(train=node, size=16, shift=corruption("blur"), workers=2)
    assert_same_rows(torchvision_dataset("m", **args), torchvision_dataset("s", **args, max_gb=STREAM))


def test_streamed_gaussian_noise_is_drawn_per_row():
    """One noise draw over every row cannot be cut into batches: a stream draws each row's own, whatever the batch."""
    d = torchvision_dataset("s", fake(80), shift=corruption("gaussian_noise"), max_gb=STREAM)
    clean = torchvision_dataset("c", fake(80), max_gb=STREAM)
    whole = d.test.take(torch.arange(len(d.test))).x
    assert torch.equal(d.test.take([3, 1]).x, whole[[3, 1]])
    noise = whole - clean.test.take(torch.arange(len(d.test))).x
    assert 0.04 < float(noise.std()) < 0.1 and not torch.equal(noise[0], noise[1])


def test_the_digest_of_a_stream_sees_a_changed_file(tmp_path):
    """Hashing streamed images would read them all: files are known by path, size and mtime, so an edit is new data."""
    node = OmegaConf.create({"_target_": "torchvision.datasets.ImageFolder", "root": image_folder(tmp_path / "f", 10, 0)})
    first = torchvision_dataset("s", node, size=16, max_gb=STREAM).digest
    assert torchvision_dataset("s", node, size=16, max_gb=STREAM).digest == first
    Image.fromarray(np.zeros((15, 15, 3), np.uint8)).save(tmp_path / "f" / "red" / "0.png")
    assert torchvision_dataset("s", node, size=16, max_gb=STREAM).digest != first
    assert torchvision_dataset("m", node, size=16).digest != first  # in memory: the tensors' own digest


def test_a_streamed_pipeline_gives_the_in_memory_metrics(tmp_path, compose_at, run_pipeline, store_runs):
    """ImageFolder A and B through train_a, score, prune and finetune_b: streamed (training batches read by two
    workers, in the same seeded order) every metric equals the in-memory run's."""
    a, b = image_folder(tmp_path / "a", 30, 0), image_folder(tmp_path / "b", 20, 1)
    roots = [f"pair.a.train.root={a}", f"pair.b.train.root={b}"]
    stream = [f"+pair.{s}.max_gb={STREAM}" for s in "ab"] + [f"+pair.{s}.workers=2" for s in "ab"]
    memory = run_pipeline(compose_at(tmp_path / "memory", *TINY, *roots))
    cfg = compose_at(tmp_path / "stream", *TINY, *roots, *stream)
    streamed = run_pipeline(cfg)
    assert isinstance(build_pair(cfg.pair).a.train, Stream)
    assert set(streamed) == set(memory) == {"train_a", "score", "prune", "finetune_b"}
    for stage, result in memory.items():
        assert {"A/acc", "B/acc"} <= result.metrics.keys()
        assert streamed[stage].metrics == result.metrics, stage
    logged = {i.dataset.name for r in store_runs(f"sqlite:///{tmp_path}/stream/mlflow.db") for i in r.inputs.dataset_inputs}
    assert logged == {"A: A", "B: B"}
