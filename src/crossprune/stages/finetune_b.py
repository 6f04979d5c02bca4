"""finetune_b: train the pruned A weights on B with the mask held fixed; the head is kept or re-initialised."""

from torch import nn

from crossprune.evaluate import evaluate
from crossprune.pruning import plain_state_dict
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
        net, classes = ctx.load_net(pruned, pair.a.classes), pair.a.classes
        if cfg.finetune_b.head == "reinit":
            net.head, classes = nn.Linear(net.head.in_features, pair.b.num_classes), pair.b.classes
        mask = ctx.load_mask(pruned)  # none after structural removal: the weights are gone, not masked
        net = fit(mask.apply(net) if mask else net, pair.b.train, pair.b.val, cfg.finetune_b.epochs, cfg)
        metrics = evaluate(net, classes, pair, cfg.eval.probe)
        if mask:
            run.save("masks", mask)
            metrics |= mask.metrics()
        if pruned.structure():
            run.save_json("structure", net.structure())
        run.tag(head=cfg.finetune_b.head)
        run.save("model", plain_state_dict(net))
        run.log(metrics)
    return run.result
