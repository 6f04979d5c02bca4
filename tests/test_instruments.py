"""The instruments through the real pipeline: fair A/B scoring, fixed heads, CKA, dissimilarity, stage selection,
and the seed's mitigations as config."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from crossprune.data import build_pair
from crossprune.models import MLP
from crossprune.pruning import prunable, select
from crossprune.stages.scoring import compute_scores
from crossprune.store.parent import needed
from crossprune.store.tracking import STAGE_TAG

SAME = ("pair=digits_permute", "pair.severity=0")  # B is A, bit for bit


@pytest.mark.parametrize("criterion", ["taylor", "fisher", "snip", "grasp", "wanda"])
def test_identical_a_and_b_give_identical_masks(make_cfg, criterion):
    """With A = B, scoring on A, on B and on a mix sees the same batches, so scores and masks are identical."""
    cfg = make_cfg(*SAME, f"criterion={criterion}")
    pair = build_pair(cfg.pair)
    assert torch.equal(pair.a.train.x, pair.b.train.x)
    torch.manual_seed(0)
    net = MLP([1, 8, 8], 10, hidden=[32, 16])
    scores = {d: compute_scores(net, prunable(net, cfg.prune), cfg, pair, pair.a.classes, d)[0] for d in ("A", "B", "mix")}
    masks = {d: select(s, 0.8) for d, s in scores.items()}
    for name in scores["A"]:
        assert torch.equal(scores["A"][name], scores["B"][name]) and torch.equal(scores["A"][name], scores["mix"][name])
        assert torch.equal(masks["A"][name], masks["B"][name]) and torch.equal(masks["A"][name], masks["mix"][name])


def test_score_streams_are_independent_of_what_else_is_drawn(make_cfg):
    """Scoring on A draws A's batches whatever B is: another B (severity 1) leaves the A scores unchanged."""
    torch.manual_seed(0)
    net = MLP([1, 8, 8], 10, hidden=[32, 16])
    scores = []
    for severity in (0, 1):
        cfg = make_cfg("pair=digits_permute", f"pair.severity={severity}", "criterion=taylor")
        pair = build_pair(cfg.pair)
        scores.append(compute_scores(net, prunable(net, cfg.prune), cfg, pair, pair.a.classes, "A")[0])
    assert all(torch.equal(scores[0][n], scores[1][n]) for n in scores[0])


def test_same_data_through_the_pipeline_agrees_exactly(make_cfg, run_pipeline):
    """taylor at severity 0: prune's A-vs-B agreement is exactly 1 and B's fixed head equals train_a's at sparsity 0."""
    res = run_pipeline(make_cfg(*SAME, "criterion=taylor", "prune.sparsity=0", "stages=[prune]"))
    assert set(res) == {"train_a", "score", "prune"}
    m, dense = res["prune"].metrics, res["train_a"].metrics
    assert m["mask_iou_AB"] == 1.0 and all(v == 1.0 for k, v in m.items() if k.startswith("score_spearman_AB/"))
    assert dense["dissimilarity/mmd"] == pytest.approx(0, abs=1e-6)
    cka = {k: v for k, v in m.items() if "/cka/" in k}
    assert sorted(cka) == ["A/cka/layers.0", "A/cka/layers.2", "B/cka/layers.0", "B/cka/layers.2"]
    assert all(v == pytest.approx(1, abs=1e-6) for v in cka.values())
    assert m["B/fixed_head_acc"] == dense["B/fixed_head_acc"] and m["A/fixed_head_acc"] == dense["A/fixed_head_acc"]
    assert dense["A/fixed_head_acc"] == dense["A/acc"]  # A's fixed head is train_a's own head


