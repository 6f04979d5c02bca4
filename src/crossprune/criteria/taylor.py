"""First-order Taylor importance of each weight from g_b, the gradient of the loss on score batch b, in the forms
its implementations use (`variant`; all |mean_b term(w·g_b)|, scaled by a constant the ranking ignores):

- molchanov: mean_b (w·g_b)², the per-weight criterion of Molchanov et al. 2019 (NVlabs/Taylor_pruning, squared
  per batch, averaged over batches);
- torch_pruning: |w · Σ_b g_b|, Torch-Pruning's TaylorImportance on gradients accumulated over the batches (SNIP's
  saliency before its normalisation);
- abs_mean: mean_b |w·g_b|, crossprune's own form, its `taylor` before it followed the papers (between the two).
"""

from typing import Literal

import torch
from torch import Tensor

from crossprune.criteria import batch_gradients

# Each batch's term of w·g_b; torch_pruning keeps the sign, so the batches cancel before the final |·|.
TERM = {"molchanov": Tensor.square, "torch_pruning": lambda wg: wg, "abs_mean": Tensor.abs}


def score(net, params, batches, loss, variant: Literal["molchanov", "torch_pruning", "abs_mean"] = "molchanov"):
    term = TERM[variant]
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for grads in batch_gradients(net, params, batches, loss):
        for name, g in grads.items():
            total[name] += term(params[name].detach() * g)
    return {name: (t / len(batches)).abs() for name, t in total.items()}
