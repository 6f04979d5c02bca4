"""train_a: train the network on A (once per A-side config, whatever B it is then evaluated on), and fix the
instruments every later stage is read through: heads for A and B, the dense activations, the references."""

import hashlib
from pathlib import Path

from crossprune.stages.context import Context
from crossprune.stages.evaluate import Reference, instrument_references
from crossprune.stages.training import fit
from crossprune.store.tracking import WEIGHTS_TAG, Result


def run(ctx: Context) -> Result:
    cfg, a = ctx.cfg, ctx.pair.a
    init = cfg.model.get("weights")  # the file's contents, not its path: a file replaced in place is a new init
    init_digest = hashlib.sha256(Path(init).read_bytes()).hexdigest() if init else None
    weights_key = ctx.key("train_a.weights", cfg.pair.a, a.digest, cfg.model, init_digest, ctx.training, cfg.train_a, cfg.seed)
    key = ctx.key("train_a", weights_key, cfg.pair.b, ctx.pair.b.digest, cfg.eval)  # the run also evaluates on B
    if hit := ctx.cached("train_a", key):
        ctx.reference = Reference.of(ctx.load_net(hit, a.classes), ctx.pair, Reference.heads_from(hit.load("heads")), ctx.compute)
        return hit
    with ctx.track("train_a", key) as run:
        run.tag(weights_key=weights_key)
        if same := ctx.cached("train_a.weights", weights_key, tag=WEIGHTS_TAG):  # e.g. a sweep over B's severity
            net = ctx.load_net(same, a.classes)
            run.tag(weights_from=same.run_id)
        else:
            ctx.seed("train_a")
            net = fit(ctx.new_net(a.classes), a.train, a.val, cfg.train_a.epochs, cfg)
        ctx.reference = Reference.fit(net, ctx.pair, cfg.eval.probe, ctx.compute)
        ctx.seed("untrained")  # the untrained twin whose probe says what architecture alone gives
        untrained = ctx.new_net(a.classes, fresh=True)
        run.save("model", net.state_dict())
        run.save("heads", ctx.reference.tensors())
        run.log(ctx.evaluate(net, a.classes) | instrument_references(net, untrained, ctx.pair, cfg.eval.probe, ctx.compute))
    return run.result
