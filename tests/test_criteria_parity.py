"""Each criterion against its paper's formula, recomputed independently on tiny networks and batches: the scores'
Spearman ρ ≥ 0.999 and the same kept set at 90% sparsity (the global cut; Wanda's per-row cut).

The references follow the papers, read against the authors' code (named per test), and share no code with
crossprune.criteria: gates on the weights instead of weight gradients, torch.func per-sample gradients and
Hessian-vector products over one flat objective, Wanda's layer-by-layer loop with its im2col read off kernel taps.
In float64, so that no kept set hangs on rounding."""

import copy

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from crossprune.criteria import Batch, Loss, fisher, grasp, magnitude, random, snip, synflow, taylor, wanda
from crossprune.models import CNN, MLP, CNN1d
from crossprune.pruning import select

SPARSITY = 0.9


def grouped_cnn1d() -> nn.Module:
    net = CNN1d([4, 12], 4, channels=[8, 6])
    net.layers[0] = nn.Conv1d(4, 8, 5, padding=2, groups=2)  # each row sees its group's 2 channels × 5 taps
    return net


# Widths such that Wanda's int(columns · 0.9) is exact in every row (then its cut and crossprune's row cut agree).
NETS = {
    "mlp": (lambda: MLP([1, 5, 4], 4, hidden=[10, 10]), (1, 5, 4)),
    "cnn": (lambda: CNN([2, 8, 8], 4, channels=[10, 6], kernel_size=5), (2, 8, 8)),
    "cnn1d": (lambda: CNN1d([2, 12], 4, channels=[10, 6]), (2, 12)),
    "cnn1d_grouped": (grouped_cnn1d, (4, 12)),
}


@pytest.fixture(params=list(NETS))
def case(request):
    """A net (float64, eval), its prunable weights (crossprune's default: every Conv/Linear weight but the head's)
    and three score batches of six."""
    build, shape = NETS[request.param]
    torch.manual_seed(0)
    net = build().double().eval()
    params = {n: p for n, p in net.named_parameters() if n.endswith("weight") and not n.startswith("head")}
    g = torch.Generator().manual_seed(1)
    batches = [Batch(torch.randn(6, *shape, generator=g, dtype=torch.float64), torch.randint(4, (6,), generator=g), "A")
               for _ in range(3)]
    return net, params, batches


def flat(scores: dict, names) -> torch.Tensor:
    return torch.cat([scores[n].detach().reshape(-1) for n in names])


def top(ref: dict, names, sparsity: float = SPARSITY) -> set[int]:
    """The kept set of a global cut: positions (in `names` order) of the highest reference scores."""
    v = flat(ref, names)
    return set(torch.topk(v, v.numel() - round(sparsity * v.numel())).indices.tolist())


def assert_parity(got: dict, ref: dict, kept: set[int], scope: str = "global") -> None:
    names = list(ref)
    assert got.keys() == ref.keys()
    rho = spearmanr(flat(got, names).numpy(), flat(ref, names).numpy()).statistic
    assert rho >= 0.999, rho
    assert set(torch.nonzero(flat(select(got, SPARSITY, scope), names)).flatten().tolist()) == kept


def weights(net) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters()}


def everything(batches) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([b.x for b in batches]), torch.cat([b.y for b in batches])


def gate_gradient(net, names, x, y) -> dict[str, torch.Tensor]:
    """∂L/∂c at c = 1 for a multiplicative gate c on each weight (w → c·w): the w·g of Molchanov's and SNIP's papers."""
    base = weights(net)

    def loss(gates):
        return F.cross_entropy(functional_call(net, base | {n: base[n] * gates[n] for n in names}, (x,)), y)

    return grad(loss)({n: torch.ones_like(base[n]) for n in names})


def test_magnitude_is_abs_w(case):
    """Han et al. 2015; Synaptic-Flow's Mag: |θ|."""
    net, params, batches = case
    ref = {n: p.detach().abs() for n, p in params.items()}
    assert_parity(magnitude.score(net, params, batches, None), ref, top(ref, ref))


