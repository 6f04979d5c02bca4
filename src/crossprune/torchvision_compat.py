"""Import torchvision on a CPU-only torch build.

PyPI's Linux torchvision wheels carry C++ ops (nms, roi_align, …) linked against the CUDA build of torch. Next to a
CPU build they cannot load, which torchvision tolerates, except that 0.28 still registers fake kernels for `nms` and
`qnms` and so fails to import. Classification never calls those ops: when the library cannot load, their two schemas
are declared first, and torchvision imports without its C++ ops (calling one still raises torchvision's own error).
"""

import importlib.util
from pathlib import Path

import torch

SCHEMAS = {"nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
           "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}


def _ops_load() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for lib in Path(spec.submodule_search_locations[0]).glob("_C*.so"):
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, ImportError):
            return False
    return False


if not _ops_load():
    for name, schema in SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            torch.library.define(f"torchvision::{name}", schema)

import torchvision  # noqa: E402

__all__ = ["torchvision"]
