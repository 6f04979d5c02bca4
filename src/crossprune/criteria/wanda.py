"""Wanda |w| · ‖x_in‖₂: weight magnitude times the norm of its input feature over the score batches."""

import torch
from torch import nn


def score(net, params, batches, loss):
    owners = {name.rpartition(".")[0] for name in params}
    sq: dict[str, torch.Tensor] = {}

    def hook(owner):
        def record(module, inputs, output):
            x = inputs[0].detach()
            if isinstance(module, nn.Conv1d | nn.Conv2d):
                # Channel-level analogue of Wanda's per-feature norm: over samples and all positions.
                s = x.square().sum(dim=(0, *range(2, x.dim())))
            elif isinstance(module, nn.Linear):
                s = x.square().reshape(-1, x.shape[-1]).sum(0)
            else:
                raise TypeError(f"wanda cannot score {type(module).__name__} {owner!r}")
            sq[owner] = sq.get(owner, 0) + s

        return record

    handles = [net.get_submodule(o).register_forward_hook(hook(o)) for o in owners]
    try:
        with torch.no_grad():
            for batch in batches:
                net(batch.x)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, p in params.items():
        owner, _, kind = name.rpartition(".")
        w = p.detach().abs()
        if kind == "bias":
            out[name] = w
        else:
            norm = sq[owner].sqrt()
            out[name] = w * norm.reshape(1, -1, *[1] * (w.dim() - 2))  # input channels on dim 1, kernel dims after
    return out
