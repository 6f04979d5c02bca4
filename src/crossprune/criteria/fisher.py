"""Diagonal empirical Fisher saliency ½·w²·E[g²], with E the mean over the score batches."""

import torch

from crossprune.criteria import batch_gradients


def score(net, params, batches, loss):
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for grads in batch_gradients(net, params, batches, loss):
        for name, g in grads.items():
            total[name] += g.square()
    return {name: 0.5 * params[name].detach().square() * t / len(batches) for name, t in total.items()}
