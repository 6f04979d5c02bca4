"""Evaluate a network on both datasets: head accuracy where its label space matches, a linear probe always."""

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

from crossprune.data import Dataset, Pair


@torch.no_grad()
def evaluate(net: nn.Module, classes: tuple, pair: Pair, probe: DictConfig) -> dict[str, float]:
    """Test-split metrics `A/acc`, `A/loss`, `A/probe_acc` and the same for B; `classes` is the head's label space."""
    net.eval()
    metrics = {}
    for tag, data in (("A", pair.a), ("B", pair.b)):
        if classes == data.classes:
            logits = net(data.test.x)
            metrics[f"{tag}/acc"] = float(multiclass_accuracy(logits, data.test.y, data.num_classes, average="micro"))
            metrics[f"{tag}/loss"] = float(F.cross_entropy(logits, data.test.y))
        metrics[f"{tag}/probe_acc"] = probe_accuracy(net, data, probe)
    return metrics


def probe_accuracy(net: nn.Module, data: Dataset, probe: DictConfig) -> float:
    """A linear probe fitted on frozen penultimate features of the train split, scored on the test split."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=probe.C, max_iter=probe.max_iter))
    clf.fit(net.features(data.train.x).numpy(), data.train.y.numpy())
    return float(clf.score(net.features(data.test.x).numpy(), data.test.y.numpy()))
