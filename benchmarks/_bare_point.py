"""One study point as a bare PyTorch script computes it: train A, score, prune, fine-tune B, the scratch baselines
and the teacher where the point needs them, in one process, no Lightning, MLflow or Hydra.

The math is crossprune's own pure functions where they are pure (the data, the models, the criteria, `select`, the
controls, the Mask and its hooks, the score batches); only the framework is left out. The loop slices batches from
the tensors as crossprune's `Batches` does (a DataLoader would make the reference slower, not crossprune faster).
`instruments=False` evaluates the head's test accuracy only, as a bare script would; `instruments=True` adds the
same instruments the stages log (probes, fixed heads, CKA, references, the A/B mask agreement and its noise floor),
calling the same functions, so the two differ by framework alone.
"""

import copy
import random
from pydoc import locate

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from crossprune.data import Pair
from crossprune.data.pair import build_pair
from crossprune.diagnostics import mask_iou
from crossprune.pruning import plain_state_dict, prunable, select
from crossprune.stages.compute import Compute
from crossprune.stages.evaluate import Reference, evaluate, instrument_references
from crossprune.stages.prune import agreement
from crossprune.stages.scoring import Objective, score_batches
from crossprune.stages.seeds import role_seed
from crossprune.store.parent import needed


def seed(cfg: DictConfig, role: str) -> int:
    s = role_seed(cfg.seed, role)  # the stream crossprune's stage draws (Lightning's seed_everything does these three)
    random.seed(s), np.random.seed(s), torch.manual_seed(s)
    return s


def new_net(cfg: DictConfig, pair: Pair, num_classes: int) -> nn.Module:
    options = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in ("_target_", "weights")}
    return locate(cfg.model._target_)(input_shape=pair.a.input_shape, num_classes=num_classes, **options)


