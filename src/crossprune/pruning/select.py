"""Turn importance scores into a Mask: prune the lowest-scored weights at a sparsity, within a scope."""

import torch
from torch import Tensor

from crossprune.config.schema import n_of_m
from crossprune.pruning.mask import Mask


def lowest(scores: Tensor, k: int) -> Tensor:
    """A 0/1 mask of the shape of `scores` with its `k` lowest entries zeroed (as `torch.nn.utils.prune` picks)."""
    keep = torch.ones(scores.numel())
    if k > 0:
        keep[torch.topk(scores.reshape(-1), k, largest=False).indices] = 0
    return keep.reshape(scores.shape)


def select(
    scores: dict[str, Tensor],
    sparsity: float,
    scope: str = "global",
    layers: list[str] | None = None,
    max_layer_sparsity: float | None = None,
    pattern: str | None = None,
) -> Mask:
    """The mask that prunes `sparsity` of the scored weights within `scope`; with an N:M `pattern`, N of every M
    (the scope and sparsity are then N/M in every row)."""
    if pattern:
        n, m = n_of_m(pattern)
        return Mask({name: _groups(s, n, m) for name, s in scores.items()})
    if scope == "global":
        return _global(scores, sparsity, max_layer_sparsity)
    if scope == "layerwise":
        return Mask({n: lowest(s, round(sparsity * s.numel())) for n, s in scores.items()})
    if scope == "row":
        return Mask({n: _rows(s, sparsity) for n, s in scores.items()})
    if scope == "layers":
        chosen = set(layers or [])
        picked = lambda n: n in chosen or n.rpartition(".")[0] in chosen  # noqa: E731  a param or its module
        return Mask({n: lowest(s, round(sparsity * s.numel())) if picked(n) else torch.ones_like(s) for n, s in scores.items()})
    raise ValueError(f"unknown scope {scope!r}")


def _groups(s: Tensor, n: int, m: int) -> Tensor:
    """Each row's consecutive groups of `m` weights (its inputs, kernel taps after a conv's channels) lose their
    `n` lowest-scored: the N:M sparsity sparse tensor cores run (as locuslab/wanda's prune_n:prune_m)."""
    groups = s.reshape(len(s), -1, m)
    keep = torch.ones_like(groups, dtype=torch.float32)
    keep.scatter_(2, groups.topk(n, dim=2, largest=False).indices, 0.0)
    return keep.reshape(s.shape)


def cap_count(cap: float, n: int) -> int:
    """Most weights a layer of `n` may lose under the cap: within half a weight of it, like every target here."""
    return round(cap * n)


def _rows(s: Tensor, sparsity: float) -> Tensor:
    """Prune each output unit (row) alike: rows differ by at most one weight and the param total is exact."""
    rows = s.reshape(len(s), -1) if s.dim() > 1 else s.reshape(1, -1)
    base, extra = divmod(round(sparsity * rows.numel()), len(rows))
    return torch.stack([lowest(r, base + (i < extra)) for i, r in enumerate(rows)]).reshape(s.shape)


def _global(scores: dict[str, Tensor], sparsity: float, cap: float | None) -> Mask:
    """One threshold over all params; with a cap, layers over it are held at the cap and the rest re-ranked."""
    capped: dict[str, Tensor] = {}
    target = round(sparsity * sum(s.numel() for s in scores.values()))
    while True:
        free = {n: s for n, s in scores.items() if n not in capped}
        if not free:
            raise ValueError(f"sparsity {sparsity} is out of reach with max_layer_sparsity {cap}")
        k = target - sum(int((m == 0).sum()) for m in capped.values())
        flat = torch.cat([s.reshape(-1).float() for s in free.values()])
        keep = lowest(flat, max(min(k, flat.numel()), 0)).split([s.numel() for s in free.values()])
        mask = {n: m.reshape(free[n].shape) for n, m in zip(free, keep)}
        over = [n for n, m in mask.items() if cap is not None and int((m == 0).sum()) > cap_count(cap, m.numel())]
        if not over:
            return Mask({n: capped.get(n, mask.get(n)) for n in scores})
        for n in over:
            capped[n] = lowest(scores[n], cap_count(cap, scores[n].numel()))
