"""Let torchvision import next to a CPU-only build of torch.

PyPI's Linux torchvision wheels carry C++ ops (nms, roi_align, …) linked against the CUDA build of torch. Next to a
CPU build they cannot load, which torchvision tolerates, except that 0.28 still registers fake kernels for `nms` and
`qnms` and so fails to import, and with it torchmetrics and Lightning, which import torchvision when it is there.
Classification never calls those ops: when their library cannot load, their two schemas are declared just before
torchvision is first imported, and it imports without its C++ ops (calling one still raises torchvision's error).
Importing `crossprune` installs the hook; it costs nothing until something imports torchvision.
"""

import importlib.abc
import importlib.util
import sys
from pathlib import Path

SCHEMAS = {"nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
           "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"}


def declare_missing_ops(package: Path) -> None:
    import torch  # noqa: PLC0415 (only once torchvision is wanted)

    for lib in package.glob("_C*.so"):
        try:
            torch.ops.load_library(str(lib))
            return  # its ops are there: nothing to declare
        except (OSError, ImportError):
            break
    for name, schema in SCHEMAS.items():
        if not hasattr(torch.ops.torchvision, name):
            torch.library.define(f"torchvision::{name}", schema)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)  # once
            spec = importlib.util.find_spec(name)
            if spec and spec.submodule_search_locations:
                declare_missing_ops(Path(spec.submodule_search_locations[0]))
        return None  # the usual finders import it


def install() -> None:
    if "torchvision" not in sys.modules and not any(isinstance(f, _BeforeTorchvision) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvision())

