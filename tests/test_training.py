"""Training details: in-memory batches, the learning-rate schedule, per-sample augmentation, the compute device."""

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from crossprune.data import Split
from crossprune.stages.compute import Compute, device_of
from crossprune.stages.training import Batches

COSINE = "+train.scheduler={_target_:torch.optim.lr_scheduler.CosineAnnealingLR,_partial_:true}"


def test_batches_cover_every_row_once_per_epoch_in_a_seeded_order():
    split = Split(torch.arange(10.0)[:, None], torch.arange(10))
    torch.manual_seed(0)
    first = [y.tolist() for _, y in Batches(split, 4, shuffle=True)]
    torch.manual_seed(0)
    again = [y.tolist() for _, y in Batches(split, 4, shuffle=True)]
    assert first == again and [len(b) for b in first] == [4, 4, 2] and len(Batches(split, 4, True)) == 3
    assert sorted(sum(first, [])) == list(range(10)) and sum(first, []) != list(range(10))
    assert [y.tolist() for _, y in Batches(split, 4, shuffle=False)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    odd = Split(torch.arange(9.0)[:, None], torch.arange(9))  # 4 + 4 + 1: a training batch of one is dropped
    assert len(Batches(odd, 4, True)) == 2 == len(list(Batches(odd, 4, True))) and len(list(Batches(odd, 4, False))) == 3
    flipped = next(iter(Batches(split, 10, False, augment=lambda x: -x)))[0]
    assert torch.equal(flipped, -split.x)


def history(run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(MlflowClient().get_metric_history(run_id, key), key=lambda m: m.step)]


def test_cosine_schedule_spans_each_stage_and_joins_its_key(make_cfg, run_pipeline):
    """train.scheduler's T_max is each stage's own epochs: the rate falls from lr towards 0 within train_a (5 epochs)
    and within finetune_b (3); without a schedule it stays at lr."""
    shrink = ["train_a.epochs=5", "finetune_b.epochs=3", "stages=[finetune_b]"]
    cosine = run_pipeline(make_cfg(*shrink, COSINE))
    plain = run_pipeline(make_cfg(*shrink))
    a, b = history(cosine["train_a"].run_id, "train/lr"), history(cosine["finetune_b"].run_id, "train/lr")
    assert a[0] == pytest.approx(0.003) and a == sorted(a, reverse=True) and a[-1] == pytest.approx(0.003 * (1 + torch.cos(torch.tensor(4 / 5 * torch.pi)).item()) / 2)
    assert len(b) == 3 and b[0] == pytest.approx(0.003) and b[-1] < 0.001
    assert history(plain["train_a"].run_id, "train/lr") == pytest.approx([0.003] * 5)
    assert cosine["train_a"].key != plain["train_a"].key and cosine["train_a"].metrics["A/acc"] > 0.5


def test_augmentation_applies_per_sample_to_training_only(make_cfg, run_pipeline):
    """pair.augment (here a seeded noise of the torchvision kind) changes the training runs, not the evaluation data."""
    noise = "+pair.augment={_target_:torchvision.transforms.v2.GaussianNoise,sigma:0.5}"
    shrink = ["train_a.epochs=3", "stages=[train_a]"]
    augmented, plain = run_pipeline(make_cfg(*shrink, noise))["train_a"], run_pipeline(make_cfg(*shrink))["train_a"]
    assert augmented.key != plain.key
    assert history(augmented.run_id, "train/loss")[-1] > history(plain.run_id, "train/loss")[-1]  # harder inputs
    assert augmented.metrics["A/probe_acc_raw"] == plain.metrics["A/probe_acc_raw"]  # test data untouched


@pytest.mark.parametrize(("accelerator", "devices", "expected"), [
    ("cpu", 1, "cpu"), ("gpu", 1, "cuda:0"), ("cuda", [2, 3], "cuda:2"), ("gpu", "1,3", "cuda:1"), ("cuda", "auto", "cuda:0"),
])
def test_scoring_and_evaluation_follow_the_trainers_device(accelerator, devices, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    trainer = OmegaConf.create({"accelerator": accelerator, "devices": devices})
    assert device_of(trainer) == torch.device(expected)


def test_compute_caps_rows_to_a_seeded_subset_and_batches_inference():
    compute = Compute(torch.device("cpu"), batch_size=7, max_samples=10)
    rows = compute.rows(100)
    assert len(rows) == 10 and torch.equal(rows, compute.rows(100)) and torch.equal(rows, rows.sort().values)
    assert torch.equal(Compute(torch.device("cpu"), 7, None).rows(100), torch.arange(100))
    net = torch.nn.Linear(3, 2)
    x = torch.randn(20, 3)
    assert torch.allclose(compute.run(net, x), net(x).detach())
