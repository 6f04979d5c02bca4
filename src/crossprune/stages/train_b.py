"""Training on B: finetune_b from the pruned A weights, and the scratch_b baselines from a fresh init.

One body serves all three (the init is the only difference), so their budgets and evaluation cannot drift apart.
"""

from torch import nn

from crossprune.evaluate import evaluate
from crossprune.pruning import plain_state_dict
from crossprune.stages.context import Context
from crossprune.tracking import Result
from crossprune.training import fit


def finetune_b(ctx: Context, pruned: Result) -> Result:
    """The pruned A weights on B, mask held fixed; the head kept or re-initialised per finetune_b.head."""
    cfg = ctx.cfg
    key = ctx.key("finetune_b", pruned, cfg.finetune_b, cfg.train)
    return train_b(ctx, "finetune_b", key, pruned, from_pruned_weights=True)


def scratch_b_dense(ctx: Context) -> Result:
    """Same architecture, fresh init, finetune_b's budget."""
    cfg = ctx.cfg
    key = ctx.key("scratch_b_dense", cfg.pair, cfg.model, cfg.train, cfg.finetune_b.epochs, cfg.eval, cfg.seed)
    return train_b(ctx, "scratch_b_dense", key)


def scratch_b_sparse(ctx: Context, pruned: Result) -> Result:
    """The lottery-ticket control: the prune stage's mask (or its smaller widths) on a fresh init."""
    key = ctx.key("scratch_b_sparse", pruned, ctx.cfg.train, ctx.cfg.finetune_b.epochs)
    return train_b(ctx, "scratch_b_sparse", key, pruned)


def train_b(ctx: Context, stage: str, key: str, pruned: Result | None = None, from_pruned_weights: bool = False) -> Result:
    """Train on B from the pruned weights or a fresh init, under the prune stage's mask or widths if given."""
    cfg, pair = ctx.cfg, ctx.pair
    if hit := ctx.cached(stage, key):
        return hit
    with ctx.track(stage, key) as run:
        mask, structure = (ctx.load_mask(pruned), pruned.structure()) if pruned else (None, {})
        if from_pruned_weights:
            ctx.seed(stage)
            net, classes = ctx.load_net(pruned, pair.a.classes), pair.a.classes
            if cfg.finetune_b.head == "reinit":
                net.head, classes = nn.Linear(net.head.in_features, pair.b.num_classes), pair.b.classes
        else:
            ctx.seed("scratch_b")  # both baselines start from the same fresh init, never train_a's
            net, classes = ctx.new_net(pair.b.classes, structure), pair.b.classes
        net = fit(mask.apply(net) if mask else net, pair.b.train, pair.b.val, cfg.finetune_b.epochs, cfg)
        metrics = evaluate(net, classes, pair, cfg.eval.probe)
        if mask:
            run.save("masks", mask)
            metrics |= mask.metrics()
        if structure:  # removed, not masked: the widths and the prune stage's sparsity carry over
            run.save_json("structure", net.structure())
            metrics |= {k: v for k, v in pruned.metrics.items() if k.startswith("sparsity")}
        run.tag(head=cfg.finetune_b.head if from_pruned_weights else "fresh")
        run.save("model", plain_state_dict(net))
        run.log(metrics)
    return run.result
