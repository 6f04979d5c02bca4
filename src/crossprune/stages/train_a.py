"""train_a: train the network on A."""

from crossprune.evaluate import evaluate
from crossprune.stages.context import Context
from crossprune.tracking import Result
from crossprune.training import fit


def run(ctx: Context) -> Result:
    cfg, a = ctx.cfg, ctx.pair.a
    key = ctx.key("train_a", cfg.pair, cfg.model, cfg.train, cfg.train_a, cfg.eval, cfg.seed)
    if hit := ctx.cached("train_a", key):
        return hit
    with ctx.track("train_a", key) as run:
        ctx.seed("train_a")
        net = fit(ctx.new_net(a.classes), a.train, a.val, cfg.train_a.epochs, cfg)
        run.save("model", net.state_dict())
        run.log(evaluate(net, a.classes, ctx.pair, cfg.eval.probe))
    return run.result
