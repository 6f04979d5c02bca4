"""Agreement between two pruning outcomes: IoU of kept weights and rank correlation of scores."""

import torch
from scipy.stats import spearmanr
from torch import Tensor


def _iou(inter: int, union: int) -> float:
    return 1.0 if union == 0 else inter / union  # two empty kept sets agree fully


def mask_iou(a: dict[str, Tensor], b: dict[str, Tensor]) -> tuple[float, dict[str, float]]:
    """IoU of the kept (== 1) entries of two masks with the same keys: overall and per key."""
    if a.keys() != b.keys():
        raise ValueError(f"masks have different keys: {sorted(a.keys() ^ b.keys())}")
    counts = {}
    for name in a:
        ka, kb = a[name] == 1, b[name] == 1
        counts[name] = (int((ka & kb).sum()), int((ka | kb).sum()))
    inter, union = (sum(c[i] for c in counts.values()) for i in (0, 1))
    return _iou(inter, union), {name: _iou(*c) for name, c in counts.items()}


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two same-shape score tensors (average ranks for ties, -inf ranks lowest)."""
    if a.shape != b.shape:
        raise ValueError(f"spearman needs the same shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = a.detach().flatten(), b.detach().flatten()
    if bool((a == a[0]).all()) or bool((b == b[0]).all()):
        # Correlation is undefined for a constant; call identical tensors in full agreement, anything else none.
        return 1.0 if torch.equal(a, b) else 0.0
    a_np, b_np = (t.to(torch.float64).numpy() for t in (a, b))
    return float(spearmanr(a_np, b_np).statistic)
