"""Structured pruning: remove whole neurons/channels so the network is physically smaller."""

import statistics
import time

import torch
import torch_pruning as tp
from torch import Tensor, nn

# tp's conv functions serve every torch _ConvNd, so Conv1d and Conv2d alike. A depthwise conv (MobileNet's) has one
# set of channels, in and out, pruned by one function: its weights count once, as rows.
_OUT = (tp.prune_linear_out_channels, tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels)
_IN = (tp.prune_linear_in_channels, tp.prune_conv_in_channels)


class ScoreImportance(tp.importance.Importance):
    """Group importance from our per-weight scores: the summed score of every weight a channel takes with it."""

    def __init__(self, net: nn.Module, scores: dict[str, Tensor]):
        # Keyed by module, not name: tp prunes modules in place, so the objects stay the same. Bias scores are unused.
        weights = {m: f"{n}.weight" for n, m in net.named_modules()}
        self.scores = {m: scores[w].detach().float().cpu() for m, w in weights.items() if w in scores}

    @torch.no_grad()
    def __call__(self, group) -> Tensor | None:
        total, found = torch.zeros(len(group[0].idxs)), False
        for i, (dep, idxs) in enumerate(group):
            s = self.scores.get(dep.layer)
            if s is None or dep.pruning_fn not in _OUT + _IN or None in group[i].root_idxs:
                continue  # unscored (e.g. the head) or parameter-free (ReLU, pooling) members
            # Removing channel i deletes row i of the producer and column i of each consumer (the next layer's
            # inputs), so both count: a channel's importance is everything it takes with it.
            per_channel = s.flatten(1).sum(1) if dep.pruning_fn in _OUT else columns(s, getattr(dep.layer, "groups", 1))
            total.scatter_add_(0, torch.tensor(group[i].root_idxs, dtype=torch.long), per_channel[idxs])
            found = True
        return total if found else None  # None makes tp skip the group


def columns(s: Tensor, groups: int) -> Tensor:
    """The summed score of each input channel's weights. In a grouped conv, input channel i feeds only its group's
    outputs, at position i mod (in/groups) of their kernels; with one group these are the weight's columns."""
    return s.reshape(groups, s.shape[0] // groups, s.shape[1], -1).sum((1, 3)).reshape(-1)


def _example(net: nn.Module) -> Tensor:
    """One all-zero input on the net's device, for tracing and counting."""
    return torch.zeros(1, *net.input_shape, device=next(net.parameters()).device)


def remove_channels(net: nn.Module, scores: dict[str, Tensor], sparsity: float) -> nn.Module:
    """Remove the `sparsity` fraction of channels with the lowest scores in every layer but the head, in place.

    torch-pruning's dependency graph removes together what must go together: the channels on both sides of a
    residual add, and the BatchNorm (and depthwise conv) entries of each removed channel."""
    training = net.training  # tp traces in eval mode (BatchNorm cannot take its one example in train mode)
    pruner = tp.pruner.BasePruner(  # MetaPruner is a deprecated alias of BasePruner in torch-pruning 1.6
        net, _example(net), importance=ScoreImportance(net, scores),
        pruning_ratio=sparsity, global_pruning=False, ignored_layers=[net.head],  # head outputs are the classes
    )
    pruner.step()
    return net.train(training)


def count(net: nn.Module) -> dict[str, int]:
    """MACs and parameters of one forward pass on a single example."""
    macs, params = tp.utils.count_ops_and_params(net, _example(net))
    return {"macs": int(macs), "params": int(params)}


@torch.inference_mode()
def latency_ms(net: nn.Module, batch_size: int = 256, repeats: int = 30, budget_s: float = 2.0) -> float:
    """Median CPU wall time in milliseconds of one forward pass on a batch, after warm-up: `repeats` timings, or as
    many as fit in `budget_s` but at least 3 (a ResNet-50 on 224x224 images takes seconds per batch of 256)."""
    device, training = next(net.parameters()).device, net.training
    net.cpu().eval()
    x = torch.randn(batch_size, *net.input_shape)
    times = []
    for _ in range(3 + repeats):  # the first 3 are warm-up: allocator and kernel choice settle first
        start = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - start)
        if len(times) >= 6 and sum(times) > budget_s:
            break
    net.to(device).train(training)
    return 1000 * statistics.median(times[3:])
