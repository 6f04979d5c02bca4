"""Lightning Trainer options pass through `trainer.*`, are recorded, and join the training stages' keys."""

from mlflow.tracking import MlflowClient

from crossprune.store.tracking import KEY_TAG


def test_bf16_mixed_runs_on_cpu_and_is_recorded(make_cfg, run_pipeline):
    """trainer.precision=bf16-mixed trains on the CPU, is logged as a param, and is a different train_a than 32-bit."""
    mixed = run_pipeline(make_cfg("trainer.precision=bf16-mixed", "stages=[train_a]", "train_a.epochs=6"))["train_a"]
    plain = run_pipeline(make_cfg("stages=[train_a]", "train_a.epochs=6"))["train_a"]
    run = MlflowClient().get_run(mixed.run_id)
    assert run.info.status == "FINISHED" and run.data.params["trainer.precision"] == "bf16-mixed"
    assert run.data.tags[KEY_TAG] != MlflowClient().get_run(plain.run_id).data.tags[KEY_TAG]
    assert 0.5 < mixed.metrics["A/acc"] <= 1 and 0.5 < plain.metrics["A/acc"] <= 1
    assert mixed.metrics["train/loss"] != plain.metrics["train/loss"]  # bf16 arithmetic, not 32-bit under another name
