"""prune: mask (or remove) the scored weights by their scores, then evaluate before any fine-tuning."""

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from crossprune.diagnostics import mask_iou, spearman
from crossprune.pruning import Mask, plain_state_dict, prunable, select
from crossprune.pruning.collapse import LayerCollapse, check_collapse
from crossprune.pruning.structured import count, latency_ms, remove_channels
from crossprune.stages import figures
from crossprune.stages.context import Context
from crossprune.stages.evaluate import fit_head
from crossprune.stages.scoring import compute_scores
from crossprune.stages.training import fit
from crossprune.store.names import score_data
from crossprune.store.tracking import Result, StageFailed


def run(ctx: Context, scored: Result, on_a: Result, on_b: Result) -> Result:
    """Prune the network `scored` scored; `on_a`/`on_b` are the same scoring on A and on B, to compare masks."""
    cfg, p = ctx.cfg, ctx.cfg.prune
    trains = p.rounds > 1 and p.round_epochs > 0  # between rounds
    key = ctx.key("prune", scored, on_a, on_b, p, cfg.control, ctx.training if trains else None)
    if hit := ctx.cached("prune", key):
        return hit
    with ctx.track("prune", key) as run:
        ctx.seed("prune")
        net = ctx.load_net(scored, ctx.scored_classes)
        if p.kind == "structured":
            metrics = remove_structurally(net, scored.load("scores"), p)
            run.save_json("structure", net.structure())
        else:
            control = instantiate(cfg.control.apply)
            decided = ctx.load_mask(scored)  # a pruning method's own mask (sparsegpt), else selected from the scores
            mask = control(decided or gradual_mask(ctx, net, scored.load("scores")), seed=ctx.seed("control"))
            try:
                check_collapse(mask, p)
            except LayerCollapse as e:  # what these weights gave, not the config: the point FAILED, a sweep goes on
                raise StageFailed(f"prune: {e}") from e
            mask.apply(net)
            run.save("masks", mask)
            metrics = mask.metrics()
        run.tag(criterion=cfg.criterion.name, score_data=score_data(cfg), control=cfg.control.name, scope=p.scope,
                kind=p.kind, order=cfg.order, agreement_runs=f"{on_a.run_id},{on_b.run_id}")
        run.save("model", plain_state_dict(net))
        own = ctx.load_mask(on_a), ctx.load_mask(on_b)
        run.log(ctx.evaluate(net, ctx.scored_classes) | metrics | agreement(on_a.load("scores"), on_b.load("scores"), p, *own)
                | noise_floor(ctx, on_a))
        per_layer = {k.removeprefix("sparsity/"): v for k, v in metrics.items() if k.startswith("sparsity/")}
        figures.log(cfg, "layer_sparsity", figures.layer_sparsity, per_layer)
    return run.result


def agreement(on_a: dict[str, Tensor], on_b: dict[str, Tensor], p: DictConfig, mask_a: Mask | None = None,
              mask_b: Mask | None = None) -> dict[str, float]:
    """How far scoring on A and on B disagree: IoU of the kept sets of the one-shot masks they select at these
    settings, or of a pruning method's own masks (`mask_a`, `mask_b`) (`mask_iou_AB`, and per parameter), and the
    rank correlation of the scores per parameter."""
    select_at = lambda scores: select(scores, p.sparsity, p.scope, list(p.layers), p.max_layer_sparsity, p.pattern)  # noqa: E731
    overall, per_param = mask_iou(mask_a or select_at(on_a), mask_b or select_at(on_b))
    return ({"mask_iou_AB": overall} | {f"mask_iou_AB/{n}": v for n, v in per_param.items()}
            | {f"score_spearman_AB/{n}": spearman(on_a[n], on_b[n]) for n in on_a})


def noise_floor(ctx: Context, on_a: Result) -> dict[str, float]:
    """`mask_iou_AA`: the IoU of the masks of two independent draws of A's score batches (the second from its own
    stream), the agreement that mask_iou_AB is read against; 1 for data-free criteria and pruning methods."""
    cfg, p = ctx.cfg, ctx.cfg.prune
    if cfg.criterion.data_free or cfg.criterion.get("method"):
        return {"mask_iou_AA": 1.0}
    net = ctx.load_net(on_a, ctx.scored_classes)
    again, _ = compute_scores(net, prunable(net, p), cfg, ctx.pair, ctx.scored_classes, "A", stream="score.replicate")
    select_at = lambda scores: select(scores, p.sparsity, p.scope, list(p.layers), p.max_layer_sparsity, p.pattern)  # noqa: E731
    return {"mask_iou_AA": mask_iou(select_at(on_a.load("scores")), select_at(again))[0]}


def gradual_mask(ctx: Context, net: nn.Module, scores: dict) -> Mask:
    """Reach prune.sparsity in prune.rounds geometric steps, rescoring and training between rounds."""
    p = ctx.cfg.prune
    mask = None
    for r in range(1, p.rounds + 1):
        if mask is not None:
            scores = rescore(ctx, net, mask, r)
        mask = select(scores, 1 - (1 - p.sparsity) ** (r / p.rounds), p.scope, list(p.layers), p.max_layer_sparsity,
                      p.pattern)
        if r < p.rounds and p.round_epochs > 0:
            train_round(ctx, mask.apply(net), p.round_data, first_step=(r - 1) * p.round_epochs)
    return mask


def rescore(ctx: Context, net: nn.Module, mask: Mask, round: int) -> dict:
    """Score the current masked weights on fresh batches; pruned weights score -inf, so masks only shrink."""
    plain = ctx.new_net(ctx.scored_classes)
    plain.load_state_dict(plain_state_dict(net))
    scores, _ = compute_scores(plain, prunable(plain, ctx.cfg.prune), ctx.cfg, ctx.pair, ctx.scored_classes,
                               stream=f"score.round{round}")
    return {n: s.masked_fill(mask[n] == 0, float("-inf")) for n, s in scores.items()}


def train_round(ctx: Context, net: nn.Module, data: str, first_step: int) -> None:
    """Train between rounds on A or B; data whose labels are not the head's trains through a temporary fitted head."""
    ds, head = ctx.pair[data], net.head
    if ds.classes != ctx.scored_classes:
        with ctx.compute.on(net):
            net.head = fit_head(net, ds, ctx.cfg.eval.probe, ctx.compute)
    fit(net, ds.train, ds.val, ctx.cfg.prune.round_epochs, ctx.cfg, first_step)
    net.head = head


def remove_structurally(net: nn.Module, scores: dict, p: DictConfig) -> dict[str, float]:
    """Remove whole neurons/channels; log MACs, params and CPU latency before and after."""
    sizes = {n: w.numel() for n, w in prunable(net, p).items()}
    before = count(net) | {"latency_ms": latency_ms(net)}
    remove_channels(net, scores, p.sparsity)
    after = count(net) | {"latency_ms": latency_ms(net)}
    left = {n: w.numel() for n, w in prunable(net, p).items()}
    metrics = {f"{k}/before": v for k, v in before.items()} | {f"{k}/after": v for k, v in after.items()}
    metrics["sparsity"] = 1 - sum(left.values()) / sum(sizes.values())  # fraction of prunable weights removed
    return metrics | {f"sparsity/{n}": 1 - left[n] / sizes[n] for n in sizes}
