"""Controls that keep a criterion's per-layer densities but not its choice of weights."""

import torch

from crossprune.pruning.mask import Mask


def none(mask: Mask, seed: int) -> Mask:
    return mask


def dense(mask: Mask, seed: int) -> Mask:
    """No pruning at all: the transfer baseline with the same fine-tuning budget."""
    return Mask({n: torch.ones_like(m) for n, m in mask.items()})


def shuffle_within_layer(mask: Mask, seed: int) -> Mask:
    """The criterion's mask with each layer's entries permuted: same count of zeros, random positions."""
    g = torch.Generator().manual_seed(seed)
    return Mask({n: m.reshape(-1)[torch.randperm(m.numel(), generator=g)].reshape(m.shape) for n, m in mask.items()})


def random_same_density(mask: Mask, seed: int) -> Mask:
    """A fresh random mask per layer with as many zeros as the criterion's (drawn, not permuted)."""
    g = torch.Generator().manual_seed(seed)
    fresh = {}
    for n, m in mask.items():
        k = int((m == 0).sum())
        keep = torch.ones(m.numel())
        keep[torch.rand(m.numel(), generator=g).argsort()[:k]] = 0
        fresh[n] = keep.reshape(m.shape)
    return Mask(fresh)
