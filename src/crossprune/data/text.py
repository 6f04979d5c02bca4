"""Text domains for language models: local files tokenised into blocks of next-token prediction.

A domain's documents (files in sorted path order, or the lines of a .jsonl) are tokenised and concatenated, then cut
into non-overlapping blocks of `seqlen + 1` tokens; a block is one row, `x` its first `seqlen` tokens and `y` the
`seqlen` tokens after each. A seeded permutation of the blocks splits them train/val/test, so the held-out text is
fixed by `split_seed`. `classes` is the vocabulary (token ids), which every domain read by one tokenizer shares: a
language model reads A and B through one head.
"""

import fnmatch
import gzip
import json
import os
import sysconfig
from pathlib import Path

import numpy as np
import torch

from crossprune.data.dataset import Dataset, Split
from crossprune.data.text_setup import PROSE, SETUP, located

GZIP = (".gz", ".dz")  # .dz: dictzip (Debian's dictd corpora), gzip-compatible


class ByteTokenizer:
    """UTF-8 bytes as tokens: 256 ids, nothing to train, the same for every domain."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def __len__(self) -> int:
        return self.vocab_size


class HFTokenizer:
    """The tokenizer saved with a local Hugging Face checkpoint (never downloaded)."""

    def __init__(self, path: str):
        from transformers import AutoTokenizer  # noqa: PLC0415 (seconds to import; only LM runs need it)

        if not Path(path).is_dir():
            raise ValueError(f"model.path={path} is not a folder: give the folder of a local Hugging Face checkpoint")
        self.path, self.tok = path, AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.vocab_size = len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:  # in a stage key's text: the checkpoint, not an address
        return f"HFTokenizer({self.path!r})"


def text(name: str, paths: list[str], tokenizer, seqlen: int = 128, glob: str = "*", exclude: list[str] = (),
         max_bytes: int | None = None, val: float = 0.1, test: float = 0.1, split_seed: int = 0) -> Dataset:
    """The text under `paths` (files, or folders: every file matching `glob`, but paths containing an `exclude`
    part), at most `max_bytes` of it (whole files, a seeded choice) in blocks of `seqlen` next-token pairs."""
    if isinstance(seqlen, bool) or not isinstance(seqlen, int) or seqlen < 2:
        raise ValueError(f"seqlen must be an integer of at least 2 tokens, got {seqlen!r}")
    files = find(paths, glob, set(exclude))
    docs = read(choose(files, max_bytes, split_seed))
    ids = np.concatenate([np.asarray(tokenizer.encode(doc + "\n"), dtype=np.int64) for doc in docs])
    blocks = len(ids) // (seqlen + 1)
    if blocks < 10:
        raise ValueError(f"{name}: {len(ids)} tokens make {blocks} blocks of {seqlen + 1}; at least 10 are needed "
                         f"(give more text or a smaller pair.seqlen)")
    rows = torch.from_numpy(ids[: blocks * (seqlen + 1)]).reshape(blocks, seqlen + 1)
    order = torch.randperm(blocks, generator=torch.Generator().manual_seed(split_seed))
    n_test, n_val = max(1, round(test * blocks)), max(1, round(val * blocks))
    parts = order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]
    return Dataset(name, tuple(range(len(tokenizer))), *(Split(rows[p, :-1], rows[p, 1:]) for p in parts))


def python_stdlib(name: str = "python_stdlib", **options) -> Dataset:
    """The running interpreter's standard library, as Python source: on every machine Python runs on."""
    stdlib = sysconfig.get_paths()["stdlib"]
    return text(name, [stdlib], glob="*.py", exclude=["site-packages", "dist-packages"], **options)


def find(paths: list[str], glob: str, exclude: set[str]) -> list[Path]:
    """Every file named (folders: each file under them matching `glob`), in sorted order."""
    if isinstance(paths, str) or not paths:
        raise ValueError(f"paths must be a list of files or folders, e.g. paths=[notes.txt], got {paths!r}")
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(under(p, glob, exclude))
        elif located(p):  # the prose corpus: Debian's path, or the set-up's cache without root
            found.append(located(p))
        elif p == PROSE:
            raise ValueError(f"no prose corpus at {PROSE}: install it once with `make data` or `{SETUP}` "
                             f"(or give pair.b.paths=[/usr/share/common-licenses])")
        else:
            raise ValueError(f"no file or folder {p} (relative to {Path.cwd()})")
    if not found:
        raise ValueError(f"no file matching {glob} under {', '.join(map(str, paths))}")
    return found


def under(folder: Path, glob: str, exclude: set[str]) -> list[Path]:
    """The files under `folder` matching `glob`, never descending into an `exclude`d folder (site-packages can hold
    ten times the standard library)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in exclude]
        found += [Path(root, f) for f in fnmatch.filter(files, glob) if f not in exclude]
    return found


def choose(files: list[Path], max_bytes: int | None, seed: int) -> list[Path]:
    """All files, or a seeded choice of whole files up to `max_bytes` (at least one), kept in sorted order."""
    if max_bytes is None:
        return files
    picked, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(files)):
        size = files[i].stat().st_size
        if picked and total + size > max_bytes:
            continue
        picked.append(i)
        total += size
    return [files[i] for i in sorted(picked)]


def read(files: list[Path]) -> list[str]:
    """Each file's text (gzip for .gz/.dz; each line's `text` field for .jsonl), undecodable bytes replaced."""
    docs = []
    for f in files:
        raw = gzip.open(f).read() if f.suffix in GZIP else f.read_bytes()
        body = raw.decode("utf-8", errors="replace")
        if f.suffix == ".jsonl":
            try:
                docs += [json.loads(line)["text"] for line in body.splitlines() if line.strip()]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{f}: every line of a .jsonl must be an object with a \"text\" field ({e})") from e
        else:
            docs.append(body)
    return docs
