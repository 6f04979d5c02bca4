"""Evaluate a network on both datasets: its own head, refitted probes, and the instruments fixed on train_a."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_accuracy

from crossprune.data import Dataset, Pair
from crossprune.diagnostics import effective_rank, linear_cka, mmd2_rbf, proxy_a_distance

TAGS = ("A", "B")


@torch.no_grad()
def evaluate(net: nn.Module, classes: tuple, pair: Pair, probe: DictConfig, reference: "Reference | None" = None) -> dict[str, float]:
    """Test-split metrics per dataset (`A/…`, `B/…`); `classes` is the head's label space.

    `acc`/`loss` through the net's head where its labels match; `probe_acc` refitted on this net's features;
    `feature_rank`; and, against the dense train_a `reference`, `fixed_head_acc` and `cka/<layer>`.
    """
    net.eval()
    metrics = {}
    for tag in TAGS:
        data = pair[tag]
        features, hidden = forward(net, data.test.x)
        if classes == data.classes:
            logits = net.head(features)
            metrics[f"{tag}/acc"] = accuracy(logits, data.test.y)
            metrics[f"{tag}/loss"] = float(F.cross_entropy(logits, data.test.y))
        metrics[f"{tag}/probe_acc"] = probe_accuracy(net.features, data, probe)
        metrics[f"{tag}/feature_rank"] = effective_rank(features)
        if reference is not None:
            metrics |= {f"{tag}/{k}": v for k, v in reference.compare(features, hidden, tag, data).items()}
    return metrics


@dataclass
class Reference:
    """The dense train_a network as every later stage is measured against it: heads fitted once on its features
    (A's own head, and a B head on frozen features of B's train split), and its hidden activations on each test split."""

    heads: dict[str, nn.Linear]
    hidden: dict[str, dict[str, Tensor]]

    @classmethod
    @torch.no_grad()
    def fit(cls, dense: nn.Module, pair: Pair, probe: DictConfig) -> "Reference":
        dense.eval()
        b_head = linear_head(dense.features(pair.b.train.x), pair.b.train.y, pair.b.num_classes, probe)
        return cls.of(dense, pair, {"A": dense.head, "B": b_head})

    @classmethod
    @torch.no_grad()
    def of(cls, dense: nn.Module, pair: Pair, heads: dict[str, nn.Linear]) -> "Reference":
        dense.eval()
        return cls({t: h.eval() for t, h in heads.items()}, {t: forward(dense, pair[t].test.x)[1] for t in TAGS})

    def tensors(self) -> dict[str, Tensor]:
        """The fixed heads as flat tensors (`A.weight`, `B.bias`, …) for safetensors."""
        return {f"{t}.{k}": v for t, h in self.heads.items() for k, v in h.state_dict().items()}

    @staticmethod
    def heads_from(tensors: dict[str, Tensor]) -> dict[str, nn.Linear]:
        heads = {}
        for t in TAGS:
            weight = tensors[f"{t}.weight"]
            heads[t] = nn.Linear(weight.shape[1], weight.shape[0])
            heads[t].load_state_dict({"weight": weight, "bias": tensors[f"{t}.bias"]})
        return heads

    def compare(self, features: Tensor, hidden: dict[str, Tensor], tag: str, data: Dataset) -> dict[str, float]:
        """`fixed_head_acc` of a network's test-split `features` (where the widths still match: not after structured
        removal of penultimate units) and `cka/<layer>` of its `hidden` outputs against the dense network's."""
        out = {}
        head = self.heads[tag]
        if features.shape[1] == head.in_features:
            out["fixed_head_acc"] = accuracy(head(features), data.test.y)
        out |= {f"cka/{layer}": linear_cka(dense, hidden[layer]) for layer, dense in self.hidden[tag].items() if layer in hidden}
        return out


def forward(net: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """One pass: the penultimate features, and the output of every Linear/Conv layer but the head (named as in
    `prune.layers`), flattened per sample."""
    hidden: dict[str, Tensor] = {}
    layers = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d) and not n.startswith("head")}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: hidden.__setitem__(n, o.detach().flatten(1))) for n, m in layers.items()]
    try:
        features = net.features(x)
    finally:
        for h in hooks:
            h.remove()
    return features, hidden


@torch.no_grad()
def instrument_references(dense: nn.Module, untrained: nn.Module, pair: Pair, probe: DictConfig) -> dict[str, float]:
    """What the instruments must beat and how far apart A and B are (train_a only).

    `probe_acc_raw` (a probe on raw inputs) and `probe_acc_init` (on an untrained network) say when a probe or a
    fixed head is saturated, `chance` (always the test split's most frequent class) when a head is at chance;
    `dissimilarity/mmd` (dense features), `mmd_raw` (inputs) and `pad` (proxy A-distance).
    """
    dense.eval(), untrained.eval()
    metrics = {}
    for tag in TAGS:
        metrics[f"{tag}/chance"] = float(pair[tag].test.y.bincount().max() / len(pair[tag].test.y))
        metrics[f"{tag}/probe_acc_raw"] = probe_accuracy(lambda x: x.flatten(1), pair[tag], probe)
        metrics[f"{tag}/probe_acc_init"] = probe_accuracy(untrained.features, pair[tag], probe)
    a, b = pair.a.test.x, pair.b.test.x
    fa, fb = dense.features(a), dense.features(b)
    metrics["dissimilarity/mmd"] = mmd2_rbf(fa, fb)
    metrics["dissimilarity/mmd_raw"] = mmd2_rbf(a.flatten(1), b.flatten(1))
    metrics["dissimilarity/pad"] = proxy_a_distance(fa, fb)
    return metrics


def accuracy(logits: Tensor, y: Tensor) -> float:
    return float(multiclass_accuracy(logits, y, logits.shape[1], average="micro"))


def make_probe(probe: DictConfig):
    return make_pipeline(StandardScaler(), LogisticRegression(C=probe.C, max_iter=probe.max_iter))


@torch.no_grad()
def probe_accuracy(features, data: Dataset, probe: DictConfig) -> float:
    """A linear probe fitted on frozen `features` of the train split, scored on the test split."""
    clf = make_probe(probe).fit(features(data.train.x).numpy(), data.train.y.numpy())
    return float(clf.score(features(data.test.x).numpy(), data.test.y.numpy()))


@torch.no_grad()
def linear_head(features: Tensor, y: Tensor, num_classes: int, probe: DictConfig) -> nn.Linear:
    """A probe fitted once and frozen into an nn.Linear (the standardisation folded into its weights)."""
    clf = make_probe(probe).fit(features.numpy(), y.numpy())
    scaler, lr = clf[0], clf[1]
    coef, intercept = torch.as_tensor(lr.coef_, dtype=torch.float32), torch.as_tensor(lr.intercept_, dtype=torch.float32)
    if len(lr.classes_) == 2:  # sklearn keeps one row for two classes: logit of class 1 against a zero class 0
        coef, intercept = torch.cat([torch.zeros_like(coef), coef]), torch.cat([torch.zeros(1), intercept])
    mean, scale = torch.as_tensor(scaler.mean_, dtype=torch.float32), torch.as_tensor(scaler.scale_, dtype=torch.float32)
    head = nn.Linear(features.shape[1], num_classes)
    head.weight.zero_(), head.bias.zero_()
    rows = torch.as_tensor(lr.classes_, dtype=torch.long)  # a class absent from the train split keeps a zero row
    head.weight[rows] = coef / scale
    head.bias[rows] = intercept - (coef * mean / scale).sum(1)
    return head
