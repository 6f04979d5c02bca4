"""Shared preparation of feature matrices: flatten to [n, features] in float64, centre the columns."""

import torch
from torch import Tensor


def flat(x: Tensor) -> Tensor:
    """Detached float64 copy of `x` as [n_samples, n_features]."""
    return x.detach().to(torch.float64).flatten(1)


def centred(x: Tensor) -> Tensor:
    """Column-centred float64 features; exactly zero when the columns are constant (a dead layer)."""
    x = flat(x)
    xc = x - x.mean(0)
    # Subtracting a mean of equal values can leave rounding residue; snap it so a dead layer reads as all zeros.
    if xc.abs().max() <= 1e-12 * x.abs().max():
        return torch.zeros_like(xc)
    return xc