def test_random_is_iid_uniform_independent_of_the_net(case):
    """Random pruning: i.i.d. U[0, 1) per weight from the seed (Synaptic-Flow's Rand draws i.i.d. too), so the
    reference is the seed's draw in parameter order; and it ignores the weights: another net, the same scores."""
    net, params, batches = case
    g = torch.Generator().manual_seed(3)
    ref = {n: torch.rand(p.shape, generator=g, dtype=torch.float32) for n, p in params.items()}
    got = random.score(net, params, batches, None, seed=3)
    assert_parity(got, ref, top(ref, ref))
    other = copy.deepcopy(net)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-2)
    again = random.score(other, {n: other.get_parameter(n) for n in params}, batches, None, seed=3)
    assert all(torch.equal(again[n], got[n]) for n in params)
    assert abs(spearmanr(flat(got, params), flat({n: p.abs() for n, p in params.items()}, params)).statistic) < 0.2


@pytest.mark.parametrize("variant", ["molchanov", "torch_pruning", "abs_mean"])
def test_taylor_variants_are_their_references(case, variant):
    """molchanov: Molchanov et al. 2019 (NVlabs/Taylor_pruning, method 0 per weight): (w·g_b)² = (∂L_b/∂c)²,
    averaged over minibatches. torch_pruning: Torch-Pruning's TaylorImportance, |w ⊙ w.grad| after backward() on
    each batch. abs_mean: |∂L_b/∂c| averaged."""
    net, params, batches = case
    names = list(params)
    if variant == "torch_pruning":
        twin = copy.deepcopy(net)
        for b in batches:
            F.cross_entropy(twin(b.x), b.y).backward()  # .grad accumulates over the batches, as its users do
        ref = {n: (twin.get_parameter(n) * twin.get_parameter(n).grad).detach().abs() for n in names}
    else:
        per_batch = [gate_gradient(net, names, b.x, b.y) for b in batches]
        term = torch.square if variant == "molchanov" else torch.abs
        ref = {n: sum(term(c[n]) for c in per_batch) / len(batches) for n in names}
    assert_parity(taylor.score(net, params, batches, Loss(net), variant), ref, top(ref, ref))


def test_fisher_is_half_w2_times_mean_per_sample_g2(case):
    """Theis et al. 2018: Δ = ½ w² · (1/N) Σ_n g_n², g_n the gradient of sample n's loss (torch.func per-sample)."""
    net, params, batches = case
    base, x, y = weights(net), *everything(batches)

    def one(ws, xi, yi):
        return F.cross_entropy(functional_call(net, base | ws, (xi[None],)), yi[None])

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))({n: base[n] for n in params}, x, y)
    ref = {n: 0.5 * base[n].square() * per_sample[n].square().mean(0) for n in params}
    assert_parity(fisher.score(net, params, batches, Loss(net)), ref, top(ref, ref))


def test_snip_is_normalised_connection_sensitivity(case):
    """Lee et al. 2019 (snip-public): s = |∂L/∂c| / Σ|∂L/∂c| at c = 1, L on all the score data at once."""
    net, params, batches = case
    c = gate_gradient(net, list(params), *everything(batches))
    total = sum(v.abs().sum() for v in c.values())
    ref = {n: v.abs() / total for n, v in c.items()}
    got = snip.score(net, params, batches, Loss(net))
    assert_parity(got, ref, top(ref, ref))
    assert float(sum(s.sum() for s in got.values())) == pytest.approx(1.0)


def test_grasp_is_the_papers_minus_w_hg_at_temperature_200_over_all_weights(case):
    """Wang et al. 2020 (alecwangcq/GraSP, Synaptic-Flow's port): S = −θ ⊙ Hg, g and H of the loss on logits / 200
    over every Conv/Linear weight (the head's too, though it is not pruned); the LARGEST S are removed."""
    net, params, batches = case
    base, x, y = weights(net), *everything(batches)
    theta = {n: base[n] for n in base if n.endswith("weight")}
    assert any(n.startswith("head") for n in theta) and not any(n.startswith("head") for n in params)

    def loss(ws):
        return F.cross_entropy(functional_call(net, base | ws, (x,)) / 200, y)

    g = grad(loss)(theta)
    hg = jvp(grad(loss), (theta,), (g,))[1]  # forward-over-reverse: H·g
    s = {n: -theta[n] * hg[n] for n in params}
    v = flat(s, params)
    removed = set(torch.topk(v, round(SPARSITY * v.numel())).indices.tolist())
    kept = set(range(v.numel())) - removed
    assert_parity(grasp.score(net, params, batches, Loss(net)), {n: -t for n, t in s.items()}, kept)


