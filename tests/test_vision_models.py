"""torchvision nets at tiny width: the presets' shapes, what is prunable, every criterion and scope, structured
removal across residual connections and depthwise convs, initial weights, and the pipeline end to end on digits."""

import json
from pathlib import Path

import hydra
import mlflow
import pytest
import torch
import torch_pruning as tp
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn

from crossprune.criteria import Batch, Loss
from crossprune.data import build_pair
from crossprune.models import TorchvisionNet
from crossprune.models.vision import shape_of
from crossprune.pruning import SCOPES, plain_state_dict, prunable, select
from crossprune.pruning.structured import (
    ScoreImportance,
    count,
    latency_ms,
    remove_channels,
)

CRITERIA = sorted(p for p in (Path(__file__).parents[1] / "conf" / "criterion").glob("*.yaml")
                  if "score" in OmegaConf.load(p))  # a pruning method (sparsegpt) has none: tests/test_lm.py
PRESETS = {"resnet18": 64, "resnet34": 64, "resnet50": 256, "mobilenet_v2": 160}  # feature width at width 0.125
PRUNE = OmegaConf.create({"include_head": False, "include_bias": False})
GREY, RGB = [1, 8, 8], [3, 32, 32]


@pytest.fixture(scope="module")
def presets(compose_at, tmp_path_factory):
    """Each preset's model config, composed from conf/model as the pipeline composes it, at tiny width."""
    root = tmp_path_factory.mktemp("presets")
    return {p: compose_at(root, f"model={p}", "model.width=0.125").model for p in PRESETS}


@pytest.fixture
def build(presets):
    """A preset for `shape` and 5 classes, seeded; keyword arguments override its config."""

    def make(preset: str, shape: list[int], seed: int = 0, **overrides) -> TorchvisionNet:
        torch.manual_seed(seed)
        return instantiate(presets[preset], input_shape=shape, num_classes=5, **overrides)

    return make


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("shape", [RGB, GREY], ids=["rgb32_cifar_stem", "grey8"])
def test_presets_give_features_and_a_linear_head(build, preset, shape):
    net = build(preset, shape, cifar_stem=shape == RGB).eval()
    x = torch.randn(4, *shape)
    assert net.features(x).shape == (4, PRESETS[preset]) and net(x).shape == (4, 5)
    assert isinstance(net.head, nn.Linear) and net.head.in_features == PRESETS[preset]
    stem = net.body.get_submodule(net.stem().removeprefix("body."))
    assert stem.in_channels == shape[0]
    assert (stem.kernel_size, stem.stride) == ((3, 3), (1, 1)) if shape == RGB else stem.stride == (2, 2)
    assert any(isinstance(m, nn.MaxPool2d) for m in net.modules()) == (preset != "mobilenet_v2" and shape == GREY)
    assert net.structure() == {"shapes": {}, "num_classes": 5}
    json.dumps(net.structure())


def test_width_scales_every_channel_count_and_keeps_depthwise(build):
    for preset in ("resnet18", "mobilenet_v2"):
        full = shape_of(build(preset, RGB, width=1.0))
        tiny = shape_of(build(preset, RGB))
        for name, s in full.items():
            want = [max(1, round(c / 8)) for c in s[:2]]
            if name == "body.conv1" or name == "body.features.0.0":
                want[0] = 3  # the image's channels
            if name == "head":
                want[1] = 5  # the classes
            assert tiny[name][:2] == want, name
            if len(s) == 3 and s[2] > 1:  # MobileNet's depthwise convs
                assert tiny[name][2] == tiny[name][0] == tiny[name][1]


@pytest.mark.parametrize("preset", ["resnet18", "mobilenet_v2"])
def test_batchnorm_is_never_prunable(build, preset):
    net = build(preset, GREY)
    for include_bias in (False, True):
        params = prunable(net, OmegaConf.create({"include_head": False, "include_bias": include_bias}))
        owners = {n.rpartition(".")[0] for n in params}
        assert all(isinstance(net.get_submodule(o), nn.Conv2d) for o in owners)
        convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
        assert len(owners) == convs == {"resnet18": 20, "mobilenet_v2": 52}[preset]
        assert not any(isinstance(net.get_submodule(o), nn.BatchNorm2d) for o in owners)


def batches(shape, n=2, size=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.randn(size, *shape, generator=g), torch.randint(5, (size,), generator=g), "A")
            for _ in range(n)]


