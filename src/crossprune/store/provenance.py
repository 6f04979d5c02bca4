"""What code made a result: the checkout's git commit, whether it had uncommitted changes, the package versions
(light: no torch, no mlflow; the runs and the report both record it)."""

import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the crossprune package
ROOT = PACKAGE.parents[1]  # the checkout, for an editable install
PACKAGES = ("crossprune", "torch", "pytorch-lightning", "torchmetrics", "torch-pruning", "mlflow", "hydra-core",
            "omegaconf", "safetensors", "scikit-learn", "numpy", "mnist1d")


def git(*args: str) -> str | None:
    """A git command's output in the checkout; None without git or outside a repository (a wheel install)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache
def code_state() -> tuple[str, str]:
    """The commit (`unknown` without git) and whether tracked files had uncommitted changes (`true`/`false`/`unknown`)."""
    commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    return commit or "unknown", "unknown" if dirty is None else str(bool(dirty)).lower()


@functools.cache
def run_tags() -> dict[str, str]:
    """The tags every parent run carries: the commit, the dirty flag and the installed versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    commit, dirty = code_state()
    return {"mlflow.source.git.commit": commit, "crossprune.git_dirty": dirty, "crossprune.versions": json.dumps(versions, sort_keys=True)}


@functools.cache
def code_hash() -> str:
    """Hash of the package's sources: an edited criterion or default must not reuse runs made before the edit."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def file_stats(path: Path) -> list[tuple[str, int, int, int, int]]:
    """(path, size, mtime_ns, inode, ctime_ns) of a file, or of every file under a folder (links followed), sorted: a
    cheap stand-in for hashing data that may be larger than memory. Size and mtime alone miss a file rewritten at the
    same size with its mtime set back (cp -p, rsync -t); its inode (a new file) or ctime (set by the kernel on every
    write or utime, never by the user) changes."""
    def stats(f: str) -> tuple[str, int, int, int, int]:
        s = os.stat(f)
        return f, s.st_size, s.st_mtime_ns, s.st_ino, s.st_ctime_ns

    if not os.path.isdir(path):
        return [stats(str(path))]
    files = sorted(os.path.join(folder, f) for folder, _, names in os.walk(path, followlinks=True) for f in names)
    return [stats(f) for f in files if os.path.exists(f)]  # not a dangling link
