"""finetune_b: train the pruned A weights on B with the mask held fixed; the head is kept or re-initialised."""

from torch import nn

from crossprune.evaluate import evaluate
from crossprune.pruning import Mask, plain_state_dict
from crossprune.stages.context import Context
from crossprune.tracking import Result
from crossprune.training import fit


def run(ctx: Context, pruned: Result) -> Result:
    cfg, pair = ctx.cfg, ctx.pair
    key = ctx.key("finetune_b", pruned, cfg.finetune_b, cfg.train)
    if hit := ctx.cached("finetune_b", key):
        return hit
    with ctx.track("finetune_b", key) as run:
        ctx.seed()
        net = ctx.load_net(pruned, pair.a.classes)
        classes = pair.a.classes
        if cfg.finetune_b.head == "reinit":
            net.head = nn.Linear(net.head.in_features, pair.b.num_classes)
            classes = pair.b.classes
        mask = Mask(pruned.load("masks"))
        net = fit(mask.apply(net), pair.b.train, pair.b.val, cfg.finetune_b.epochs, cfg)
        run.tag(head=cfg.finetune_b.head)
        run.save("model", plain_state_dict(net))
        run.save("masks", mask)
        run.log(evaluate(net, classes, pair, cfg.eval.probe) | mask.metrics())
    return run.result
