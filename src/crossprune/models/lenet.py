"""LeNet-5 (LeCun et al. 1998), with ReLU and max-pooling: two 5x5 conv-pool blocks, two hidden Linear layers, `head`."""

import math

from torch import Tensor, nn


class LeNet5(nn.Module):
    def __init__(self, input_shape: list[int], num_classes: int, channels: list[int] = (6, 16), hidden: list[int] = (120, 84),
                 kernel_size: int = 5):
        super().__init__()
        self.input_shape = list(input_shape)
        widths, sides = [input_shape[0], *channels], list(input_shape[1:])
        blocks: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            pad = kernel_size // 2 if i == 0 else 0  # the first conv keeps the side: 28x28 in, as LeNet's padded 32x32
            blocks += [nn.Conv2d(c_in, c_out, kernel_size, padding=pad), nn.ReLU(), nn.MaxPool2d(2)]
            sides = [(s + 2 * pad - kernel_size + 1) // 2 for s in sides]
        if min(sides) < 1:
            raise ValueError(f"LeNet5 with {len(channels)} conv blocks of kernel {kernel_size} leaves nothing of a "
                             f"{'x'.join(map(str, input_shape[1:]))} image: give larger images, or fewer model.channels")
        units = [widths[-1] * math.prod(sides), *hidden]
        blocks.append(nn.Flatten())
        for n_in, n_out in zip(units, units[1:]):
            blocks += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Linear(units[-1], num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def structure(self) -> dict:
        """Constructor arguments that rebuild this network's current shapes (after channel removal too)."""
        convs = [m for m in self.layers if isinstance(m, nn.Conv2d)]
        linears = [m for m in self.layers if isinstance(m, nn.Linear)]
        return {"channels": [m.out_channels for m in convs], "hidden": [m.out_features for m in linears],
                "kernel_size": convs[0].kernel_size[0], "num_classes": self.head.out_features}