def test_train_a_logs_the_instrument_references(make_cfg, run_pipeline):
    """Raw-input and untrained-network probes and the A/B dissimilarity sit on train_a, in range."""
    m = run_pipeline(make_cfg("stages=[train_a]"))["train_a"].metrics
    for tag in "AB":
        for ref in ("probe_acc_raw", "probe_acc_init", "fixed_head_acc", "probe_acc"):
            assert 0.2 < m[f"{tag}/{ref}"] <= 1, (tag, ref)
        assert 1 <= m[f"{tag}/feature_rank"] <= 16
    assert m["dissimilarity/mmd"] > 0.01 and m["dissimilarity/mmd_raw"] > 0.01 and 0 <= m["dissimilarity/pad"] <= 2


@pytest.mark.parametrize("pair", ["digits_permute", "mnist1d_shift"])
def test_dissimilarity_grows_with_severity(make_cfg, run_pipeline, pair):
    """MMD between A and B features is 0 at severity 0 and grows with the shift; A is trained once for all."""
    mmd, small = [], ["pair.num_samples=1000"] if pair.startswith("mnist1d") else []
    for severity in (0, 0.5, 1):
        res = run_pipeline(make_cfg(f"pair={pair}", f"pair.severity={severity}", "stages=[train_a]", *small))
        mmd.append(res["train_a"].metrics["dissimilarity/mmd"])
    assert mmd[0] == pytest.approx(0, abs=1e-6)
    assert mmd[0] < mmd[1] < mmd[2]


def test_stages_run_only_what_is_asked_and_read(make_cfg, run_pipeline, store_runs):
    """stages=[train_a,score,prune] leaves exactly those three stage runs and one parent, which says so."""
    cfg = make_cfg("stages=[train_a,score,prune]")
    res = run_pipeline(cfg)
    runs = store_runs(cfg.tracking.uri)
    assert sorted(r.data.tags[STAGE_TAG] for r in runs) == ["pipeline", "prune", "score", "train_a"]
    [parent] = [r for r in runs if r.data.tags[STAGE_TAG] == "pipeline"]
    assert parent.data.tags["crossprune.stages"] == "train_a,score,prune" and list(res) == ["train_a", "score", "prune"]


def test_needed_stages_follow_what_each_stage_reads(make_cfg):
    assert needed(make_cfg("stages=[scratch_b_dense]")) == ["train_a", "scratch_b_dense"]
    assert needed(make_cfg("stages=[finetune_b]")) == ["train_a", "score", "prune", "finetune_b"]
    assert needed(make_cfg("stages=[finetune_b]", "finetune_b.distill.alpha=0.5")) == ["train_a", "teacher_b", "score", "prune", "finetune_b"]
    assert needed(make_cfg("stages=[score]", "order=finetune_then_prune", "score.data=B")) == ["train_a", "teacher_b", "score"]


@pytest.mark.parametrize("overrides", [
    ("finetune_b.distill.alpha=0.5", "criterion=taylor"),
    ("order=finetune_then_prune", "criterion=taylor", "score.data=B"),
], ids=["distill", "finetune_then_prune"])
def test_mitigations_run_end_to_end_and_cache(make_cfg, run_pipeline, overrides):
    """Distillation from teacher_b and finetune_then_prune each run every stage once, then come from the cache."""
    cfg = make_cfg(*overrides, "stages=[finetune_b]", "finetune_b.epochs=3")  # one epoch at 80% can sit below chance
    first = run_pipeline(cfg)
    assert list(first) == ["train_a", "teacher_b", "score", "prune", "finetune_b"]
    assert not any(r.cached for r in first.values())
    assert 0.2 < first["finetune_b"].metrics["B/acc"] <= 1 and abs(first["finetune_b"].metrics["sparsity"] - 0.8) < 1e-3
    tags = MlflowClient(cfg.tracking.uri).get_run(first["finetune_b"].run_id).data.tags
    assert tags["crossprune.order"] == cfg.order and tags["crossprune.distilled"] == str(cfg.finetune_b.distill.alpha > 0)
    second = run_pipeline(cfg)
    assert all(r.cached and r.run_id == first[s].run_id for s, r in second.items())
