"""End to end on the shrunk config: what the runs hold, masks that reach B, and the stage cache."""

import tempfile
from types import SimpleNamespace

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from crossprune.models import MLP
from crossprune.pruning import select
from crossprune.store.tracking import KEY_TAG, STAGE_TAG

STAGES = ("train_a", "score", "prune", "finetune_b", "scratch_b_dense", "scratch_b_sparse")
MASKED = ("prune", "finetune_b", "scratch_b_sparse")
EPOCHS = {"train_a": 4, "finetune_b": 1, "scratch_b_dense": 1, "scratch_b_sparse": 1}
PRUNABLE = 32 * 64 + 16 * 32  # layers.0.weight + layers.2.weight; the head is not pruned


def stage_of(run) -> str:
    return run.data.tags[STAGE_TAG]


def children(runs) -> dict[str, list]:
    out = {}
    for r in runs:
        if stage_of(r) != "pipeline":
            out.setdefault(stage_of(r), []).append(r)
    return out


def parents(runs) -> list:
    return [r for r in runs if stage_of(r) == "pipeline"]


def tensors(client: MlflowClient, run_id: str, name: str) -> dict[str, torch.Tensor]:
    """A safetensors artifact of a run, read back from the store (a Result's own files last one pipeline)."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_file(client.download_artifacts(run_id, f"{name}.safetensors", tmp))


@pytest.fixture(scope="module")
def history(tmp_path_factory, compose_at, run_pipeline, store_runs):
    """One store, the pipeline run on it twice (the second all cached), with the store after each run."""
    root = tmp_path_factory.mktemp("store")
    cfg = compose_at(root)
    uri = cfg.tracking.uri
    first = run_pipeline(cfg)
    after_first = store_runs(uri)
    second = run_pipeline(cfg)
    return SimpleNamespace(
        root=root, cfg=cfg, uri=uri, first=first, second=second, after_first=after_first, after_second=store_runs(uri), client=MlflowClient(uri)
    )


@pytest.fixture
def single(history):
    """The six stage runs and the parent run that the first pipeline run left, by stage."""
    runs = {stage: rs[0] for stage, rs in children(history.after_first).items()}
    return runs, parents(history.after_first)[0]


def test_one_run_leaves_one_parent_and_six_tagged_stage_runs(history):
    """The first run leaves one pipeline run and one child run per stage, tagged with stage and key."""
    runs = history.after_first
    assert len(runs) == 7
    [parent] = parents(runs)
    kids = children(runs)
    assert sorted(kids) == sorted(STAGES) and all(len(v) == 1 for v in kids.values())
    for stage, [run] in kids.items():
        result = history.first[stage]
        assert run.info.status == "FINISHED" and not result.cached
        assert run.info.run_id == result.run_id and run.data.tags[KEY_TAG] == result.key
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert parent.data.tags[f"crossprune.run.{stage}"] == run.info.run_id
        assert parent.data.tags[f"crossprune.cached.{stage}"] == "false"
    assert len({r.key for r in history.first.values()}) == 6


def test_stage_metrics(single):
    """Probe accuracies everywhere, head accuracy where the head's label space matches, sparsity where masked."""
    runs, parent = single
    m = {stage: run.data.metrics for stage, run in runs.items()}
    for stage in STAGES:
        assert 0.2 < m[stage]["A/probe_acc"] <= 1 and 0.2 < m[stage]["B/probe_acc"] <= 1, stage
    assert {"A/acc", "A/loss"} <= m["train_a"].keys() and "B/acc" not in m["train_a"]
    assert m["train_a"]["A/acc"] > 0.5
    assert "B/acc" in m["finetune_b"] and "A/acc" not in m["finetune_b"]
    assert m["score"]["A/acc"] == m["train_a"]["A/acc"]  # scoring leaves the weights alone
    for stage in STAGES:
        if stage in MASKED:
            assert abs(m[stage]["sparsity"] - 0.8) <= 1 / PRUNABLE, stage
            assert {"sparsity/layers.0.weight", "sparsity/layers.2.weight"} <= m[stage].keys(), stage
            assert "sparsity/head.weight" not in m[stage]
        else:
            assert "sparsity" not in m[stage], stage
    assert parent.data.metrics["finetune_b/B/acc"] == m["finetune_b"]["B/acc"]


