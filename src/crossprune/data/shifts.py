"""Covariate shifts with a severity knob in [0, 1]: 0 leaves images unchanged."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def check_severity(severity: float) -> float:
    if not 0 <= severity <= 1:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    return severity


class PermutePixels:
    """Swap a `severity` fraction of pixel positions by a fixed, seeded permutation."""

    def __init__(self, severity: float, seed: int = 0):
        self.severity, self.seed = check_severity(severity), seed

    def __call__(self, x: Tensor) -> Tensor:
        flat = x.reshape(len(x), -1)
        g = torch.Generator().manual_seed(self.seed)
        n = flat.shape[1]
        chosen = torch.randperm(n, generator=g)[: round(self.severity * n)]
        index = torch.arange(n)
        index[chosen] = chosen[torch.randperm(len(chosen), generator=g)]
        return flat[:, index].reshape(x.shape)


class Rotate:
    """Rotate every image by `severity * max_degrees` (bilinear, zero padding)."""

    def __init__(self, severity: float, max_degrees: float = 90.0):
        self.severity, self.max_degrees = check_severity(severity), max_degrees

    def __call__(self, x: Tensor) -> Tensor:
        angle = math.radians(self.severity * self.max_degrees)
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(len(x), 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)
