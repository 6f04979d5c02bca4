"""Each criterion against its formula written out with plain autograd, and every criterion config instantiated
(tests/test_criteria_parity.py checks each against its paper's reference formula, written independently)."""

import copy
from pathlib import Path

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.func import functional_call

from crossprune.criteria import Batch, Loss, fisher, grasp, snip, synflow, taylor, wanda
from crossprune.models import CNN, MLP
from crossprune.pruning import select

# The criteria that score (a pruning method such as sparsegpt has `method` instead, and its own tests).
CONFIGS = sorted(p for p in (Path(__file__).parents[1] / "conf" / "criterion").glob("*.yaml") if "score" in OmegaConf.load(p))
NAMES = ["layers.0.weight", "layers.0.bias", "head.weight"]  # head.bias stays unpruned


def make_batches(seed, n=3, shape=(1, 2, 2), classes=3):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(4, *shape, generator=g) for _ in range(n)]
    return [Batch(x, torch.randint(classes, (4,), generator=g), "A") for x in xs]


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    net = MLP(input_shape=[1, 2, 2], num_classes=3, hidden=[5])
    named = dict(net.named_parameters())
    params = {n: named[n] for n in NAMES}
    loss = Loss(net)
    return net, params, make_batches(1), loss


def per_batch_grads(params, batches, loss):
    return [torch.autograd.grad(loss(b), list(params.values())) for b in batches]


@pytest.mark.parametrize("variant", ["molchanov", "torch_pruning", "abs_mean"])
def test_taylor_variants_are_their_formulas(tiny, variant):
    net, params, batches, loss = tiny
    grads = per_batch_grads(params, batches, loss)
    got = taylor.score(net, params, batches, loss, variant)
    for i, (name, p) in enumerate(params.items()):
        wg = [p.detach() * g[i] for g in grads]
        want = {"molchanov": sum(t.square() for t in wg), "torch_pruning": sum(wg).abs(), "abs_mean": sum(t.abs() for t in wg)}
        torch.testing.assert_close(got[name], want[variant] / len(batches))
    default = taylor.score(net, params, batches, loss)
    if variant == "molchanov":
        assert all(torch.equal(default[n], got[n]) for n in params)


def test_fisher_is_half_w2_mean_per_sample_g2(tiny):
    net, params, batches, loss = tiny
    samples = [Batch(b.x[i : i + 1], b.y[i : i + 1], b.head) for b in batches for i in range(len(b.y))]
    grads = per_batch_grads(params, samples, loss)
    got = fisher.score(net, params, batches, loss)
    for i, (name, p) in enumerate(params.items()):
        want = 0.5 * p.detach() ** 2 * torch.stack([g[i] ** 2 for g in grads]).mean(0)
        torch.testing.assert_close(got[name], want)


def test_snip_is_normalised_abs_w_times_summed_grad(tiny):
    net, params, batches, loss = tiny
    g = torch.autograd.grad(sum(loss(b) for b in batches), list(params.values()))
    raw = [(p.detach() * gi).abs() for p, gi in zip(params.values(), g)]
    norm = sum(r.sum() for r in raw)
    got = snip.score(net, params, batches, loss)
    torch.testing.assert_close(sum(s.sum() for s in got.values()), torch.tensor(1.0))
    for name, r in zip(params, raw):
        torch.testing.assert_close(got[name], r / norm)


