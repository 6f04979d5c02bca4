"""GraSP: importance w ⊙ Hg, the negation of the paper's S = −w ⊙ Hg (GraSP removes the LARGEST S).

g is the gradient of the mean loss over the score batches and H its Hessian, both w.r.t. the prunable params only.
"""

import torch

from crossprune.criteria import batch_gradients


def score(net, params, batches, loss):
    weights = list(params.values())
    g = [torch.zeros_like(p) for p in weights]
    for grads in batch_gradients(net, params, batches, loss):
        g = [a + b / len(batches) for a, b in zip(g, grads.values())]
    hg = [torch.zeros_like(p) for p in weights]
    # Hg = ∇(g·∇L) with g held fixed; batch by batch so only one graph is alive at a time.
    for batch in batches:
        grads = torch.autograd.grad(loss(batch), weights, create_graph=True)
        z = sum((a * b).sum() for a, b in zip(g, grads))
        hg = [a + b / len(batches) for a, b in zip(hg, torch.autograd.grad(z, weights))]
    return {name: p.detach() * h for name, p, h in zip(params, weights, hg)}
