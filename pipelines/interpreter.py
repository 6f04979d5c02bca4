"""The Python that runs a pipelines/ script: this one if it has crossprune, else the project's .venv (what `make`
creates). DVC runs a stage's `python3` from PATH, which need not be the environment DVC itself runs in."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_project_python() -> None:
    """Re-run this script under .venv/bin/python when the current interpreter cannot import crossprune."""
    try:  # hydra too: a bare interpreter with src/ on PYTHONPATH finds crossprune but none of its dependencies
        import crossprune, hydra  # noqa: F401, E401
        return
    except ImportError:
        pass
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.executable).absolute() != venv:
        os.execv(venv, [str(venv), *sys.argv])
    sys.exit(f"{sys.argv[0]}: crossprune is not installed for {sys.executable}; run `make` (it creates .venv) first")