def test_grasp_is_w_times_hessian_gradient_product_over_all_weights_at_its_temperature(tiny):
    """Hg over every Linear weight, the unpruned head's too, on logits / T; the layer's scores normalised by |Σ|."""
    net, _, batches, loss = tiny
    params = {"layers.0.weight": net.layers[0].weight}  # the head is not pruned, yet in H
    over = {n: p for n, p in net.named_parameters() if n.endswith("weight")}
    shapes = [p.shape for p in over.values()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in over.values()])

    def mean_loss(flat):
        ws = dict(zip(over, (t.reshape(s) for t, s in zip(flat.split([s.numel() for s in shapes]), shapes))))
        return sum(F.cross_entropy(functional_call(net, ws, (b.x,)) / 200, b.y) for b in batches) / len(batches)

    g = torch.autograd.functional.vjp(mean_loss, flat0.detach())[1]
    hg = torch.autograd.functional.hvp(mean_loss, flat0.detach(), g)[1]
    want = (flat0.detach() * hg)[: shapes[0].numel()].reshape(shapes[0])
    got = grasp.score(net, params, batches, loss)
    assert want.abs().max() > 0  # the check is not trivially 0 == 0
    torch.testing.assert_close(got["layers.0.weight"], want / want.sum().abs())
    at_1 = grasp.score(net, params, batches, loss, temperature=1.0)  # T changes the ranking, not only the scale
    assert not torch.equal(at_1["layers.0.weight"].flatten().argsort(), got["layers.0.weight"].flatten().argsort())


def test_synflow_one_round_is_abs_w_times_flow_gradient(tiny):
    net, params, _, _ = tiny
    state = {n: p.detach().double().abs().requires_grad_() for n, p in net.named_parameters()}
    r = functional_call(net, state, (torch.ones(1, 1, 2, 2, dtype=torch.float64),)).sum()
    grads = torch.autograd.grad(r, [state[n] for n in params])
    got = synflow.score(net, params, None, None, sparsity=0.5, rounds=1)
    for name, g in zip(params, grads):
        torch.testing.assert_close(got[name], (state[name] * g).abs().float().detach())


def test_synflow_is_data_free_follows_schedule_and_leaves_net_alone(tiny):
    net, params, batches, loss = tiny
    before = copy.deepcopy(net.state_dict())
    a = synflow.score(net, params, batches, loss, sparsity=0.5, rounds=3)
    b = synflow.score(net, params, make_batches(7, n=1), None, sparsity=0.5, rounds=3)
    for name in params:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
        torch.testing.assert_close(net.state_dict()[name], before[name], rtol=0, atol=0)
    # After round 2 of 3, 1 − 0.5^(2/3) of the 40 prunable weights are masked and score 0 (weights cut off by the
    # mask score 0 too, hence at least).
    assert sum(int((s == 0).sum()) for s in a.values()) >= round((1 - 0.5 ** (2 / 3)) * 40) == 15


def test_synflow_masks_the_lowest_one_shot_scores_after_round_one(tiny):
    net, params, _, _ = tiny

    def flat(rounds):
        return torch.cat([s.reshape(-1) for s in synflow.score(net, params, None, None, 0.5, rounds).values()])

    one_shot, two = flat(1), flat(2)
    k = round((1 - 0.5 ** (1 / 2)) * 40)  # 12 masked after round 1 of 2
    lowest = torch.topk(one_shot, k, largest=False).indices
    assert (two[lowest] == 0).all() and int((two == 0).sum()) == k


def test_wanda_one_shot_is_abs_w_times_input_feature_norm(tiny):
    net, params, batches, loss = tiny
    x = torch.cat([b.x.flatten(1) for b in batches])
    h = net.layers(x)
    got = wanda.score(net, params, batches, loss, 0.5, sequential=False)
    torch.testing.assert_close(got["layers.0.weight"], params["layers.0.weight"].detach().abs() * x.norm(dim=0))
    torch.testing.assert_close(got["head.weight"], params["head.weight"].detach().abs() * h.norm(dim=0))
    torch.testing.assert_close(got["layers.0.bias"], params["layers.0.bias"].detach().abs())


