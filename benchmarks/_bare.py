"""The reference the fit benchmarks measure crossprune's `fit` against: a plain PyTorch loop, no Lightning."""

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset


def accuracy(net, split, batch_size: int) -> float:
    """Accuracy on a split, in batches as Lightning validates."""
    net.eval()
    with torch.no_grad():
        hits = sum(int((net(x).argmax(1) == y).sum()) for x, y in DataLoader(TensorDataset(split.x, split.y), batch_size))
    return hits / len(split)


def bare(net, train, val, epochs: int, cfg):
    """A plain PyTorch loop with the same batch size and optimizer as `cfg`, validating every epoch."""
    loader = DataLoader(TensorDataset(train.x, train.y), cfg.train.batch_size, shuffle=True)
    opt = instantiate(cfg.train.optimizer)(net.parameters())
    for _ in range(epochs):
        net.train()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        accuracy(net, val, cfg.train.batch_size)
    return net
