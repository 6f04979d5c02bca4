"""Representation diagnostics: linear CKA between two layers, effective rank of one."""

import torch
from torch import Tensor

from crossprune.diagnostics._features import centred


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) between features of the same samples; 0.0 if either is dead."""
    xc, yc = centred(x), centred(y)
    if len(xc) != len(yc):
        raise ValueError(f"linear_cka needs the same samples: {len(xc)} vs {len(yc)} rows")
    if not xc.any() or not yc.any():
        return 0.0
    if len(xc) < max(xc.shape[1], yc.shape[1]):
        # Gram form: <K, L>_F / (||K||_F ||L||_F) equals the feature form but costs n^2 instead of width^2.
        return gram_cka(xc @ xc.T, yc @ yc.T)
    cross = torch.linalg.norm(yc.T @ xc).square()
    return float(cross / (torch.linalg.norm(xc.T @ xc) * torch.linalg.norm(yc.T @ yc)))


def centred_gram(x: Tensor) -> Tensor:
    """The n×n Gram matrix of the column-centred features `x` [n, ...] in float64: all linear CKA needs of a layer,
    whatever its width. Computed where `x` lives (MPS has no float64: there on the CPU)."""
    x = x.cpu() if x.device.type == "mps" else x
    xc = centred(x)
    return xc @ xc.T


def gram_cka(k: Tensor, l: Tensor) -> float:
    """Linear CKA from two centred Gram matrices of the same samples (Kornblith et al. 2019, eq. 5); 0.0 if dead."""
    if k.shape != l.shape:
        raise ValueError(f"gram_cka needs the same samples: {len(k)} vs {len(l)} rows")
    if not k.any() or not l.any():
        return 0.0
    return float((k * l).sum() / (torch.linalg.norm(k) * torch.linalg.norm(l)))


def effective_rank(x: Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007): exp of the entropy of the normalised singular values; 0.0 if dead."""
    s = torch.linalg.svdvals(centred(x))
    if not s.any():
        return 0.0
    p = s / s.sum()
    p = p[p > 0]  # 0·log 0 = 0
    return float(torch.exp(-(p * p.log()).sum()))
