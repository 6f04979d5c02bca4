"""score: importance scores of the train_a weights, on A, on B or on a mix (ignored by data-free criteria)."""

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from sklearn.linear_model import LogisticRegression
from torch import nn

from crossprune.criteria import Batch
from crossprune.data import Dataset
from crossprune.evaluate import evaluate
from crossprune.stages.context import Context, prunable
from crossprune.tracking import Result


def run(ctx: Context, trained: Result) -> Result:
    cfg, pair = ctx.cfg, ctx.pair
    data = "none" if cfg.criterion.data_free else cfg.score.data
    scoring = None if cfg.criterion.data_free else cfg.score  # data-free scores do not depend on the score data
    key = ctx.key("score", trained, cfg.criterion, scoring, cfg.prune.include_bias, cfg.prune.include_head)
    if hit := ctx.cached("score", key):
        return hit
    with ctx.track("score", key) as run:
        ctx.seed()
        net = ctx.load_net(trained, pair.a.classes)
        batches = score_batches(ctx, data)
        heads = {"A": net.head, "B": net.head if pair.shared_labels else fit_head(net, pair.b)}
        loss = lambda b: F.cross_entropy(heads[b.head](net.features(b.x)), b.y)  # noqa: E731
        scores = instantiate(cfg.criterion.score)(net=net, params=prunable(net, cfg.prune), batches=batches, loss=loss)
        fitted_b = any(b.head == "B" for b in batches) and not pair.shared_labels
        run.tag(criterion=cfg.criterion.name, score_data=data, score_head="fitted_B" if fitted_b else "model")
        run.save("scores", scores)
        run.save("model", net.state_dict())
        run.log(evaluate(net, pair.a.classes, pair, cfg.eval.probe))
    return run.result


def score_batches(ctx: Context, data: str) -> list[Batch]:
    """`score.batches` seeded batches from the train split of A, of B, or a `score.mix` fraction from B."""
    cfg = ctx.cfg.score
    if data == "none":
        return []
    from_b = {"A": 0, "B": cfg.batches, "mix": round(cfg.mix * cfg.batches)}[data]
    return draw(ctx.pair.a, "A", cfg.batches - from_b, cfg.batch_size) + draw(ctx.pair.b, "B", from_b, cfg.batch_size)


def draw(data: Dataset, head: str, n: int, size: int) -> list[Batch]:
    order = torch.randperm(len(data.train)).repeat(n * size // len(data.train) + 1)  # cycle when data is short
    return [Batch(data.train.x[i], data.train.y[i], head) for i in order[: n * size].split(size)] if n else []


@torch.no_grad()
def fit_head(net: nn.Module, data: Dataset) -> nn.Linear:
    """A B head on frozen features, so gradient criteria have a B objective when B's labels differ from A's."""
    clf = LogisticRegression(max_iter=2000).fit(net.features(data.train.x).numpy(), data.train.y.numpy())
    head = nn.Linear(net.head.in_features, data.num_classes)
    head.weight.copy_(torch.as_tensor(clf.coef_)), head.bias.copy_(torch.as_tensor(clf.intercept_))
    return head
