"""Pruning modes end to end: structured removal, the `layers` scope, controls and iterative rounds."""

import json
from pathlib import Path

import mlflow
import pytest
import torch
from safetensors.torch import load_file

from crossprune.data import build_pair
from crossprune.models import CNN
from crossprune.pruning import Mask
from crossprune.pruning.collapse import LayerCollapse, check_collapse
from crossprune.stages.compute import Compute
from crossprune.stages.evaluate import evaluate


def artifacts(result, tmp_path) -> Path:
    """A stage's artifacts read back from the store (a Result's own copy lasts one pipeline)."""
    return Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, dst_path=str(tmp_path / result.run_id)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("modes")


def test_structured_halves_channels_and_loads_back(store, compose_at, run_pipeline, tmp_path):
    cfg = compose_at(store, "model=cnn", "model.channels=[8,16]", "prune=structured", "prune.sparsity=0.5")
    pruned = run_pipeline(cfg)["prune"]
    files = artifacts(pruned, tmp_path)
    structure = json.loads((files / "structure.json").read_text())
    assert structure["channels"] == [4, 8]
    m = pruned.metrics
    assert m["macs/after"] < m["macs/before"] and m["params/after"] < m["params/before"]
    assert m["latency_ms/before"] > 0 and m["latency_ms/after"] > 0
    net = CNN(input_shape=[1, 8, 8], **structure)  # the README's recipe
    net.load_state_dict(load_file(str(files / "model.safetensors")))
    logged = evaluate(net, build_pair(cfg.pair).a.classes, build_pair(cfg.pair), cfg.eval.probe, Compute.of(cfg))
    assert logged["A/acc"] == m["A/acc"]


def test_layers_scope_leaves_other_layers_dense(store, compose_at, run_pipeline):
    cfg = compose_at(store, "prune.scope=layers", "prune.layers=[layers.0]", "prune.sparsity=0.75")
    m = run_pipeline(cfg)["prune"].metrics
    assert m["sparsity/layers.0.weight"] == 0.75
    assert m["sparsity/layers.2.weight"] == 0.0


@pytest.mark.parametrize("control", ["shuffle_within_layer", "random_same_density", "dense"])
def test_controls_keep_the_criterions_layer_densities(store, compose_at, run_pipeline, control, tmp_path):
    masks = lambda *o: Mask.load(artifacts(run_pipeline(compose_at(store, "criterion=taylor", *o))["prune"], tmp_path) / "masks.safetensors")  # noqa: E731
    criterion, controlled = masks(), masks(f"control={control}")
    for name, m in criterion.items():
        zeros = int((controlled[name] == 0).sum())
        assert zeros == (0 if control == "dense" else int((m == 0).sum()))
    if control != "dense":
        assert any(not torch.equal(controlled[n], criterion[n]) for n in criterion)  # positions really moved


def test_random_same_density_is_not_the_random_criterions_own_mask(store, compose_at, run_pipeline, tmp_path):
    """The control draws from its own seed stream, so it cannot replay `criterion=random`."""
    masks = lambda *o: Mask.load(artifacts(run_pipeline(compose_at(store, "criterion=random", *o))["prune"], tmp_path) / "masks.safetensors")  # noqa: E731
    criterion, control = masks(), masks("control=random_same_density")
    assert any(not torch.equal(control[n], criterion[n]) for n in criterion)


def test_iterative_rounds_reach_the_target_exactly(store, compose_at, run_pipeline, tmp_path):
    cfg = compose_at(store, "criterion=taylor", "prune.rounds=3", "prune.round_epochs=1", "prune.round_data=B")
    results = run_pipeline(cfg)
    mask = Mask.load(artifacts(results["finetune_b"], tmp_path) / "masks.safetensors")
    assert mask.zeros() == round(0.8 * mask.size())
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(results["prune"].run_id, "val/acc")]
    assert steps == [0, 1]  # one epoch after each of the first two rounds, at steps that do not collide


def test_a_fully_pruned_layer_is_an_error_unless_allowed(make_cfg):
    mask = Mask({"layers.0.weight": torch.zeros(2, 2), "layers.2.weight": torch.ones(2, 2)})
    with pytest.raises(LayerCollapse, match="layers.0.weight"):
        check_collapse(mask, make_cfg().prune)
    check_collapse(mask, make_cfg("prune.allow_layer_collapse=true").prune)


def test_a_sweep_over_b_trains_a_once(store, compose_at, run_pipeline, tmp_path):
    """A new B reuses the A weights (no retraining) but evaluates them on that B in a run of its own."""
    first, second = (run_pipeline(compose_at(store, "pair=digits_permute", f"pair.severity={s}"))["train_a"] for s in (0.2, 0.9))
    assert second.run_id != first.run_id and second.metrics["B/acc"] != first.metrics["B/acc"]
    tags = mlflow.MlflowClient().get_run(second.run_id).data.tags
    assert tags["crossprune.weights_from"] == first.run_id
    assert "train/loss" not in second.metrics  # nothing was trained
    same = [load_file(str(artifacts(r, tmp_path) / "model.safetensors")) for r in (first, second)]
    assert all(torch.equal(same[0][k], same[1][k]) for k in same[0])
