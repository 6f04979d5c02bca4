"""SNIP connection sensitivity |w·g|, g the gradient summed over the score batches, normalised to sum to 1.

SNIP scores at initialisation; here it scores the weights it is given (the net trained on A).
"""

import torch

from crossprune.criteria import batch_gradients


def score(net, params, batches, loss):
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for grads in batch_gradients(net, params, batches, loss):
        for name, g in grads.items():
            total[name] += g
    saliency = {name: (params[name].detach() * g).abs() for name, g in total.items()}
    norm = sum(s.sum() for s in saliency.values())
    # All-zero gradients would make 0/0: leave the scores at zero instead.
    return {name: s / norm.clamp_min(torch.finfo(s.dtype).tiny) for name, s in saliency.items()}
