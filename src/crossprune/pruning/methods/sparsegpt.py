"""SparseGPT (Frantar & Alistarh 2023): prune each Linear layer and reconstruct its output from the calibration
Hessian H = 2XXᵀ of its inputs, by optimal brain surgeon updates column by column.

Columns are visited in order; pruning weight (r, j) costs w²/[H⁻¹]ⱼⱼ² and its error is spread over the row's
later columns through the Cholesky factor of H⁻¹, so the weights kept absorb what the pruned ones did. Unstructured:
every block of `blocksize` columns loses `sparsity` of its weights, those of least cost there; N:M: every group of M
columns loses the N of least cost in each row. Layers are pruned in order, decoder block by decoder block (a net's
`blocks`; otherwise layer by layer), each calibrated on inputs through the layers already pruned.
"""

import torch
from torch import Tensor, nn

from crossprune.pruning.mask import Mask
from crossprune.config.schema import n_of_m


def hessian(layers: list[nn.Linear], net: nn.Module, batches) -> list[Tensor]:
    """2/n Σ x xᵀ of each layer's inputs over every calibration token (n of them), in float32."""
    sums = [torch.zeros(m.in_features, m.in_features, device=m.weight.device) for m in layers]
    count = [0]

    def add(i):
        def record(module, inputs):
            x = inputs[0].detach().reshape(-1, module.in_features).float()
            sums[i].addmm_(x.T, x)
            if i == 0:
                count[0] += len(x)
        return record

    hooks = [m.register_forward_pre_hook(add(i)) for i, m in enumerate(layers)]
    try:
        with torch.no_grad():
            for batch in batches:
                net(batch.x)
    finally:
        for h in hooks:
            h.remove()
    return [2 * s / max(count[0], 1) for s in sums]


@torch.no_grad()
def reconstruct(w: Tensor, h: Tensor, sparsity: float, pattern: str | None = None, blocksize: int = 128,
                damp: float = 0.01) -> tuple[Tensor, Tensor]:
    """The pruned and reconstructed weight [out, in] and its 0/1 keep mask, from the input Hessian `h` [in, in].
    `damp` × mean(diag H) is added to H's diagonal (as the paper's 1%): inputs never seen leave H singular."""
    w, h = w.detach().float().clone(), h.detach().float().clone()
    cols = w.shape[1]
    dead = h.diagonal() == 0  # an input that is always zero: its weights do nothing, prune them first
    h[dead, dead] = 1
    w[:, dead] = 0
    h.diagonal().add_(damp * h.diagonal().mean())
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)  # H⁻¹ = UᵀU
    n, m = n_of_m(pattern) if pattern else (0, 0)
    if pattern and blocksize % m:
        raise ValueError(f"sparsegpt's blocksize {blocksize} must be a multiple of M={m} (prune.pattern={pattern})")
    pruned = torch.zeros_like(w, dtype=torch.bool)
    for start in range(0, cols, blocksize):
        end = min(start + blocksize, cols)
        block, ub = w[:, start:end].clone(), u[start:end, start:end]
        errors, cut = torch.zeros_like(block), torch.zeros_like(block, dtype=torch.bool)
        if not pattern:  # the block's least costly weights, at this block's costs before its updates
            cost = (block / ub.diagonal()).square().flatten()
            cut.view(-1)[torch.topk(cost, round(sparsity * cost.numel()), largest=False).indices] = True
        for i in range(end - start):
            if pattern and i % m == 0:  # this group's n least costly weights in each row, at their current values
                cost = (block[:, i : i + m] / ub.diagonal()[i : i + m]).square()
                cut[:, i : i + m].scatter_(1, torch.topk(cost, n, dim=1, largest=False).indices, True)
            col = block[:, i]
            q = col.masked_fill(cut[:, i], 0.0)
            err = (col - q) / ub[i, i]
            block[:, i:] -= err[:, None] * ub[i, i:][None, :]  # the OBS update of the row's later columns here
            block[:, i] = q
            errors[:, i] = err
        w[:, start:end], pruned[:, start:end] = block, cut
        w[:, end:] -= errors @ u[start:end, end:]  # ... and beyond this block, all at once
    return w, (~pruned).float()


def groups(net: nn.Module, params: dict[str, nn.Parameter]) -> list[list[str]]:
    """The weights pruned together: those inside each of the net's `blocks`, in order; else each alone, in the order
    the forward pass would reach them as the modules are registered."""
    blocks = list(getattr(net, "blocks", []))
    owner = {id(m): name for name, m in net.named_modules()}
    if not blocks:
        return [[n] for n in params]
    prefixes = [owner[id(b)] + "." for b in blocks]
    out = [[n for n in params if n.startswith(p)] for p in prefixes]
    rest = [n for n in params if not any(n.startswith(p) for p in prefixes)]
    return [g for g in out if g] + [[n] for n in rest]


@torch.no_grad()
def prune(net: nn.Module, params: dict[str, nn.Parameter], batches, sparsity: float, pattern: str | None = None,
          blocksize: int = 128, damp: float = 0.01) -> Mask:
    """Prune and reconstruct every weight of `params` (nn.Linear weights) of `net` in place; the keep mask."""
    keep = {}
    for group in groups(net, params):
        modules = [net.get_submodule(n.rpartition(".")[0]) for n in group]
        bad = [n for n, m in zip(group, modules) if not isinstance(m, nn.Linear) or not n.endswith(".weight")]
        if bad:
            raise TypeError(f"sparsegpt prunes nn.Linear weights only, not {bad[0]}")
        for name, module, h in zip(group, modules, hessian(modules, net, batches)):
            w, keep[name] = reconstruct(module.weight, h, sparsity, pattern, blocksize, damp)
            module.weight.copy_(w.to(module.weight.dtype))
    return Mask(keep)
