"""prune: select a mask from the scores, apply it to the train_a weights, evaluate before any fine-tuning."""

from hydra.utils import instantiate

from crossprune.evaluate import evaluate
from crossprune.pruning import Mask, plain_state_dict, select
from crossprune.stages.context import Context
from crossprune.tracking import Result


class LayerCollapse(ValueError):
    """A layer would lose every weight."""


def run(ctx: Context, scored: Result) -> Result:
    cfg, pair = ctx.cfg, ctx.pair
    key = ctx.key("prune", scored, cfg.prune, cfg.control)
    if hit := ctx.cached("prune", key):
        return hit
    with ctx.track("prune", key) as run:
        p = cfg.prune
        mask = select(scored.load("scores"), p.sparsity, p.scope, list(p.layers), p.max_layer_sparsity)
        mask = instantiate(cfg.control.apply)(mask, seed=cfg.seed)
        collapsed = [n for n, s in mask.per_param_sparsity().items() if s == 1.0]
        if collapsed and not p.allow_layer_collapse:
            raise LayerCollapse(f"pruning removes every weight of {', '.join(collapsed)} (set prune.allow_layer_collapse=true to allow)")
        net = mask.apply(ctx.load_net(scored, pair.a.classes))
        run.tag(criterion=cfg.criterion.name, control=cfg.control.name, scope=p.scope)
        run.save("model", plain_state_dict(net))
        run.save("masks", mask)
        run.log(evaluate(net, pair.a.classes, pair, cfg.eval.probe) | mask.metrics())
    return run.result
