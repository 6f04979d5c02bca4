"""Covariate shifts with a severity knob in [0, 1]: 0 leaves images unchanged.

Each takes the whole tensor of a dataset, [n, C, H, W] with values in [0, 1] (noise, brightness, contrast and
permutation take any [n, ...]); a streamed dataset shifts each batch through `of_rows`. The corruptions follow
CIFAR-10-C (Hendrycks & Dietterich 2019): severity 1 is its level 5, and severity s moves the parameter linearly from
the identity (s = 0) towards it:
  GaussianNoise  std 0.10 of the [0, 1] range       (levels 1-5: 0.04 0.06 0.08 0.09 0.10)
  Blur           gaussian sigma 1 px per 32 px side  (0.4 0.6 0.7 0.8 1 on 32x32; scaled, so any size blurs alike)
  Contrast       factor 0.15 towards the mean       (0.75 0.5 0.4 0.3 0.15)
  Brightness     +0.3 on every value                (0.05 0.1 0.15 0.2 0.3, added to HSV value)
  Pixelate       down to 0.65 of the side and back  (0.95 0.9 0.85 0.75 0.65)
"""

import math
from collections.abc import Callable

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
        if self.severity == 0:  # grid_sample at angle 0 moves values by float error (~1e-6): 0 must be exactly x
            return x
        angle = math.radians(self.severity * self.max_degrees)
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(len(x), 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)


def require_images(x: Tensor, shift: str) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"{shift} needs images [n, C, H, W], got a tensor of shape {list(x.shape)}")
    return x


def tv_functional():
    """torchvision's v2 functional ops, imported on first use: the import costs seconds that digits and MNIST-1D
    pairs, which use only the shifts above, need not pay."""
    from torchvision.transforms.v2 import functional  # noqa: PLC0415

    return functional


class GaussianNoise:
    """Add seeded gaussian noise of std `severity * 0.1`; every severity scales the same draw."""

    def __init__(self, severity: float, seed: int = 0):
        self.severity, self.seed = check_severity(severity), seed

    def __call__(self, x: Tensor) -> Tensor:
        if self.severity == 0:
            return x
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(self.seed)).to(x.device, x.dtype)
        return (x + 0.1 * self.severity * noise).clamp(0, 1)

    def of_rows(self, x: Tensor, rows: Tensor) -> Tensor:
        """A batch holding rows `rows` of a streamed dataset: one draw over every row cannot be cut into batches, so
        each row draws its own noise from (seed, row). The same distribution as __call__'s, not the same draw."""
        if self.severity == 0:
            return x
        seeds = [(self.seed << 32) + int(r) for r in rows]  # distinct for every (seed, row) with row < 2**32
        noise = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(s % 2**64)) for s in seeds])
        return (x + 0.1 * self.severity * noise.to(x.device, x.dtype)).clamp(0, 1)


class Blur:
    """Gaussian blur of sigma `severity` pixels per 32 pixels of the image's side (kernel out to 4 sigma)."""

    def __init__(self, severity: float):
        self.severity = check_severity(severity)

    def __call__(self, x: Tensor) -> Tensor:
        if self.severity == 0:
            return x
        sides = require_images(x, "Blur").shape[-1:-3:-1]  # width, height: the order gaussian_blur takes
        sigma = [self.severity * side / 32 for side in sides]
        # Odd, and at most 2 * side - 1: the reflect padding must stay inside the image.
        kernel = [min(2 * math.ceil(4 * s) + 1, 2 * side - 1) for s, side in zip(sigma, sides)]
        return tv_functional().gaussian_blur(x, kernel, sigma)


class Contrast:
    """Pull every value towards its image's per-channel mean, to a factor `1 - 0.85 * severity` of its distance.

    CIFAR-10-C's own formula; torchvision's adjust_contrast takes a grey mean and only 1 or 3 channels."""

    def __init__(self, severity: float):
        self.severity = check_severity(severity)

    def __call__(self, x: Tensor) -> Tensor:
        if self.severity == 0:
            return x
        if x.ndim < 3:
            raise ValueError(f"Contrast needs [n, C, ...] (a channel axis), got a tensor of shape {list(x.shape)}")
        mean = x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)
        return mean + (1 - 0.85 * self.severity) * (x - mean)  # a blend of two values in [0, 1] stays there


class Brightness:
    """Add `0.3 * severity` to every value, clipped to 1.

    CIFAR-10-C adds to the HSV value, which lifts black to grey; torchvision's adjust_brightness multiplies, which
    leaves black black (most of a digit), and takes only 1 or 3 channels."""

    def __init__(self, severity: float):
        self.severity = check_severity(severity)

    def __call__(self, x: Tensor) -> Tensor:
        return x if self.severity == 0 else (x + 0.3 * self.severity).clamp(0, 1)


class Pixelate:
    """Shrink every image to `1 - 0.35 * severity` of its side (area-averaged), then blow it back up with NEAREST."""

    def __init__(self, severity: float):
        self.severity = check_severity(severity)

    def __call__(self, x: Tensor) -> Tensor:
        if self.severity == 0:
            return x
        sides = list(require_images(x, "Pixelate").shape[-2:])
        small = [max(1, round(side * (1 - 0.35 * self.severity))) for side in sides]
        tf = tv_functional()
        down = tf.resize(x, small, interpolation=tf.InterpolationMode.BILINEAR, antialias=True)  # antialiased: averages, as CIFAR-10-C's BOX
        return tf.resize(down, sides, interpolation=tf.InterpolationMode.NEAREST)


# name -> shift at (severity, seed): what `Corruption(kind=...)` and `pair.corruption=...` take.
KINDS: dict[str, Callable[[float, int], Callable[[Tensor], Tensor]]] = {
    "gaussian_noise": GaussianNoise,
    "blur": lambda severity, seed: Blur(severity),
    "contrast": lambda severity, seed: Contrast(severity),
    "brightness": lambda severity, seed: Brightness(severity),
    "pixelate": lambda severity, seed: Pixelate(severity),
    "rotate": lambda severity, seed: Rotate(severity),
    "permute": PermutePixels,
}


class Corruption:
    """One of KINDS by name, so that a pair can sweep the kind: `pair.corruption=blur,contrast`."""

    def __init__(self, kind: str, severity: float, seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"unknown corruption {kind!r}: choose one of {', '.join(KINDS)}")
        self.kind, self.shift = kind, KINDS[kind](check_severity(severity), seed)

    def __call__(self, x: Tensor) -> Tensor:
        return self.shift(x)

    def of_rows(self, x: Tensor, rows: Tensor) -> Tensor:
        return of_rows(self.shift, x, rows)


def of_rows(shift: Callable[[Tensor], Tensor], x: Tensor, rows: Tensor) -> Tensor:
    """`shift` of a batch holding rows `rows` of the data, as a streamed dataset applies it: shift(x) for a shift
    that acts on each row alone (all here but GaussianNoise); one whose draw spans every row defines `of_rows`."""
    return shift.of_rows(x, rows) if hasattr(shift, "of_rows") else shift(x)