@pytest.mark.parametrize("path", CRITERIA, ids=[p.stem for p in CRITERIA])
def test_every_criterion_scores_resnet18(build, path):
    # Scored in eval mode, as compute_scores scores: BatchNorm on its running statistics, which stay untouched.
    net = build("resnet18", GREY).eval()
    params = prunable(net, PRUNE)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    root = OmegaConf.create({"seed": 0, "prune": {"sparsity": 0.5, "scope": "row", "layers": [], "pattern": None}, "criterion": OmegaConf.load(path)})
    OmegaConf.resolve(root)
    if "rounds" in root.criterion.score:
        root.criterion.score.rounds = 10  # synflow's 100 take seconds here; test_criteria checks the schedule
    score = hydra.utils.instantiate(root.criterion.score)
    got = score(net, params, batches(GREY), Loss(net))
    assert got.keys() == params.keys() and len(got) == 20
    for name, p in params.items():  # every layer scored (on 1x1 maps only a 3x3 kernel's centre gets a gradient)
        assert got[name].shape == p.shape and torch.isfinite(got[name]).all() and not got[name].requires_grad
        assert got[name].abs().sum() > 0, name
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("scope", SCOPES)
def test_every_scope_masks_resnet18(build, scope):
    net = build("resnet18", GREY)
    params = prunable(net, PRUNE)
    scores = {n: p.detach().abs() for n, p in params.items()}
    mask = select(scores, 0.5, scope, ["body.layer1.0.conv1"])
    if scope == "layers":
        assert mask.per_param_sparsity()["body.layer1.0.conv1.weight"] == 0.5 and mask.zeros() == 8 * 8 * 9 // 2
    else:
        assert abs(mask.zeros() - 0.5 * mask.size()) <= (1 if scope == "global" else len(mask))
    out = mask.apply(net).eval()(torch.randn(2, *GREY))
    fresh = build("resnet18", GREY, seed=1).eval()
    fresh.load_state_dict(plain_state_dict(net))
    assert torch.equal(fresh(torch.ones(2, *GREY)), net(torch.ones(2, *GREY))) and out.shape == (2, 5)


def test_structured_half_of_resnet18_rebuilds_from_structure(build):
    net = build("resnet18", RGB, cifar_stem=True)
    before, old = count(net) | {"latency_ms": latency_ms(net, batch_size=32, repeats=5)}, shape_of(net)
    remove_channels(net, {n: p.detach().abs() for n, p in prunable(net, PRUNE).items()}, 0.5)
    after, new = count(net) | {"latency_ms": latency_ms(net, batch_size=32, repeats=5)}, shape_of(net)
    assert before["macs"] == 9_096_517 and before["params"] == 176_077
    assert after["macs"] == 2_385_573 and after["params"] == 44_457 == sum(p.numel() for p in net.parameters())
    assert after["latency_ms"] > 0 and before["latency_ms"] > 0
    kept = {("body.conv1", 0), ("head", 1)}  # the image's channels and the classes
    for name, s in old.items():  # every other channel count halved
        assert new[name][:2] == [c if (name, i) in kept else c // 2 for i, c in enumerate(s[:2])]
    # BatchNorm went with its conv's channels, and both sides of every residual add kept one width.
    for name, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            conv = name.replace("bn", "conv").replace("downsample.1", "downsample.0")
            assert m.num_features == m.running_mean.numel() == net.get_submodule(conv).out_channels
    assert net.body.layer1[1].conv2.out_channels == net.body.conv1.out_channels == 4
    structure = json.loads(json.dumps(net.structure()))
    rebuilt = TorchvisionNet(RGB, arch="resnet18", width=0.125, cifar_stem=True, **structure).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(4, *RGB)
    assert torch.equal(rebuilt(x), net.eval()(x))


def test_mobilenet_depthwise_channels_count_and_stay_depthwise(build):
    net = build("mobilenet_v2", RGB, cifar_stem=True)
    g = torch.Generator().manual_seed(2)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable(net, PRUNE).items()}
    importance = ScoreImportance(net, scores)
    graph = tp.DependencyGraph().build_dependency(net, torch.zeros(1, *RGB))
    groups = list(graph.get_all_groups(ignored_layers=[net.head]))
    assert len(groups) == 25 and all(importance(g) is not None for g in groups)
    # The group of features.2's depthwise conv: the expanding conv's rows, the depthwise filters, the projecting
    # conv's columns; each weight counted once.
    group = next(g for g in groups if any(d.layer is net.body.features[2].conv[1][0] for d, _ in g))
    names = {"body.features.2.conv.0.0.weight", "body.features.2.conv.1.0.weight", "body.features.2.conv.2.weight"}
    torch.testing.assert_close(importance(group).sum(), sum(scores[n].sum() for n in names))
    remove_channels(net, scores, 0.5)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels
    rebuilt = TorchvisionNet(RGB, arch="mobilenet_v2", width=0.125, cifar_stem=True, **net.structure()).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(2, *RGB)
    assert torch.equal(rebuilt(x), net.eval()(x))


