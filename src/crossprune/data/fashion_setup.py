"""Make Fashion-MNIST available offline, once: `python -m crossprune.data.fashion_setup` (exit 0 when it is).

The one step of crossprune that fetches anything, and only through Debian's apt (a run never downloads):
  1. the four IDX files are already where crossprune looks (crossprune.data.fashion_files) and read whole: nothing to do;
  2. as root: `apt-get install -y dataset-fashion-mnist` (`--reinstall` if its files are damaged; `apt-get update`
     first if apt does not know the package);
  3. not root: `apt-get download dataset-fashion-mnist`, then `dpkg -x` it, its four files copied into the cache;
  4. neither works (no apt: not Debian or Ubuntu; offline): say what to run instead, exit 1.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from crossprune.data.fashion_files import DEBIAN, FILES, PACKAGE, cache_dir, in_folder


def damage(folder: Path) -> str | None:
    """Why the files in `folder` cannot be used (missing, truncated, corrupt), or None when all four read whole."""
    from crossprune.data.idx import read_idx  # noqa: PLC0415 (numpy: only once there are files to read)

    found = in_folder(folder)
    if len(found) < len(FILES):
        return f"{folder} lacks {', '.join(FILES[r] for r in FILES if r not in found)}"
    try:
        for role, path in found.items():
            read_idx(path, "images" if role.startswith("x") else "labels")
    except ValueError as e:
        return str(e)
    return None


def apt(*args: str, cwd: str | None = None) -> None:
    """Run apt-get (or dpkg); a failure raises with the tool's last line of output."""
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise RuntimeError(f"`{' '.join(args)}` failed: {last}")


def install(reinstall: bool) -> Path:
    """As root: the package installed (apt's lists refreshed once if it does not know it)."""
    command = ["apt-get", "install", "-y", "-q", *(["--reinstall"] if reinstall else []), PACKAGE]
    try:
        apt(*command)
    except RuntimeError:
        apt("apt-get", "update", "-q")
        apt(*command)
    return DEBIAN


def unpack(cache: Path) -> Path:
    """Without root: the package downloaded and unpacked in a temporary folder, its four files moved into `cache`."""
    with tempfile.TemporaryDirectory() as tmp:
        apt("apt-get", "download", "-q", PACKAGE, cwd=tmp)  # into the working directory
        [deb] = Path(tmp).glob("*.deb")
        apt("dpkg", "-x", str(deb), f"{tmp}/root")
        cache.mkdir(parents=True, exist_ok=True)
        unpacked = next(Path(tmp, "root").rglob(f"{FILES['x_train']}*")).parent  # usr/share/datasets/fashion-mnist
        for file in in_folder(unpacked).values():
            shutil.move(file, cache / file.name)
    return cache


def setup() -> tuple[Path, str]:
    """The folder that holds good files afterwards, and what was done; RuntimeError when nothing worked."""
    cache = cache_dir()
    read = next((f for f in (DEBIAN, cache) if in_folder(f)), None)  # the folder a run reads (fashion_files.find)
    problem = read and damage(read)
    if read and not problem:
        return read, "already there"
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise RuntimeError("apt-get and dpkg are not on this machine (not Debian or Ubuntu)")
    if os.geteuid() == 0:
        folder, how = install(reinstall=read == DEBIAN), f"installed Debian's {PACKAGE}"
    elif read == DEBIAN:  # damaged files of the package: only root can replace them, and a run would read them first
        raise RuntimeError(f"{problem}; as root: apt-get install --reinstall {PACKAGE}")
    else:
        folder, how = unpack(cache), f"unpacked Debian's {PACKAGE} into the cache"
    if problem := damage(folder):
        raise RuntimeError(f"{how}, but {problem}")
    return folder, how


def main() -> int:
    try:
        folder, how = setup()
    except (RuntimeError, OSError) as e:
        print(f"fashion_setup: Fashion-MNIST is not available: {e}.\n"
              f"  As root: apt-get install {PACKAGE}    (Debian 12+ / Ubuntu: files in {DEBIAN})\n"
              f"  Or put its four IDX files ({', '.join(FILES.values())}, .gz or plain) in\n"
              f"  {cache_dir()} (found there by default), or in any folder given as pair.root=<folder>", file=sys.stderr)
        return 1
    print(f"Fashion-MNIST: {folder} ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