def fit(net: nn.Module, train, val, epochs: int, cfg: DictConfig, teacher: nn.Module | None = None) -> nn.Module:
    """Adam at train.optimizer.lr, shuffled batches (a last batch of one dropped, as `Batches`), validating each epoch."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.optimizer.lr)
    size, n, d = cfg.train.batch_size, len(train), cfg.finetune_b.distill
    for _ in range(epochs):
        net.train()
        order = torch.randperm(n)
        order = order[:-1] if n > 1 and n % size == 1 else order
        for x, y in train.batches(size, order):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if teacher is not None:
                t = d.temperature
                with torch.no_grad():
                    soft_t = F.log_softmax(teacher(x) / t, 1)
                soft = F.kl_div(F.log_softmax(logits / t, 1), soft_t, reduction="batchmean", log_target=True)
                loss = (1 - d.alpha) * loss + d.alpha * t * t * soft
            opt.zero_grad()
            loss.backward()
            opt.step()
        accuracy(net, val, cfg.train.batch_size)
    return net


def accuracy(net: nn.Module, split, batch_size: int) -> float:
    net.eval()
    with torch.inference_mode():
        return sum(int((net(x).argmax(1) == y).sum()) for x, y in split.batches(batch_size)) / len(split)


class Point:
    """The stages one point needs (`needed(cfg)`, as crossprune's pipeline asks for them), its data built once."""

    def __init__(self, cfg: DictConfig, instruments: bool):
        self.cfg, self.instruments, self.pair = cfg, instruments, build_pair(cfg.pair)
        self.compute, self.reference = Compute.of(cfg), None

    def measure(self, net: nn.Module, classes: tuple) -> dict:
        """Test accuracy through the head where its labels are the split's; with instruments, crossprune's evaluate."""
        if self.instruments:
            return evaluate(net, classes, self.pair, self.cfg.eval.probe, self.compute, self.reference)
        return {t: accuracy(net, self.pair[t].test, self.cfg.eval.batch_size) for t in "AB" if self.pair[t].classes == classes}

    def scores(self, net: nn.Module, classes: tuple, data: str, stream: str = "score") -> dict:
        cfg = self.cfg
        params = prunable(net, cfg.prune)
        if cfg.criterion.data_free:
            data = "none"
        loss = Objective(net, self.pair, classes, cfg.eval.probe, self.compute)  # fits a head where labels differ
        options = {k: v for k, v in OmegaConf.to_container(cfg.criterion.score, resolve=True).items() if not k.startswith("_")}
        net.eval()
        return locate(cfg.criterion.score._target_)(net=net, params=params, batches=score_batches(cfg, self.pair, data, stream),
                                                   loss=loss, **options)

    def run(self) -> dict:
        cfg, pair = self.cfg, self.pair
        stages, out = needed(cfg), {}
        seed(cfg, "train_a")
        dense = fit(new_net(cfg, pair, pair.a.num_classes), pair.a.train, pair.a.val, cfg.train_a.epochs, cfg)
        if self.instruments:
            self.reference = Reference.fit(dense, pair, cfg.eval.probe, self.compute)
            seed(cfg, "untrained")
            untrained = new_net(cfg, pair, pair.a.num_classes)
            out["train_a/instruments"] = instrument_references(dense, untrained, pair, cfg.eval.probe, self.compute)
        out["train_a"] = self.measure(dense, pair.a.classes)
        source, classes = dense, pair.a.classes
        teacher = None
        if "teacher_b" in stages:
            seed(cfg, "teacher_b")
            teacher = self.on_b(self.plain(dense.state_dict(), pair.a.num_classes), cfg.finetune_b.head, cfg.finetune_b.epochs)
            out["teacher_b"] = self.measure(teacher, pair.b.classes)
            if cfg.order == "finetune_then_prune":
                source, classes = teacher, pair.b.classes
        if "score" not in stages:
            return out
        seed(cfg, "score")
        data = cfg.score.data
        scored = copy.deepcopy(source)
        scores = self.scores(scored, classes, data)
        if "prune" not in stages:
            return out
        seed(cfg, "prune")
        net = copy.deepcopy(scored)
        p = cfg.prune
        mask = locate(cfg.control.apply._target_)(select(scores, p.sparsity, p.scope, list(p.layers), p.max_layer_sparsity,
                                                         p.pattern), seed=seed(cfg, "control"))
        mask.apply(net)
        out["prune"] = self.measure(net, classes)
        if self.instruments:  # the A/B agreement and its noise floor: scoring on the other data, and A again
            other = {d: scores if (d == data or cfg.criterion.data_free) else self.scores(copy.deepcopy(source), classes, d) for d in "AB"}
            out["prune"] |= agreement(other["A"], other["B"], p)
            if not cfg.criterion.data_free:
                again = self.scores(copy.deepcopy(source), classes, "A", stream="score.replicate")
                at = lambda s: select(s, p.sparsity, p.scope, list(p.layers), p.max_layer_sparsity, p.pattern)  # noqa: E731
                out["prune"]["mask_iou_AA"] = mask_iou(at(scores), at(again))[0]
        pruned = plain_state_dict(net)
        if "finetune_b" in stages:
            seed(cfg, "finetune_b")
            head = cfg.finetune_b.head if cfg.order == "prune_then_finetune" else "keep"
            tuned = self.plain(pruned, len(classes))
            tuned = self.on_b(tuned, head, cfg.finetune_b.epochs, mask, teacher if cfg.finetune_b.distill.alpha > 0 else None)
            out["finetune_b"] = self.measure(tuned, pair.b.classes)
        epochs = self.scratch_epochs()
        if "scratch_b_dense" in stages:
            seed(cfg, "scratch_b")
            net = fit(new_net(cfg, pair, pair.b.num_classes), pair.b.train, pair.b.val, epochs, cfg)
            out["scratch_b_dense"] = self.measure(net, pair.b.classes)
        if "scratch_b_sparse" in stages:
            seed(cfg, "scratch_b")
            net = fit(mask.apply(new_net(cfg, pair, pair.b.num_classes)), pair.b.train, pair.b.val, epochs, cfg)
            out["scratch_b_sparse"] = self.measure(net, pair.b.classes)
        return out

    def plain(self, state: dict, num_classes: int) -> nn.Module:
        net = new_net(self.cfg, self.pair, num_classes)
        net.load_state_dict(state)
        return net

    def on_b(self, net: nn.Module, head: str, epochs: int, mask=None, teacher: nn.Module | None = None) -> nn.Module:
        """Train on B from `net`, its head re-initialised for B's labels with head=reinit, under `mask` if given."""
        b = self.pair.b
        if head == "reinit":
            net.head = nn.Linear(net.head.in_features, b.num_classes)
        if teacher is not None:  # built anew as crossprune's load_net does: its init draws from the same stream
            teacher = self.plain(teacher.state_dict(), b.num_classes).eval().requires_grad_(False)
        return fit(mask.apply(net) if mask else net, b.train, b.val, epochs, self.cfg, teacher)

    def scratch_epochs(self) -> int:
        cfg, size, a, b = self.cfg, self.cfg.train.batch_size, self.pair.a, self.pair.b
        if cfg.scratch_b.budget == "E":
            return cfg.scratch_b.epochs
        steps_b = -(-len(b.train) // size)
        return -(-(cfg.train_a.epochs * -(-len(a.train) // size) + cfg.finetune_b.epochs * steps_b) // steps_b)