def test_initial_weights_from_a_file(build, tmp_path):
    source = build("resnet18", GREY, seed=3)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    builder_names = {k.removeprefix("body.").replace("head.", "fc."): v for k, v in source.state_dict().items()}
    torch.save(builder_names, tmp_path / "w.pt")  # as torchvision names them: conv1.weight, …, fc.weight
    for path in ("w.safetensors", "w.pt"):
        net = build("resnet18", GREY, weights=str(tmp_path / path))
        assert all(torch.equal(net.state_dict()[k], v) for k, v in source.state_dict().items())
    # Ten classes: the head stays at init, everything else is the file's.
    torch.manual_seed(0)
    other = TorchvisionNet(GREY, 10, width=0.125, weights=str(tmp_path / "w.safetensors"))
    assert other.head.out_features == 10 and torch.equal(other.body.conv1.weight, source.body.conv1.weight)
    wider = r"does not fit resnet18: body.conv1.weight has shape \[8, 1, 7, 7\] there, \[16, 1, 7, 7\] here"
    for bad, width, why in [("nope.pt", 0.125, "cannot be read as weights: "), ("w.safetensors", 0.25, wider)]:
        with pytest.raises(ValueError, match=why) as e:
            TorchvisionNet(GREY, 5, width=width, weights=str(tmp_path / bad))  # 0.25: the file is 0.125's
        assert f"model.weights={tmp_path / bad} " in str(e.value) and "\n" not in str(e.value)


def test_pipeline_end_to_end_on_digits(make_cfg, run_pipeline, tmp_path):
    tiny = ["model=resnet18", "model.width=0.125", "model.cifar_stem=true", "train_a.epochs=1", "finetune_b.epochs=1",
            "tracking.figures=false", "eval.max_samples=200",  # the figures and probes would take half the time
            "stages=[finetune_b,scratch_b_sparse]"]  # and their upstream stages: all but the dense baseline
    stages = {"train_a", "score", "prune", "finetune_b", "scratch_b_sparse"}
    for extra in ([], ["prune.kind=structured", "prune.sparsity=0.5"]):
        cfg = make_cfg(*tiny, *extra)
        results = run_pipeline(cfg)
        assert stages <= results.keys()
        for stage in stages:
            assert mlflow.get_run(results[stage].run_id).info.status == "FINISHED"
            accs = [v for k, v in results[stage].metrics.items() if k.endswith("/acc")]
            assert accs and all(0 <= a <= 1 for a in accs)
    pruned, tuned = results["prune"].metrics, results["finetune_b"]
    assert pruned["macs/after"] < pruned["macs/before"] and pruned["params/after"] < pruned["params/before"]
    assert pruned["latency_ms/after"] > 0 and 0.7 < pruned["sparsity"] < 0.8  # half the channels: ~3/4 of the weights
    # finetune_b loaded the pruned net through load_net; its own saved net loads back the same way and scores the same.
    files = Path(mlflow.artifacts.download_artifacts(run_id=tuned.run_id, dst_path=str(tmp_path / "tuned")))
    structure = json.loads((files / "structure.json").read_text())
    assert structure["shapes"]["body.conv1"] == [1, 4, 1]
    net = instantiate(cfg.model, input_shape=GREY, **{**structure, "num_classes": 5}).eval()
    net.load_state_dict(load_file(str(files / "model.safetensors")))
    b = build_pair(cfg.pair).b.test
    with torch.no_grad():
        acc = float((net(b.x).argmax(1) == b.y).float().mean())
    assert abs(acc - tuned.metrics["B/acc"]) < 1e-6
