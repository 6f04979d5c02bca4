"""A multilayer perceptron: `layers` builds the features, `head` classifies them."""

import math

from torch import Tensor, nn


class MLP(nn.Module):
    def __init__(self, input_shape: list[int], num_classes: int, hidden: list[int] = (128, 64)):
        super().__init__()
        self.input_shape = list(input_shape)
        widths = [math.prod(input_shape), *hidden]
        blocks: list[nn.Module] = []
        for n_in, n_out in zip(widths, widths[1:]):
            blocks += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def structure(self) -> dict:
        """Constructor arguments that rebuild this network's current shapes (after channel removal too)."""
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        return {"hidden": [m.out_features for m in linears], "num_classes": self.head.out_features}
