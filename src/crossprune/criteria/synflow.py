"""SynFlow: data-free |w · ∂R/∂w| on the net with |params| and an all-ones input, pruned iteratively.

After round r of `rounds` the lowest-scored prunable weights are masked globally (in a copy) to the fraction
1 − (1 − sparsity)^(r/rounds), so the last round ranks what survives; masked positions score 0.
"""

import copy

import torch


def score(net, params, batches, loss, sparsity: float, rounds: int = 100):
    flow = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for t in flow.state_dict().values():
            t.abs_()  # biases (and any buffers) too, as the paper linearises the whole net
    owned = dict(flow.named_parameters())
    weights = [owned[name].requires_grad_(True) for name in params]
    ones = torch.ones(1, *net.input_shape, dtype=torch.float64, device=weights[0].device)
    total = sum(w.numel() for w in weights)
    for r in range(1, rounds + 1):
        grads = torch.autograd.grad(flow(ones).sum(), weights)
        scores = [(w * g).detach().abs() for w, g in zip(weights, grads)]
        if r == rounds:
            break  # the selector makes the final cut
        k = round((1 - (1 - sparsity) ** (r / rounds)) * total)
        keep = torch.ones(total, dtype=torch.float64, device=ones.device)
        keep[torch.topk(torch.cat([s.reshape(-1) for s in scores]), k, largest=False).indices] = 0
        with torch.no_grad():
            for w, m in zip(weights, keep.split([w.numel() for w in weights])):
                w.mul_(m.reshape(w.shape))
    return {name: s.to(p.dtype) for (name, p), s in zip(params.items(), scores)}