def test_wanda_sequential_calibrates_the_head_on_the_pruned_layer_and_leaves_net_alone(tiny):
    net, params, batches, loss = tiny
    before = copy.deepcopy(net.state_dict())
    got = wanda.score(net, params, batches, loss, 0.5, "row")
    first = wanda.score(net, params, batches, loss, 0.5, sequential=False)
    for name in ("layers.0.weight", "layers.0.bias"):  # nothing before the first layer: as one shot
        torch.testing.assert_close(got[name], first[name])
    cut = select({n: got[n] for n in ("layers.0.weight", "layers.0.bias")}, 0.5, "row")
    x = torch.cat([b.x.flatten(1) for b in batches])
    w0, b0 = (net.layers[0].weight * cut["layers.0.weight"]), (net.layers[0].bias * cut["layers.0.bias"])
    h = torch.relu(F.linear(x, w0, b0)).detach()
    torch.testing.assert_close(got["head.weight"], params["head.weight"].detach().abs() * h.norm(dim=0))
    assert not torch.allclose(got["head.weight"], first["head.weight"])
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_wanda_conv_norms_are_per_input_channel_and_kernel_tap():
    """Wanda's norm of each im2col column: a tap near the zero padding sees fewer of the input's values."""
    torch.manual_seed(0)
    net = CNN(input_shape=[2, 4, 4], num_classes=3, channels=[3])
    w = net.layers[0].weight
    batches = make_batches(2, n=2, shape=(2, 4, 4))
    x = F.pad(torch.cat([b.x for b in batches]), (1, 1, 1, 1))
    norm = torch.stack([torch.stack([x[:, :, i : i + 4, j : j + 4].square().sum((0, 2, 3)) for j in range(3)], -1)
                        for i in range(3)], -2).sqrt()  # (channel, tap row, tap column)
    got = wanda.score(net, {"layers.0.weight": w}, batches, None, 0.5)
    torch.testing.assert_close(got["layers.0.weight"], w.detach().abs() * norm)
    assert norm[:, 0, 0].sum() < norm[:, 1, 1].sum()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_criterion_config_scores_the_tiny_net(path, tiny):
    net, params, batches, loss = tiny
    root = OmegaConf.create({"seed": 0, "prune": {"sparsity": 0.5, "scope": "row", "layers": [], "pattern": None},
                              "criterion": OmegaConf.load(path)})
    OmegaConf.resolve(root)
    assert isinstance(root.criterion.data_free, bool)
    score = hydra.utils.instantiate(root.criterion.score)
    got = score(net, params, batches, loss)
    assert got.keys() == params.keys()
    for name, p in params.items():
        assert got[name].shape == p.shape
        assert torch.isfinite(got[name]).all()
        assert not got[name].requires_grad
    if root.criterion.data_free:
        other = score(net, params, make_batches(9, n=1), None)
        for name in params:
            torch.testing.assert_close(got[name], other[name], rtol=0, atol=0)


class Blocks(torch.nn.Module):
    """Two blocks of two Linear layers, as a language model's decoder layers are Wanda's units."""

    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
                                          for _ in range(2))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def test_wanda_calibrates_a_block_on_its_dense_self_and_the_next_on_it_pruned():
    torch.manual_seed(0)
    net = Blocks()
    params = {n: p for n, p in net.named_parameters() if n.endswith("weight")}
    batches = [Batch(torch.randn(8, 4), torch.zeros(8, dtype=torch.long), "A")]
    got = wanda.score(net, params, batches, None, 0.5, "row")
    x = batches[0].x
    inner = torch.relu(net.blocks[0][0](x)).detach()  # block 0's second layer: its block still dense
    torch.testing.assert_close(got["blocks.0.2.weight"], net.blocks[0][2].weight.detach().abs() * inner.norm(dim=0))
    cut = select({n: got[n] for n in ("blocks.0.0.weight", "blocks.0.2.weight")}, 0.5, "row")
    pruned = F.linear(torch.relu(F.linear(x, net.blocks[0][0].weight * cut["blocks.0.0.weight"], net.blocks[0][0].bias)),
                      net.blocks[0][2].weight * cut["blocks.0.2.weight"], net.blocks[0][2].bias).detach()
    torch.testing.assert_close(got["blocks.1.0.weight"], net.blocks[1][0].weight.detach().abs() * pruned.norm(dim=0))
