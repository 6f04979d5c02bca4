"""Score a network with the configured criterion on the configured score data (shared by score and prune)."""

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from torch import Tensor, nn

from crossprune.criteria import Batch
from crossprune.data import Dataset, Pair


def score_data(cfg: DictConfig) -> str:
    """A, B or mix; `none` for data-free criteria, which ignore the score data."""
    return "none" if cfg.criterion.data_free else cfg.score.data


class Objective:
    """Cross-entropy through the head that matches each batch's labels; a B head is fitted on first need."""

    def __init__(self, net: nn.Module, pair: Pair):
        self.net, self.pair, self.b_head = net, pair, None

    def __call__(self, batch: Batch) -> Tensor:
        head = self.net.head
        if batch.head == "B" and not self.pair.shared_labels:
            self.b_head = self.b_head or fit_head(self.net, self.pair.b)
            head = self.b_head
        return F.cross_entropy(head(self.net.features(batch.x)), batch.y)


def compute_scores(net: nn.Module, params: dict[str, nn.Parameter], cfg: DictConfig, pair: Pair) -> tuple[dict[str, Tensor], bool]:
    """The criterion's scores of `params`, and whether a B head had to be fitted to get them."""
    loss = Objective(net, pair)
    scores = instantiate(cfg.criterion.score)(net=net, params=params, batches=score_batches(cfg, pair), loss=loss)
    return scores, loss.b_head is not None


def score_batches(cfg: DictConfig, pair: Pair) -> list[Batch]:
    """`score.batches` seeded batches from the train split of A, of B, or a `score.mix` fraction from B."""
    data, s = score_data(cfg), cfg.score
    if data == "none":
        return []
    from_b = {"A": 0, "B": s.batches, "mix": round(s.mix * s.batches)}[data]
    return draw(pair.a, "A", s.batches - from_b, s.batch_size) + draw(pair.b, "B", from_b, s.batch_size)


def draw(data: Dataset, head: str, n: int, size: int) -> list[Batch]:
    order = torch.randperm(len(data.train)).repeat(n * size // len(data.train) + 1)  # cycle when data is short
    return [Batch(data.train.x[i], data.train.y[i], head) for i in order[: n * size].split(size)] if n else []


@torch.no_grad()
def fit_head(net: nn.Module, data: Dataset) -> nn.Linear:
    """A head for `data` fitted on frozen features (multinomial logistic regression), e.g. a B objective."""
    clf = LogisticRegression(max_iter=2000).fit(net.features(data.train.x).numpy(), data.train.y.numpy())
    head = nn.Linear(net.head.in_features, data.num_classes)
    head.weight.copy_(torch.as_tensor(clf.coef_)), head.bias.copy_(torch.as_tensor(clf.intercept_))
    return head