def test_per_epoch_histories(history, single):
    """Training stages log train/loss and val/acc once per epoch, at steps 0..epochs-1."""
    runs, _ = single
    for stage, epochs in EPOCHS.items():
        for key in ("train/loss", "val/acc"):
            points = history.client.get_metric_history(runs[stage].info.run_id, key)
            assert sorted(p.step for p in points) == list(range(epochs)), (stage, key)
    assert history.client.get_metric_history(runs["prune"].info.run_id, "train/loss") == []


def test_artifacts_of_every_stage(history, single):
    """config.yaml and model.safetensors everywhere, masks on masked stages, scores on score; one figure each."""
    runs, _ = single
    for stage, run in runs.items():
        names = {a.path for a in history.client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "model.safetensors"} <= names, stage
        assert ("masks.safetensors" in names) == (stage in MASKED), stage
        assert ("scores.safetensors" in names) == (stage == "score"), stage
        drawn = {a.path: a.file_size for a in history.client.list_artifacts(run.info.run_id, "figures")}
        expected = {"score": "scores", "prune": "layer_sparsity"}.get(stage, "curves")
        assert list(drawn) == [f"figures/{expected}.png"] and drawn[f"figures/{expected}.png"] > 5000, (stage, drawn)


def test_params_are_the_flattened_config_each_run_depends_on(single):
    """The parent carries the whole resolved config as dotted params; a stage run the part its result depends on
    (its own keys and its upstream stages'), so a search on a param finds only runs that depend on it."""
    runs, parent = single
    for run in [parent, *runs.values()]:
        assert run.data.params["train_a.epochs"] == "4" and run.data.params["model.hidden"] == "[32, 16]"
    for run in [parent, runs["prune"], runs["finetune_b"], runs["scratch_b_sparse"]]:
        assert run.data.params["prune.sparsity"] == "0.8" and run.data.params["criterion.name"] == "magnitude"
    for stage in ("train_a", "scratch_b_dense"):
        assert not {k for k in runs[stage].data.params if k.startswith(("prune.", "criterion.", "control."))}, stage
    assert "prune.sparsity" not in runs["score"].data.params and runs["score"].data.params["criterion.name"] == "magnitude"
    assert parent.data.params["finetune_b.head"] == runs["finetune_b"].data.params["finetune_b.head"] == "reinit"
    assert "finetune_b.head" not in runs["train_a"].data.params


def test_masks_reach_finetune_b_and_the_sparse_baseline(history):
    """The prune mask is |w| of train_a at 0.8; every later masked model is exactly zero where it is."""

    def load(stage: str, name: str) -> dict[str, torch.Tensor]:
        return tensors(history.client, history.first[stage].run_id, name)

    trained, scores, mask = load("train_a", "model"), load("score", "scores"), load("prune", "masks")
    assert sorted(mask) == ["layers.0.weight", "layers.2.weight"]
    expected = select(scores, 0.8)
    for name in mask:
        assert torch.equal(scores[name], trained[name].abs())
        assert torch.equal(mask[name], expected[name])
    plain_keys = set(MLP([1, 8, 8], 5, hidden=[32, 16]).state_dict())
    for stage in MASKED:
        model, masks = load(stage, "model"), load(stage, "masks")
        assert set(model) == plain_keys, stage  # no weight_orig / weight_mask
        for name, m in mask.items():
            assert torch.equal(masks[name], m), (stage, name)
            assert torch.all(model[name][m == 0] == 0), (stage, name)
            assert torch.all(model[name][m == 1] != 0), (stage, name)
    pruned, tuned = load("prune", "model"), load("finetune_b", "model")
    for name, m in mask.items():
        assert torch.equal(pruned[name], trained[name] * m)  # pruning only zeroes
        assert not torch.equal(tuned[name], pruned[name])  # fine-tuning moved the kept weights
    assert tuned["head.weight"].shape == (5, 16)


