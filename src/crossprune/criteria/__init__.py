"""Importance criteria. Each module has one `score(net, params, batches, loss, **options) -> {name: scores}`.

`params` maps state-dict names (e.g. `layers.0.weight`) to the prunable parameters of `net`; a criterion returns a
tensor of the same shape per name, higher meaning more important. `batches` are the score data, and `loss(batch)`
is the objective through the head that matches the batch's labels. Data-free criteria ignore both.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Batch:
    x: Tensor
    y: Tensor
    head: str  # "A" or "B": whose label space `y` is in


Loss = Callable[[Batch], Tensor]


def batch_gradients(net: nn.Module, params: dict[str, nn.Parameter], batches: list[Batch], loss: Loss) -> Iterator[dict[str, Tensor]]:
    """Yield the gradient of the loss on each batch with respect to each prunable parameter."""
    for batch in batches:
        grads = torch.autograd.grad(loss(batch), list(params.values()))
        yield dict(zip(params, grads))
