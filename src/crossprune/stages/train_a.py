"""train_a: train the network on A (once per A-side config, whatever B it is then evaluated on), and fix the
instruments every later stage is read through: heads for A and B, the dense activations, the references."""

import hashlib
from pathlib import Path

from crossprune.stages.context import Context
from crossprune.stages.training import fit
from crossprune.store.tracking import WEIGHTS_TAG, Result


def run(ctx: Context) -> Result:
    cfg, a = ctx.cfg, ctx.pair.a
    init = cfg.model.get("weights")  # the file's contents, not its path: a file replaced in place is a new init
    init_digest = digest(Path(init)) if init else None
    weights_key = ctx.key("train_a.weights", cfg.pair.a, a.digest, cfg.model, init_digest, ctx.training, cfg.train_a, ctx.of("seed"))
    key = ctx.key("train_a", weights_key, cfg.pair.b, ctx.pair.b.digest, cfg.eval)  # the run also evaluates on B
    if hit := ctx.cached("train_a", key):
        ctx.reference = ctx.task.restore(ctx.load_net(hit, a.classes), ctx.pair, hit.load("heads"), ctx.compute)
        return hit
    with ctx.track("train_a", key) as run:
        run.tag(weights_key=weights_key)
        if same := ctx.cached("train_a.weights", weights_key, tag=WEIGHTS_TAG):  # e.g. a sweep over B's severity
            net = ctx.load_net(same, a.classes)
            run.tag(weights_from=same.run_id)
        else:
            ctx.seed("train_a")
            net = ctx.new_net(a.classes)
            if cfg.train_a.epochs:  # 0: the initial weights as they are (a pretrained checkpoint)
                net = fit(net, a.train, a.val, cfg.train_a.epochs, cfg)
        ctx.reference = ctx.task.reference(net, ctx.pair, cfg.eval.probe, ctx.compute)
        ctx.seed("untrained")  # the untrained twin whose probe says what architecture alone gives
        untrained = ctx.new_net(a.classes, fresh=True)
        run.save("model", net.state_dict())
        run.save("heads", ctx.reference.tensors())
        run.log(ctx.evaluate(net, a.classes) | ctx.task.instruments(net, untrained, ctx.pair, cfg.eval.probe, ctx.compute))
    return run.result


def digest(path: Path) -> str:
    """sha256 of a weights file, or of every file in a checkpoint folder (names and contents)."""
    if not path.is_dir():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()
