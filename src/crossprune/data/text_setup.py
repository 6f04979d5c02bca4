"""Make lm_code_prose's B corpus available offline, once: `python -m crossprune.data.text_setup` (exit 0 when it is).

B is Ambrose Bierce's The Devil's Dictionary (1911, public domain), Debian's package dict-devil (a dictzip file,
gzip-compatible). The same steps as Fashion-MNIST's (crossprune.data.fashion_setup), through apt only:
  1. the file is already where the pair looks (Debian's path, then the cache) and reads whole: nothing to do;
  2. as root: `apt-get install -y --no-install-recommends dict-devil` (`apt-get update` first if apt does not know it);
  3. not root: `apt-get download dict-devil`, then `dpkg -x` it, the file moved into the cache;
  4. neither works: say what to run instead, exit 1.
Light on purpose (no numpy or torch): crossprune.data.text imports its paths from here.
"""

import gzip
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

PACKAGE = "dict-devil"
PROSE = Path("/usr/share/dictd/devil.dict.dz")  # pair.b.paths of lm_code_prose names this path
SETUP = "python -m crossprune.data.text_setup"


def cache_file() -> Path:
    """Where the set-up puts the file without root; a run reads it when Debian's path has none."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crossprune" / "dictd" / PROSE.name


def located(path: Path) -> Path | None:
    """`path` itself where it exists; for Debian's path of the corpus, the cache's copy when only that exists."""
    if path.is_file():
        return path
    return cache_file() if path == PROSE and cache_file().is_file() else None


def damage(file: Path) -> str | None:
    """Why `file` cannot be read (truncated, not gzip, nearly empty), or None."""
    try:
        size = len(gzip.open(file).read())
    except (OSError, EOFError, zlib.error) as e:
        return f"{file} does not read whole ({e})"
    return None if size > 100_000 else f"{file} holds {size} bytes of text, not the dictionary's ~380 KB"


def install() -> Path:
    """As root: the package installed (apt's lists refreshed once if it does not know it)."""
    from crossprune.data.fashion_setup import apt  # noqa: PLC0415 (the shared apt-get runner)

    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "--reinstall", PACKAGE]
    try:
        apt(*command)
    except RuntimeError:
        apt("apt-get", "update", "-q")
        apt(*command)
    return PROSE


def unpack(target: Path) -> Path:
    """Without root: the package downloaded and unpacked in a temporary folder, its one file moved to `target`."""
    from crossprune.data.fashion_setup import apt  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        apt("apt-get", "download", "-q", PACKAGE, cwd=tmp)
        [deb] = Path(tmp).glob("*.deb")
        apt("dpkg", "-x", str(deb), f"{tmp}/root")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(Path(tmp, "root", *PROSE.parts[1:]), target)
    return target


def setup() -> tuple[Path, str]:
    """The file that reads whole afterwards, and what was done; RuntimeError when nothing worked."""
    found = located(PROSE)
    problem = found and damage(found)
    if found and not problem:
        return found, "already there"
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise RuntimeError("apt-get and dpkg are not on this machine (not Debian or Ubuntu)")
    if os.geteuid() == 0:
        file, how = install(), f"installed Debian's {PACKAGE}"
    elif found == PROSE:  # a damaged file of the package: only root can replace it, and a run would read it first
        raise RuntimeError(f"{problem}; as root: apt-get install --reinstall {PACKAGE}")
    else:
        file, how = unpack(cache_file()), f"unpacked Debian's {PACKAGE} into the cache"
    if problem := damage(file):
        raise RuntimeError(f"{how}, but {problem}")
    return file, how


def main() -> int:
    try:
        file, how = setup()
    except (RuntimeError, OSError) as e:
        print(f"text_setup: the prose corpus of lm_code_prose is not available: {e}.\n"
              f"  As root: apt-get install --no-install-recommends {PACKAGE}    (file: {PROSE})\n"
              f"  Or put {PROSE.name} in {cache_file().parent}, or give any text as pair.b.paths=[<files or folders>]",
              file=sys.stderr)
        return 1
    print(f"The Devil's Dictionary: {file} ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