def test_identical_second_run_is_all_cached(history):
    """A second identical run adds a parent and no stage run; its parent points at the first run's stages."""
    before, after = history.after_first, history.after_second
    assert len(parents(after)) == 2
    assert {r.info.run_id for r in after if stage_of(r) != "pipeline"} == {r.info.run_id for r in before if stage_of(r) != "pipeline"}
    [new_parent] = [p for p in parents(after) if p.info.run_id != parents(before)[0].info.run_id]
    for stage in STAGES:
        first, second = history.first[stage], history.second[stage]
        assert second.cached and second.run_id == first.run_id and second.metrics == first.metrics
        assert new_parent.data.tags[f"crossprune.run.{stage}"] == first.run_id
        assert new_parent.data.tags[f"crossprune.cached.{stage}"] == "true"


def test_cache_false_reruns_every_stage_identically(history, compose_at, run_pipeline, store_runs):
    """cache=false runs all six stages again; with the same seed metrics and weights are exactly equal."""
    before = store_runs(history.uri)
    again = run_pipeline(compose_at(history.root, "cache=false"))
    assert len(store_runs(history.uri)) == len(before) + 7
    for stage in STAGES:
        first, rerun = history.first[stage], again[stage]
        assert not rerun.cached and rerun.run_id != first.run_id and rerun.key == first.key
        assert rerun.metrics == first.metrics, stage
        a, b = (tensors(history.client, x.run_id, "model") for x in (first, rerun))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), stage


def test_new_sparsity_reuses_train_a_and_score(history, compose_at, run_pipeline, store_runs):
    """prune.sparsity=0.5 reuses train_a, score and the dense baseline, and reruns what the mask touches."""
    before = children(store_runs(history.uri))
    res = run_pipeline(compose_at(history.root, "prune.sparsity=0.5"))
    after = children(store_runs(history.uri))
    for stage in ("train_a", "score", "scratch_b_dense"):
        assert res[stage].cached and res[stage].key == history.first[stage].key, stage
        assert len(after[stage]) == len(before[stage]), stage
    for stage in MASKED:
        assert not res[stage].cached and res[stage].key != history.first[stage].key, stage
        assert len(after[stage]) == len(before[stage]) + 1, stage
        assert res[stage].metrics["sparsity"] == round(0.5 * PRUNABLE) / PRUNABLE == 0.5


def test_data_free_score_ignores_score_data(history, compose_at, run_pipeline):
    """magnitude with score.data=B finds the score.data=A stage runs; its score run says it saw no data."""
    res = run_pipeline(compose_at(history.root, "score.data=B"))
    for stage in STAGES:
        assert res[stage].cached and res[stage].key == history.first[stage].key, stage
    tags = history.client.get_run(res["score"].run_id).data.tags
    assert tags["crossprune.score_data"] == "none" and tags["crossprune.score_head"] == "model"
    assert tags["crossprune.criterion"] == "magnitude"


def test_taylor_on_b_scores_through_a_fitted_b_head(history, compose_at, run_pipeline):
    """taylor with score.data=B on digits_split reuses train_a and tags its score run fitted_B."""
    res = run_pipeline(compose_at(history.root, "criterion=taylor", "score.data=B"))
    assert res["train_a"].cached and res["train_a"].key == history.first["train_a"].key
    assert not res["score"].cached and res["score"].key != history.first["score"].key
    tags = history.client.get_run(res["score"].run_id).data.tags
    assert tags["crossprune.score_data"] == "B" and tags["crossprune.score_head"] == "fitted_B"
    assert tags["crossprune.criterion"] == "taylor"
    assert abs(res["prune"].metrics["sparsity"] - 0.8) <= 1 / PRUNABLE
