"""A Mask maps state-dict names to 0/1 tensors; it applies itself through `torch.nn.utils.prune` buffers."""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.utils import prune


class Mask(dict[str, Tensor]):
    def __init__(self, tensors: dict[str, Tensor]):
        super().__init__({name: t.detach().to(torch.float32).cpu() for name, t in tensors.items()})
        for name, t in self.items():
            if not torch.all((t == 0) | (t == 1)):
                raise ValueError(f"mask for {name} holds values other than 0 and 1")

    def zeros(self) -> int:
        return sum(int((t == 0).sum()) for t in self.values())

    def size(self) -> int:
        return sum(t.numel() for t in self.values())

    def sparsity(self) -> float:
        return self.zeros() / max(self.size(), 1)

    def per_param_sparsity(self) -> dict[str, float]:
        return {name: float((t == 0).float().mean()) for name, t in self.items()}

    def metrics(self) -> dict[str, float]:
        """`sparsity` overall and `sparsity/<param>` per parameter, as logged to MLflow."""
        return {"sparsity": self.sparsity(), **{f"sparsity/{n}": v for n, v in self.per_param_sparsity().items()}}

    def save(self, path: Path) -> None:
        save_file({k: v.contiguous() for k, v in self.items()}, str(path))

    @classmethod
    def load(cls, path: Path) -> "Mask":
        return cls(load_file(str(path)))

    def apply(self, net: nn.Module) -> nn.Module:
        """Attach each mask as a `torch.nn.utils.prune` buffer; masked weights stay zero through training."""
        for name, m in self.items():
            module_name, _, param = name.rpartition(".")
            module = net.get_submodule(module_name)
            if prune.is_pruned(module) and hasattr(module, f"{param}_mask"):
                prune.remove(module, param)  # re-masking replaces the old mask instead of stacking on it
            prune.custom_from_mask(module, param, m.to(getattr(module, param).device))
            # Zero the underlying weights too, so optimizer state never moves a pruned weight off zero.
            with torch.no_grad():
                getattr(module, f"{param}_orig").mul_(getattr(module, f"{param}_mask"))
        return net


def plain_state_dict(net: nn.Module) -> dict[str, Tensor]:
    """The state dict of the unpruned architecture, masks folded into the weights (`w = w_orig * w_mask`)."""
    state = net.state_dict()
    plain = {}
    for key, value in state.items():
        if key.endswith("_mask"):
            continue
        if key.endswith("_orig"):
            key = key.removesuffix("_orig")
            value = value * state[f"{key}_mask"]
        plain[key] = value.detach().cpu().contiguous()
    return plain
