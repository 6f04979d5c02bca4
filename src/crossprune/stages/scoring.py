"""Score a network with the configured criterion on the configured score data (shared by score and prune)."""

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from crossprune.criteria import Batch, Loss
from crossprune.data import Pair, Split
from crossprune.pruning import Mask
from crossprune.stages.compute import Compute
from crossprune.stages.evaluate import fit_head
from crossprune.stages.seeds import generator
from crossprune.store.names import score_data


class Objective(Loss):
    """Cross-entropy through the net's head where the batch's labels are the head's (`classes`), else through a
    head fitted on frozen features for that dataset on first need."""

    def __init__(self, net: nn.Module, pair: Pair, classes: tuple, probe: DictConfig, compute: Compute):
        super().__init__(net)
        self.pair, self.classes, self.probe, self.compute, self.fitted = pair, classes, probe, compute, {}

    def head(self, batch: Batch) -> nn.Module:
        data = self.pair[batch.head]
        if data.classes == self.classes:
            return self.net.head
        if batch.head not in self.fitted:
            self.fitted[batch.head] = fit_head(self.net, data, self.probe, self.compute).to(self.compute.device)
        return self.fitted[batch.head]


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


def prune_with_method(net: nn.Module, params: dict[str, nn.Parameter], cfg: DictConfig, pair: Pair,
                      data: str) -> Mask:
    """Run the criterion's pruning method (`criterion.method`, e.g. SparseGPT) on the calibration batches of
    `data`, on the Trainer's device: it prunes `params` of `net` in place, updating the weights it keeps; its mask."""
    compute = Compute.of(cfg)
    batches = [Batch(b.x.to(compute.device), b.y.to(compute.device), b.head) for b in score_batches(cfg, pair, data)]
    with compute.on(net):
        return instantiate(cfg.criterion.method)(net=net, params=params, batches=batches)


def score_batches(cfg: DictConfig, pair: Pair, data: str, stream: str = "score") -> list[Batch]:
    """`score.batches` seeded batches (or `score.nsamples` rows in batches of `score.batch_size`) from the
    `score.split` split (train; val: rows train_a never saw) of A, of B, or a `score.mix` fraction from B; a language model's sequences cut to `score.seqlen` tokens.

    Row i is position i of its dataset's own stream (a mix: A's first rows, then B's from where A's end), and A's
    and B's streams share one seed: drawing from one never moves the other, so when A and B are the same data,
    scoring on A, on B or on a mix sees the same batches. The mix is counted in rows: one batch of 32 sequences is
    still half A and half B.
    """
    s = cfg.score
    if data == "none":
        return []
    rows = s.nsamples or s.batches * s.batch_size
    from_a = rows - {"A": 0, "B": rows, "mix": round(s.mix * rows)}[data]
    a = draw(getattr(pair.a, s.split), "A", 0, from_a, s.batch_size, generator(cfg.score.seed, stream), s.seqlen)
    b = draw(getattr(pair.b, s.split), "B", from_a, rows, s.batch_size, generator(cfg.score.seed, stream), s.seqlen)
    return a + b


def draw(rows_of: Split, head: str, start: int, stop: int, size: int, rng: torch.Generator,
         seqlen: int | None = None) -> list[Batch]:
    """Rows `start` to `stop` of a split's seeded stream, in batches of `size`."""
    if start >= stop:
        return []
    order = torch.randperm(len(rows_of), generator=rng).repeat(stop // len(rows_of) + 1)  # cycle when short
    parts = map(rows_of.take, order[start:stop].split(size))
    if seqlen is None:  # whole rows (images, or sequences as the data cut them)
        return [Batch(part.x, part.y, head) for part in parts]
    return [Batch(part.x[:, :seqlen], part.y[:, :seqlen], head) for part in parts]

