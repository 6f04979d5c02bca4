"""Importance criteria. Each module has one `score(net, params, batches, loss, **options) -> {name: scores}`.

`params` maps state-dict names (e.g. `layers.0.weight`) to the prunable parameters of `net`; a criterion returns a
tensor of the same shape per name, higher meaning more important. `batches` are the score data, and `loss(batch)`
is the objective through the head that matches the batch's labels (`loss.head(batch)`). Data-free criteria ignore
both.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Batch:
    x: Tensor
    y: Tensor
    head: str  # "A" or "B": whose label space `y` is in


class Loss:
    """Cross-entropy of a batch through the net's features and a head: here the net's own; the scoring stage's
    Objective picks a fitted head for data whose labels the net's head does not have."""

    def __init__(self, net: nn.Module):
        self.net = net

    def head(self, batch: Batch) -> nn.Module:
        return self.net.head

    def __call__(self, batch: Batch, temperature: float = 1.0) -> Tensor:
        """The loss on logits divided by `temperature` (GraSP's T; 1 is the plain loss)."""
        return F.cross_entropy(self.head(batch)(self.net.features(batch.x)) / temperature, batch.y)


def batch_gradients(net: nn.Module, params: dict[str, nn.Parameter], batches: list[Batch], loss: Loss) -> Iterator[dict[str, Tensor]]:
    """Yield the gradient of the loss on each batch with respect to each prunable parameter."""
    for batch in batches:
        grads = torch.autograd.grad(loss(batch), list(params.values()))
        yield dict(zip(params, grads))
