"""Score a network with the configured criterion on the configured score data (shared by score and prune)."""

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from crossprune.criteria import Batch
from crossprune.data import Dataset, Pair
from crossprune.stages.compute import Compute
from crossprune.stages.evaluate import fit_head
from crossprune.stages.seeds import generator
from crossprune.store.names import score_data


class Objective:
    """Cross-entropy through the net's head where the batch's labels are the head's (`classes`), else through a
    head fitted on frozen features for that dataset on first need."""

    def __init__(self, net: nn.Module, pair: Pair, classes: tuple, probe: DictConfig, compute: Compute):
        self.net, self.pair, self.classes, self.probe, self.compute, self.fitted = net, pair, classes, probe, compute, {}

    def __call__(self, batch: Batch) -> Tensor:
        data, head = self.pair[batch.head], self.net.head
        if data.classes != self.classes:
            if batch.head not in self.fitted:
                self.fitted[batch.head] = fit_head(self.net, data, self.probe, self.compute).to(self.compute.device)
            head = self.fitted[batch.head]
        return F.cross_entropy(head(self.net.features(batch.x)), batch.y)


def compute_scores(net: nn.Module, params: dict[str, nn.Parameter], cfg: DictConfig, pair: Pair, classes: tuple,
                   data: str | None = None, stream: str = "score") -> tuple[dict[str, Tensor], list[str]]:
    """The criterion's scores of `params` on `data` (default score.data), on the Trainer's device, and the datasets
    whose heads were fitted. The net is scored in eval mode: BatchNorm uses its running statistics and scoring never
    changes them."""
    compute = Compute.of(cfg)
    loss = Objective(net, pair, classes, cfg.eval.probe, compute)
    device = compute.device
    batches = [Batch(b.x.to(device), b.y.to(device), b.head) for b in score_batches(cfg, pair, data or score_data(cfg), stream)]
    with compute.on(net):
        scores = instantiate(cfg.criterion.score)(net=net, params=params, batches=batches, loss=loss)
    return {n: s.cpu() for n, s in scores.items()}, sorted(loss.fitted)


def score_batches(cfg: DictConfig, pair: Pair, data: str, stream: str = "score") -> list[Batch]:
    """`score.batches` seeded batches from the train split of A, of B, or a `score.mix` fraction from B.

    Batch i is position i of its dataset's own stream, and A's and B's streams share one seed: drawing from one
    never moves the other, so when A and B are the same data, scoring on A, on B or on a mix sees the same batches.
    """
    s = cfg.score
    if data == "none":
        return []
    from_a = s.batches - {"A": 0, "B": s.batches, "mix": round(s.mix * s.batches)}[data]
    a = draw(pair.a, "A", s.batches, s.batch_size, generator(cfg.seed, stream))
    b = draw(pair.b, "B", s.batches, s.batch_size, generator(cfg.seed, stream))
    return a[:from_a] + b[from_a:]


def draw(data: Dataset, head: str, n: int, size: int, rng: torch.Generator) -> list[Batch]:
    order = torch.randperm(len(data.train), generator=rng).repeat(n * size // len(data.train) + 1)  # cycle when short
    return [Batch(part.x, part.y, head) for part in map(data.train.take, order[: n * size].split(size))]

