"""What every stage shares: the config, the data pair, the dense reference, networks built from the config, and
the stage cache."""

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from crossprune import tracking
from crossprune.data import Pair
from crossprune.evaluate import Reference, evaluate
from crossprune.pruning import Mask
from crossprune.seeds import role_seed
from crossprune.tracking import Result, StageRun


@dataclass
class Context:
    cfg: DictConfig
    pair: Pair
    workdir: Path  # where stage artifacts are fetched to, for the length of one pipeline
    reference: Reference | None = None  # the dense train_a network's instruments, once train_a has run

    def seed(self, role: str) -> int:
        """Seed torch, numpy and Python for one role; each role draws its own stream from cfg.seed."""
        seed = role_seed(self.cfg.seed, role)
        pl.seed_everything(seed, workers=True, verbose=False)
        return seed

    @property
    def scored_classes(self) -> tuple:
        """The label space of the head of the network that is scored and pruned: A's, or B's when the dense
        network is fine-tuned on B first."""
        return self.pair.b.classes if self.cfg.order == "finetune_then_prune" else self.pair.a.classes

    def new_net(self, classes: tuple, structure: dict | None = None) -> nn.Module:
        """A fresh network for `classes`; `structure` overrides widths for a structurally pruned one."""
        shape = {**(structure or {}), "num_classes": len(classes)}
        return instantiate(self.cfg.model, input_shape=self.pair.a.input_shape, **shape)

    def load_net(self, result: Result, classes: tuple) -> nn.Module:
        """The network a stage saved (masks folded in, smaller widths if it was structurally pruned)."""
        net = self.new_net(classes, result.structure())
        net.load_state_dict(result.load("model"))
        return net

    def load_mask(self, result: Result) -> Mask | None:
        return Mask.load(result.files / "masks.safetensors") if result.has("masks") else None

    def key(self, stage: str, *depends_on) -> str:
        return tracking.stage_key(stage, *[d.key if isinstance(d, Result) else d for d in depends_on])

    def cached(self, stage: str, key: str, tag: str = tracking.KEY_TAG) -> Result | None:
        """The Result of a FINISHED run whose `tag` is `key` (the stage key by default), unless the cache is off."""
        run_id = tracking.finished_run(key, tag) if self.cfg.cache else None
        return tracking.fetch(stage, key, run_id, self.workdir) if run_id else None

    def track(self, stage: str, key: str) -> AbstractContextManager[StageRun]:
        """An open StageRun to fill; once the body succeeds its `result` holds what was logged."""
        return tracking.stage_run(stage, key, self.cfg, self.workdir)

    def evaluate(self, net: nn.Module, classes: tuple) -> dict[str, float]:
        """Every test-split metric of `net` (head label space `classes`), measured against the dense reference."""
        return evaluate(net, classes, self.pair, self.cfg.eval.probe, self.reference)
