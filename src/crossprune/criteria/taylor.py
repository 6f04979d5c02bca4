"""First-order Taylor |w · ∂L/∂w|, averaged over the score batches (one batch is too noisy)."""

import torch

from crossprune.criteria import batch_gradients


def score(net, params, batches, loss):
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for grads in batch_gradients(net, params, batches, loss):
        for name, g in grads.items():
            total[name] += (params[name].detach() * g).abs()
    return {name: t / len(batches) for name, t in total.items()}
