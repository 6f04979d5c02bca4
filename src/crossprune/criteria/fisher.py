"""Diagonal empirical Fisher saliency ½·w²·E[g²], g the gradient of each single sample's loss (Theis et al.)."""

import torch

from crossprune.criteria import Batch, batch_gradients


def score(net, params, batches, loss):
    # Per-sample gradients: squaring batch-mean gradients would estimate a different quantity.
    samples = [Batch(b.x[i : i + 1], b.y[i : i + 1], b.head) for b in batches for i in range(len(b.y))]
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for grads in batch_gradients(net, params, samples, loss):
        for name, g in grads.items():
            total[name] += g.square()
    return {name: 0.5 * params[name].detach().square() * t / len(samples) for name, t in total.items()}
