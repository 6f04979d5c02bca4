"""Seed streams: every role (a stage, the score batches, a probe) draws its own stream from the run's seed."""

import zlib

import torch


def role_seed(seed: int, role: str) -> int:
    """A stable seed per (seed, role): scratch inits never equal train_a's init at another seed."""
    return zlib.crc32(f"{seed}:{role}".encode()) % 2**31


def generator(seed: int, role: str) -> torch.Generator:
    """A private torch RNG for one role, so drawing from it never moves any other stream."""
    return torch.Generator().manual_seed(role_seed(seed, role))
