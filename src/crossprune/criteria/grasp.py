"""GraSP (Wang et al. 2020): importance w ⊙ Hg, the negation of the paper's S = −w ⊙ Hg (GraSP removes the LARGEST
S, so crossprune, which removes the lowest scores, keeps the largest w ⊙ Hg, as Synaptic-Flow's port does).

As alecwangcq/GraSP computes it: the logits are divided by the temperature T before the loss, and g (the gradient of
the loss over the score batches) and H (its Hessian) are taken over every Conv/Linear weight the loss goes through,
the head included whether or not it is pruned, so Hg has the head's cross terms. The scores of `params` are then
normalised by |Σ scores|, as both references do. The original also re-initialises Linear layers before scoring
(a pruning-at-init step that would score another network than the trained one): not done here.
"""

import torch
from torch import nn

LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)


def score(net, params, batches, loss, temperature: float = 200.0):
    weights = hessian_weights(net, params, batches, loss)
    g = [torch.zeros_like(w) for w in weights]
    for batch in batches:
        grads = torch.autograd.grad(loss(batch, temperature), weights, allow_unused=True)
        g = [a if b is None else a + b for a, b in zip(g, grads)]  # a weight no batch reaches stays at 0
    hg = [torch.zeros_like(w) for w in weights]
    # Hg = ∇(g·∇L) with g held fixed; batch by batch so only one graph is alive at a time.
    for batch in batches:
        grads = torch.autograd.grad(loss(batch, temperature), weights, create_graph=True, allow_unused=True)
        z = sum((a * b).sum() for a, b in zip(g, grads) if b is not None)
        hvp = torch.autograd.grad(z, weights, allow_unused=True)
        hg = [a if b is None else a + b for a, b in zip(hg, hvp)]
    at = {id(w): h for w, h in zip(weights, hg)}
    scores = {name: p.detach() * at[id(p)] for name, p in params.items()}
    norm = sum(s.sum() for s in scores.values()).abs()
    # All-zero gradients would make 0/0: leave the scores at zero instead.
    return {name: s / norm.clamp_min(torch.finfo(s.dtype).tiny) for name, s in scores.items()}


def hessian_weights(net, params, batches, loss) -> list[nn.Parameter]:
    """The weights of the body's Conv/Linear layers and of every head a batch's loss goes through (the net's own or a
    fitted one), then any other of `params` (biases, when they are pruned)."""
    heads = {id(h): h for h in (loss.head(b) for b in batches)}
    own_head = set(net.head.modules())
    modules = [m for m in net.modules() if m not in own_head] + [m for h in heads.values() for m in h.modules()]
    found = {id(m.weight): m.weight for m in modules if isinstance(m, LAYERS)}
    return list((found | {id(p): p for p in params.values()}).values())
