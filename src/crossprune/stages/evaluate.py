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

from crossprune.data import Dataset, Pair, Split
from crossprune.diagnostics import centred_gram, effective_rank, gram_cka, mmd2_rbf, mmd_rows, proxy_a_distance
from crossprune.stages.compute import Compute

TAGS = ("A", "B")


def evaluate(net: nn.Module, classes: tuple, pair: Pair, probe: DictConfig, compute: Compute,
             reference: "Reference | None" = None) -> dict[str, float]:
    """Test-split metrics per dataset (`A/…`, `B/…`); `classes` is the head's label space.

    `acc`/`loss` through the net's head where its labels match; `probe_acc` refitted on this net's features;
    `feature_rank`; `n_test`, the test samples every accuracy is over; and, against the dense train_a `reference`,
    `fixed_head_acc` and `cka/<layer>`.
    """
    metrics = {}
    with compute.on(net):
        for tag in TAGS:
            data = pair[tag]
            metrics[f"{tag}/n_test"] = float(len(data.test))  # what one accuracy can resolve: its SE √(p(1 − p)/n)
            features = compute.run(net.features, data.test)
            if classes == data.classes:
                logits = compute.run(net.head, features)
                metrics[f"{tag}/acc"] = accuracy(logits, data.test.y)
                metrics[f"{tag}/loss"] = float(F.cross_entropy(logits, data.test.y))
            metrics[f"{tag}/probe_acc"] = probe_accuracy(net.features, data, probe, compute)
            metrics[f"{tag}/feature_rank"] = effective_rank(features)
            if reference is not None:
                metrics |= {f"{tag}/{k}": v for k, v in reference.compare(net, features, tag, data, compute).items()}
    return metrics


@dataclass
class Reference:
    """The dense train_a network as every later stage is measured against it: heads fitted once on its features
    (A's own head, and a B head on frozen features of B's train split), and the centred Gram matrix of each hidden
    layer's outputs on (at most eval.max_samples rows of) each test split, which is all linear CKA needs."""

    heads: dict[str, nn.Linear]
    grams: dict[str, dict[str, Tensor]]

    @classmethod
    def fit(cls, dense: nn.Module, pair: Pair, probe: DictConfig, compute: Compute) -> "Reference":
        with compute.on(dense):
            b_head = fit_head(dense, pair.b, probe, compute)
        return cls.of(dense, pair, {"A": dense.head, "B": b_head}, compute)

    @classmethod
    def of(cls, dense: nn.Module, pair: Pair, heads: dict[str, nn.Linear], compute: Compute) -> "Reference":
        with compute.on(dense):
            grams = {t: hidden_grams(dense, pair[t].test, compute) for t in TAGS}
        return cls({t: h.eval() for t, h in heads.items()}, grams)

    def tensors(self) -> dict[str, Tensor]:
        """The fixed heads as flat tensors (`A.weight`, `B.bias`, …) for safetensors."""
        return {f"{t}.{k}": v.detach().cpu() for t, h in self.heads.items() for k, v in h.state_dict().items()}

    @staticmethod
    def heads_from(tensors: dict[str, Tensor]) -> dict[str, nn.Linear]:
        heads = {}
        for t in TAGS:
            weight = tensors[f"{t}.weight"]
            heads[t] = nn.Linear(weight.shape[1], weight.shape[0])
            heads[t].load_state_dict({"weight": weight, "bias": tensors[f"{t}.bias"]})
        return heads

    def compare(self, net: nn.Module, features: Tensor, tag: str, data: Dataset, compute: Compute) -> dict[str, float]:
        """`fixed_head_acc` of a network's test-split `features` (where the widths still match: not after structured
        removal of penultimate units) and `cka/<layer>` of its hidden outputs against the dense network's."""
        out = {}
        head = self.heads[tag]
        if features.shape[1] == head.in_features:
            with torch.no_grad():
                out["fixed_head_acc"] = accuracy(head(features), data.test.y)
        grams = hidden_grams(net, data.test, compute)
        out |= {f"cka/{layer}": gram_cka(dense, grams[layer]) for layer, dense in self.grams[tag].items() if layer in grams}
        return out


