"""score: importance scores of the network about to be pruned, on A, on B or on a mix (ignored by data-free
criteria). That network is train_a's, or teacher_b's when the order is finetune_then_prune."""

from crossprune.pruning import prunable
from crossprune.stages import figures
from crossprune.stages.context import Context
from crossprune.stages.scoring import compute_scores, prune_with_method
from crossprune.store.names import score_data
from crossprune.store.tracking import Result


def run(ctx: Context, source: Result, data: str | None = None) -> Result:
    """Score `source` on `data` (default score.data); the pipeline also asks for A and B to compare the masks."""
    cfg, pair = ctx.cfg, ctx.pair
    data = score_data(cfg) if data is None or cfg.criterion.data_free else data
    scoring = None if data == "none" else {**cfg.score, "data": data}  # data-free scores ignore the score data
    key = ctx.key("score", source, cfg.criterion, ctx.of("prune.include_bias", "prune.include_head", values={"score": scoring}))
    if hit := ctx.cached("score", key):
        return hit
    with ctx.track("score", key, data) as run:
        ctx.seed("score")
        net = ctx.load_net(source, ctx.scored_classes)
        if cfg.criterion.get("method"):  # a pruning method: it decides the mask and updates the weights it keeps
            mask = prune_with_method(net, prunable(net, cfg.prune), cfg, pair, data)
            run.save("masks", mask)  # the prune stage applies it as it is
            scores, fitted = dict(mask), []
        else:
            scores, fitted = compute_scores(net, prunable(net, cfg.prune), cfg, pair, ctx.scored_classes, data)
        # A gradient criterion on data whose labels are not the head's needs a head fitted on frozen features: say so.
        run.tag(criterion=cfg.criterion.name, score_data=data, data_free=cfg.criterion.data_free,
                score_head="+".join(f"fitted_{t}" for t in fitted) or "model", order=cfg.order)
        run.save("scores", scores)
        figures.log(cfg, "scores", figures.score_histograms, scores)
        run.save("model", net.state_dict())  # the scored weights beside their scores (a method's: reconstructed)
        run.log({k: v for k, v in source.metrics.items() if k.startswith(("A/", "B/"))})  # the scored model is source's
    return run.result
