"""Where Fashion-MNIST's four IDX files are looked for, in order (light: no torch, so the set-up starts fast).

  pair.root set:  <root>/, then <root>/FashionMNIST/raw/ (the folder torchvision's FashionMNIST(root) reads)
  pair.root null: /usr/share/datasets/fashion-mnist/ (Debian's package dataset-fashion-mnist), then
                  $XDG_CACHE_HOME/crossprune/fashion-mnist/ (~/.cache/...: where the set-up unpacks it without root)
In a folder each file is taken plain or gzipped (`<name>` first, then `<name>.gz`: torchvision keeps both).
"""

import os
from pathlib import Path

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
SETUP = "python -m crossprune.data.fashion_setup"
FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crossprune" / "fashion-mnist"


def folders(root: str | None) -> list[Path]:
    """The folders searched, in order."""
    if root is None:
        return [DEBIAN, cache_dir()]
    folder = Path(root).expanduser()
    return [folder, folder / "FashionMNIST" / "raw"]


def in_folder(folder: Path) -> dict[str, Path]:
    """The files of FILES present in `folder`, by role (x_train, ...)."""
    found = {}
    for role, name in FILES.items():
        for file in (folder / name, folder / f"{name}.gz"):
            if file.is_file():
                found[role] = file
                break
    return found


def find(root: str | None) -> dict[str, Path]:
    """The four files from the first folder holding any of them; one line naming the folder and the fix otherwise."""
    searched = folders(root)
    for folder in searched:
        found = in_folder(folder)
        if len(found) == len(FILES):
            return found
        if found:
            missing = ", ".join(FILES[r] for r in FILES if r not in found)
            raise ValueError(f"Fashion-MNIST in {folder} lacks {missing} (.gz or plain): put all four IDX files there"
                             f"{'' if root else f', or run {SETUP} to fetch them'}")
    where = " or ".join(str(f) for f in searched) + ("" if searched[0].is_absolute() else f" (relative to {Path.cwd()})")
    fix = f"give pair.root a folder holding the four IDX files ({', '.join(FILES.values())}, .gz or plain)"
    if root is None:
        fix = f"run {SETUP} (installs Debian's {PACKAGE}, or unpacks it into {cache_dir()} without root), or {fix}"
    raise ValueError(f"no Fashion-MNIST files in {where}: {fix}")
