"""Shared fixtures: the real Hydra config shrunk to seconds, a pipeline runner, and MLflow kept per test."""

import os
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient, fluent
from omegaconf import DictConfig

import crossprune.config.schema  # noqa: F401  the config's types, in Hydra's ConfigStore before compose()
from crossprune import pipeline
from crossprune.cli.checks import validate
from crossprune.store.tracking import Result

CONF = str(Path(__file__).resolve().parents[1] / "conf")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one worker per core (pyproject's addopts): two intra-op threads each would fight
SHRINK = ["train_a.epochs=4", "finetune_b.epochs=1", "trainer.progress_bar=false", "score.batches=2"]
SMALL = {"mlp": "model.hidden=[32,16]", "cnn": "model.channels=[8,16]", "resnet18": "model.width=0.125"}  # by model option


def model_option(overrides) -> str:
    """The model a composition gets: its override, else the one its study's defaults pick, else the default."""
    if model := next((o.partition("=")[2] for o in overrides if o.startswith("model=")), None):
        return model
    study = Path(CONF) / "study" / f"{next((o.partition('=')[2] for o in overrides if o.startswith('study=')), '')}.yaml"
    defaults = yaml.safe_load(study.read_text()).get("defaults", []) if study.is_file() else []
    return next((d["override /model"] for d in defaults if isinstance(d, dict) and "override /model" in d), "mlp")


def compose_config(root: Path, *overrides: str) -> DictConfig:
    """The real config, shrunk, with its MLflow store and artifacts under `root`."""
    model = model_option(overrides)
    store = [f"tracking.uri=sqlite:///{root}/mlflow.db", f"tracking.artifacts={root}/artifacts"]
    small = [SMALL[model]] if model in SMALL else []
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=[*SHRINK, *small, *store, *overrides])


@pytest.fixture(scope="session")
def compose_at():
    """compose_config, for fixtures that keep a store wider than one test."""
    return compose_config


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the shrunk config on this test's own store; takes extra overrides."""
    return lambda *overrides: compose_config(tmp_path, *overrides)


@pytest.fixture(scope="session")
def run_pipeline():
    """Run the pipeline as the CLI does; returns the Results keyed by stage."""

    def run(cfg: DictConfig) -> dict[str, Result]:
        pair = validate(cfg)
        return {r.stage: r for r in pipeline.run(cfg, pair)}

    return run


@pytest.fixture(scope="session")
def store_runs():
    """Every run in the store at a tracking URI, of every experiment."""

    def runs(uri: str) -> list[mlflow.entities.Run]:
        client = MlflowClient(uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        return client.search_runs(ids, max_results=10_000) if ids else []

    return runs


def end_runs() -> None:
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path, monkeypatch):
    """No MLflow run, store or experiment carries over from one test to the next."""
    end_runs()
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)  # set_experiment exports MLFLOW_EXPERIMENT_ID; undone after the test
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    yield
    end_runs()
