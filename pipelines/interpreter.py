"""The Python that runs a pipelines/ script: this one if it has crossprune, else the project's .venv (what `make`
creates). DVC runs a stage's `python3` from PATH, which need not be the environment DVC itself runs in. And the
workspace whose store the runs go to: DVC's, also when it runs the stages in a copy (`dvc exp run --temp`, `--queue`)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # this checkout: DVC's workspace, or the copy an experiment runs in
WORKSPACE = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()  # DVC sets it to the workspace in every executor


def in_workspace(uri: str) -> str:
    """A relative sqlite store as the workspace's (absolute): one store, whichever copy runs the stage."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_absolute():
        return f"sqlite:///{WORKSPACE / uri.removeprefix('sqlite:///')}"
    return uri


def as_recorded(uri: str) -> str:
    """A store inside the workspace relative to it, as a committed record keeps it (a clone elsewhere reads its own)."""
    path = Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("sqlite:///") and path.is_relative_to(WORKSPACE):
        return f"sqlite:///{path.relative_to(WORKSPACE)}"
    return uri


def use_project_python() -> None:
    """Re-run this script under .venv/bin/python (the checkout's, else the workspace's: a DVC copy has none) when
    the current interpreter cannot import crossprune; either way this checkout's sources are the ones imported."""
    sys.path.insert(0, str(ROOT / "src"))  # an experiment's copy runs its own code, not the workspace's editable install
    try:  # hydra too: a bare interpreter with src/ on PYTHONPATH finds crossprune but none of its dependencies
        import crossprune, hydra  # noqa: F401, E401
        return
    except ImportError:
        pass
    venv = next((v for v in (ROOT / ".venv" / "bin" / "python", WORKSPACE / ".venv" / "bin" / "python") if v.exists()), None)
    if venv and Path(sys.executable).absolute() != venv:
        os.execv(venv, [str(venv), *sys.argv])
    sys.exit(f"{sys.argv[0]}: crossprune is not installed for {sys.executable}; run `make` (it creates .venv) first")
