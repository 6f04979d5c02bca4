"""Wanda (Sun et al. 2024): |w|·‖x_j‖₂, each weight's magnitude times the norm of the input feature it multiplies,
over the score batches; biases score |b|.

As locuslab/wanda's lib/prune.py, by default (`sequential`) the net is calibrated unit by unit in forward order,
each on inputs through the units before it already pruned: to `sparsity` within `scope` (or N:M `pattern`; all
prune.*), by the selector the prune stage then applies to these scores, so its mask is the one calibrated here. A
unit is one of the net's `blocks` (a language model's decoder layers, as Wanda's; its layers calibrated together
on the block's input) or else one layer. The paper compares weights within each output row (prune.scope=row).
sequential=false scores every layer on the dense net in one pass. A conv is read as Wanda reads a Linear, through
its im2col matrix: one input feature per input channel and kernel tap.
"""

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crossprune.pruning.select import select


def score(net, params, batches, loss, sparsity: float, scope: str = "row", layers: list[str] = (), sequential: bool = True,
          pattern: str | None = None):
    owners = forward_order(net, {name.rpartition(".")[0] for name in params}, batches[0].x)
    if not sequential:
        return weigh(net, params, input_norms(net, owners, batches))
    if scope == "global" and not pattern:  # no global threshold exists until every layer is scored
        raise ValueError("sequential wanda prunes layer by layer: use scope row, layerwise or layers, or sequential=false")
    work, scores = copy.deepcopy(net), {}  # pruned unit by unit; the caller's net stays whole
    for unit in units(net, owners):
        mine = {n: work.get_parameter(n) for n in params if n.rpartition(".")[0] in unit}
        got = weigh(work, mine, input_norms(work, unit, batches))
        scores |= got
        # On the CPU, as the prune stage selects: ties break the same way there.
        mask = select({n: s.cpu() for n, s in got.items()}, sparsity, scope, list(layers), pattern=pattern)
        with torch.no_grad():
            for n, p in mine.items():
                p.mul_(mask[n].to(p.device))
    return scores


def forward_order(net: nn.Module, owners: set[str], x: Tensor) -> list[str]:
    """`owners` in the order one forward pass reaches them."""
    seen: list[str] = []

    def reached(owner):
        return lambda module, inputs: None if owner in seen else seen.append(owner)

    hooks = [net.get_submodule(o).register_forward_pre_hook(reached(o)) for o in owners]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    missed = owners - set(seen)
    if missed:
        raise ValueError(f"wanda: the forward pass never reaches {', '.join(sorted(missed))}")
    return seen


def units(net: nn.Module, owners: list[str]) -> list[list[str]]:
    """`owners` (in forward order) grouped by the net's block that holds them; one alone outside every block."""
    names = {id(m): n for n, m in net.named_modules()}
    prefixes = [names[id(b)] + "." for b in getattr(net, "blocks", [])]
    grouped: dict[str, list[str]] = {}
    for o in owners:
        grouped.setdefault(next((p for p in prefixes if o.startswith(p)), o), []).append(o)
    return list(grouped.values())


def input_norms(net: nn.Module, owners: list[str], batches) -> dict[str, Tensor]:
    """Per owner, the squared norm of each input feature over the batches: (in,) for a Linear, (C_in, *kernel) for
    a conv, one per column of its im2col matrix."""
    sq: dict[str, Tensor] = {}

    def hook(owner):
        def record(module, inputs):
            s = columns(module, inputs[0].detach())
            sq[owner] = sq[owner] + s if owner in sq else s
        return record

    handles = [net.get_submodule(o).register_forward_pre_hook(hook(o)) for o in owners]
    try:
        with torch.no_grad():
            for batch in batches:
                net(batch.x)
    finally:
        for h in handles:
            h.remove()
    return sq


def columns(module: nn.Module, x: Tensor) -> Tensor:
    if isinstance(module, nn.Linear):
        return x.reshape(-1, x.shape[-1]).square().sum(0)
    if not isinstance(module, nn.Conv1d | nn.Conv2d):
        raise TypeError(f"wanda cannot score {type(module).__name__}")
    # The padding the conv itself applies (any padding_mode, 'same' too), then im2col; Conv1d as a 1×k Conv2d.
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    x = F.pad(x, module._reversed_padding_repeated_twice, mode=mode)
    one_d = isinstance(module, nn.Conv1d)
    as_2d = lambda t: (1, *t) if one_d else t  # noqa: E731
    cols = F.unfold(x.unsqueeze(2) if one_d else x, as_2d(module.kernel_size), dilation=as_2d(module.dilation),
                    stride=as_2d(module.stride))
    return cols.square().sum((0, 2)).reshape(module.in_channels, *module.kernel_size)


def weigh(net: nn.Module, params: dict[str, nn.Parameter], sq: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for name, p in params.items():
        owner, _, kind = name.rpartition(".")
        w = p.detach().abs()
        if kind == "bias":
            out[name] = w
            continue
        groups = getattr(net.get_submodule(owner), "groups", 1)  # a grouped conv's row sees its group's channels
        norm = sq[owner].sqrt().reshape(groups, 1, -1, *w.shape[2:])
        out[name] = w * norm.expand(groups, len(w) // groups, *norm.shape[2:]).reshape(w.shape)
    return out
