"""Datasets (held as tensors, or streamed from disk when large) and A→B pairs built from them."""

from crossprune.data.dataset import Dataset, Split
from crossprune.data.pair import Pair, build_pair

__all__ = ["Dataset", "Pair", "Split", "build_pair"]
