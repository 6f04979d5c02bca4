"""A non-editable install (a built wheel) carries its configs and runs from any folder."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_runs_the_default_experiment_from_another_folder(tmp_path):
    """Build the wheel, install it (no deps: this venv has them) into a folder of its own, and run a tiny default
    experiment in an empty folder: the shipped conf/ is found, the runs land in that folder's mlruns/."""
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", ROOT], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("crossprune-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PYTHONPATH": str(tmp_path / "site")}
    code = "import crossprune, sys; print(crossprune.__file__, file=sys.stderr); from crossprune.cli.app import main; main()"
    tiny = ["train_a.epochs=1", "finetune_b.epochs=1", "model.hidden=[16]", "trainer.progress_bar=false"]
    out = subprocess.run([sys.executable, "-c", code, *tiny], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.startswith(str(tmp_path / "site" / "crossprune"))  # the wheel's copy, not this checkout
    assert "scratch_b_sparse" in out.stdout and (work / "mlruns" / "mlflow.db").exists()
