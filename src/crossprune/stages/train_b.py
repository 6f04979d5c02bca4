"""Training on B: teacher_b (the dense A network fine-tuned on B), finetune_b from the pruned weights, and the
scratch_b baselines from a fresh init.

One body serves all four (the init is the only difference), so their budgets and evaluation cannot drift apart.
"""

from torch import nn

from crossprune.pruning import plain_state_dict
from crossprune.stages.context import Context
from crossprune.stages.training import fit
from crossprune.store.tracking import Result


def teacher_b(ctx: Context, trained: Result) -> Result:
    """The dense train_a network fine-tuned on B with finetune_b's budget: the distillation teacher, and the
    network that finetune_then_prune scores and prunes."""
    cfg = ctx.cfg
    key = ctx.key("teacher_b", trained, ctx.of("finetune_b.epochs", "finetune_b.head"), ctx.training)
    return train_b(ctx, "teacher_b", key, init=trained, classes=ctx.pair.a.classes, head=cfg.finetune_b.head)


def finetune_b(ctx: Context, pruned: Result, teacher: Result | None) -> Result:
    """The pruned weights on B, mask held fixed, distilled from `teacher` when finetune_b.distill.alpha > 0; the
    head kept or re-initialised per finetune_b.head (kept when it was already fine-tuned on B)."""
    cfg, distill = ctx.cfg, ctx.cfg.finetune_b.distill
    head = cfg.finetune_b.head if cfg.order == "prune_then_finetune" else "keep"
    key = ctx.key("finetune_b", pruned, teacher, ctx.of("finetune_b.epochs", values={"finetune_b.head": head}),
                  distill if teacher else None, ctx.training)
    return train_b(ctx, "finetune_b", key, init=pruned, classes=ctx.scored_classes, head=head, shape=pruned, teacher=teacher)


def scratch_b_dense(ctx: Context, trained: Result) -> Result:
    """Same architecture, fresh init, the scratch budget (measured against the dense train_a network)."""
    key = ctx.key("scratch_b_dense", trained, ctx.training, scratch_budget(ctx))
    return train_b(ctx, "scratch_b_dense", key, epochs=scratch_epochs(ctx))


def scratch_b_sparse(ctx: Context, pruned: Result) -> Result:
    """The lottery-ticket control: the prune stage's mask (or its smaller widths) on a fresh init."""
    key = ctx.key("scratch_b_sparse", pruned, ctx.training, scratch_budget(ctx))
    return train_b(ctx, "scratch_b_sparse", key, shape=pruned, epochs=scratch_epochs(ctx))


def scratch_epochs(ctx: Context) -> int:
    """Liu et al. (2019): Scratch-E trains scratch_b.epochs epochs on B; Scratch-B as many optimizer steps as the
    pruned network got in all (train_a on A, then finetune_b on B), so neither arm has the larger budget."""
    cfg, size = ctx.cfg, ctx.cfg.train.batch_size
    if cfg.scratch_b.budget == "E":
        return cfg.scratch_b.epochs
    steps_b = -(-len(ctx.pair.b.train) // size)
    steps = cfg.train_a.epochs * -(-len(ctx.pair.a.train) // size) + cfg.finetune_b.epochs * steps_b
    return -(-steps // steps_b)


def scratch_budget(ctx: Context):
    """What a scratch baseline's result depends on of its budget: the epochs it trains."""
    return ctx.of("scratch_b.budget", values={"scratch_b.epochs": scratch_epochs(ctx)})


def train_b(ctx: Context, stage: str, key: str, init: Result | None = None, classes: tuple = (), head: str = "fresh",
            shape: Result | None = None, teacher: Result | None = None, epochs: int | None = None) -> Result:
    """Train on B from `init`'s weights (head label space `classes`; head kept or reinit) or a fresh init, under
    `shape`'s mask or widths if given, distilling from `teacher` if given, for `epochs` (finetune_b's by default)."""
    cfg, pair = ctx.cfg, ctx.pair
    if hit := ctx.cached(stage, key):
        return hit
    with ctx.track(stage, key) as run:
        mask, structure = (ctx.load_mask(shape), shape.structure()) if shape else (None, {})
        if init:
            ctx.seed(stage)
            net = ctx.load_net(init, classes)
            if head == "reinit":
                net.head, classes = nn.Linear(net.head.in_features, pair.b.num_classes), pair.b.classes
        else:
            ctx.seed("scratch_b")  # both baselines start from the same fresh init, never train_a's
            net, classes = ctx.new_net(pair.b.classes, structure, fresh=True), pair.b.classes
        teacher_net = ctx.load_net(teacher, pair.b.classes) if teacher else None
        net = fit(mask.apply(net) if mask else net, pair.b.train, pair.b.val, epochs or cfg.finetune_b.epochs, cfg,
                  teacher=teacher_net, distill=cfg.finetune_b.distill)
        metrics = ctx.evaluate(net, classes)
        if mask:
            run.save("masks", mask)
            metrics |= mask.metrics()
        if structure:  # removed, not masked: the widths and the prune stage's sparsity carry over
            run.save_json("structure", net.structure())
            metrics |= {k: v for k, v in shape.metrics.items() if k.startswith("sparsity")}
        run.tag(head=head, order=cfg.order, distilled=teacher is not None)
        run.save("model", plain_state_dict(net))
        if stage in cfg.tracking.get("log_models", ()):  # B's networks in MLflow's Models column and registry
            run.log_model(ctx.plain(net, classes, structure), next(iter(pair.b.val.batches(2)))[0].numpy(), stage)
        run.log(metrics)
    return run.result