def test_synflow_is_iterative_synaptic_flow(case):
    """Tanaka et al. 2020 (Synaptic-Flow's SynFlow and prune_loop): R = Σ f(1; |θ| ⊙ m), scores |θ ⊙ ∂R/∂θ|, and
    after each of the rounds the lowest are masked globally down to density (1 − s)^(r/rounds); the last round's
    scores are cut to the target. Counts rounded as crossprune's selector rounds them."""
    net, params, _ = case
    rounds = 10
    state = {n: t.detach().abs() for n, t in net.state_dict().items()}  # every parameter positive, biases too
    masks = {n: torch.ones_like(state[n]) for n in params}
    ones = torch.ones(1, *net.input_shape, dtype=torch.float64)
    n_all = sum(m.numel() for m in masks.values())
    for r in range(1, rounds + 1):

        def flow(theta):
            return functional_call(net, state | {n: theta[n] * masks[n] for n in params}, (ones,)).sum()

        theta = {n: state[n] for n in params}
        d = grad(flow)(theta)
        ref = {n: (theta[n] * d[n]).abs() for n in params}
        keep = n_all - round((1 - (1 - SPARSITY) ** (r / rounds)) * n_all)
        chosen = set(torch.topk(flat(ref, params), keep).indices.tolist())
        position = torch.zeros(n_all)
        position[list(chosen)] = 1
        masks = dict(zip(params, (m.reshape(state[n].shape) for n, m in zip(params, position.split([state[n].numel() for n in params])))))
    assert_parity(synflow.score(net, params, None, None, SPARSITY, rounds), ref, chosen)


def squared_columns(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Σ over samples and positions of each im2col column's squared input: per input channel and kernel tap,
    read off the zero-padded input one tap at a time (stride 1 here)."""
    if isinstance(layer, nn.Linear):
        return h.square().sum(0)
    k, p = layer.kernel_size, layer.padding
    assert layer.stride == (1,) * len(k) and layer.dilation == (1,) * len(k)
    padded = F.pad(h, [q for q in reversed(p) for _ in (0, 1)])
    out = [n + 2 * q - kk + 1 for n, q, kk in zip(h.shape[2:], p, k)]
    taps = torch.cartesian_prod(*[torch.arange(kk) for kk in k]).reshape(-1, len(k))
    cols = [padded[(..., *[slice(t, t + o) for t, o in zip(tap.tolist(), out)])].square().sum((0, *range(2, 2 + len(k))))
            for tap in taps]
    return torch.stack(cols, -1).reshape(layer.in_channels, *k)


def wanda_reference(net, names, batches, sequential: bool):
    """locuslab/wanda lib/prune.py on a net of one-layer blocks: per block in order, scaler_row = mean over samples of
    ‖X_j‖² (X the layer's input, from the dense net or, sequentially, through the blocks already pruned), metric
    |W|·√scaler_row on W's im2col rows, and the int(columns · s) lowest of each row (stable sort) set to zero."""
    x, _ = everything(batches)
    h = x.flatten(1) if isinstance(net, MLP) else x
    metrics, kept = {}, {}
    for i, layer in enumerate(net.layers):
        name = f"layers.{i}.weight"
        if name in names:
            w = layer.weight.detach()
            groups = getattr(layer, "groups", 1)
            sq = squared_columns(layer, h) / len(x)
            rows = w.reshape(len(w), -1)
            norms = sq.reshape(groups, -1).repeat_interleave(len(w) // groups, 0)  # row o: its group's columns
            metric = rows.abs() * norms.sqrt()
            order = torch.sort(metric, dim=1, stable=True).indices
            mask = torch.ones_like(metric).scatter_(1, order[:, : int(metric.shape[1] * SPARSITY)], 0)
            metrics[name], kept[name] = metric.reshape(w.shape), mask.reshape(w.shape)
            if sequential:
                h = functional_call(layer, {"weight": w * kept[name], "bias": layer.bias.detach()}, (h,))
                continue
        h = layer(h).detach()
    return metrics, kept


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "one_shot"])
def test_wanda_is_its_reference_loop(case, sequential):
    net, params, batches = case
    ref, kept = wanda_reference(net, params, batches, sequential)
    got = wanda.score(net, params, batches, None, SPARSITY, "row", sequential=sequential)
    assert_parity(got, ref, set(torch.nonzero(flat(kept, ref)).flatten().tolist()), scope="row")
    if sequential:  # the later layers did see the earlier ones pruned
        dense, _ = wanda_reference(net, params, batches, sequential=False)
        assert not torch.allclose(flat(dense, params), flat(ref, params))
