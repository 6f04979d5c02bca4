"""scratch_b baselines: a fresh init trained on B with finetune_b's budget, dense or under the prune mask."""

from crossprune.evaluate import evaluate
from crossprune.pruning import Mask, plain_state_dict
from crossprune.stages.context import Context
from crossprune.tracking import Result
from crossprune.training import fit


def run_dense(ctx: Context) -> Result:
    cfg = ctx.cfg
    key = ctx.key("scratch_b_dense", cfg.pair, cfg.model, cfg.train, cfg.finetune_b.epochs, cfg.eval, cfg.seed)
    return _train(ctx, "scratch_b_dense", key)


def run_sparse(ctx: Context, pruned: Result) -> Result:
    """The lottery-ticket control: the prune stage's mask (or its smaller widths) on a fresh init."""
    key = ctx.key("scratch_b_sparse", pruned, ctx.cfg.train, ctx.cfg.finetune_b.epochs)
    return _train(ctx, "scratch_b_sparse", key, ctx.load_mask(pruned), pruned.structure())


def _train(ctx: Context, stage: str, key: str, mask: Mask | None = None, structure: dict | None = None) -> Result:
    cfg, b = ctx.cfg, ctx.pair.b
    if hit := ctx.cached(stage, key):
        return hit
    with ctx.track(stage, key) as run:
        ctx.seed(offset=1)  # a fresh init, not train_a's
        net = ctx.new_net(b.classes, structure)
        net = fit(mask.apply(net) if mask else net, b.train, b.val, cfg.finetune_b.epochs, cfg)
        run.save("model", plain_state_dict(net))
        metrics = evaluate(net, b.classes, ctx.pair, cfg.eval.probe)
        if mask:
            run.save("masks", mask)
            metrics |= mask.metrics()
        if structure:
            run.save_json("structure", structure)
        run.log(metrics)
    return run.result
