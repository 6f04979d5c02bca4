import pytest
import torch
from torch import nn

from crossprune.models import CNN, MLP
from crossprune.pruning.structured import count, latency_ms, remove_channels

SHAPE, CLASSES = [1, 8, 8], 5
NETS = {"mlp": lambda: MLP(SHAPE, CLASSES, hidden=[32, 16]), "cnn": lambda: CNN(SHAPE, CLASSES, channels=[8, 16])}


def make(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return NETS[kind]()


def widths(net: nn.Module) -> list[int]:
    return list(next(iter(net.structure().values())))  # hidden (MLP) or channels (CNN)


def magnitude(net: nn.Module) -> dict:
    return {n: p.detach().abs() for n, p in net.named_parameters() if n.endswith("weight") and not n.startswith("head")}


def random_scores(net: nn.Module) -> dict:
    g = torch.Generator().manual_seed(1)
    return {n: torch.rand(s.shape, generator=g) for n, s in magnitude(net).items()}


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("scorer", [magnitude, random_scores])
def test_halves_every_layer_but_head(kind, scorer):
    net = make(kind)
    before, old = count(net), widths(net)
    remove_channels(net, scorer(net), 0.5)
    assert widths(net) == [w // 2 for w in old]
    assert net.head.out_features == CLASSES and net.head.in_features == old[-1] // 2
    after = count(net)
    assert after["macs"] < before["macs"] and after["params"] < before["params"]
    assert after["params"] == sum(p.numel() for p in net.parameters())
    assert net(torch.zeros(3, *SHAPE)).shape == (3, CLASSES)


@pytest.mark.parametrize("kind", NETS)
def test_rebuilt_from_structure_matches(kind):
    net = remove_channels(make(kind), magnitude(make(kind)), 0.5).eval()
    rebuilt = type(net)(input_shape=net.input_shape, **net.structure()).eval()
    rebuilt.load_state_dict(net.state_dict())
    x = torch.randn(4, *SHAPE)
    assert torch.equal(rebuilt(x), net(x))


@pytest.mark.parametrize("kind", NETS)
def test_keeps_channel_our_scores_favour(kind):
    net, name, k = make(kind), "layers.0.weight", 3
    first = net.layers[0]
    scores = {n: torch.zeros_like(s) for n, s in magnitude(net).items()}
    scores[name][k] = 1e6  # channel 3 alone matters; the rest tie at zero
    kept_row = first.weight[k].detach().clone()
    remove_channels(net, scores, 0.5)
    assert any(torch.equal(row, kept_row) for row in first.weight)
    # The opposite: channel 3 scored lowest of all must go.
    net = make(kind)
    first = net.layers[0]
    scores = {n: torch.ones_like(s) for n, s in magnitude(net).items()}
    scores[name][k] = -1e6
    dropped_row = first.weight[k].detach().clone()
    remove_channels(net, scores, 0.5)
    assert not any(torch.equal(row, dropped_row) for row in first.weight)


def test_latency_is_a_positive_number_and_keeps_mode():
    net = make("mlp").train()
    assert latency_ms(net, batch_size=8, repeats=3) > 0
    assert net.training
