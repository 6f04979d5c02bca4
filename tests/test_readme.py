"""The README's study commands: each composes and passes the preflight's checks, job by job, as the CLI would run it."""

import re
import shlex
from pathlib import Path

import pytest

from crossprune.cli import app, checks

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)
COMMANDS = [shlex.split(line.partition("#")[0].partition("&&")[0])[1:] for block in BLOCKS for line in block.splitlines()
            if line.startswith("crossprune -m ") and not line.rstrip().endswith("\\")]  # a continued line: a GPU's


def test_the_readme_shows_study_commands():
    assert sum(c[1].startswith("study=") for c in COMMANDS) >= 3


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c[1:]) for c in COMMANDS])
def test_a_readme_study_command_composes_every_job_with_its_narrowing(argv, tmp_path, monkeypatch):
    """Every job the command would launch is composed and value-checked (the data and model checks are recorded, not
    run: validate() builds the data of each job) and keeps each non-swept override the command gives."""
    monkeypatch.chdir(tmp_path)  # no store here: no job is answered from one
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    checked = []
    monkeypatch.setattr(checks, "validate", checked.append)
    app.preflight(argv)
    assert checked, argv
    fixed = [a.split("=", 1) for a in argv[2:] if "=" in a and "." in a.split("=")[0] and "," not in a]  # keys, not groups
    for cfg in checked:
        assert all(str(cfg_get(cfg, key)) == value for key, value in fixed), argv

def cfg_get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg
