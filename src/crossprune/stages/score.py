"""score: importance scores of the train_a weights, on A, on B or on a mix (ignored by data-free criteria)."""

from crossprune.pruning import prunable
from crossprune.scoring import compute_scores, score_data
from crossprune.stages.context import Context
from crossprune.tracking import Result


def run(ctx: Context, trained: Result) -> Result:
    cfg, pair = ctx.cfg, ctx.pair
    data = score_data(cfg)
    scoring = None if data == "none" else cfg.score  # data-free scores do not depend on the score data
    key = ctx.key("score", trained, cfg.criterion, scoring, cfg.prune.include_bias, cfg.prune.include_head)
    if hit := ctx.cached("score", key):
        return hit
    with ctx.track("score", key) as run:
        ctx.seed("score")
        net = ctx.load_net(trained, pair.a.classes)
        scores, fitted_b = compute_scores(net, prunable(net, cfg.prune), cfg, pair)
        # Gradient criteria on B data with B's own labels need a B head fitted on frozen features: say so.
        run.tag(criterion=cfg.criterion.name, score_data=data, data_free=cfg.criterion.data_free,
                score_head="fitted_B" if fitted_b else "model")
        run.save("scores", scores)
        run.save("model", net.state_dict())  # the scored weights beside their scores, for inspection
        run.log({k: v for k, v in trained.metrics.items() if k.startswith(("A/", "B/"))})  # the scored model is train_a's
    return run.result
