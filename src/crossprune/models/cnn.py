"""A small conv net: conv-relu-maxpool blocks, global average pooling, then `head`."""

from torch import Tensor, nn


class CNN(nn.Module):
    def __init__(self, input_shape: list[int], num_classes: int, channels: list[int] = (16, 32), kernel_size: int = 3):
        super().__init__()
        self.input_shape = list(input_shape)
        widths = [input_shape[0], *channels]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(widths, widths[1:]):
            # Each block halves the image: too many blocks for a small image fails on the first forward.
            blocks += [nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.ReLU(), nn.MaxPool2d(2)]
        blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def structure(self) -> dict:
        """Constructor arguments that rebuild this network's current shapes (after channel removal too)."""
        convs = [m for m in self.layers if isinstance(m, nn.Conv2d)]
        return {"channels": [m.out_channels for m in convs], "kernel_size": convs[0].kernel_size[0], "num_classes": self.head.out_features}
