"""Datasets (held as tensors, or streamed from disk when large) and A→B pairs built from them."""

from importlib import import_module

# Imported on first use (PEP 562): `python -m crossprune.data.fashion_setup` and the light modules here must not pay
# the seconds torch and scikit-learn take to import.
_HOMES = {"Dataset": "dataset", "Split": "dataset", "Pair": "pair", "build_pair": "pair"}

__all__ = ["Dataset", "Pair", "Split", "build_pair"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"crossprune.data.{_HOMES[name]}"), name)
