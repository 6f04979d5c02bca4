"""Hydra presets: every debug/ and experiment/ file composes and passes the value checks; debug=fast and
debug=overfit run with their tiny budgets; one paths.root moves the store, the sweep folders and the reports."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from crossprune.config.values import check_values

CONF = Path(__file__).resolve().parents[1] / "conf"


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize("preset", [f"{p.parent.name}={p.stem}" for p in sorted(CONF.glob("debug/*.yaml")) + sorted(CONF.glob("experiment/*.yaml"))])
def test_every_preset_composes_and_passes_the_value_checks(preset):
    check_values(composed(preset))


def test_the_cifar10_c_experiment_is_the_readme_recipe():
    cfg = composed("experiment=cifar10_c", hydra=True)
    assert (cfg.pair.name, cfg.model.arch, cfg.model.cifar_stem, cfg.study.name) == ("cifar10_gaussian_noise", "resnet18", True, "cifar10_c")
    assert cfg.train.optimizer._target_ == "torch.optim.SGD" and cfg.train.scheduler._target_.endswith("CosineAnnealingLR")
    assert dict(cfg.hydra.sweeper.params) == {"pair.corruption": "gaussian_noise,blur,contrast", "pair.severity": "0,0.5,1",
                                              "criterion": "magnitude,taylor", "score.data": "A,B"}


def test_one_root_for_the_store_the_sweeps_and_the_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = composed(f"paths.root={tmp_path}", hydra=True)
    assert cfg.tracking.uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert cfg.hydra.sweep.dir.startswith(f"{tmp_path}/mlruns/multirun/")
    assert composed().tracking.uri == "sqlite:///./mlruns/mlflow.db"  # the default root: the working directory


def test_debug_fast_runs_every_stage_on_two_batches_an_epoch(tmp_path, run_pipeline):
    cfg = composed("debug=fast", f"paths.root={tmp_path}", "trainer.progress_bar=false")
    results = run_pipeline(cfg)
    assert list(results) == ["train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse"]
    client = MlflowClient(cfg.tracking.uri)
    losses = client.get_metric_history(results["train_a"].run_id, "train/loss")
    assert [m.step for m in losses] == [0]  # one epoch
    assert client.list_artifacts(results["finetune_b"].run_id, "figures") == []  # tracking.figures=false
    assert not client.search_logged_models([client.get_run(results["finetune_b"].run_id).info.experiment_id])


def test_debug_overfit_drives_the_loss_on_two_batches_towards_zero(tmp_path, run_pipeline):
    cfg = composed("debug=overfit", f"paths.root={tmp_path}", "trainer.progress_bar=false", "tracking.figures=false")
    results = run_pipeline(cfg)
    assert list(results) == ["train_a"]
    losses = [m.value for m in MlflowClient(cfg.tracking.uri).get_metric_history(results["train_a"].run_id, "train/loss")]
    assert len(losses) == 40 and losses[-1] < 0.05 * losses[0]
