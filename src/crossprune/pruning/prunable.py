"""Which parameters pruning may touch."""

from omegaconf import DictConfig
from torch import nn


def prunable(net: nn.Module, prune: DictConfig) -> dict[str, nn.Parameter]:
    """Linear/Conv weights (and biases if asked), the classifier head only if asked; keyed by state-dict name."""
    params = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d) and (prune.include_head or not name.startswith("head")):
            params[f"{name}.weight"] = module.weight
            if prune.include_bias and module.bias is not None:
                params[f"{name}.bias"] = module.bias
    return params