def hidden_grams(net: nn.Module, split: Split, compute: Compute) -> dict[str, Tensor]:
    """The centred Gram matrix of the output of every Linear/Conv layer but the head (named as in `prune.layers`),
    flattened per sample, on at most eval.max_samples rows of `split` (an n×n matrix per layer, whatever its width)."""
    hidden: dict[str, list[Tensor]] = {}
    layers = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d) and not n.startswith("head")}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: hidden.setdefault(n, []).append(o.flatten(1)))  # on the device
             for n, m in layers.items()]
    try:
        compute.run(net.features, split, compute.rows(len(split)))
    finally:
        for h in hooks:
            h.remove()
    with torch.inference_mode():
        return {n: centred_gram(torch.cat(parts)).cpu() for n, parts in hidden.items()}


def instrument_references(dense: nn.Module, untrained: nn.Module, pair: Pair, probe: DictConfig, compute: Compute) -> dict[str, float]:
    """What the instruments must beat and how far apart A and B are (train_a only).

    `probe_acc_raw` (a probe on raw inputs) and `probe_acc_init` (on an untrained network) say when a probe or a
    fixed head is saturated, `chance` (always the test split's most frequent class) when a head is at chance;
    `dissimilarity/mmd` (dense features), `mmd_raw` (inputs) and `pad` (proxy A-distance).
    """
    metrics = {}
    with compute.on(dense, untrained):
        for tag in TAGS:
            metrics[f"{tag}/chance"] = float(pair[tag].test.y.bincount().max() / len(pair[tag].test.y))
            metrics[f"{tag}/probe_acc_raw"] = probe_accuracy(lambda x: x.flatten(1), pair[tag], probe, compute)
            metrics[f"{tag}/probe_acc_init"] = probe_accuracy(untrained.features, pair[tag], probe, compute)
        fa, fb = compute.run(dense.features, pair.a.test), compute.run(dense.features, pair.b.test)
    # Only the rows mmd2_rbf keeps of each test split are read: a streamed one is never held whole.
    a, b = (pair[t].test.take(mmd_rows(len(pair[t].test))).x for t in TAGS)
    metrics["dissimilarity/mmd"] = mmd2_rbf(fa, fb)
    metrics["dissimilarity/mmd_raw"] = mmd2_rbf(a.flatten(1), b.flatten(1))
    metrics["dissimilarity/pad"] = proxy_a_distance(fa, fb)
    return metrics


def accuracy(logits: Tensor, y: Tensor) -> float:
    return float(multiclass_accuracy(logits, y, logits.shape[1], average="micro"))


def make_probe(probe: DictConfig):
    return make_pipeline(StandardScaler(), LogisticRegression(C=probe.C, max_iter=probe.max_iter))


def probe_accuracy(features, data: Dataset, probe: DictConfig, compute: Compute) -> float:
    """A linear probe fitted on frozen `features` of (at most eval.max_samples rows of) the train split, scored on
    the whole test split."""
    rows = compute.rows(len(data.train))
    clf = make_probe(probe).fit(compute.run(features, data.train, rows).numpy(), data.train.y[rows].numpy())
    return float(clf.score(compute.run(features, data.test).numpy(), data.test.y.numpy()))


def fit_head(net: nn.Module, data: Dataset, probe: DictConfig, compute: Compute) -> nn.Linear:
    """A head for `data` fitted on frozen features of (at most eval.max_samples rows of) its train split, e.g. the
    fixed B head or a B objective; on the CPU. The net is used where it is, in the mode it is in."""
    rows = compute.rows(len(data.train))
    return linear_head(compute.run(net.features, data.train, rows), data.train.y[rows], data.num_classes, probe)


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
